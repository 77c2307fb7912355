# SPDX-License-Identifier: Apache-2.0
"""The simulator answers os-win's own code, and keeps Hyper-V's rules."""

import time

from os_win import exceptions as os_win_exc
import pytest

from tests.hyperv import conftest
from vtpm_hyperv import fake

VM = conftest.VM


# --- os-win's own VMUtils10 / HostUtils10, unmodified -----------------------

def test_os_win_reads_generation_and_guard_state(fabric):
    host = fake.FakeHyperVHost('hv-gen', fabric=fabric)
    host.add_vm('gen1', generation=1)
    host.add_vm('gen2', generation=2)
    vmutils, hostutils = host.os_win_utils()
    assert vmutils.get_vm_generation('gen1') == 1
    assert vmutils.get_vm_generation('gen2') == 2
    assert vmutils.vm_exists('gen2')
    assert not vmutils.vm_exists('nope')
    assert hostutils.is_host_guarded() is True
    assert hostutils.get_windows_version() == '10.0.20348'
    with pytest.raises(os_win_exc.HyperVVMNotFoundException):
        vmutils.get_vm_generation('nope')


def test_os_win_is_host_guarded_false_for_local_mode_and_failed_get():
    host = fake.FakeHyperVHost('hv-local')
    _, hostutils = host.os_win_utils()
    assert hostutils.is_host_guarded() is False
    guarded = fake.FakeHyperVHost('hv-g2', fabric=fake.Fabric(
        'f', reuse_keys=True))
    _, hostutils = guarded.os_win_utils()
    guarded.fail('MSFT_HgsClientConfiguration.Get', return_code=32768)
    # os-win logs and answers False on a non-zero return code.
    assert hostutils.is_host_guarded() is False
    assert hostutils.is_host_guarded() is True


def test_os_win_add_vtpm_sets_kp_policy_and_tpm(host, guardians, fabric):
    vmutils, _ = host.os_win_utils()
    kp = fake.build_key_protector(guardians['owner'],
                                  [fabric.guardian.public()])
    host.add_pdk(r'C:\pdk\shielding.pdk', kp, b'policy-bytes')
    assert vmutils.is_secure_vm(VM) is False
    vmutils.add_vtpm(VM, r'C:\pdk\shielding.pdk', shielded=True)
    state = host.vm_security(VM)
    assert state['KeyProtector'] == kp
    assert state['SecurityPolicy'] == b'policy-bytes'
    assert state['TpmEnabled'] and state['ShieldingRequested']
    assert vmutils.is_secure_vm(VM) is True
    assert host.calls[-3:] == ['Msvm_SecurityService.SetKeyProtector',
                               'Msvm_SecurityService.SetSecurityPolicy',
                               'Msvm_SecurityService.ModifySecuritySettings']


def test_os_win_waits_for_running_jobs(fabric):
    host = fake.FakeHyperVHost('hv-slow', fabric=fabric, job_polls=2)
    host.add_vm(VM)
    vmutils, _ = host.os_win_utils()
    kp = fake.build_key_protector(fake.make_guardian('o', reuse_keys=True))
    host.add_pdk('p', kp, b'')
    started = time.monotonic()
    vmutils.add_vtpm(VM, 'p', shielded=False)
    # Three jobs, each running for two polls os-win makes 0.1 s apart.
    assert time.monotonic() - started >= 0.5
    assert host.vm_security(VM)['TpmEnabled']


def test_tpm_without_key_protector_fails_with_hyperv_message(host):
    vmutils, _ = host.os_win_utils()
    host.add_pdk('empty', b'', b'')
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, 'empty', shielded=False)
    assert err.value.error_code == 32768
    assert fake.NO_KP_MESSAGE % VM in str(err.value)
    assert not host.vm_security(VM)['TpmEnabled']


def test_security_settings_change_only_while_off(host, guardians):
    vmutils, _ = host.os_win_utils()
    host.add_pdk('p', fake.build_key_protector(guardians['owner']), b'')
    host.vms[VM].state = fake.host.VM_ENABLED
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, 'p', shielded=False)
    assert err.value.error_code == 32775


# --- fault injection ---------------------------------------------------------

