# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend against the simulator, through os-win's own code.

Tests that take the ``conformance`` fixture fail on any WMI call that
Microsoft does not document (``vtpm_hyperv.wmi_schema``).
"""

import base64
import copy
import functools
import logging
import os
import re

import hypothesis
from hypothesis import strategies as st
from os_win import constants as os_win_constants
from oslo_config import cfg
import pytest

from tests.fixtures import hyperv
from vtpm_core import backend as core_backend
from vtpm_core import exception
from vtpm_hyperv import backend
from vtpm_hyperv import exception as hv_exception
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector
from vtpm_hyperv import wmi_schema

VM = hyperv.VM
INSTANCE = '5d1f1c53-6a1d-4a4e-9bd4-0d0b8f3c2c77'
vtpm_request = hyperv.vtpm_request


def _keyed(keys, guardians, *extra):
    refs = [keys.add(fake.export_owner_pkcs12(guardians['owner']))]
    refs += [keys.add(fake.export_guardian_file(guardians[g]))
             for g in extra]
    return refs


def _instance_guardians(host):
    return [n for n in host.guardian_names() if n.startswith('openstack-')]


def _raw(guardians, *parties):
    return fake.build_key_protector(guardians['owner'], [
        p.public() for p in parties])


def _pdk(guardians, *parties, policy='Shielded'):
    return fake.make_shielding_data_file(
        guardians['owner'], [p.public() for p in parties], policy=policy)


# --- attach with an owner bundle (the hoster is trusted) -------------------

def test_keyed_attach_seals_for_owner_fabric_and_guardians(
        hv, host, keys, guardians, fabric, conformance):
    refs = _keyed(keys, guardians, 'dr', 'branch')
    result = hv.attach(INSTANCE, VM, vtpm_request(refs))

    state = host.vm_security(VM)
    assert state['TpmEnabled'] and not state['ShieldingRequested']
    assert state['EncryptStateAndVmMigrationTraffic']
    kp = state['KeyProtector']
    tk = fake.unwrap_key_protector(kp, guardians['owner'].encryption_key)
    for g in (fabric.guardian, guardians['dr'], guardians['branch']):
        assert fake.unwrap_key_protector(kp, g.encryption_key) == tk
    for g in (guardians['stranger'], guardians['owner2']):
        with pytest.raises(fake.UnwrapError):
            fake.unwrap_key_protector(kp, g.encryption_key)
    # Signed by the tenant's owner guardian.
    assert fake.parse_key_protector(kp).owner.signing_der == \
        guardians['owner'].signing_der
    assert result.fabrics == (
        fabric.fabric_id,
        keyprotector.fabric_id(guardians['dr'].signing_der),
        keyprotector.fabric_id(guardians['branch'].signing_der))
    assert result.fabrics[0] == hv.get_capabilities().fabric_id
    # Nothing of the instance stays in the guardian store, and the VM
    # starts on this guarded host, through os-win.
    assert _instance_guardians(host) == []
    vmutils, _ = host.os_win_utils()
    vmutils.set_vm_state(VM, os_win_constants.HYPERV_VM_STATE_ENABLED)
    assert host.vm_security(VM)['EnabledState'] == wmi_schema.ENABLED


def test_owner_is_imported_from_private_password_protected_pfx_files(
        hv, host, keys, guardians, monkeypatch, tmp_path, conformance):
    """NewByAcceptCertificates gets two PFX paths and their passwords; the
    files are encrypted, private, and gone when attach returns."""
    seen = []
    load_pfx = fake.host.ns._load_pfx

    def spy(path, password):
        mode = os.stat(path).st_mode & 0o777
        parent = os.stat(os.path.dirname(path)).st_mode & 0o777
        with open(path, 'rb') as f:
            data = f.read()
        with pytest.raises(ValueError):  # encrypted: no password, no key
            fake.crypto.pkcs12.load_key_and_certificates(data, None)
        seen.append((path, password, mode, parent))
        return load_pfx(path, password)
    monkeypatch.setattr(fake.host.ns, '_load_pfx', spy)
    hv.conf.set_override('private_dir', str(tmp_path), group='hyperv_vtpm')
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert len(seen) == 2
    (p1, pw1, m1, d1), (p2, pw2, m2, d2) = seen
    assert len(pw1) >= 32 and len(pw2) >= 32 and pw1 != pw2  # random
    assert (m1, m2, d1, d2) == (0o600, 0o600, 0o700, 0o700)
    assert not os.path.exists(p1) and not os.path.exists(p2)
    assert os.listdir(tmp_path) == []


def test_private_files_are_removed_when_the_import_fails(
        hv, host, keys, guardians, tmp_path):
    hv.conf.set_override('private_dir', str(tmp_path), group='hyperv_vtpm')
    host.fail('MSFT_HgsGuardian.Import', return_code=32768)
    with pytest.raises(hv_exception.HyperVOperationFailed):
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians, 'dr')))
    assert os.listdir(tmp_path) == []


def test_payloads_are_wiped_after_success_and_failure(hv, host, keys,
                                                      guardians):
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians, 'dr')))
    host.add_vm('vm-2')
    host.fail('Msvm_SecurityService.SetKeyProtector', return_code=32768)
    with pytest.raises(hv_exception.HyperVOperationFailed):
        hv.attach('other', 'vm-2', vtpm_request(_keyed(keys, guardians)))
    assert len(keys.handed_out) == 3
    for payload in keys.handed_out:
        assert payload and payload == bytearray(len(payload))


def test_second_attach_converges_without_changes(hv, host, keys, guardians,
                                                 conformance):
    req = vtpm_request(_keyed(keys, guardians, 'dr'))
    first = hv.attach(INSTANCE, VM, req)
    before = host.vm_security(VM)
    host.calls.clear()
    assert hv.attach(INSTANCE, VM, req) == first
    assert host.vm_security(VM) == before
    assert not [c for c in host.calls if c.startswith('Msvm_SecurityService.'
                                                      'Set')]


def test_other_keys_on_a_vm_with_a_vtpm_are_refused(hv, host, keys,
                                                    guardians):
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    before = host.vm_security(VM)
    other = [keys.add(fake.export_owner_pkcs12(guardians['owner2']))]
    with pytest.raises(exception.UnsupportedVM, match='unreadable'):
        hv.attach(INSTANCE, VM, vtpm_request(other))
    assert host.vm_security(VM) == before


# --- shielded VMs keep the owner's keys with the tenant ---------------------

def test_shielded_owner_bundle_is_refused_before_anything_changes(
        hv, host, keys, guardians, conformance):
    refs = _keyed(keys, guardians, 'dr')
    before, store = host.vm_security(VM), host.guardian_names()
    host.calls.clear()
    with pytest.raises(exception.OwnerKeysRefused) as err:
        hv.attach(INSTANCE, VM, vtpm_request(refs, shielded=True))
    message = str(err.value)
    assert refs[0] in message and 'os_shielded_vm=required' in message
    assert 'private keys' in message and 'raw KeyProtector' in message
    assert host.vm_security(VM) == before
    assert host.guardian_names() == store
    assert not [c for c in host.calls if not c.endswith('.Get')]


def test_operator_can_refuse_owner_bundles_altogether(
        make_backend, host, keys, guardians):
    hv = make_backend(host, allow_owner_bundles=False)
    with pytest.raises(exception.OwnerKeysRefused,
                       match='allow_owner_bundles = False'):
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    # What tenants make themselves is still accepted.
    hv.attach(INSTANCE, VM, vtpm_request([keys.add(_raw(
        guardians, hv_fabric(host)))]))
    assert host.vm_security(VM)['TpmEnabled']


def hv_fabric(host):
    return host.fabric.guardian


@pytest.mark.parametrize('form', ['raw', 'pdk'])
def test_shielded_from_a_tenant_artifact_opens_only_on_its_fabrics(
        hv, host, keys, guardians, fabric, other_fabric, form, conformance):
    payload = (_raw if form == 'raw' else _pdk)(
        guardians, fabric.guardian, guardians['dr'])
    result = hv.attach(INSTANCE, VM, vtpm_request([keys.add(payload)],
                                                  shielded=True))
    state = host.vm_security(VM)
    assert state['TpmEnabled'] and state['ShieldingRequested']
    assert result.fabrics == (
        fabric.fabric_id, keyprotector.fabric_id(guardians['dr'].signing_der))
    if form == 'pdk':
        assert state['SecurityPolicy'] == fake.crypto.read_shielding_data_file(
            payload)[1]
    assert host.guardian_names() == [fabric.name]  # nothing imported
    host.start_vm(VM)  # opens here
    # ... and not on a host of another fabric.
    stranger = fake.FakeHyperVHost('hv-%s-other' % form, fabric=other_fabric)
    stranger.add_vm(VM)
    stranger.vms[VM].key_protector = state['KeyProtector']
    stranger.vms[VM].flags.update(TpmEnabled=True, ShieldingRequested=True)
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        stranger.start_vm(VM)
    stranger.close()


@pytest.mark.parametrize('form', ['raw', 'pdk'])
def test_tenant_artifact_for_another_fabric_refuses_the_host(
        hv, host, keys, guardians, other_fabric, form):
    before = host.vm_security(VM)
    make = _raw if form == 'raw' else _pdk
    payload = make(guardians, other_fabric.guardian)
    ref = keys.add(payload)
    with pytest.raises(exception.HostNotSuitable) as err:
        hv.attach(INSTANCE, VM, vtpm_request([ref], shielded=True))
    assert ref in str(err.value)
    assert host.vm_security(VM) == before


def test_raw_key_protector_is_applied_as_is(hv, host, keys, guardians,
                                            fabric, conformance):
    raw = _raw(guardians, fabric.guardian, guardians['dr'])
    result = hv.attach(INSTANCE, VM, vtpm_request([keys.add(raw)]))
    assert host.vm_security(VM)['KeyProtector'] == raw
    assert result.fabrics == (
        fabric.fabric_id, keyprotector.fabric_id(guardians['dr'].signing_der))
    assert host.guardian_names() == [fabric.name]


# --- no keys: a local key protector, only where one opens -----------------

def test_no_keys_gives_a_local_key_protector(local_hv, local_host,
                                             other_fabric, conformance):
    result = local_hv.attach(INSTANCE, VM, vtpm_request())
    assert result.fabrics == ()
    state = local_host.vm_security(VM)
    assert state['TpmEnabled'] and not state['ShieldingRequested']
    local = local_host.store[fake.LOCAL_GUARDIAN].guardian
    fake.unwrap_key_protector(state['KeyProtector'], local.encryption_key)
    with pytest.raises(fake.UnwrapError):
        fake.unwrap_key_protector(state['KeyProtector'],
                                  other_fabric.guardian.encryption_key)
    local_host.start_vm(VM)
    assert local_hv.get_capabilities().local_key_protector is True


def test_no_keys_on_a_guarded_host_names_its_fabric(
        hv, host, fabric, other_fabric, conformance):
    """Microsoft's "encryption supported" VM: a key protector owned by the
    host's own guardian for the fabric's guardian, which HGS opens on any
    attested host of the fabric and nowhere else."""
    result = hv.attach(INSTANCE, VM, vtpm_request())
    assert result.fabrics == (fabric.fabric_id,)
    state = host.vm_security(VM)
    assert state['TpmEnabled'] and not state['ShieldingRequested']
    parsed = fake.parse_key_protector(state['KeyProtector'])
    local = host.store[fake.LOCAL_GUARDIAN].guardian
    assert parsed.owner.signing_der == local.signing_der
    assert [g.signing_der for g in parsed.guardians] == [
        fabric.guardian.signing_der]
    host.start_vm(VM)      # HGS opens it here ...
    host.stop_vm(VM)
    sibling = fake.FakeHyperVHost('hv-sibling', fabric=fabric)
    stranger = fake.FakeHyperVHost('hv-stranger', fabric=other_fabric)
    for other in (sibling, stranger):
        other.vms[VM] = copy.deepcopy(host.vms[VM])  # an export, imported
    sibling.start_vm(VM)   # ... and on any attested host of the fabric
    with pytest.raises(fake.WmiMethodError, match='could not be unwrapped'):
        stranger.start_vm(VM)
    # again: the same vTPM, left alone
    assert hv.attach(INSTANCE, VM, vtpm_request()).fabrics == (
        fabric.fabric_id,)


@pytest.mark.parametrize('change, reason', [
    (lambda h: h.set_attestation('TransientError'),
     'attestation status is TransientError, not Passed: the last '
     'attestation attempt failed due to a networking'),
    (lambda h: h.attest(substatus=5),
     'InsecureHostConfiguration, not Passed: the host did not comply with '
     'the attestation policies configured on HGS (AttestationSubstatus 5: '
     'one or more secure boot configurations are insecure; code integrity '
     'policy is insecure)'),
    (lambda h: h.remove_guardian('contoso-hgs'), 'no fabric guardian'),
], ids=['hgs-unreachable', 'insecure-host', 'no-fabric-guardian'])
def test_no_keys_on_a_guarded_host_that_cannot_open_it_is_refused(
        hv, host, change, reason):
    """A guarded host that cannot open the key protector it would give
    refuses before changing anything, saying why in Microsoft's words."""
    change(host)
    before, store = host.vm_security(VM), host.guardian_names()
    with pytest.raises(exception.HostNotSuitable, match=re.escape(reason)):
        hv.attach(INSTANCE, VM, vtpm_request())
    assert host.vm_security(VM) == before
    assert host.guardian_names() == store


