# SPDX-License-Identifier: Apache-2.0
"""An HGS certificate renewal, on the simulator and the backend.

Microsoft's procedure ("Managing the Host Guardian Service", Renewing or
replacing keys): HGS adds a new signing and encryption pair and makes it
primary, so the guardian metadata gives the new pair while HGS still
unwraps with the old; VM owners grant the new guardian; HGS disables, then
removes, the old pair. Hosts here import the new metadata beside the old
guardian and report both identities until the old one is gone.
"""

import pytest

from tests.fixtures import hyperv
from vtpm_core import exception
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

VM = hyperv.VM
INSTANCE = '0b7c3a8e-1f52-4f7e-b1a2-3c4d5e6f7a80'
OLD, NEW = 'contoso-hgs', 'contoso-hgs-2027'


@pytest.fixture
def fabric():
    """A fabric of its own (conftest's ``host`` is then of it): a renewal
    changes it."""
    return fake.Fabric(OLD, reuse_keys=True)


@pytest.fixture
def old(fabric):
    return fabric.guardian


@pytest.fixture
def renewed(fabric, old):
    """HGS holds a new primary pair beside the old one."""
    new = fabric.add_certificates(NEW)
    fabric.set_primary(new)
    return new


def _ids(*guardians):
    return [keyprotector.fabric_id(g.signing_der) for g in guardians]


def _renew_host(host, fabric, make_backend):
    """The hoster's step: import the new metadata, name both guardians."""
    host.import_guardian(fabric.guardian_metadata(), NEW)
    return make_backend(host, fabric_guardian_name=NEW,
                        previous_fabric_guardian_names=[OLD])


def _with_kp(host, raw):
    vm = host.vms[VM]
    vm.key_protector = raw
    vm.flags.update(TpmEnabled=True)


# --- the simulated HGS -------------------------------------------------------

def test_the_metadata_gives_the_primary_pair(fabric, old, renewed):
    assert fabric.guardian_metadata().signing_der == renewed.signing_der
    assert fabric.guardian_metadata().signing_key is None
    assert fabric.fabric_id == _ids(renewed)[0]
    assert fabric.unwrapping_guardians() == [old, renewed]


def test_hgs_unwraps_with_every_enabled_pair_only(host, fabric, guardians,
                                                  old, renewed):
    raw = fake.build_key_protector(guardians['owner'], [old.public()])
    _with_kp(host, raw)
    host.start_vm(VM)  # the old pair is still there
    host.stop_vm(VM)
    fabric.disable(old)
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        host.start_vm(VM)


@pytest.mark.parametrize('action', ['disable', 'remove'])
def test_the_primary_pair_is_not_retired(fabric, old, renewed, action):
    with pytest.raises(ValueError, match='primary'):
        getattr(fabric, action)(renewed)
    assert fabric.guardian is renewed


def test_a_disabled_pair_is_not_made_primary(fabric, old, renewed):
    fabric.disable(old)
    with pytest.raises(ValueError, match='disabled'):
        fabric.set_primary(old)
    fabric.remove(old)
    assert fabric.unwrapping_guardians() == [renewed]


# --- the backend during a renewal -------------------------------------------

def test_a_renewing_host_reports_both_identities(
        host, fabric, old, renewed, make_backend, conformance):
    hv = _renew_host(host, fabric, make_backend)
    caps = hv.get_capabilities()
    assert caps.fabric_id == fabric.fabric_id == _ids(renewed)[0]
    assert caps.fabric_ids == _ids(renewed, old)


def test_a_host_before_the_renewal_reports_its_one_identity(
        host, fabric, make_backend):
    caps = make_backend(host).get_capabilities()
    assert caps.fabric_ids == [caps.fabric_id] == [fabric.fabric_id]


def test_a_previous_guardian_not_in_the_store_is_not_reported(
        host, fabric, renewed, make_backend, caplog):
    host.import_guardian(fabric.guardian_metadata(), NEW)
    host.remove_guardian(OLD)
    hv = make_backend(host, fabric_guardian_name=NEW,
                      previous_fabric_guardian_names=[OLD])
    assert hv.get_capabilities().fabric_ids == _ids(renewed)
    assert 'previous_fabric_guardian_names names %s' % OLD in caplog.text


@pytest.mark.parametrize('names', ['old', 'new', 'both'])
def test_a_renewing_host_accepts_a_key_protector_of_either(
        host, fabric, old, renewed, make_backend, keys, guardians, names,
        conformance):
    parties = {'old': [old], 'new': [renewed], 'both': [old, renewed]}[names]
    raw = fake.build_key_protector(guardians['owner'],
                                   [p.public() for p in parties])
    hv = _renew_host(host, fabric, make_backend)
    result = hv.attach(INSTANCE, VM, hyperv.vtpm_request([keys.add(raw)],
                                                         shielded=True))
    assert result.fabrics == tuple(_ids(*parties))
    host.start_vm(VM)


def test_after_the_renewal_the_old_guardian_is_refused(
        host, fabric, old, renewed, make_backend, keys, guardians):
    host.import_guardian(fabric.guardian_metadata(), NEW)
    host.remove_guardian(OLD)
    fabric.disable(old)
    hv = make_backend(host, fabric_guardian_name=NEW)
    before = host.vm_security(VM)
    ref = keys.add(fake.build_key_protector(guardians['owner'],
                                            [old.public()]))
    with pytest.raises(exception.HostNotSuitable, match=ref):
        hv.attach(INSTANCE, VM, hyperv.vtpm_request([ref], shielded=True))
    assert host.vm_security(VM) == before