def test_fault_at_nth_call_once(host, guardians):
    vmutils, _ = host.os_win_utils()
    host.add_pdk('p', fake.build_key_protector(guardians['owner']), b'')
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32777,
              description='disk on fire', at=2)
    vmutils.add_vtpm(VM, 'p', shielded=False)          # first call: fine
    with pytest.raises(os_win_exc.WMIJobFailed) as err:  # second: fails
        vmutils.add_vtpm(VM, 'p', shielded=False)
    assert err.value.error_code == 32777
    assert 'disk on fire' in str(err.value)
    vmutils.add_vtpm(VM, 'p', shielded=False)          # third: fine again


def test_fault_with_return_code_is_answered_directly(host, guardians):
    vmutils, _ = host.os_win_utils()
    host.add_pdk('p', fake.build_key_protector(guardians['owner']), b'')
    host.fail('Msvm_SecurityService.SetKeyProtector', return_code=32769)
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, 'p', shielded=False)
    assert err.value.error_code == 32769
    assert err.value.job_state is None  # no job: the code came back as is
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_fault_on_a_query_raises_x_wmi(host):
    vmutils, _ = host.os_win_utils()
    host.fail('Msvm_VirtualSystemSettingData')
    with pytest.raises(fake.x_wmi):
        vmutils.get_vm_generation(VM)
    assert vmutils.get_vm_generation(VM) == 2


# --- HGS rules and real cryptography -----------------------------------------

def _new_kp(host, owner, guardians=(), **flags):
    rc, kp = host.hgs.MSFT_HgsKeyProtector.NewByGuardians(
        Owner=host.hgs.MSFT_HgsGuardian(Name=owner)[0],
        Guardians=[host.hgs.MSFT_HgsGuardian(Name=g)[0] for g in guardians],
        AllowUntrustedRoot=True, **flags)
    return rc, kp


def test_key_protector_unwraps_only_for_its_guardians(host, guardians):
    host.import_guardian(guardians['owner'])
    host.import_guardian(guardians['dr'].public())
    rc, kp = _new_kp(host, 'owner', ['dr'])
    assert rc == 0
    raw = bytes(kp.RawData)
    key = fake.unwrap_key_protector(raw, guardians['owner'].encryption_key)
    assert len(key) == 32
    assert fake.unwrap_key_protector(raw, guardians['dr'].encryption_key) \
        == key
    for other in (guardians['stranger'].encryption_key,
                  guardians['dr'].signing_key):
        with pytest.raises(fake.UnwrapError):
            fake.unwrap_key_protector(raw, other)
    tampered = bytearray(raw)
    tampered[len(fake.crypto.MAGIC) + 20] ^= 1
    with pytest.raises(fake.KeyProtectorError):
        fake.parse_key_protector(bytes(tampered))


def test_new_key_protector_needs_owner_private_key(host, guardians):
    host.import_guardian(guardians['dr'].public())
    rc, kp = _new_kp(host, 'dr')
    assert rc == 32769 and kp is None


def test_self_signed_guardian_needs_allow_untrusted_root(host, guardians):
    g = guardians['dr']
    accept = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates
    rc, _ = accept(Name='x', SigningCertificate=g.signing_der,
                   EncryptionCertificate=g.encryption_der)
    assert rc == 32773 and 'x' not in host.guardian_names()
    rc, out = accept(Name='x', SigningCertificate=g.signing_der,
                     EncryptionCertificate=g.encryption_der,
                     AllowUntrustedRoot=True)
    assert rc == 0 and out.HasPrivateSigningKey is False


def test_guardian_from_trusted_ca_needs_no_flag():
    ca = fake.make_ca()
    host = fake.FakeHyperVHost('hv-ca', trusted_roots=[ca.cert])
    g = fake.make_guardian('issued', ca=ca, reuse_keys=True)
    rc, _ = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
        Name='issued', SigningCertificate=fake.export_owner_pkcs12(g),
        EncryptionCertificate=g.encryption_der)
    assert rc == 0
    assert host.hgs.MSFT_HgsGuardian(Name='issued')[0].HasPrivateSigningKey


def test_expired_guardian_needs_allow_expired(host):
    g = fake.make_guardian('old', expired=True, reuse_keys=True)
    accept = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates
    kwargs = dict(SigningCertificate=g.signing_der,
                  EncryptionCertificate=g.encryption_der,
                  AllowUntrustedRoot=True)
    assert accept(Name='old', **kwargs)[0] == 32773
    assert accept(Name='old', AllowExpired=True, **kwargs)[0] == 0


