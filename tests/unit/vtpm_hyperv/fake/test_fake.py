# SPDX-License-Identifier: Apache-2.0
"""The simulator answers os-win's own code, checks every call against
Microsoft's documented signatures, and keeps Hyper-V's rules."""

import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from os_win import constants as os_win_const
from os_win import exceptions as os_win_exc
from os_win.utils import baseutils
from os_win.utils import hostutils
import pytest

from tests.fixtures import hyperv
from vtpm_hyperv import fake
from vtpm_hyperv import wmi_schema

VM = hyperv.VM


def _pdk(host, owner, guardians=(), policy='EncryptionSupported'):
    return host.add_pdk(fake.make_shielding_data_file(
        owner, [g.public() for g in guardians], policy=policy))


# --- installed, not imported ----------------------------------------------

def _os_win_state():
    """What installing the simulator changes in os-win, as it is now."""
    return (baseutils.__dict__.get('wmi', 'absent'),
            baseutils.BaseUtilsVirt._os_version,
            hostutils.HostUtils._windows_version)


def test_installed_patches_os_win_for_the_block_and_restores_it(
        monkeypatch, fabric):
    # os-win on Linux, untouched: no wmi module, no cached OS version
    monkeypatch.delattr(baseutils, 'wmi')
    monkeypatch.setattr(baseutils.BaseUtilsVirt, '_os_version', None)
    monkeypatch.setattr(hostutils.HostUtils, '_windows_version', None)
    with pytest.raises(ZeroDivisionError):
        with fake.installed() as wmi_module:
            assert _os_win_state() == (wmi_module, [10, 0], None)
            host = fake.FakeHyperVHost('hv-installed', fabric=fabric,
                                       job_polls=1)
            host.add_vm(VM)
            # os-win's job polling reaches the host through baseutils.wmi
            vmutils, _ = host.os_win_utils()
            vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
            1 / 0
    assert _os_win_state() == ('absent', None, None)


def test_installed_blocks_nest(simulator):
    outer = _os_win_state()
    assert outer[0] is simulator
    with fake.installed() as inner:
        assert _os_win_state()[0] is inner
        fake.FakeHyperVHost('hv-inner')
    assert _os_win_state() == outer


def test_each_block_answers_os_wins_windows_version_cache_afresh(
        monkeypatch):
    """os-win keeps the first version it reads for the process; a block
    starts with it empty and puts back what was there."""
    monkeypatch.setattr(hostutils.HostUtils, '_windows_version', '6.3.9600')
    with fake.installed():
        _, utils = fake.FakeHyperVHost('hv-2022').os_win_utils()
        assert utils.get_windows_version() == '10.0.20348'
    assert hostutils.HostUtils._windows_version == '6.3.9600'


def test_hosts_made_while_installed_share_one_windows_version():
    """One nova-compute process manages one Windows host, and os-win
    caches that host's version for the process: simulated hosts of
    another version are made in a block of their own."""
    fake.FakeHyperVHost('hv-2022', os_version='10.0.20348')
    with pytest.raises(RuntimeError, match='one Windows version per '
                       'process'):
        fake.FakeHyperVHost('hv-2012r2', os_version='6.3.9600')
    with pytest.raises(RuntimeError, match='one Windows version per '
                       'process'):
        with fake.installed():  # nested: the process is the same
            fake.FakeHyperVHost('hv-2012r2', os_version='6.3.9600')


def test_a_host_outside_an_installed_block_is_refused(monkeypatch):
    monkeypatch.setattr(fake.host, '_INSTALLED', [])
    with pytest.raises(RuntimeError, match='with fake.installed'):
        fake.FakeHyperVHost('hv-outside')


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


def test_os_win_add_vtpm_sets_kp_policy_and_tpm(host, guardians, fabric,
                                                conformance):
    """os-win passes (key protector, settings) positionally; PyMI binds
    positional arguments in the order of the in-parameters' names, so
    KeyProtector comes first, as os-win means (wmi_schema's docstring)."""
    vmutils, _ = host.os_win_utils()
    path = _pdk(host, guardians['owner'], [fabric.guardian])
    kp, policy, _ = fake.crypto.read_shielding_data_file(open(path,
                                                              'rb').read())
    assert vmutils.is_secure_vm(VM) is False
    vmutils.add_vtpm(VM, path, shielded=True)
    state = host.vm_security(VM)
    assert state['KeyProtector'] == kp
    assert state['SecurityPolicy'] == policy
    assert state['TpmEnabled'] and state['ShieldingRequested']
    assert vmutils.is_secure_vm(VM) is True
    assert host.calls[-3:] == ['Msvm_SecurityService.SetKeyProtector',
                               'Msvm_SecurityService.SetSecurityPolicy',
                               'Msvm_SecurityService.ModifySecuritySettings']


