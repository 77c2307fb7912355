# SPDX-License-Identifier: Apache-2.0
"""The simulator answers os-win's own code, checks every call against
Microsoft's documented signatures, and keeps Hyper-V's rules."""

import copy
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
    # The HGS client's pages list no return values: a failure is an MI
    # error, which PyMI raises (os-win passes it on).
    with pytest.raises(fake.x_wmi) as err:
        hostutils.is_host_guarded()
    assert err.value.com_error.hresult == fake.wmi.WBEM_E_FAILED
    assert hostutils.is_host_guarded() is True


def test_a_host_without_the_hgs_client_fails_as_os_win_does():
    """os-win opens Root/Microsoft/Windows/Hgs on first use and raises its
    OSWinException when the host lacks it (hostutils10._conn_hgs)."""
    host = fake.FakeHyperVHost('hv-nohgs', hgs_installed=False)
    _, hostutils = host.os_win_utils()
    with pytest.raises(os_win_exc.OSWinException,
                       match='Hgs is not supported on this Windows version'):
        hostutils.is_host_guarded()


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
    # an embedded instance is documented: a name is refused
    (lambda h: h.hgs.MSFT_HgsKeyProtector.NewByGuardians(Owner='owner'),
     'documented as MSFT_HgsGuardian'),
    # uint8[] is documented: text that is not digits is refused
    (lambda h: h.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(Bytes='kp'),
     'documented as uint8'),
    # a uint16 is documented: a bool, a word, a negative number are refused
    (lambda h: h.virt.Msvm_ComputerSystem()[0].RequestStateChange(
        RequestedState=True), 'documented as uint16'),
    (lambda h: h.virt.Msvm_ComputerSystem()[0].RequestStateChange(
        RequestedState='on'), 'documented as uint16'),
    (lambda h: h.virt.Msvm_ComputerSystem()[0].RequestStateChange(
        RequestedState=-2), 'documented as uint16'),
    # no Python value converts to a datetime (Py2MI)
    (lambda h: h.virt.Msvm_ComputerSystem()[0].RequestStateChange(
        RequestedState=2, TimeoutPeriod='00000000000010.000000:000'),
     'documented as datetime'),
    # a list for a string
    (lambda h: h.hgs.MSFT_HgsGuardian.Remove(Name=['x']),
     'documented as string'),
], ids=['Guardians', 'RawData', 'str-for-instance', 'text-for-uint8[]',
        'bool-for-uint16', 'word-for-uint16', 'negative-uint16',
        'str-for-datetime', 'list-for-string'])
def test_what_pymi_refuses_raises_x_wmi_and_changes_nothing(host, call, why):
    store, calls = host.guardian_names(), list(host.calls)
    state = host.vm_security(VM)
    with pytest.raises(fake.x_wmi, match=why):
        call(host)
    assert host.guardian_names() == store and host.calls == calls
    assert host.vm_security(VM) == state


@pytest.mark.parametrize('call, check', [
    # '2' converts to the uint16 2 (PyLong_FromString): the VM starts
    (lambda h: h.virt.Msvm_ComputerSystem()[0].RequestStateChange(
        RequestedState='2'),
     lambda h, out: h.vms[VM].state == fake.host.VM_ENABLED),
    # an int converts to a string (str()): a guardian named '5'
    (lambda h: h.hgs.MSFT_HgsGuardian.NewByGenerateCertificates(
        Name=5, GenerateCertificates=True),
     lambda h, out: out[1].Name == '5' and '5' in h.guardian_names()),
    # 'true', 'YES', '1' and any non-zero int are a true boolean
    (lambda h: h.hgs.MSFT_HgsGuardian.NewByGenerateCertificates(
        Name='g-yes', GenerateCertificates='YES'),
     lambda h, out: 'g-yes' in h.guardian_names()),
    (lambda h: h.hgs.MSFT_HgsGuardian.NewByGenerateCertificates(
        Name='g-int', GenerateCertificates=7),
     lambda h, out: 'g-int' in h.guardian_names()),
    # digits convert item by item to a uint8[]: b'12' is not a KP
    (lambda h: _refused_by_provider(
        lambda: h.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(Bytes='12')),
     lambda h, out: 'invalid' in out),
    # bytes for a path convert to their str() ("b'...'"): no such file
    (lambda h: _refused_by_provider(
        lambda: h.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
            Name='x', SigningCertificate=b'\x30\x82',
            EncryptionCertificate='p')),
     lambda h, out: "The file b'0\\x82' cannot be read" in out
     and 'x' not in h.guardian_names()),
    # any other word is a false boolean, which the provider refuses here
    (lambda h: _refused_by_provider(
        lambda: h.hgs.MSFT_HgsGuardian.NewByGenerateCertificates(
            Name='g-no', GenerateCertificates='no')),
     lambda h, out: 'not set' in out and 'g-no' not in h.guardian_names()),
], ids=['str-to-uint16', 'int-to-string', 'word-to-boolean',
        'int-to-boolean', 'digits-to-uint8[]', 'bytes-to-path',
        'other-word-false'])