# --- refusals before anything changes ----------------------------------------

def test_generation_1_vm_is_refused(hv, host, keys, guardians):
    host.add_vm('gen1', generation=1)
    with pytest.raises(exception.UnsupportedVM, match='Generation 1'):
        hv.attach(INSTANCE, 'gen1', vtpm_request(_keyed(keys, guardians)))
    assert keys.handed_out == []


def test_hosts_older_than_windows_server_2016_are_refused(make_backend):
    host = fake.FakeHyperVHost('hv-2012r2', os_version='6.3.9600')
    host.add_vm(VM)
    with pytest.raises(exception.HostNotSuitable, match='6.3.9600'):
        make_backend(host).attach(INSTANCE, VM, vtpm_request())
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_missing_vm_is_refused(hv):
    with pytest.raises(exception.UnsupportedVM, match='no such VM'):
        hv.attach(INSTANCE, 'nope', vtpm_request())


@pytest.mark.parametrize('status, guarded, reason', [
    # guarded flag off: no HGS to unwrap a KeyProtector that names a fabric
    (0, False, 'not a guarded host'),
    # guarded but attestation lapsed
    (200, True, 'attestation status is Expired'),
    # an AttestationStatus Microsoft does not document
    (999, True, 'attestation status is Unknown'),
], ids=['unguarded', 'attestation-expired', 'undocumented-status'])
def test_keys_need_a_guarded_attested_host(hv, host, keys, guardians, status,
                                           guarded, reason):
    host.set_attestation(status, guarded=guarded)
    with pytest.raises(exception.HostNotSuitable, match=reason):
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert keys.handed_out == []