def test_os_win_waits_for_running_jobs(fabric, guardians):
    host = fake.FakeHyperVHost('hv-slow', fabric=fabric, job_polls=2)
    host.add_vm(VM)
    vmutils, _ = host.os_win_utils()
    path = _pdk(host, guardians['owner'])
    started = time.monotonic()
    vmutils.add_vtpm(VM, path, shielded=False)
    # Three jobs, each running for two polls os-win makes 0.1 s apart.
    assert time.monotonic() - started >= 0.5
    assert host.vm_security(VM)['TpmEnabled']


def test_security_settings_change_only_while_off(host, guardians):
    vmutils, _ = host.os_win_utils()
    path = _pdk(host, guardians['owner'])
    host.vms[VM].state = fake.host.VM_ENABLED
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, path, shielded=False)
    assert err.value.error_code == 32775


# --- every call checked against Microsoft's signatures ---------------------

def _service_and_settings(host):
    service = host.virt.Msvm_SecurityService()[0]
    ssd = host.virt.query("SELECT * FROM Msvm_SecuritySettingData WHERE "
                          "InstanceID LIKE 'Microsoft:%'")[0]
    return service, ssd


@pytest.mark.parametrize('call, why', [
    # NewByGuardians documents Guardian (an array), not Guardians
    (lambda h: h.hgs.MSFT_HgsKeyProtector.NewByGuardians(
        Owner=h.hgs.MSFT_HgsGuardian()[0], Guardians=[]), 'no parameter'),
    # ConvertToByRawBytes documents Bytes, not RawData
    (lambda h: h.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(RawData=b'x'),
     'no parameter'),
    # a path string is documented: certificate bytes are refused
    (lambda h: h.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
        Name='x', SigningCertificate=b'\x30\x82', EncryptionCertificate='p'),
     'documented as string'),
    # an embedded instance is documented: a name is refused
    (lambda h: h.hgs.MSFT_HgsKeyProtector.NewByGuardians(Owner='owner'),
     'documented as MSFT_HgsGuardian'),
    # uint8[] is documented: text is refused
    (lambda h: h.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(Bytes='kp'),
     'uint8 array'),
    # a required input is missing
    (lambda h: h.hgs.MSFT_HgsGuardian.Import(Name='x'), 'required input'),
    # a boolean is documented: a string is refused
    (lambda h: h.hgs.MSFT_HgsGuardian.NewByGenerateCertificates(
        Name='x', GenerateCertificates='yes'), 'documented as boolean'),
], ids=['Guardians', 'RawData', 'bytes-for-path', 'str-for-instance',
        'str-for-uint8[]', 'missing-required', 'str-for-boolean'])
def test_undocumented_calls_raise_x_wmi_and_change_nothing(host, call, why):
    store, calls = host.guardian_names(), list(host.calls)
    with pytest.raises(fake.x_wmi, match=why):
        call(host)
    assert host.guardian_names() == store and host.calls == calls


def test_undocumented_methods_do_not_exist(host):
    with pytest.raises(AttributeError):
        host.hgs.MSFT_HgsKeyProtector.NewFromBytes
    service, _ = _service_and_settings(host)
    with pytest.raises(AttributeError):
        service.ClearKeyProtector


def test_positional_arguments_bind_in_pymi_order():
    method = wmi_schema.method(wmi_schema.VIRT, 'Msvm_SecurityService',
                               'SetKeyProtector')
    assert [p.name for p in method.inputs] == ['SecuritySettingData',
                                               'KeyProtector']
    assert [p.name for p in method.positional_order] == [
        'KeyProtector', 'SecuritySettingData']
    assert method.result_order == ('Job', 'ReturnValue')
    new = wmi_schema.method(wmi_schema.HGS, 'MSFT_HgsKeyProtector',
                            'NewByGuardians')
    assert new.result_order == ('ReturnValue', 'cmdletOutput')