def test_what_pymi_converts_reaches_the_provider(host, call, check,
                                                 conformance):
    """PyMI converts these (wmi._unwrap_element, Utils.cpp Py2MI); the
    provider acts on the converted value."""
    assert check(host, call(host))


def _refused_by_provider(call):
    """The message of the MI error the HGS provider answers with."""
    with pytest.raises(fake.x_wmi) as err:
        call()
    return str(err.value)


def test_a_missing_input_reaches_the_provider_which_refuses_it(host):
    """PyMI does not check inputs: the call reaches the provider without
    it, which refuses it (an inference), and the simulator counts it as a
    call Microsoft does not document."""
    before = fake.STATS['undocumented']
    with pytest.raises(fake.x_wmi, match='required input Path is missing'):
        host.hgs.MSFT_HgsGuardian.Import(Name='x')
    service, ssd = _service_and_settings(host)
    job, rc = service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1))
    assert (job, rc) == (None, 32773)  # "Invalid parameter"
    job, rc = service.ModifySecuritySettings()
    assert (job, rc) == (None, 4)  # its page's "Invalid Parameter (4)"
    assert fake.STATS['undocumented'] == before + 3
    assert host.calls[-3:] == ['MSFT_HgsGuardian.Import',
                               'Msvm_SecurityService.SetKeyProtector',
                               'Msvm_SecurityService.ModifySecuritySettings']
    assert 'x' not in host.guardian_names()
    assert host.vm_security(VM)['KeyProtector'] == b''


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
    assert 'cannot be read with the password' in _refused_by_provider(
        lambda: accept(Name='o', SigningCertificate=sign,
                       EncryptionCertificate=enc,
                       SigningCertificatePassword='wrong',
                       EncryptionCertificatePassword='pw',
                       AllowUntrustedRoot=True))
    assert 'o' not in host.guardian_names()
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
    assert 'does not hold a certificate with its private key' in \
        _refused_by_provider(
            lambda: host.hgs.MSFT_HgsGuardian.NewByAcceptCertificates(
                Name='x', SigningCertificate=str(public),
                EncryptionCertificate=str(public), AllowUntrustedRoot=True))


def test_public_guardians_are_imported_from_a_guardian_file(
        host, guardians, tmp_path):
    path = tmp_path / 'dr.xml'
    path.write_bytes(fake.export_guardian_file(guardians['dr']))
    imp = host.hgs.MSFT_HgsGuardian.Import
    assert 'use AllowUntrustedRoot' in _refused_by_provider(  # self-signed
        lambda: imp(Path=str(path), Name='dr'))
    rc, out = imp(Path=str(path), Name='dr', AllowUntrustedRoot=True)
    assert rc == 0 and out.HasPrivateSigningKey is False
    assert bytes(out.SigningCertificate) == guardians['dr'].signing_der
    assert 'cannot be read' in _refused_by_provider(
        lambda: imp(Path=str(tmp_path / 'none.xml'), Name='y',
                    AllowUntrustedRoot=True))


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
    assert 'use AllowExpired' in _refused_by_provider(
        lambda: imp(Path=str(path), Name='old', AllowUntrustedRoot=True))
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
    assert 'has no private signing key' in _refused_by_provider(
        lambda: _new_kp(host, 'dr'))


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
    assert 'needs the private signing key' in _refused_by_provider(
        lambda: grant(KeyProtector=kp, Guardian=dr_instance,
                      AllowUntrustedRoot=True))