def test_keys_need_a_fabric_guardian(conf, make_backend, fabric, keys,
                                     guardians):
    host = fake.FakeHyperVHost('hv-nofabric', fabric=fabric)
    host.add_vm(VM)
    make_backend(host, fabric_guardian_name='not-there')
    vmutils, hostutils = host.os_win_utils()
    hv = backend.HyperVBackend(conf, key_source=keys, vmutils=vmutils,
                               hostutils=hostutils, host_name='hv-nofabric')
    with pytest.raises(exception.HostNotSuitable) as err:
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert 'not-there' in str(err.value)
    assert err.value.host == 'hv-nofabric'
    assert keys.handed_out == []


def test_invalid_set_is_refused_and_names_secrets(hv, host, keys, guardians):
    before = host.vm_security(VM)
    refs = [keys.add(fake.export_guardian_file(guardians['dr']))]
    with pytest.raises(exception.InvalidKeySet, match=refs[0]):
        hv.attach(INSTANCE, VM, vtpm_request(refs))
    assert host.vm_security(VM) == before


def test_unreadable_tenant_artifact_names_the_secret(hv, host, keys):
    ref = keys.add(b'\x01' * 2048)
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        hv.attach(INSTANCE, VM, vtpm_request([ref]))
    assert err.value.ref == ref and ref in str(err.value)
    assert 'raw KeyProtector' in str(err.value)
    assert 'shielding data file' in str(err.value)
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_key_source_errors_pass_through(hv, host, keys, guardians):
    refs = _keyed(keys, guardians)
    keys.fail[refs[0]] = exception.KeyAccessDenied(ref=refs[0])
    with pytest.raises(exception.KeyAccessDenied, match=refs[0]):
        hv.attach(INSTANCE, VM, vtpm_request(refs))
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_self_signed_guardians_need_allow_untrusted_root(
        make_backend, host, keys, guardians):
    hv = make_backend(host, allow_untrusted_root=False)
    with pytest.raises(hv_exception.HyperVOperationFailed,
                       match='use AllowUntrustedRoot'):
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert _instance_guardians(host) == []