def test_the_simulator_offers_only_documented_methods(host):
    offered = set()
    for namespace in host._namespaces.values():
        offered |= {(namespace.name.lower(), '%s.%s' % key)
                    for key in namespace._methods}
    documented = {(m.namespace.lower(), m.target)
                  for m in wmi_schema.METHODS}
    assert offered and offered <= documented
    with pytest.raises(ValueError, match='not in vtpm_hyperv.wmi_schema'):
        host.namespace(wmi_schema.HGS).register(
            'MSFT_HgsGuardian', 'Guess', lambda *a: {})


def test_values_come_back_typed_as_documented(host, guardians, fabric):
    rc, config = host.hgs.MSFT_HgsClientConfiguration.Get()
    assert rc == 0
    assert (config.Mode, config.AttestationStatus) == (2, 100)
    assert type(config.AttestationSubstatus) is int  # uint64 bitfield
    guardian = host.hgs.MSFT_HgsGuardian(Name=fabric.name)[0]
    assert isinstance(guardian.SigningCertificate, tuple)  # uint8[] as ints
    assert bytes(guardian.SigningCertificate) == fabric.guardian.signing_der
    rc, kp = host.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(
        Bytes=fake.build_key_protector(guardians['owner'],
                                       [fabric.guardian.public()]))
    assert isinstance(kp.RawData, tuple) and isinstance(kp.Guardians, tuple)
    local = fake.FakeHyperVHost('hv-typed-local')
    assert local.hgs.MSFT_HgsClientConfiguration.Get()[1].Mode == 1
    local.close()


def test_no_call_clears_a_key_protector(host, guardians):
    service, ssd = _service_and_settings(host)
    job, rc = service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                                      KeyProtector=b'')
    assert rc == 32773 and job is None


def test_a_documented_property_only(host):
    _, ssd = _service_and_settings(host)
    ssd.TpmEnabled = True  # documented
    with pytest.raises(fake.x_wmi):
        ssd.TpmOn = True


# --- guardians enter the store as Windows documents it ---------------------

def _pfx_files(tmp_path, guardian, password='pw'):
    paths = []
    for which, key, cert in (
            ('sign', guardian.signing_key, guardian.signing_cert),
            ('enc', guardian.encryption_key, guardian.encryption_cert)):
        path = tmp_path / ('%s.pfx' % which)
        path.write_bytes(pkcs12.serialize_key_and_certificates(
            None, key, cert, None,
            serialization.BestAvailableEncryption(password.encode())))
        paths.append(str(path))
    return paths


def test_accept_certificates_reads_two_password_protected_pfx_files(
        host, guardians, tmp_path):
    sign, enc = _pfx_files(tmp_path, guardians['owner'])
    accept = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates
    rc, _ = accept(Name='o', SigningCertificate=sign,
                   EncryptionCertificate=enc,
                   SigningCertificatePassword='wrong',
                   EncryptionCertificatePassword='pw', AllowUntrustedRoot=True)
    assert rc == 32773 and 'o' not in host.guardian_names()
    rc, out = accept(Name='o', SigningCertificate=sign,
                     EncryptionCertificate=enc,
                     SigningCertificatePassword='pw',
                     EncryptionCertificatePassword='pw',
                     AllowUntrustedRoot=True)
    assert rc == 0 and out.HasPrivateSigningKey is True


def test_accept_certificates_needs_the_private_keys(host, guardians,
                                                    tmp_path):
    g = guardians['dr']
    public = tmp_path / 'public.pfx'
    public.write_bytes(pkcs12.serialize_key_and_certificates(
        None, None, None, [g.signing_cert], serialization.NoEncryption()))
    rc, _ = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
        Name='x', SigningCertificate=str(public),
        EncryptionCertificate=str(public), AllowUntrustedRoot=True)
    assert rc == 32773


def test_public_guardians_are_imported_from_a_guardian_file(
        host, guardians, tmp_path):
    path = tmp_path / 'dr.xml'
    path.write_bytes(fake.export_guardian_file(guardians['dr']))
    imp = host.hgs.MSFT_HgsGuardian.Import
    assert imp(Path=str(path), Name='dr')[0] == 32773  # self-signed
    rc, out = imp(Path=str(path), Name='dr', AllowUntrustedRoot=True)
    assert rc == 0 and out.HasPrivateSigningKey is False
    assert bytes(out.SigningCertificate) == guardians['dr'].signing_der
    assert imp(Path=str(tmp_path / 'none.xml'), Name='y',
               AllowUntrustedRoot=True)[0] == 32777