def _as_instance(host, raw):
    """The MSFT_HgsKeyProtector of RawData ``raw`` (ConvertTo-HgsKeyProtector
    -Bytes)."""
    rc, kp = host.hgs.MSFT_HgsKeyProtector.ConvertToByRawBytes(Bytes=raw)
    assert rc == 0
    return kp


def test_grant_unwraps_a_key_protector_made_elsewhere(host, guardians):
    """Microsoft's "Manage HGS", Renewing or replacing keys: the owner
    grants a guardian on a VM's key protector it got from the host. Grant
    unwraps it with the owner's key: the new one protects the same
    transport key, wherever the first was made."""
    owner, dr = guardians['owner'], guardians['dr']
    made_elsewhere = fake.build_key_protector(owner, [])
    host.import_guardian(owner)
    host.import_guardian(dr.public())
    rc, granted = host.hgs.MSFT_HgsKeyProtector.Grant(
        KeyProtector=_as_instance(host, made_elsewhere),
        Guardian=host.hgs.MSFT_HgsGuardian(Name='dr')[0],
        AllowUntrustedRoot=True)
    assert rc == 0
    assert fake.unwrap_key_protector(bytes(granted.RawData),
                                     dr.encryption_key) == \
        fake.unwrap_key_protector(made_elsewhere, owner.encryption_key)


def test_grant_on_a_rolled_key_protector_keeps_its_transport_key(
        host, guardians, fabric):
    """Granting on the key protector a start handed back protects that
    start's transport key, which the vTPM's state is encrypted with: the VM
    starts with the granted one."""
    owner, dr = guardians['owner'], guardians['dr']
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, owner, [fabric.guardian]), shielded=False)
    host.start_vm(VM)
    host.stop_vm(VM)
    rolled = host.vm_security(VM)['KeyProtector']
    host.import_guardian(owner)
    host.import_guardian(dr.public())
    _, granted = host.hgs.MSFT_HgsKeyProtector.Grant(
        KeyProtector=_as_instance(host, rolled),
        Guardian=host.hgs.MSFT_HgsGuardian(Name='dr')[0],
        AllowUntrustedRoot=True)
    tk = fake.unwrap_key_protector(rolled, fabric.guardian.encryption_key)
    assert fake.unwrap_key_protector(bytes(granted.RawData),
                                     dr.encryption_key) == tk
    service, ssd = _service_and_settings(host)
    service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                            KeyProtector=bytes(granted.RawData))
    host.start_vm(VM)


def test_a_key_protector_signed_by_a_wrapping_opens_in_every_fabric_it_names(
        guardians, fabric, other_fabric):
    """MS-KPS: the signature is by "the signing certificate specified by
    WrappingId", one of the protector's wrappings. The owner signs the one
    it makes; a start hands back an egress one, signed by the HGS that
    unwrapped: it opens at the next start, in that fabric and in every
    other fabric it names (a move after a start). A signature by anyone
    else does not verify."""
    owner, stranger = guardians['owner'], guardians['stranger']
    here = fake.FakeHyperVHost('hv-here', fabric=fabric)
    there = fake.FakeHyperVHost('hv-there', fabric=other_fabric)
    here.add_vm(VM)
    vmutils, _ = here.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(here, owner, [fabric.guardian,
                                            other_fabric.guardian]),
                     shielded=True)
    here.start_vm(VM)
    here.stop_vm(VM)
    egress = fake.parse_key_protector(here.vm_security(VM)['KeyProtector'])
    assert egress.signer.signing_der == fabric.guardian.signing_der
    there.vms[VM] = copy.deepcopy(here.vms[VM])  # exported, imported
    there.start_vm(VM)
    # re-signed by an outsider, claiming to be the owner: refused
    raw = bytearray(fake.build_key_protector(owner, [fabric.guardian]))
    forged = bytes(raw[:-256]) + stranger.signing_key.sign(
        bytes(raw[:-256]), fake.crypto._PSS, fake.crypto.hashes.SHA256())
    service, ssd = _service_and_settings(here)
    assert service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                                   KeyProtector=forged)[1] == 4096
    assert 'does not verify' in str(here.job_errors(
        here._jobs[list(here._jobs)[-1]].instance_id))