# --- a fault at every step ---------------------------------------------------

# (target, fault, expected). Every WMI call and query a keyed attach makes,
# in order; 'absorbed' marks a fault the backend retries.
STEPS = [
    ('Win32_OperatingSystem', {}, exception.HostNotSuitable),
    ('Msvm_VirtualSystemSettingData', {}, hv_exception.HyperVOperationFailed),
    ('MSFT_HgsClientConfiguration.Get', {'return_code': 32768},
     exception.HostNotSuitable),
    ('MSFT_HgsGuardian', {}, exception.HostNotSuitable),
    ('fetch', {}, exception.KeyManagerUnavailable),
    ('Msvm_SecuritySettingData', {}, hv_exception.HyperVOperationFailed),
    ('Msvm_SecurityService.GetKeyProtector', {'return_code': 32775},
     hv_exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.NewByAcceptCertificates', {'return_code': 32768},
     hv_exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.Import', {'return_code': 32768},
     hv_exception.HyperVOperationFailed),
    ('MSFT_HgsKeyProtector.NewByGuardians', {'return_code': 32768},
     hv_exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.Remove', {'return_code': 32768}, 'absorbed'),
    ('MSFT_HgsGuardian.Remove', {'return_code': 32768, 'times': 2},
     'absorbed'),
    ('Msvm_SecurityService.SetKeyProtector', {'return_code': 32768},
     hv_exception.HyperVOperationFailed),
    ('Msvm_SecurityService.SetKeyProtector', {'job_error': 32768},
     hv_exception.HyperVOperationFailed),
    ('Msvm_SecurityService.ModifySecuritySettings', {'job_error': 32768},
     hv_exception.HyperVOperationFailed),
    ('Msvm_SecurityService.ModifySecuritySettings', {'return_code': 32775},
     hv_exception.HyperVOperationFailed),
]


def _step_id(step):
    target, fault, _ = step
    extra = ','.join('%s=%s' % kv for kv in sorted(fault.items()))
    return '%s[%s]' % (target, extra) if extra else target


@pytest.mark.parametrize('target, fault, expected', STEPS,
                         ids=[_step_id(s) for s in STEPS])
def test_fault_at_each_step_leaves_the_vm_as_before(
        hv, host, keys, guardians, fabric, target, fault, expected,
        conformance):
    refs = _keyed(keys, guardians, 'dr')
    req = vtpm_request(refs)
    before = host.vm_security(VM)
    store = host.guardian_names()
    if target == 'fetch':
        keys.fail[refs[1]] = exception.KeyManagerUnavailable(
            ref=refs[1], reason='connection refused')
        planted = None
    else:
        planted = host.fail(target, **fault)

    if expected == 'absorbed':
        hv.attach(INSTANCE, VM, req)
        assert host.vm_security(VM)['TpmEnabled']
    else:
        with pytest.raises(expected):
            hv.attach(INSTANCE, VM, req)
        assert hyperv.as_before(host, before)
    assert host.guardian_names() == store
    if planted is not None:
        assert planted.times == 0, 'the fault was never reached'

    # Running it again converges on the same end state as a clean attach.
    keys.fail.clear()
    result = hv.attach(INSTANCE, VM, req)
    state = host.vm_security(VM)
    assert state['TpmEnabled']
    fake.unwrap_key_protector(state['KeyProtector'],
                              fabric.guardian.encryption_key)
    assert result.fabrics[0] == fabric.fabric_id
    assert host.guardian_names() == store


# The same for the other kinds of KeyProtector: local (no keys, on a host
# in local mode), raw and PDK (shielded, on the guarded host).
OTHER_STEPS = [
    ('local', 'MSFT_HgsGuardian', {}),
    ('local', 'MSFT_HgsGuardian.NewByGenerateCertificates',
     {'return_code': 32768}),
    ('local', 'MSFT_HgsKeyProtector.NewByGuardians', {'return_code': 32768}),
    ('local', 'Msvm_SecurityService.SetKeyProtector', {'job_error': 32768}),
    ('local', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768}),
    ('raw', 'MSFT_HgsKeyProtector.ConvertToByRawBytes',
     {'return_code': 32768}),
    ('raw', 'Msvm_SecurityService.SetKeyProtector', {'return_code': 32773}),
    ('raw', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768}),
    ('pdk', 'Msps_ProvisioningFileProcessor.PopulateFromFile',
     {'return_code': 32768}),
    ('pdk', 'Msvm_SecurityService.SetSecurityPolicy', {'job_error': 32768}),
    ('pdk', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768}),
]


