# SPDX-License-Identifier: Apache-2.0
"""Properties of the merge rules; each rule is a docstring."""

from hypothesis import event
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from nova import objects as nova_objects
from nova import utils as nova_utils

from tests import strategies as s
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects
from vtpm_core import policy
from vtpm_hyperv.nova import compute

nova_objects.register_all()

GEN2 = {'hw_machine_type': 'hyperv-gen2'}
KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'


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
    at most 6, no duplicate, and came from at most 251 characters."""
    raw = ','.join(items)
    image, specs = _sides(image_value, 'required', os_vtpm_keys=raw)
    try:
        request = policy.build_request(image, specs)
    except exception.InvalidKeyList:
        canonical = [item.strip().lower() for item in items]
        assert (len(raw) > constants.MAX_VALUE_BYTES or len(items) > 6 or
                len(set(canonical)) != len(canonical))
    else:
        assert len(raw) <= constants.MAX_VALUE_BYTES
        assert 1 <= len(request.key_refs) <= 6
        assert request.key_refs == [item.strip().lower() for item in items]
        assert len(set(request.key_refs)) == len(request.key_refs)


def _read_back(image):
    """The image properties as the compute side reads them: nova's own copy
    into a real nova Instance's system metadata, read by compute."""
    system_metadata = nova_utils.get_system_metadata_from_image(
        {'properties': image})
    return compute.image_properties(
        nova_objects.Instance(system_metadata=system_metadata))


def _outcome(image, specs):
    try:
        return policy.build_request(image, specs)
    except exception.InvalidVTPMRequest as e:
        return e


# String values of the five keys: valid ones often (so that a good share
# of the examples is accepted), values around nova's 255-byte cut, and
# arbitrary text.
_STRINGS = {
    'os_vtpm': st.one_of(st.just('required'), st.just('required'),
                         st.just('required'), st.just('optional'),
                         s.any_text),
    'os_vtpm_keys': st.one_of(
        s.key_lists_near_the_cut(), s.key_lists_near_the_cut(),
        st.lists(s.typed_uuids, min_size=1, max_size=6).map(','.join),
        s.any_text),
    'hw_machine_type': st.one_of(st.just('hyperv-gen2'),
                                 st.just('hyperv-gen2'),
                                 s.text_near_the_cut(), s.any_text),
    'os_shielded_vm': st.one_of(st.just('disabled'), st.just('disabled'),
                                st.just('required'), s.any_text),
}


@st.composite
def _images(draw):
    """Image properties; in one image in ten, a value is not a string."""
    image = draw(st.fixed_dictionaries({}, optional=_STRINGS))
    if draw(st.integers(0, 9)) == 9:
        image[draw(st.sampled_from(FIVE_KEYS))] = draw(s.non_strings)
    return image


# A keyed vTPM whose key list straddles the cut: the case that lost keys.
_keyed_near_the_cut = st.fixed_dictionaries(
    {'os_vtpm': st.just('required'),
     'hw_machine_type': st.just('hyperv-gen2'),
     'os_vtpm_keys': s.key_lists_near_the_cut()},
    optional={'os_shielded_vm': st.sampled_from(('disabled', 'required'))})


K = ('8f14e45f-ceea-467a-9575-7a6c8c2b3a11',
     '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2',
     '1679091c-5a88-4faf-8fb7-3ac8f9b2c4d5')


@settings(max_examples=10_000)
@given(st.one_of(_images(), _keyed_near_the_cut),
       st.fixed_dictionaries({}, optional={'os:vtpm': st.one_of(
           st.just('required'), st.just('required'),
           st.sampled_from(s.POLICIES), s.any_text, s.non_strings)}),
       st.dictionaries(st.text(max_size=10), st.text(max_size=300),
                       max_size=3))
# DR guardian C padded past the cut with ideographic spaces
@example({'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2',
          'os_vtpm_keys': K[0] + ',' + K[1] + '\u3000' * 100 + ',' + K[2]},
         {}, {})
# the same with ASCII spaces: the cut copy keeps A and B alone
@example({'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2',
          'os_vtpm_keys': K[0] + ',' + K[1] + ' ' * 200 + ',' + K[2]},
         {}, {})