def _with(host, vm=VM, **flags):
    """The VM's Msvm_SecuritySettingData with ``flags``, as text."""
    vm_id = host.vms[vm].vm_id
    ssd = host.virt.query("SELECT * FROM Msvm_SecuritySettingData WHERE "
                          "InstanceID LIKE 'Microsoft:%s%%'" % vm_id)[0]
    for name, value in flags.items():
        setattr(ssd, name, value)
    return ssd.GetText_(1)


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
    """MS-KPS: unwrapping returns "a new egress key and egress key
    protector"; the last known good is the one that "successfully encrypted
    TPM device state in the last VM boot" (msvm-tpmsettingdata.md): the
    egress one, not the one the VM started with."""
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=True)
    first = host.vm_security(VM)['KeyProtector']
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    assert host.calls[-1] == 'Msvm_ComputerSystem.RequestStateChange'
    state = host.vm_security(VM)
    rolled = state['KeyProtector']
    assert rolled != first
    assert state['LastKnownGoodKeyProtector'] == rolled
    old = fake.unwrap_key_protector(first, fabric.guardian.encryption_key)
    new = fake.unwrap_key_protector(rolled, fabric.guardian.encryption_key)
    assert old != new
    before, after = (fake.parse_key_protector(k) for k in (first, rolled))
    assert after.owner.signing_der == before.owner.signing_der
    assert [g.signing_der for g in after.guardians] == [
        g.signing_der for g in before.guardians]
    # starting it again while it runs changes nothing (32775, which os-win
    # takes for "already in the state requested")
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    assert host.vm_security(VM)['KeyProtector'] == rolled


def test_a_key_protector_saved_before_a_start_is_stale(host, guardians,
                                                       fabric):
    """The vTPM's state is encrypted with the last start's transport key:
    the key protector the VM had before that start no longer opens it, the
    last known good does."""
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=False)
    saved = host.vm_security(VM)['KeyProtector']
    host.start_vm(VM)
    host.stop_vm(VM)
    service, ssd = _service_and_settings(host)
    ssd = ssd.GetText_(1)
    service.SetKeyProtector(SecuritySettingData=ssd, KeyProtector=saved)
    with pytest.raises(fake.WmiMethodError, match='is stale'):
        host.start_vm(VM)
    job, rc = service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)
    assert rc == 4096 and job.endswith('"')
    host.start_vm(VM)


def test_restore_last_known_good_key_protector(host, guardians, fabric):
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=False)
    service, ssd = _service_and_settings(host)
    ssd = ssd.GetText_(1)
    # Nothing to restore before the VM ever started.
    assert service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)[1] == 32775
    host.start_vm(VM)
    host.stop_vm(VM)
    good = host.vm_security(VM)['LastKnownGoodKeyProtector']
    service.SetKeyProtector(SecuritySettingData=ssd,
                            KeyProtector=fake.build_key_protector(
                                guardians['owner'],
                                [fabric.guardian.public()]))
    assert host.vm_security(VM)['KeyProtector'] != good
    job, rc = service.RestoreLastKnownGoodKeyProtector(
        SecuritySettingData=ssd)
    assert rc == 4096 and job.endswith('"')
    assert host.vm_security(VM)['KeyProtector'] == good


# --- return values, states and jobs, as each page gives them ----------------

def test_modify_security_settings_answers_its_pages_values(
        host, guardians, fabric):
    """ModifySecuritySettings lists DMTF's values: "Invalid State (5)" for
    a VM that is not off (the other Msvm_SecurityService pages: 32775)."""
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=False)
    host.start_vm(VM)
    service, ssd = _service_and_settings(host)
    assert service.ModifySecuritySettings(
        SecuritySettingData=_with(host, TpmEnabled=False)) == (None, 5)
    assert service.SetKeyProtector(
        SecuritySettingData=ssd.GetText_(1),
        KeyProtector=host.vm_security(VM)['KeyProtector'])[1] == 32775
    assert host.vm_security(VM)['TpmEnabled']


