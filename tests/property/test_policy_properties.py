# SPDX-License-Identifier: Apache-2.0
"""Properties of the merge rules (DESIGN.md 2); each rule is a docstring."""

from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests import strategies as s
from vtpm_core import exception
from vtpm_core import objects
from vtpm_core import policy

GEN2 = {'hw_machine_type': 'hyperv-gen2'}


def _sides(image_value, flavor_value, **image):
    image = dict(GEN2, **image)
    if image_value is not None:
        image['os_vtpm'] = image_value
    return image, ({} if flavor_value is None else {'os:vtpm': flavor_value})


@given(s.image_policies, s.flavor_policies)
def test_vtpm_on_exactly_when(image_value, flavor_value):
    """The vTPM is on exactly when (image required and flavor not disabled)
    or (image optional and flavor required)."""
    expected = ((image_value == 'required' and flavor_value != 'disabled') or
                (image_value == 'optional' and flavor_value == 'required'))
    try:
        request = policy.build_request(*_sides(image_value, flavor_value))
    except exception.PolicyConflict:
        assert not expected
    else:
        assert request.enabled is expected


@given(s.image_policies, s.flavor_policies)
def test_conflict_exactly_when_the_sides_oppose(image_value, flavor_value):
    """A conflict happens exactly when the two sides oppose: the flavor
    requires a vTPM that the image does not declare (absent or disabled), or
    the flavor disables a vTPM that the image requires."""
    opposed = ((image_value in (None, 'disabled') and
                flavor_value == 'required') or
               (image_value == 'required' and flavor_value == 'disabled'))
    try:
        policy.build_request(*_sides(image_value, flavor_value))
    except exception.PolicyConflict as e:
        assert opposed
        assert e.flavor_value == flavor_value
    else:
        assert not opposed


FIVE_KEYS = ('os_vtpm', 'os_vtpm_keys', 'hw_machine_type', 'os_shielded_vm')


@settings(max_examples=10_000)
@given(st.fixed_dictionaries({}, optional={k: s.any_text for k in FIVE_KEYS}),
       st.fixed_dictionaries({}, optional={'os:vtpm': s.any_text}),
       st.dictionaries(st.text(max_size=10), st.text(max_size=10),
                       max_size=3))
@example({'os_vtpm_keys': None}, {}, {})
def test_any_strings_give_a_request_or_a_vtpm_error(image, specs, unrelated):
    """Any strings for the five keys (plus unrelated ones) give a VTPMRequest
    or a VTPMError, and nothing else."""
    image = {**unrelated, **image}
    try:
        result = policy.build_request(image, specs)
    except exception.VTPMError as e:
        assert str(e)
    else:
        assert isinstance(result, objects.VTPMRequest)


@given(st.lists(s.typed_uuids, min_size=1, max_size=7),
       st.sampled_from(('required', 'optional')))
def test_accepted_key_lists_are_canonical(items, image_value):
    """Accepted key lists are canonical lowercase UUIDs, in the order given,
    at most 6, no duplicate, and came from at most 255 characters."""
    raw = ','.join(items)
    image, specs = _sides(image_value, 'required', os_vtpm_keys=raw)
    try:
        request = policy.build_request(image, specs)
    except exception.InvalidKeyList:
        canonical = [item.strip().lower() for item in items]
        assert (len(raw) > 255 or len(items) > 6 or
                len(set(canonical)) != len(canonical))
    else:
        assert len(raw) <= 255 and 1 <= len(request.key_refs) <= 6
        assert request.key_refs == [item.strip().lower() for item in items]
        assert len(set(request.key_refs)) == len(request.key_refs)


@given(s.vtpm_requests)
def test_request_primitive_round_trip(request):
    """obj_to_primitive then obj_from_primitive gives an equal request."""
    primitive = request.obj_to_primitive()
    assert objects.VTPMRequest.obj_from_primitive(primitive) == request


@given(s.host_capabilities)
def test_capabilities_primitive_round_trip(caps):
    """obj_to_primitive then obj_from_primitive gives equal capabilities."""
    primitive = caps.obj_to_primitive()
    assert objects.HostCapabilities.obj_from_primitive(primitive) == caps


@given(st.one_of(s.vtpm_requests, s.host_capabilities),
       st.sampled_from(('1.0', '1.1')))
def test_backport_never_raises(obj, version):
    """Backporting to every older version never raises, and the backported
    primitive reads back with the fields that version has."""
    primitive = obj.obj_to_primitive(target_version=version)
    back = type(obj).obj_from_primitive(primitive)
    for name in primitive['vtpm_object.data']:
        assert getattr(back, name) == getattr(obj, name)