# a long machine type while the vTPM is off
@example({'hw_machine_type': 'x' * 300}, {}, {})
@example({'hw_machine_type': ['hyperv-gen2']}, {}, {})
def test_what_build_request_accepts_nova_copies_unchanged(
        image, specs, unrelated):
    """What build_request accepts, nova's get_system_metadata_from_image
    copy gives back unchanged.

    Precisely: nova copies the image's properties into a nova Instance's
    system metadata with its own get_system_metadata_from_image, and the
    compute side reads them back with compute.image_properties. Then for
    any values of the five keys (and unrelated properties):

    * build_request accepts the original -> build_request on the copy read
      back returns an equal VTPMRequest (same keys in the same order, same
      machine type, same reasons);
    * build_request refuses an original whose values are strings ->
      build_request on the copy refuses too (a value nova cut is never
      read shortened, such as a key list without its last key);
    * nova cannot copy the image (a value not encodable in UTF-8) ->
      build_request refused the original.

    Values that are not strings are refused (nova's copy would make a
    string of them).
    """
    image = {**unrelated, **image}
    original = _outcome(image, specs)
    try:
        read_back = _read_back(image)
    except UnicodeEncodeError:
        event('nova cannot copy: refused')
        assert isinstance(original, exception.InvalidVTPMRequest)
        return
    copied = _outcome(read_back, specs)
    if isinstance(original, objects.VTPMRequest):
        event('accepted: %s' % ('vTPM on' if original.enabled else 'off'))
        assert copied == original
        for key in FIVE_KEYS:
            assert read_back.get(key) == image.get(key)
    elif all(isinstance(image[k], str) for k in FIVE_KEYS if k in image):
        event('refused: %s' % type(original).__name__)
        assert isinstance(copied, exception.InvalidVTPMRequest), copied
    else:
        event('refused: not a string')
        assert isinstance(original, exception.InvalidVTPMRequest)


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


@settings(max_examples=2_000)
@given(_images(), st.fixed_dictionaries({}, optional={'os:vtpm': st.one_of(
    st.sampled_from(s.POLICIES), s.any_text, s.non_strings)}))
@example({'hw_machine_type': ['hyperv-gen2']}, {})
@example({'hw_machine_type': 2}, {})
def test_every_accepted_request_survives_the_primitive_round_trip(image,
                                                                  specs):
    """Whatever the values of the five keys (strings, other types), a request
    that build_request accepts reads back equal from its primitive: every
    value it keeps has its field's type."""
    result = _outcome(image, specs)
    if isinstance(result, objects.VTPMRequest):
        primitive = result.obj_to_primitive()
        assert objects.VTPMRequest.obj_from_primitive(primitive) == result


_image_values = st.one_of(s.near_misses, s.any_text,
                          s.key_lists_near_the_cut())


@given(st.dictionaries(st.sampled_from(constants.IMAGE_KEYS), _image_values),
       st.dictionaries(st.just(constants.FLAVOR_VTPM), _image_values))
def test_a_settled_request_asks_nothing_of_a_host(image, flavor):
    """When settled_without_image says so for a flavor and an image's
    hw_machine_type (what nova keeps in the request spec), build_request
    with any value of the image's other properties gives no vTPM or an
    invalid request: the scheduler passes every host either way, so it need
    not read the image from Glance."""
    if not policy.settled_without_image(
            flavor, image.get(constants.IMAGE_MACHINE_TYPE)):
        return
    try:
        request = policy.build_request(image, flavor)
    except exception.InvalidVTPMRequest:
        event('invalid')
        return
    event('no vTPM')
    assert not request.enabled


_other_specs = st.dictionaries(
    st.one_of(st.sampled_from(('os:vtpm_keys', 'os:shielded', 'hw:vtpm',
                               'capabilities:hypervisor_type',
                               'trait:COMPUTE_SECURITY_TPM_2_0')),
              st.text(max_size=20)),
    st.text(max_size=20), max_size=4)


def _request_or_error(image, extra_specs):
    outcome = _outcome(image, extra_specs)
    if isinstance(outcome, objects.VTPMRequest):
        return outcome.obj_to_primitive()
    return type(outcome), str(outcome)


@given(s.image_policies, s.flavor_policies, st.booleans(), _other_specs)
def test_the_flavor_counts_by_its_flavor_keys_alone(
        image_value, flavor_value, keyed, others):
    """build_request reads the flavor's constants.FLAVOR_KEYS and no other
    extra spec: any others give the same request, or the same error. (The
    filter keeps one request per kept image and FLAVOR_KEYS values.)"""
    image, flavor = _sides(image_value, flavor_value,
                           **({'os_vtpm_keys': KEY} if keyed else {}))
    extra_specs = dict(others, **flavor)
    assert _request_or_error(image, extra_specs) == _request_or_error(image, {
        k: extra_specs[k] for k in constants.FLAVOR_KEYS if k in extra_specs})
