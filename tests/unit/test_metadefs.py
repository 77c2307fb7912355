# SPDX-License-Identifier: Apache-2.0
"""The Glance metadata definitions agree with what the policy accepts."""

import json
import pathlib
import re

from hypothesis import given
from hypothesis import strategies as st
import pytest

from tests import strategies as s
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import policy

METADEFS = pathlib.Path(__file__).parents[2] / 'etc' / 'metadefs'


def _load(name):
    return json.loads((METADEFS / name).read_text())


IMAGE = _load('hyperv-vtpm-image.json')
FLAVOR = _load('hyperv-vtpm-flavor.json')


def _names(namespace):
    """Property names as Glance applies them: prefix + name."""
    prefix = namespace['resource_type_associations'][0].get('prefix', '')
    return {prefix + name: prop
            for name, prop in namespace['properties'].items()}


def test_namespaces_cover_every_key_the_policy_reads_but_glances_own():
    """hw_machine_type is Glance's (OS::Compute::LibvirtImage), and nova's
    hw_tpm_* and hw:tpm_* are Glance's too (OS::Compute::TPM): they are
    named, not defined again; tests/functional/test_glance_metadefs.py
    holds every property against the namespaces Glance ships."""
    assert set(_names(IMAGE)) == set(constants.IMAGE_KEYS) - {
        constants.IMAGE_MACHINE_TYPE} - set(constants.NOVA_IMAGE_KEYS)
    assert 'hw_machine_type=hyperv-gen2' in IMAGE['description']
    assert 'OS::Compute::LibvirtImage' in IMAGE['description']
    assert set(_names(FLAVOR)) == set(constants.FLAVOR_KEYS) - set(
        constants.NOVA_FLAVOR_KEYS)
    for namespace in (IMAGE, FLAVOR):
        # what a tenant of a libvirt cloud may write instead
        assert 'tpm_version=2.0' in namespace['description']
        assert 'tpm_model=tpm-crb' in namespace['description']
    assert IMAGE['resource_type_associations'][0]['name'] == \
        'OS::Glance::Image'
    assert FLAVOR['resource_type_associations'][0]['name'] == \
        'OS::Nova::Flavor'


@pytest.mark.parametrize('namespace,key', [
    (IMAGE, 'os_vtpm'), (FLAVOR, 'os:vtpm')])
def test_policy_enums_match(namespace, key):
    """Every value Horizon offers is one the policy accepts, and no other."""
    assert tuple(_names(namespace)[key]['enum']) == constants.VTPM_POLICIES
    gen2 = {'hw_machine_type': 'hyperv-gen2', 'os_vtpm': 'optional'}
    for value in constants.VTPM_POLICIES:
        if key == 'os_vtpm':
            policy.build_request(dict(gen2, os_vtpm=value), {})
        else:
            policy.build_request(gen2, {key: value})


def test_shielding_enum_matches():
    prop = _names(IMAGE)['os_shielded_vm']
    assert tuple(prop['enum']) == constants.SHIELDING_POLICIES
    assert prop['default'] == constants.DISABLED


KEYS = _names(IMAGE)['os_vtpm_keys']


@given(st.one_of(
    st.lists(s.typed_uuids, min_size=1, max_size=7).map(','.join),
    s.key_lists_near_the_cut(), s.any_text))
def test_keys_pattern_agrees_with_the_policy(raw):
    """Horizon's check (pattern and maxLength of os_vtpm_keys) accepts a
    value exactly when the policy accepts it, except duplicates, which a
    JSON-schema pattern cannot express and the policy refuses."""
    shape_ok = (len(raw) <= KEYS['maxLength'] and
                re.search(KEYS['pattern'], raw) is not None)
    try:
        policy.build_request({'os_vtpm': 'required', 'hw_machine_type':
                              'hyperv-gen2', 'os_vtpm_keys': raw}, {})
    except exception.InvalidKeyList as e:
        assert not shape_ok or 'duplicate' in str(e)
    else:
        assert shape_ok


@pytest.mark.parametrize('namespace', [IMAGE, FLAVOR],
                         ids=['image', 'flavor'])
def test_namespaces_fit_glances_schema(namespace):
    """Glance refuses a namespace whose description passes 500 characters
    (glanceclient's namespace schema, as Glance serves it)."""
    assert len(namespace['description']) <= 500
    assert len(namespace['display_name']) <= 80