@pytest.mark.parametrize('os_win_state, enabled_state', [
    (os_win_const.HYPERV_VM_STATE_PAUSED, 9),
    (os_win_const.HYPERV_VM_STATE_SUSPENDED, 6),
], ids=['pause', 'save'])
def test_os_win_pauses_and_saves_and_resumes(host, guardians, fabric,
                                             os_win_state, enabled_state,
                                             conformance):
    """RequestStateChange: Quiesce (9) pauses, Offline (6) saves; Enabled
    (2) resumes. A saved VM's vTPM needs its key again to resume (an
    inference); a paused one keeps it in memory."""
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=False)
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    vmutils.set_vm_state(VM, os_win_state)
    assert host.vms[VM].state == enabled_state
    # not off: its security settings do not change
    service, _ = _service_and_settings(host)
    assert service.ModifySecuritySettings(
        SecuritySettingData=_with(host, TpmEnabled=False))[1] == 5
    # resuming a saved VM opens its key protector again
    host.set_attestation('Expired')
    if enabled_state == 6:
        with pytest.raises(os_win_exc.WMIJobFailed):
            vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
        host.set_attestation('Passed')
    vmutils.set_vm_state(VM, os_win_const.HYPERV_VM_STATE_ENABLED)
    assert host.vms[VM].state == 2


@pytest.mark.parametrize('state, requested', [
    (3, 9), (3, 6), (3, 11), (3, 3), (2, 2), (2, 10), (2, 4), (9, 6),
    (6, 9), (2, 1), (2, 32773),
], ids=['pause-off', 'save-off', 'reset-off', 'off-off', 'run-running',
        'reboot-running', 'v1-shut-down', 'save-paused', 'pause-saved',
        'other', 'v1-saving'])
def test_request_state_change_refuses_what_the_state_does_not_allow(
        host, state, requested):
    """Microsoft: "Invalid state for this operation (32775): The value
    specified in the RequestedState parameter is not supported"."""
    host.vms[VM].state = state
    vm = host.virt.Msvm_ComputerSystem()[0]
    job, rc = vm.RequestStateChange(RequestedState=requested)
    assert (job, rc) == (None, 32775)
    assert host.vms[VM].state == state


def test_get_key_protector_answers_4096_with_the_key_protector(host,
                                                               guardians):
    """Microsoft: "On success, returns a 0 or 4096" (no job: GetKeyProtector
    has no Job parameter); the simulator answers 4096 when it runs jobs
    asynchronously."""
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner']), shielded=False)
    service, ssd = _service_and_settings(host)
    kp, rc = service.GetKeyProtector(SecuritySettingData=ssd.GetText_(1))
    assert rc == 4096
    assert bytes(kp) == host.vm_security(VM)['KeyProtector']
    sync = fake.FakeHyperVHost('hv-sync', async_jobs=False)
    sync.add_vm(VM)
    service, ssd = _service_and_settings(sync)
    assert service.GetKeyProtector(
        SecuritySettingData=ssd.GetText_(1)) == ((), 0)


def test_a_job_starts_runs_and_reports_its_error_as_msvm_error(
        fabric, guardians):
    """Msvm_ConcreteJob: Starting (3), Running (4), then Exception (10) with
    ErrorCode; DetailedStatus a uint16 the simulator leaves Null;
    GetErrorEx: Msvm_Error in CIM-XML when the job failed, Null when not."""
    host = fake.FakeHyperVHost('hv-job', fabric=fabric, job_polls=2)
    host.add_vm(VM)
    host.fail('Msvm_SecurityService.SetKeyProtector', job_error=32768,
              description='disk on fire')
    service, ssd = _service_and_settings(host)
    job_path, rc = service.SetKeyProtector(
        SecuritySettingData=ssd.GetText_(1),
        KeyProtector=fake.build_key_protector(guardians['owner']))
    assert rc == 4096
    moniker = job_path.replace('\\', '/')
    states = [host._wmi.WMI(moniker=moniker).JobState for _ in range(3)]
    assert states == [3, 4, 10]
    job = host._wmi.WMI(moniker=moniker)
    assert (job.ErrorCode, job.DetailedStatus, job.OperationalStatus) == (
        32768, None, (6,))
    errors, rc = job.GetErrorEx()  # PyMI sorts the outputs by name
    assert rc == 0
    name, props = fake.wmi.from_cim_xml(errors[0])
    assert (name, props['Message']) == ('Msvm_Error', 'disk on fire')
    ok, rc = service.SetKeyProtector(
        SecuritySettingData=ssd.GetText_(1),
        KeyProtector=fake.build_key_protector(guardians['owner']))
    done = host._wmi.WMI(moniker=ok.replace('\\', '/'))
    for _ in range(2):
        done = host._wmi.WMI(moniker=ok.replace('\\', '/'))
    assert done.JobState == 7 and done.GetErrorEx() == (None, 0)


