# SPDX-License-Identifier: Apache-2.0
"""Versioned objects: pinned fingerprints and backports."""

import datetime

from oslo_versionedobjects import base
from oslo_versionedobjects import fields
from oslo_versionedobjects import fixture
import pytest

from vtpm_core import objects

# Changing a field of one of these objects changes its fingerprint. When this
# test fails, bump the object's VERSION, add a '# Version' line, teach
# obj_make_compatible to drop the new field, and update the hash here.
EXPECTED_FINGERPRINTS = {
    'HostCapabilities': '1.3-44b0198f7b2761eda11ceba3cff243e9',
    'VTPMRequest': '1.1-f97ce730b5a030ac75cdabdcd5af2c45',
}

# Every version each object has had (from its '# Version' history).
VERSIONS = {'HostCapabilities': ('1.0', '1.1', '1.2', '1.3'),
            'VTPMRequest': ('1.0', '1.1')}


def _our_classes():
    return {name: classes for name, classes in
            base.VersionedObjectRegistry.obj_classes().items()
            if classes[0].OBJ_PROJECT_NAMESPACE == 'vtpm'}


def test_fingerprints_are_pinned():
    checker = fixture.ObjectVersionChecker(_our_classes())
    expected, actual = checker.test_hashes(EXPECTED_FINGERPRINTS)
    assert expected == actual, (
        'a vtpm object changed without a version bump: %s' % actual)


def test_a_field_change_without_a_bump_is_caught():
    """The fingerprint test above can fail: a new field, same VERSION."""
    changed = type('VTPMRequest', (objects.VTPMRequest,), {
        'fields': dict(objects.VTPMRequest.fields,
                       tpm_model=fields.StringField())})
    checker = fixture.ObjectVersionChecker({'VTPMRequest': [changed]})
    expected, actual = checker.test_hashes(
        {'VTPMRequest': EXPECTED_FINGERPRINTS['VTPMRequest']})
    assert expected != actual


def test_versions_match_history():
    assert {n: c[0].VERSION for n, c in _our_classes().items()} == {
        n: v[-1] for n, v in VERSIONS.items()}


@pytest.mark.parametrize('name', sorted(VERSIONS))
def test_compatibility_routines(name):
    """Backporting to every version works (oslo's own check)."""
    checker = fixture.ObjectVersionChecker(_our_classes())
    checker.test_compatibility_routines()
    for version in VERSIONS[name]:
        assert _our_classes()[name][0]().obj_to_primitive(
            target_version=version)['vtpm_object.version'] == version


def test_request_backport_to_1_0_drops_reasons():
    request = objects.VTPMRequest(
        enabled=True, key_refs=[], shielded=False, machine_type='hyperv-gen2',
        image_policy='required', flavor_policy=None, reasons=['why'])
    data = request.obj_to_primitive(target_version='1.0')['vtpm_object.data']
    assert 'reasons' not in data
    assert data['enabled'] is True


def test_capabilities_backport_to_1_0_drops_os_version():
    caps = objects.HostCapabilities(
        vtpm_supported=True, guarded=False,
        attestation_status='NotConfigured',
        measured_at=datetime.datetime(2026, 1, 1,
                                      tzinfo=datetime.timezone.utc),
        os_version='10.0.20348')
    data = caps.obj_to_primitive(target_version='1.0')['vtpm_object.data']
    assert 'os_version' not in data
    assert data['attestation_status'] == 'NotConfigured'


def test_capabilities_backport_to_1_1_drops_local_key_protector():
    caps = objects.HostCapabilities(
        vtpm_supported=True, guarded=False,
        attestation_status='NotConfigured',
        measured_at=datetime.datetime(2026, 1, 1,
                                      tzinfo=datetime.timezone.utc),
        os_version='10.0.20348', local_key_protector=True)
    data = caps.obj_to_primitive(target_version='1.1')['vtpm_object.data']
    assert 'local_key_protector' not in data
    assert data['os_version'] == '10.0.20348'


def test_capabilities_backport_to_1_2_drops_fabric_ids():
    """A 1.2 reader gets fabric_id as it always was: the primary identity."""
    caps = objects.HostCapabilities(
        vtpm_supported=True, guarded=True, attestation_status='Passed',
        fabric_id='new-primary', fabric_ids=['new-primary', 'previous'],
        measured_at=datetime.datetime(2026, 1, 1,
                                      tzinfo=datetime.timezone.utc),
        local_key_protector=False)
    primitive = caps.obj_to_primitive(target_version='1.2')
    data = primitive['vtpm_object.data']
    assert 'fabric_ids' not in data
    assert data['fabric_id'] == 'new-primary'
    assert data['local_key_protector'] is False
    assert primitive['vtpm_object.version'] == '1.2'


def test_from_validated_equals_coerced_construction():
    values = dict(enabled=True, key_refs=['a'], shielded=True,
                  machine_type='hyperv-gen2', image_policy='required',
                  flavor_policy='optional', reasons=['r'])
    fast = objects.VTPMRequest.from_validated(**values)
    slow = objects.VTPMRequest(**values)
    assert fast == slow
    fast_primitive, slow_primitive = (
        o.obj_to_primitive() for o in (fast, slow))
    for primitive in (fast_primitive, slow_primitive):
        # Listed in set order, which differs between equal sets.
        primitive['vtpm_object.changes'].sort()
    assert fast_primitive == slow_primitive
    assert fast.obj_what_changed() == slow.obj_what_changed()


def test_invalid_policy_value_is_refused_by_the_field():
    with pytest.raises(ValueError):
        objects.VTPMRequest(image_policy='sometimes')