@pytest.mark.parametrize('kind, target, fault', OTHER_STEPS,
                         ids=['%s-%s' % (k, _step_id((t, f, None)))
                              for k, t, f in OTHER_STEPS])
def test_fault_in_local_raw_and_pdk_attach_leaves_the_vm_as_before(
        hv, host, local_hv, local_host, keys, guardians, fabric, kind,
        target, fault, conformance):
    refs = []
    if kind != 'local':
        make = _raw if kind == 'raw' else _pdk
        refs = [keys.add(make(guardians, fabric.guardian))]
    else:
        hv, host = local_hv, local_host
    req = vtpm_request(refs, shielded=bool(refs))
    before = host.vm_security(VM)
    planted = host.fail(target, **fault)
    with pytest.raises(exception.VTPMError):
        hv.attach(INSTANCE, VM, req)
    assert planted.times == 0, 'the fault was never reached'
    assert hyperv.as_before(host, before)
    # Only the host's own local guardian may have been created.
    assert set(host.guardian_names()) <= {fabric.name, fake.LOCAL_GUARDIAN}
    hv.attach(INSTANCE, VM, req)
    assert host.vm_security(VM)['TpmEnabled']


def test_rollback_sets_the_previous_key_protector_again(
        hv, host, keys, guardians, fabric, conformance):
    """A VM that had a key protector (TPM off) gets it back, documented."""
    old = _raw(guardians, fabric.guardian)
    host.vms[VM].key_protector = old
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32768)
    with pytest.raises(hv_exception.HyperVOperationFailed):
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert host.vm_security(VM)['KeyProtector'] == old
    assert not host.vm_security(VM)['TpmEnabled']