# --- shielding, as Microsoft's Generation 2 security settings page says -----

@pytest.mark.parametrize('flags, vm, words', [
    ({'TpmEnabled': False}, {}, 'needs TpmEnabled'),
    ({'EncryptStateAndVmMigrationTraffic': False}, {},
     'needs EncryptStateAndVmMigrationTraffic'),
    ({}, {'secure_boot': False}, 'Secure Boot off'),
    ({}, {'template': 'Microsoft UEFI Certificate Authority'},
     'the Microsoft UEFI Certificate Authority template'),
], ids=['no-tpm', 'no-encryption', 'no-secure-boot', 'linux-template'])
def test_shielding_selects_and_enforces_tpm_encryption_and_secure_boot(
        fabric, guardians, flags, vm, words):
    """Microsoft: "If you select this option, Secure Boot, Enable Trusted
    Platform Module, and Encrypt State and VM migration traffic options are
    selected and enforced": shielding without them is refused (Incompatible
    Parameters, 6: an inference), as is a template not for shielded VMs."""
    host = fake.FakeHyperVHost('hv-shield', fabric=fabric)
    host.add_vm(VM, **vm)
    service, ssd = _service_and_settings(host)
    service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                            KeyProtector=fake.build_key_protector(
                                guardians['owner'],
                                [fabric.guardian.public()]))
    settings = dict({'TpmEnabled': True,
                     'EncryptStateAndVmMigrationTraffic': True,
                     'ShieldingRequested': True}, **flags)
    assert service.ModifySecuritySettings(
        SecuritySettingData=_with(host, **settings))[1] == 6
    assert not host.vm_security(VM)['ShieldingRequested']


def test_a_linux_shielded_vm_boots_with_the_open_source_template(
        fabric, guardians):
    host = fake.FakeHyperVHost('hv-lsvm', fabric=fabric)
    host.add_vm(VM, template='Open Source Shielded VM')
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=True)
    assert host.vm_security(VM)['ShieldingRequested']


@pytest.mark.parametrize('local, owner_key, allowed', [
    (False, True, False), (True, False, False), (True, True, True),
], ids=['hgs-mode', 'local-mode-without-owner-key',
        'local-mode-with-owner-key'])
def test_a_shielded_vms_settings_change_only_with_its_owners_key(
        fabric, guardians, local, owner_key, allowed):
    """Microsoft: "If you haven't set up the Host Guardian Service or are
    running it in local mode on the Hyper-V host and the host has the
    virtual machine owner's guardian key, you can change the settings" (its
    Generation 2 security settings page)."""
    owner = guardians['owner']
    host = fake.FakeHyperVHost('hv-chg',
                               **({} if local else {'fabric': fabric}))
    host.add_vm(VM)
    if owner_key:
        host.import_guardian(owner)
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, owner, [fabric.guardian]), shielded=True)
    service, _ = _service_and_settings(host)
    job, rc = service.ModifySecuritySettings(SecuritySettingData=_with(
        host, ShieldingRequested=False, TpmEnabled=False,
        EncryptStateAndVmMigrationTraffic=False))
    if allowed:
        assert rc == 4096 and not host.vm_security(VM)['ShieldingRequested']
        return
    assert rc == 4096  # a job, which fails
    moniker = job.replace('\\', '/')
    failed = host._wmi.WMI(moniker=moniker)
    assert (failed.JobState, failed.ErrorCode) == (10, 32769)
    assert 'owner\'s guardian key' in failed.ErrorDescription
    state = host.vm_security(VM)
    assert state['ShieldingRequested'] and state['TpmEnabled']


