# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend and what Windows can answer, on the simulator.

Each test holds the backend to an answer Microsoft documents and the
simulator gives (``vtpm_hyperv.fake``, its ``# Windows:`` rules): the VM
configuration version a vTPM needs, Secure Boot for a shielded VM, a
shielded VM's settings that only its owner's key changes, return values
each page lists, saved and paused VMs, the last known good key protector
after a start, a host without the HGS client. WMI calls are checked
against Microsoft's documentation (``conformance``).
"""

import logging

from os_win import exceptions as os_win_exc
import pytest

from tests.fixtures import hyperv
from vtpm_core import exception
from vtpm_hyperv import exception as hv_exception
from vtpm_hyperv import fake

VM = hyperv.VM
INSTANCE = '6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b'
vtpm_request = hyperv.vtpm_request


def _raw(guardians, *parties):
    return fake.build_key_protector(guardians['owner'],
                                    [p.public() for p in parties])


# --- refused before anything changes -----------------------------------------

def test_a_vm_below_configuration_version_7_is_refused(make_backend, keys,
                                                       guardians, conformance):
    """Microsoft: "Virtual Trusted Platform Module (vTPM) | 7.0" (Upgrade
    virtual machine version): the fault names the VM's version and what a
    vTPM needs, and nothing changed."""
    with fake.installed():
        host = fake.FakeHyperVHost('hv-2019', os_version='10.0.17763')
        host.add_vm(VM, version='6.2')
        before = host.vm_security(VM)
        with pytest.raises(exception.UnsupportedVM) as err:
            make_backend(host).attach(INSTANCE, VM, vtpm_request())
        assert host.vm_security(VM) == before
        assert host.guardian_names() == []
    assert 'its configuration version is 6.2 and a vTPM needs 7.0 or later' \
        in str(err.value)
    assert 'Update-VMVersion' in str(err.value)


def test_version_7_is_enough(make_backend, conformance):
    with fake.installed():
        host = fake.FakeHyperVHost('hv-2016', os_version='10.0.14393')
        host.add_vm(VM, version='7.0')
        make_backend(host).attach(INSTANCE, VM, vtpm_request())
        assert host.vm_security(VM)['TpmEnabled']


@pytest.mark.parametrize('vm, words', [
    ({'secure_boot': False}, 'and it has Secure Boot off'),
    ({'template': 'Microsoft UEFI Certificate Authority'},
     'and it has another template'),
], ids=['secure-boot-off', 'linux-template'])
def test_a_shielded_vm_needs_secure_boot_with_a_shielded_template(
        make_backend, fabric, keys, guardians, vm, words, conformance):
    """Shielding selects and enforces Secure Boot; a Linux shielded VM
    boots with the "Open Source Shielded VM" template."""
    host = fake.FakeHyperVHost('hv-sb', fabric=fabric)
    host.add_vm(VM, **vm)
    before = host.vm_security(VM)
    ref = keys.add(_raw(guardians, fabric.guardian))
    with pytest.raises(exception.UnsupportedVM, match=words):
        make_backend(host).attach(INSTANCE, VM, vtpm_request([ref],
                                                             shielded=True))
    assert host.vm_security(VM) == before


def test_a_linux_shielded_vm_with_the_open_source_template(
        make_backend, fabric, keys, guardians, conformance):
    host = fake.FakeHyperVHost('hv-lsvm', fabric=fabric)
    host.add_vm(VM, template='Open Source Shielded VM')
    ref = keys.add(_raw(guardians, fabric.guardian))
    make_backend(host).attach(INSTANCE, VM, vtpm_request([ref],
                                                         shielded=True))
    assert host.vm_security(VM)['ShieldingRequested']


# --- return values, as each page lists them ----------------------------------

@pytest.mark.parametrize('code, words', [
    (4, 'Invalid Parameter'), (6, 'Incompatible Parameters'),
    (5, 'Invalid State'),
], ids=['4', '6', '5'])
def test_modify_security_settings_values_are_its_pages(
        hv, host, keys, guardians, fabric, code, words, conformance):
    """ModifySecuritySettings lists DMTF's 1 to 6: 4 is "Invalid
    Parameter", which os-win's JobUtils would take for a running job (its
    WMI_JOB_STATE_RUNNING) and wait on a job that does not exist."""
    before = host.vm_security(VM)
    host.fail('Msvm_SecurityService.ModifySecuritySettings',
              return_code=code)
    ref = keys.add(_raw(guardians, fabric.guardian))
    with pytest.raises(hv_exception.HyperVOperationFailed) as err:
        hv.attach(INSTANCE, VM, vtpm_request([ref]))
    assert 'with return code %d: %s' % (code, words) in str(err.value)
    assert hyperv.as_before(host, before)


def test_get_key_protector_4096_is_a_success(hv, host, keys, guardians,
                                             fabric, conformance):
    """Microsoft: "On success, returns a 0 or 4096" (the simulator answers
    4096 when it runs jobs asynchronously, as this host does)."""
    hv.attach(INSTANCE, VM, vtpm_request([keys.add(
        _raw(guardians, fabric.guardian))]))
    assert 'Msvm_SecurityService.GetKeyProtector' in host.calls
    assert host.vm_security(VM)['TpmEnabled']


# --- a shielded VM's settings, saved and paused VMs --------------------------

def test_detach_leaves_a_shielded_vm_to_its_deletion(hv, host, keys,
                                                     guardians, fabric,
                                                     caplog, conformance):
    """Microsoft: a shielded VM's settings change only "if you haven't set
    up the Host Guardian Service or are running it in local mode on the
    Hyper-V host and the host has the virtual machine owner's guardian
    key". A guarded host refuses, so detach leaves the VM shielded (its
    vTPM goes when nova deletes it) and says so; nothing else is left."""
    ref = keys.add(_raw(guardians, fabric.guardian))
    hv.attach(INSTANCE, VM, vtpm_request([ref], shielded=True))
    caplog.set_level(logging.WARNING)
    hv.detach(INSTANCE, VM)
    state = host.vm_security(VM)
    assert state['ShieldingRequested'] and state['TpmEnabled']
    assert 'keeps its vTPM and shielding until the VM is deleted' in \
        caplog.text
    assert host.guardian_names() == [fabric.name]


def test_detach_in_local_mode_with_the_owners_key_turns_shielding_off(
        local_hv, local_host, guardians, conformance):
    """The other half of the rule: in local mode, with the owner's
    guardian key in the store, the settings change (a VM shielded there
    with Microsoft's own steps, os-win's add_vtpm)."""
    local_host.import_guardian(guardians['owner'])
    vmutils, _ = local_host.os_win_utils()
    vmutils.add_vtpm(VM, local_host.add_pdk(fake.make_shielding_data_file(
        guardians['owner'])), shielded=True)
    local_hv.detach(INSTANCE, VM)
    state = local_host.vm_security(VM)
    assert not state['ShieldingRequested'] and not state['TpmEnabled']


@pytest.mark.parametrize('pause', [True, False], ids=['paused', 'saved'])
def test_a_saved_or_paused_vm_is_not_off(hv, host, keys, guardians, fabric,
                                         pause, caplog, conformance):
    ref = keys.add(_raw(guardians, fabric.guardian))
    hv.attach(INSTANCE, VM, vtpm_request([ref]))
    host.start_vm(VM)
    (host.pause_vm if pause else host.save_vm)(VM)
    before = host.vm_security(VM)
    word = 'Paused' if pause else 'Saved'
    new = keys.add(_raw(guardians, fabric.guardian, guardians['dr']))
    with pytest.raises(exception.ReauthorizationNotOff,
                       match='is not off \\(%s' % word):
        hv.reauthorize(INSTANCE, VM, new)
    caplog.set_level(logging.WARNING)
    hv.detach(INSTANCE, VM)   # nova deletes the VM: its vTPM goes with it
    assert ') is %s: Hyper-V changes its security settings only while it ' \
        'is off' % word in caplog.text
    assert host.vm_security(VM) == before


# --- the last known good, after a start --------------------------------------

def _granted(host, guardians, raw, *parties):
    """What the owner makes with Grant-HgsKeyProtectorAccess, on its own
    machine (a host of its own, in local mode), from ``raw``."""
    with fake.installed():
        own = fake.FakeHyperVHost('tenant-pc', os_version=host.os_version)
        own.import_guardian(guardians['owner'])
        kp = own.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(Bytes=raw)[1]
        for party in parties:
            own.import_guardian(party.public())
            kp = own.hgs.MSFT_HgsKeyProtector.Grant(
                KeyProtector=kp,
                Guardian=own.hgs.MSFT_HgsGuardian(Name=party.name)[0],
                AllowUntrustedRoot=True)[1]
        return bytes(kp.RawData)


def test_a_key_protector_granted_from_the_current_one_starts(
        hv, host, keys, guardians, fabric, other_fabric, conformance):
    first = _raw(guardians, fabric.guardian)
    hv.attach(INSTANCE, VM, vtpm_request([keys.add(first)]))
    host.start_vm(VM)
    host.stop_vm(VM)
    current = host.vm_security(VM)['KeyProtector']    # Get-VMKeyProtector
    granted = _granted(host, guardians, current, other_fabric.guardian)
    hv.reauthorize(INSTANCE, VM, keys.add(granted))
    host.start_vm(VM)


def test_a_key_protector_granted_from_a_stale_one_needs_the_last_known_good(
        hv, host, keys, guardians, fabric, other_fabric, conformance):
    """A start encrypts the vTPM's state with a new transport key: one
    granted from the key protector of before that start does not open the
    vTPM; the last known good (that start's) does."""
    first = _raw(guardians, fabric.guardian)
    hv.attach(INSTANCE, VM, vtpm_request([keys.add(first)]))
    host.start_vm(VM)
    host.stop_vm(VM)
    stale = _granted(host, guardians, first, other_fabric.guardian)
    hv.reauthorize(INSTANCE, VM, keys.add(stale))
    with pytest.raises(fake.WmiMethodError, match='stale'):
        host.start_vm(VM)
    assert hv.restore_last_known_good(INSTANCE, VM) == (fabric.fabric_id,)
    host.start_vm(VM)


# --- a host without the HGS client -------------------------------------------

def test_a_host_without_the_hgs_client_reports_and_refuses(
        make_backend, keys, conformance):
    """os-win raises its OSWinException when it cannot open
    Root/Microsoft/Windows/Hgs; the host still reports (no vTPM) and
    refuses a vTPM before anything changes."""
    host = fake.FakeHyperVHost('hv-nohgs', hgs_installed=False)
    host.add_vm(VM)
    hv = make_backend(host)
    caps = hv.get_capabilities()
    assert (caps.vtpm_supported, caps.guarded) == (False, False)
    before = host.vm_security(VM)
    with pytest.raises(exception.HostNotSuitable,
                       match='the HGS client cannot be read'):
        hv.attach(INSTANCE, VM, vtpm_request())
    assert host.vm_security(VM) == before


def test_os_wins_failure_to_open_the_hgs_namespace_is_translated(
        make_backend, monkeypatch):
    """On Windows os-win opens the namespace when ``_conn_hgs`` is first
    read (hostutils10) and raises OSWinException there, not on a call."""
    host = fake.FakeHyperVHost('hv-nohgs2', hgs_installed=False)
    hv = make_backend(host)
    hostutils = hv._os_win.hostutils
    hostutils._conn_hgs_attr = None

    def no_namespace(moniker, **kwargs):
        raise fake.x_wmi('Invalid namespace %s' % moniker)
    monkeypatch.setattr(hostutils, '_get_wmi_conn', no_namespace)
    with pytest.raises(os_win_exc.OSWinException):
        hostutils._conn_hgs
    caps = hv.get_capabilities()
    assert caps.vtpm_supported is False
