# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend.reauthorize and restore_last_known_good on the simulator.

Each refusal rule has a test that leaves the VM exactly as it was; the
WMI calls are checked against Microsoft's documentation (``conformance``).
"""

import pytest

from tests.fixtures import hyperv
from vtpm_core import exception
from vtpm_hyperv import exception as hv_exception
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

VM = hyperv.VM
INSTANCE = '0b3c7c1e-3f0e-4c55-9d1a-7f1ad9a3e4a2'


def _raw(owner, *parties):
    return fake.build_key_protector(owner, [p.public() for p in parties])


@pytest.fixture
def booted(hv, host, keys, guardians, fabric):
    """The VM with a vTPM sealed for this fabric, started once and off."""
    raw = _raw(guardians['owner'], fabric.guardian)
    hv.attach(INSTANCE, VM, hyperv.vtpm_request([keys.add(raw)]))
    host.start_vm(VM)
    host.stop_vm(VM)
    return host.vm_security(VM)


def _ids(*guardians):
    return tuple(keyprotector.fabric_id(g.signing_der) for g in guardians)


def test_new_key_protector_is_set_and_its_fabrics_returned(
        hv, host, keys, guardians, fabric, other_fabric, booted,
        conformance):
    """Same owner, this fabric kept, another added: set as given."""
    new = _raw(guardians['owner'], fabric.guardian, other_fabric.guardian)
    before, after = hv.reauthorize(INSTANCE, VM, keys.add(new))
    assert before == _ids(fabric.guardian)
    assert after == _ids(fabric.guardian, other_fabric.guardian)
    assert host.vm_security(VM)['KeyProtector'] == new
    # the last known good is the one that opened at the last start
    assert host.vm_security(VM)['LastKnownGoodKeyProtector'] == \
        booted['LastKnownGoodKeyProtector']
    assert all(not bytearray(b).strip(b'\0') for b in keys.handed_out)


def test_last_known_good_comes_back(hv, host, keys, guardians, fabric,
                                    other_fabric, booted, conformance):
    new = _raw(guardians['owner'], fabric.guardian, other_fabric.guardian)
    hv.reauthorize(INSTANCE, VM, keys.add(new))
    assert hv.restore_last_known_good(INSTANCE, VM) == _ids(fabric.guardian)
    assert host.vm_security(VM)['KeyProtector'] == \
        booted['LastKnownGoodKeyProtector']
    host.start_vm(VM)  # it opens again


def _refused(hv, host, ref, cls, fragment):
    before = host.vm_security(VM)
    with pytest.raises(cls) as err:
        hv.reauthorize(INSTANCE, VM, ref)
    assert host.vm_security(VM) == before
    assert 'os_vtpm_keyprotector (server metadata)' in str(err.value)
    assert fragment in str(err.value)
    return err.value


def test_another_owner_is_refused(hv, host, keys, guardians, fabric,
                                  other_fabric, booted, conformance):
    new = _raw(guardians['stranger'], fabric.guardian, other_fabric.guardian)
    _refused(hv, host, keys.add(new),
             exception.ReauthorizationOwnerChanged,
             "owner never changes")


def test_dropping_this_hosts_fabric_is_refused(hv, host, keys, guardians,
                                               fabric, other_fabric, booted,
                                               conformance):
    new = _raw(guardians['owner'], other_fabric.guardian)
    _refused(hv, host, keys.add(new),
             exception.ReauthorizationDropsFabric,
             'does not name fabric %s' % fabric.fabric_id)


def test_a_running_vm_is_refused(hv, host, keys, guardians, fabric,
                                 other_fabric, booted):
    host.start_vm(VM)
    new = _raw(guardians['owner'], fabric.guardian, other_fabric.guardian)
    _refused(hv, host, keys.add(new), exception.ReauthorizationNotOff,
             'only while the VM is off')


def test_a_vm_without_a_tenants_key_protector_is_refused(hv, host, keys,
                                                         guardians, fabric):
    new = _raw(guardians['owner'], fabric.guardian)
    _refused(hv, host, keys.add(new), exception.ReauthorizationNotKeyed,
             'nothing to re-authorize')


@pytest.mark.parametrize('what', ['missing', 'owner bundle', 'garbage'])
def test_unusable_secrets_are_refused(hv, host, keys, guardians, booted,
                                      what):
    ref = {'missing': '3f1b0c55-0000-4000-8000-000000000000',
           'owner bundle': keys.add(fake.export_owner_pkcs12(
               guardians['owner'])),
           'garbage': keys.add(b'\x01' * 400)}[what]
    _refused(hv, host, ref, exception.ReauthorizationSecretUnusable,
             ref)


def test_a_set_that_fails_after_taking_effect_is_undone(
        hv, host, keys, guardians, fabric, other_fabric, booted):
    new = _raw(guardians['owner'], fabric.guardian, other_fabric.guardian)
    host.fail('Msvm_SecurityService.SetKeyProtector', job_error=32768,
              mode='applied')
    with pytest.raises(hv_exception.HyperVOperationFailed):
        hv.reauthorize(INSTANCE, VM, keys.add(new))
    assert host.vm_security(VM) == booted