def test_backend_waits_for_running_jobs(make_backend, fabric, keys,
                                        guardians):
    host = fake.FakeHyperVHost('hv-jobs', fabric=fabric, job_polls=1)
    host.add_vm(VM)
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32768,
              description='the job failed late')
    hv = make_backend(host)
    with pytest.raises(hv_exception.HyperVOperationFailed,
                       match='the job failed late') as err:
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert err.value.code == 32768 and VM in str(err.value)
    assert not host.vm_security(VM)['TpmEnabled']
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    assert host.vm_security(VM)['TpmEnabled']


def test_steps_cover_every_call_of_an_attach(hv, host, local_hv, local_host,
                                             keys, guardians, fabric):
    """The tables above list every WMI method an attach calls."""
    tested = {t for t, _, _ in STEPS if '.' in t} | {
        t for _, t, _ in OTHER_STEPS}
    host.calls.clear()
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians, 'dr')))
    for i, make in enumerate((_raw, _pdk)):
        host.add_vm('vm-%d' % i)
        hv.attach('i-%d' % i, 'vm-%d' % i, vtpm_request(
            [keys.add(make(guardians, fabric.guardian))], shielded=True))
    local_host.calls.clear()
    local_hv.attach(INSTANCE, VM, vtpm_request())
    assert set(host.calls) | set(local_host.calls) <= tested