def test_guardian_from_trusted_ca_needs_no_flag(tmp_path):
    ca = fake.make_ca()
    host = fake.FakeHyperVHost('hv-ca', trusted_roots=[ca.cert])
    g = fake.make_guardian('issued', ca=ca, reuse_keys=True)
    sign, enc = _pfx_files(tmp_path, g)
    rc, _ = host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
        Name='issued', SigningCertificate=sign, EncryptionCertificate=enc,
        SigningCertificatePassword='pw', EncryptionCertificatePassword='pw')
    assert rc == 0


def test_expired_guardian_needs_allow_expired(host, tmp_path):
    path = tmp_path / 'old.xml'
    path.write_bytes(fake.export_guardian_file(
        fake.make_guardian('old', expired=True, reuse_keys=True)))
    imp = host.hgs.MSFT_HgsGuardian.Import
    assert imp(Path=str(path), Name='old', AllowUntrustedRoot=True)[0] == \
        32773
    assert imp(Path=str(path), Name='old', AllowUntrustedRoot=True,
               AllowExpired=True)[0] == 0


# --- fault injection ---------------------------------------------------------

def test_fault_at_nth_call_once(host, guardians):
    vmutils, _ = host.os_win_utils()
    path = _pdk(host, guardians['owner'])
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32777,
              description='disk on fire', at=2)
    vmutils.add_vtpm(VM, path, shielded=False)          # first call: fine
    with pytest.raises(os_win_exc.WMIJobFailed) as err:  # second: fails
        vmutils.add_vtpm(VM, path, shielded=False)
    assert err.value.error_code == 32777
    assert 'disk on fire' in str(err.value)
    vmutils.add_vtpm(VM, path, shielded=False)          # third: fine again


def test_fault_with_return_code_is_answered_directly(host, guardians):
    vmutils, _ = host.os_win_utils()
    path = _pdk(host, guardians['owner'])
    host.fail('Msvm_SecurityService.SetKeyProtector', return_code=32769)
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, path, shielded=False)
    assert err.value.error_code == 32769
    assert err.value.job_state is None  # no job: the code came back as is
    assert host.vm_security(VM)['KeyProtector'] == b''


@pytest.mark.parametrize('fault, applied', [
    ({'mode': 'raise'}, False),
    ({'return_code': 32768}, False),
    ({'job_error': 32768}, False),
    ({'mode': 'applied', 'return_code': 32772}, True),
    ({'mode': 'applied'}, True),
], ids=['exception', 'return-code', 'job', 'applied-then-code',
        'applied-then-exception'])
def test_fault_modes(host, guardians, fault, applied):
    service, ssd = _service_and_settings(host)
    kp = fake.build_key_protector(guardians['owner'])
    host.fail('Msvm_SecurityService.SetKeyProtector', **fault)
    try:
        job, rc = service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                                          KeyProtector=kp)
        assert rc != 0
    except fake.x_wmi:
        pass
    assert (host.vm_security(VM)['KeyProtector'] == kp) is applied


def test_fault_on_a_query_raises_x_wmi(host):
    vmutils, _ = host.os_win_utils()
    host.fail('Msvm_VirtualSystemSettingData')
    with pytest.raises(fake.x_wmi):
        vmutils.get_vm_generation(VM)
    assert vmutils.get_vm_generation(VM) == 2


# --- HGS rules and real cryptography -----------------------------------------

def _new_kp(host, owner, guardians=(), **flags):
    store = host.hgs.MSFT_HgsGuardian
    return host.hgs.MSFT_HgsKeyProtector.NewByGuardians(
        Owner=store(Name=owner)[0],
        Guardian=[store(Name=g)[0] for g in guardians],
        AllowUntrustedRoot=True, **flags)


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