def test_grant_and_revoke_need_owner_private_key(host, guardians):
    owner, dr = guardians['owner'], guardians['dr']
    host.import_guardian(owner)
    host.import_guardian(dr.public())
    _, kp = _new_kp(host, 'owner')
    grant = host.hgs.MSFT_HgsKeyProtector.Grant
    rc, granted = grant(KeyProtector=kp.RawData, Guardian='dr',
                        AllowUntrustedRoot=True)
    assert rc == 0
    tk = fake.unwrap_key_protector(granted.RawData, dr.encryption_key)
    assert tk == fake.unwrap_key_protector(kp.RawData, owner.encryption_key)
    # The owner never changes.
    assert fake.parse_key_protector(granted.RawData).owner.signing_der == \
        owner.signing_der
    rc, revoked = host.hgs.MSFT_HgsKeyProtector.Revoke(
        KeyProtector=granted.RawData, Guardian='dr')
    assert rc == 0
    with pytest.raises(fake.UnwrapError):
        fake.unwrap_key_protector(revoked.RawData, dr.encryption_key)
    # Without the owner's private signing key: refused.
    host.hgs.MSFT_HgsGuardian.Remove(Name='owner')
    host.import_guardian(owner.public())
    rc, _ = grant(KeyProtector=kp.RawData, Guardian='dr',
                  AllowUntrustedRoot=True)
    assert rc == 32769


def test_key_protector_owner_cannot_change_on_tpm_vm(host, guardians):
    vmutils, _ = host.os_win_utils()
    host.add_pdk('a', fake.build_key_protector(guardians['owner']), b'')
    host.add_pdk('b', fake.build_key_protector(guardians['owner2']), b'')
    vmutils.add_vtpm(VM, 'a', shielded=False)
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, 'b', shielded=False)
    assert err.value.error_code == 32769


def test_vm_starts_only_where_its_key_protector_unwraps(guardians, fabric,
                                                        other_fabric):
    here = fake.FakeHyperVHost('hv-a', fabric=fabric)
    there = fake.FakeHyperVHost('hv-b', fabric=other_fabric)
    kp = fake.build_key_protector(guardians['owner'],
                                  [fabric.guardian.public()])
    for h in (here, there):
        h.add_vm(VM)
        vmutils, _ = h.os_win_utils()
        h.add_pdk('p', kp, b'')
        vmutils.add_vtpm(VM, 'p', shielded=True)
    here.start_vm(VM)
    assert here.vm_security(VM)['LastKnownGoodKeyProtector'] == kp
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        there.start_vm(VM)
    here.stop_vm(VM)
    here.set_attestation('Expired')
    with pytest.raises(fake.WmiMethodError, match='failed attestation'):
        here.start_vm(VM)


def test_os_win_powers_on_a_vm_whose_kp_names_the_fabric(
        guardians, other_fabric):
    from os_win import constants as os_win_const
    host = fake.FakeHyperVHost('hv-power', fabric=other_fabric)
    host.add_vm(VM)
    vmutils, _ = host.os_win_utils()
    host.add_pdk('p', fake.build_key_protector(
        guardians['owner'], [other_fabric.guardian.public()]), b'')
    vmutils.add_vtpm(VM, 'p', shielded=True)
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    assert host.vm_security(VM)['EnabledState'] == fake.host.VM_ENABLED
    assert host.calls[-1] == 'Msvm_ComputerSystem.RequestStateChange'


def test_restore_last_known_good_key_protector(host, guardians, fabric):
    vmutils, _ = host.os_win_utils()
    good = fake.build_key_protector(guardians['owner'],
                                    [fabric.guardian.public()])
    host.add_pdk('good', good, b'')
    vmutils.add_vtpm(VM, 'good', shielded=False)
    service = host.virt.Msvm_SecurityService()[0]
    ssd = host.virt.query("SELECT * FROM Msvm_SecuritySettingData WHERE "
                          "InstanceID LIKE 'Microsoft:%'")[0].GetText_(1)
    # Nothing to restore before the VM ever started.
    assert service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)[1] == 32775
    host.start_vm(VM)
    host.stop_vm(VM)
    other = fake.build_key_protector(guardians['owner'])
    service.SetKeyProtector(SecuritySettingData=ssd, KeyProtector=other)
    assert host.vm_security(VM)['KeyProtector'] == other
    job, rc = service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)
    assert rc == 4096 and job.endswith('"')
    assert host.vm_security(VM)['KeyProtector'] == good