def test_guardian_that_cannot_be_removed_is_named_and_swept_later(
        hv, host, keys, guardians, fabric):
    before = host.vm_security(VM)
    host.fail('MSFT_HgsGuardian.Remove', return_code=32768,
              times=backend.REMOVE_ATTEMPTS)
    with pytest.raises(hv_exception.HyperVOperationFailed) as err:
        hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    left = _instance_guardians(host)
    assert len(left) == 1 and left[0] in str(err.value)
    assert host.vm_security(VM) == before
    hv.detach(INSTANCE, VM)
    assert host.guardian_names() == [fabric.name]


# --- detach ------------------------------------------------------------------

def test_detach_switches_the_vtpm_off_with_documented_calls(
        hv, host, keys, guardians, fabric, conformance):
    hv.attach(INSTANCE, VM, vtpm_request(_keyed(keys, guardians)))
    # A guardian an interrupted attach left behind.
    host.import_guardian(guardians['dr'].public(),
                         'openstack-vtpm-%s-leftover' % INSTANCE)
    host.calls.clear()
    hv.detach(INSTANCE, VM)
    state = host.vm_security(VM)
    assert not state['TpmEnabled'] and not state['ShieldingRequested']
    assert not state['EncryptStateAndVmMigrationTraffic']
    # No documented call removes a key protector; none is attempted.
    assert 'Msvm_SecurityService.SetKeyProtector' not in host.calls
    assert host.guardian_names() == [fabric.name]
    hv.detach(INSTANCE, VM)       # idempotent
    hv.detach(INSTANCE, None)     # VM already gone


# --- attestation: the documented numbers, in HGS's words -------------------

@pytest.mark.parametrize('number, word', sorted(
    wmi_schema.ATTESTATION_STATUS.items()) + [(999, 'Unknown')],
    ids=lambda v: str(v))
def test_attestation_status_numbers_map_to_hgs_words(make_backend, fabric,
                                                     number, word,
                                                     conformance):
    host = fake.FakeHyperVHost('hv-att-%s' % number, fabric=fabric,
                               attestation_status=number)
    caps = make_backend(host).get_capabilities()
    assert caps.attestation_status == word
    host.close()


# --- capabilities ------------------------------------------------------------