# --- what differs between Windows Server releases ----------------------------

@pytest.mark.parametrize('os_version, runs, refuses, default', [
    ('10.0.14393', '5.0', '8.1', '8.0'),     # 2016
    ('10.0.17763', '7.0', '9.1', '9.0'),     # 2019
    ('10.0.20348', '8.0', '7.1', '10.0'),    # 2022
    ('10.0.26100', '12.0', '7.0', '12.0'),   # 2025: "8.0" and up only
], ids=['2016', '2019', '2022', '2025'])
def test_each_release_runs_its_configuration_versions(os_version, runs,
                                                      refuses, default):
    """Microsoft: "You can only import a virtual machine if the Hyper-V host
    supports that configuration version" (the Upgrade virtual machine
    version page's table)."""
    with fake.installed():
        host = fake.FakeHyperVHost('hv-ver', os_version=os_version)
        host.add_vm('runs', version=runs)
        with pytest.raises(ValueError, match='does not run configuration '
                           'version %s' % refuses):
            host.add_vm('refused', version=refuses)
        host.add_vm('new')
        settings = {v.ElementName: v.Version for v in
                    host.virt.Msvm_VirtualSystemSettingData()}
        assert settings['new'] == default


def test_a_vtpm_needs_configuration_version_7(guardians):
    """Microsoft: "Virtual Trusted Platform Module (vTPM) | 7.0": the TPM
    is not enabled on a VM of an older version (Not Supported, 1: an
    inference)."""
    with fake.installed():
        host = fake.FakeHyperVHost('hv-2019', os_version='10.0.17763')
        host.add_vm(VM, version='6.2')
        service, ssd = _service_and_settings(host)
        service.SetKeyProtector(SecuritySettingData=ssd.GetText_(1),
                                KeyProtector=fake.build_key_protector(
                                    guardians['owner']))
        assert service.ModifySecuritySettings(
            SecuritySettingData=_with(host, TpmEnabled=True)) == (None, 1)
        assert not host.vm_security(VM)['TpmEnabled']


@pytest.mark.parametrize('os_version, tpm_setting_data, templates', [
    ('10.0.14393', True, 2), ('10.0.17763', False, 3),
    ('10.0.26100', False, 3),
], ids=['2016', '2019', '2025'])
def test_tpm_setting_data_and_the_linux_shielded_template_by_release(
        os_version, tpm_setting_data, templates):
    """Msvm_TPMSettingData: "End of server support: Windows Server 2016";
    Linux shielded VMs need "Windows Server, version 1709 or later"."""
    with fake.installed():
        host = fake.FakeHyperVHost('hv-rel', os_version=os_version)
        host.add_vm(VM)
        assert bool(host.virt.Msvm_TPMSettingData()) is tpm_setting_data
        assert len(host.secure_boot_templates()) == templates


# --- attestation, as "Troubleshooting Guarded Hosts" explains it -------------

def test_attestation_follows_what_hgs_says_of_the_host(fabric, guardians):
    host = fake.FakeHyperVHost('hv-att', fabric=fabric)
    host.add_vm(VM)
    vmutils, _ = host.os_win_utils()
    vmutils.add_vtpm(VM, _pdk(host, guardians['owner'], [fabric.guardian]),
                     shielded=True)

    def config():
        _, out = host.hgs.MSFT_HgsClientConfiguration.Get()
        return out.AttestationStatus, out.AttestationSubstatus

    host.attest(substatus=1 | 4)
    assert config() == (303, 5)
    host.attest(authorized=False)
    assert config() == (301, 0)
    host.attest()
    assert config() == (100, 0)
    # HGS unreachable: a start fails although the last attestation passed
    # ("If the host is not connected to the network, the shielded VM won't
    # start"), and the next attestation is a TransientError
    host.set_hgs_reachable(False)
    with pytest.raises(fake.WmiMethodError,
                       match='failed to unwrap a Key Protector'):
        host.start_vm(VM)
    host.attest()
    assert config() == (300, 0)
    host.set_hgs_reachable(True)
    host.attest()
    host.start_vm(VM)