def test_grant_and_revoke_need_owner_private_key(host, guardians):
    owner, dr = guardians['owner'], guardians['dr']
    host.import_guardian(owner)
    host.import_guardian(dr.public())
    _, kp = _new_kp(host, 'owner')
    dr_instance = host.hgs.MSFT_HgsGuardian(Name='dr')[0]
    grant = host.hgs.MSFT_HgsKeyProtector.Grant
    rc, granted = grant(KeyProtector=kp, Guardian=dr_instance,
                        AllowUntrustedRoot=True)
    assert rc == 0
    tk = fake.unwrap_key_protector(bytes(granted.RawData), dr.encryption_key)
    assert tk == fake.unwrap_key_protector(bytes(kp.RawData),
                                           owner.encryption_key)
    # The owner never changes.
    assert fake.parse_key_protector(bytes(granted.RawData)).owner \
        .signing_der == owner.signing_der
    rc, revoked = host.hgs.MSFT_HgsKeyProtector.Revoke(
        KeyProtector=granted, Guardian=dr_instance)
    assert rc == 0
    with pytest.raises(fake.UnwrapError):
        fake.unwrap_key_protector(bytes(revoked.RawData), dr.encryption_key)
    # Without the owner's private signing key: refused.
    host.hgs.MSFT_HgsGuardian.Remove(Name='owner')
    host.import_guardian(owner.public())
    rc, _ = grant(KeyProtector=kp, Guardian=dr_instance,
                  AllowUntrustedRoot=True)
    assert rc == 32769


def test_key_protector_owner_cannot_change_on_tpm_vm(host, guardians):
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner']), shielded=False)
    with pytest.raises(os_win_exc.WMIJobFailed) as err:
        vmutils.add_vtpm(VM, _pdk(host, guardians['owner2']), shielded=False)
    assert err.value.error_code == 32769


def test_vm_starts_only_where_its_key_protector_unwraps(guardians, fabric,
                                                        other_fabric):
    here = fake.FakeHyperVHost('hv-a', fabric=fabric)
    there = fake.FakeHyperVHost('hv-b', fabric=other_fabric)
    for h in (here, there):
        h.add_vm(VM)
        vmutils, _ = h.os_win_utils()
        vmutils.add_vtpm(VM, _pdk(h, guardians['owner'], [fabric.guardian]),
                         shielded=True)
    here.start_vm(VM)
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        there.start_vm(VM)
    here.stop_vm(VM)
    for status in ('Expired', 999):
        here.set_attestation(status)
        with pytest.raises(fake.WmiMethodError, match='failed attestation'):
            here.start_vm(VM)


def test_local_key_protector_never_opens_in_hgs_mode(guardians, fabric):
    """In HGS mode the key comes from HGS; a local guardian, even one with
    its private keys in the store, opens nothing."""
    host = fake.FakeHyperVHost('hv-hgs-local', fabric=fabric)
    host.add_vm(VM)
    host.import_guardian(guardians['owner'], fake.LOCAL_GUARDIAN)
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner']), shielded=False)
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        host.start_vm(VM)
    local = fake.FakeHyperVHost('hv-local-mode')
    local.add_vm(VM)
    local.import_guardian(guardians['owner'], fake.LOCAL_GUARDIAN)
    vmutils, _ = local.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(local, guardians['owner']), shielded=False)
    local.start_vm(VM)


def test_start_rolls_the_transport_key_and_keeps_the_last_known_good(
        host, guardians, fabric):
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=True)
    first = host.vm_security(VM)['KeyProtector']
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    assert host.calls[-1] == 'Msvm_ComputerSystem.RequestStateChange'
    state = host.vm_security(VM)
    assert state['LastKnownGoodKeyProtector'] == first
    rolled = state['KeyProtector']
    assert rolled != first
    old = fake.unwrap_key_protector(first, fabric.guardian.encryption_key)
    new = fake.unwrap_key_protector(rolled, fabric.guardian.encryption_key)
    assert old != new
    before, after = (fake.parse_key_protector(k) for k in (first, rolled))
    assert after.owner.signing_der == before.owner.signing_der
    assert [g.signing_der for g in after.guardians] == [
        g.signing_der for g in before.guardians]


def test_restore_last_known_good_key_protector(host, guardians, fabric):
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=False)
    good = host.vm_security(VM)['KeyProtector']
    service, ssd = _service_and_settings(host)
    ssd = ssd.GetText_(1)
    # Nothing to restore before the VM ever started.
    assert service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)[1] == 32775
    host.start_vm(VM)
    host.stop_vm(VM)
    job, rc = service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)
    assert rc == 4096 and job.endswith('"')
    assert host.vm_security(VM)['KeyProtector'] == good