def test_capabilities_of_a_guarded_host(hv, fabric, conformance):
    caps = hv.get_capabilities()
    assert caps.vtpm_supported and caps.guarded
    assert caps.attestation_status == 'Passed'
    assert caps.attestation_mode == 'TPM'
    assert caps.local_key_protector is False
    assert caps.fabric_id == fabric.fabric_id
    assert caps.os_version == '10.0.20348'
    assert caps.measured_at.tzinfo is not None


@pytest.mark.parametrize('kwargs, expected', [
    # local mode
    ({}, dict(vtpm_supported=True, guarded=False,
              attestation_status='NotConfigured', fabric_id=None,
              local_key_protector=True)),
    # Windows Server 2012 R2: no Gen2 vTPM
    ({'os_version': '6.3.9600'}, dict(vtpm_supported=False)),
    # no HGS client feature: no KeyProtector can be made
    ({'hgs_installed': False}, dict(vtpm_supported=False, guarded=False)),
], ids=['local-mode', 'ws2012r2', 'no-hgs-client'])
def test_capabilities_of_other_hosts(make_backend, kwargs, expected,
                                     conformance):
    host = fake.FakeHyperVHost('hv-caps', **kwargs)
    caps = make_backend(host).get_capabilities()
    for name, value in expected.items():
        assert getattr(caps, name) == value, name


def test_fabric_is_not_guessed_among_several(make_backend, fabric,
                                             other_fabric):
    host = fake.FakeHyperVHost('hv-two', fabric=fabric)
    host.import_guardian(other_fabric.guardian.public())
    assert make_backend(host).get_capabilities().fabric_id is None
    named = make_backend(host, fabric_guardian_name=other_fabric.name)
    assert named.get_capabilities().fabric_id == other_fabric.fabric_id


def test_loaded_through_the_entry_point(conf):
    loaded = core_backend.load_backend('hyperv', conf)
    assert isinstance(loaded, backend.HyperVBackend)


# --- secrets stay out of logs ------------------------------------------------

def test_no_key_material_in_debug_logs(hv, host, keys, guardians, caplog):
    owner = guardians['owner']
    pfx = fake.export_owner_pkcs12(owner)
    secret_forms = [
        base64.b64encode(pfx)[:40].decode(), pfx.hex()[:40], repr(pfx)[2:42],
        format(owner.signing_key.private_numbers().d, 'x')[:40],
        str(owner.signing_key.private_numbers().d)[:40],
    ]
    caplog.set_level(logging.DEBUG)
    refs = [keys.add(pfx)]
    hv.attach(INSTANCE, VM, vtpm_request(refs))
    host.add_vm('vm-2')
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32768)
    with pytest.raises(hv_exception.HyperVOperationFailed) as err:
        hv.attach('other', 'vm-2', vtpm_request(refs))
    text = caplog.text + str(err.value) + repr(err.value)
    assert 'vm-2' in caplog.text or VM in caplog.text  # logs were captured
    for form in secret_forms:
        assert form not in text


# --- properties --------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _property_fabric():
    return fake.Fabric('prop-hgs', reuse_keys=True)


@hypothesis.settings(max_examples=40)
@hypothesis.given(payloads=st.lists(st.binary(max_size=1500), min_size=1,
                                    max_size=3))
def test_random_key_material_is_a_vtpm_error(payloads):
    """Random bytes as key material give a VTPMError, never another
    exception, and leave the VM as it was."""
    fabric = _property_fabric()
    host = fake.FakeHyperVHost('hv-prop', fabric=fabric)
    host.add_vm(VM)
    source = hyperv.MemoryKeySource()
    conf = cfg.ConfigOpts()
    conf([])
    vmutils, hostutils = host.os_win_utils()
    hv = backend.HyperVBackend(conf, key_source=source, vmutils=vmutils,
                               hostutils=hostutils)
    refs = [source.add(p) for p in payloads]
    before = host.vm_security(VM)
    with pytest.raises(exception.VTPMError):
        hv.attach(INSTANCE, VM, vtpm_request(refs))
    assert host.vm_security(VM) == before
    assert host.guardian_names() == [fabric.name]
