# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend against the simulator, through os-win's own code."""

import base64
import functools
import logging

import hypothesis
from hypothesis import strategies as st
from oslo_config import cfg
import pytest

from tests.hyperv import conftest
from vtpm_core import backend as core_backend
from vtpm_core import exception
from vtpm_hyperv import backend
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

VM = conftest.VM
INSTANCE = '5d1f1c53-6a1d-4a4e-9bd4-0d0b8f3c2c77'
request = conftest.request


def _keyed(keys, guardians, *extra):
    refs = [keys.add(fake.export_owner_pkcs12(guardians['owner']))]
    refs += [keys.add(fake.export_guardian_certificates(guardians[g], enc))
             for g, enc in zip(extra, ('PEM', 'DER', 'PEM'))]
    return refs


def _instance_guardians(host):
    return [n for n in host.guardian_names() if n.startswith('openstack-')]


# --- attach with keys --------------------------------------------------------

def test_keyed_attach_seals_for_owner_fabric_and_guardians(
        hv, host, keys, guardians, fabric):
    refs = _keyed(keys, guardians, 'dr', 'branch')
    result = hv.attach(INSTANCE, VM, request(refs, shielded=True))

    state = host.vm_security(VM)
    assert state['TpmEnabled'] and state['ShieldingRequested']
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
    # starts on this guarded host.
    assert _instance_guardians(host) == []
    host.start_vm(VM)


def test_not_shielded_keeps_encryption_but_no_shielding(hv, host, keys,
                                                        guardians):
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    state = host.vm_security(VM)
    assert state['TpmEnabled'] and not state['ShieldingRequested']
    assert state['EncryptStateAndVmMigrationTraffic']


def test_payloads_are_wiped_after_success_and_failure(hv, host, keys,
                                                      guardians):
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians, 'dr')))
    host.add_vm('vm-2')
    host.fail('Msvm_SecurityService.SetKeyProtector', return_code=32768)
    with pytest.raises(exception.HyperVOperationFailed):
        hv.attach('other', 'vm-2', request(_keyed(keys, guardians)))
    assert len(keys.handed_out) == 3
    for payload in keys.handed_out:
        assert payload and payload == bytearray(len(payload))


def test_second_attach_converges_without_changes(hv, host, keys, guardians):
    req = request(_keyed(keys, guardians, 'dr'), shielded=True)
    first = hv.attach(INSTANCE, VM, req)
    before = host.vm_security(VM)
    host.calls.clear()
    assert hv.attach(INSTANCE, VM, req) == first
    assert host.vm_security(VM) == before
    assert not [c for c in host.calls if c.startswith('Msvm_SecurityService.'
                                                      'Set')]


def test_other_keys_on_a_vm_with_a_vtpm_are_refused(hv, host, keys,
                                                    guardians):
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    before = host.vm_security(VM)
    other = [keys.add(fake.export_owner_pkcs12(guardians['owner2']))]
    with pytest.raises(exception.UnsupportedVM, match='unreadable'):
        hv.attach(INSTANCE, VM, request(other))
    assert host.vm_security(VM) == before


# --- raw KeyProtector and no keys --------------------------------------------

def test_raw_key_protector_is_applied_as_is(hv, host, keys, guardians,
                                            fabric):
    raw = fake.build_key_protector(guardians['owner'], [
        fabric.guardian.public(), guardians['dr'].public()])
    result = hv.attach(INSTANCE, VM, request([keys.add(raw)]))
    assert host.vm_security(VM)['KeyProtector'] == raw
    assert result.fabrics == (
        fabric.fabric_id, keyprotector.fabric_id(guardians['dr'].signing_der))
    assert host.guardian_names() == [fabric.name]


def test_raw_key_protector_for_another_fabric_refuses_the_host(
        hv, host, keys, guardians, other_fabric):
    before = host.vm_security(VM)
    raw = fake.build_key_protector(guardians['owner'],
                                   [other_fabric.guardian.public()])
    ref = keys.add(raw)
    with pytest.raises(exception.HostNotSuitable) as err:
        hv.attach(INSTANCE, VM, request([ref]))
    assert ref in str(err.value)
    assert host.vm_security(VM) == before


def test_no_keys_gives_a_local_key_protector(hv, host, other_fabric):
    result = hv.attach(INSTANCE, VM, request())
    assert result.fabrics == ()
    state = host.vm_security(VM)
    assert state['TpmEnabled'] and not state['ShieldingRequested']
    local = host.store[fake.LOCAL_GUARDIAN].guardian
    fake.unwrap_key_protector(state['KeyProtector'], local.encryption_key)
    with pytest.raises(fake.UnwrapError):
        fake.unwrap_key_protector(state['KeyProtector'],
                                  other_fabric.guardian.encryption_key)
    # A vTPM without keys needs no guarded host.
    unguarded = fake.FakeHyperVHost('hv-unguarded')
    unguarded.add_vm(VM)
    vmutils, hostutils = unguarded.os_win_utils()
    backend.HyperVBackend(hv.conf, key_source=hv.key_source, vmutils=vmutils,
                          hostutils=hostutils).attach(INSTANCE, VM, request())
    assert unguarded.vm_security(VM)['TpmEnabled']
    unguarded.start_vm(VM)


# --- refusals before anything changes ----------------------------------------

def test_generation_1_vm_is_refused(hv, host, keys, guardians):
    host.add_vm('gen1', generation=1)
    with pytest.raises(exception.UnsupportedVM, match='Generation 1'):
        hv.attach(INSTANCE, 'gen1', request(_keyed(keys, guardians)))
    assert keys.handed_out == []


def test_hosts_older_than_windows_server_2016_are_refused(make_backend):
    host = fake.FakeHyperVHost('hv-2012r2', os_version='6.3.9600')
    host.add_vm(VM)
    with pytest.raises(exception.HostNotSuitable, match='6.3.9600'):
        make_backend(host).attach(INSTANCE, VM, request())
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_missing_vm_is_refused(hv):
    with pytest.raises(exception.UnsupportedVM, match='no such VM'):
        hv.attach(INSTANCE, 'nope', request())


@pytest.mark.parametrize('status, guarded, reason', [
    # local mode: no HGS to unwrap a KeyProtector that names a fabric
    ('NotConfigured', False, 'not a guarded host'),
    # guarded but attestation lapsed
    ('Expired', True, 'attestation status is Expired'),
], ids=['unguarded', 'attestation-expired'])
def test_keys_need_a_guarded_attested_host(hv, host, keys, guardians, status,
                                           guarded, reason):
    host.set_attestation(status, guarded=guarded)
    with pytest.raises(exception.HostNotSuitable, match=reason):
        hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
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
        hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    assert 'not-there' in str(err.value)
    assert err.value.host == 'hv-nofabric'
    assert keys.handed_out == []


def test_invalid_set_is_refused_and_names_secrets(hv, host, keys, guardians):
    before = host.vm_security(VM)
    refs = [keys.add(fake.export_guardian_certificates(guardians['dr']))]
    with pytest.raises(exception.InvalidKeySet, match=refs[0]):
        hv.attach(INSTANCE, VM, request(refs))
    assert host.vm_security(VM) == before


def test_unreadable_raw_key_protector_names_the_secret(hv, host, keys):
    ref = keys.add(b'\x01' * 2048)
    with pytest.raises(exception.InvalidKeyMaterial) as err:
        hv.attach(INSTANCE, VM, request([ref]))
    assert err.value.ref == ref and ref in str(err.value)
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_key_source_errors_pass_through(hv, host, keys, guardians):
    refs = _keyed(keys, guardians)
    keys.fail[refs[0]] = exception.KeyAccessDenied(ref=refs[0])
    with pytest.raises(exception.KeyAccessDenied, match=refs[0]):
        hv.attach(INSTANCE, VM, request(refs))
    assert host.vm_security(VM)['KeyProtector'] == b''


def test_self_signed_guardians_need_allow_untrusted_root(
        make_backend, host, keys, guardians):
    hv = make_backend(host, allow_untrusted_root=False)
    with pytest.raises(exception.HyperVOperationFailed, match='32773'):
        hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    assert _instance_guardians(host) == []


# --- a fault at every step ---------------------------------------------------

# (target, fault, expected). Every WMI call and query a keyed, shielded
# attach makes, in order; 'absorbed' marks a fault the backend retries.
STEPS = [
    ('Win32_OperatingSystem', {}, exception.HostNotSuitable),
    ('Msvm_VirtualSystemSettingData', {}, exception.HyperVOperationFailed),
    ('MSFT_HgsClientConfiguration.Get', {'return_code': 32768},
     exception.HostNotSuitable),
    ('MSFT_HgsClientConfiguration.Get', {'return_code': 32768, 'at': 2},
     exception.HostNotSuitable),
    ('MSFT_HgsGuardian', {}, exception.HostNotSuitable),
    ('fetch', {}, exception.KeyManagerUnavailable),
    ('Msvm_ComputerSystem', {}, exception.HyperVOperationFailed),
    ('Msvm_SecuritySettingData', {}, exception.HyperVOperationFailed),
    ('Msvm_SecurityService.GetKeyProtector', {'return_code': 32775},
     exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian', {'at': 2}, exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.NewByAcceptCertificates', {'return_code': 32768},
     exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.NewByAcceptCertificates', {'return_code': 32768,
                                                  'at': 2},
     exception.HyperVOperationFailed),
    ('MSFT_HgsKeyProtector.NewByGuardians', {'return_code': 32768},
     exception.HyperVOperationFailed),
    ('MSFT_HgsGuardian.Remove', {'return_code': 32768}, 'absorbed'),
    ('MSFT_HgsGuardian.Remove', {'return_code': 32768, 'times': 2},
     'absorbed'),
    ('Msvm_SecurityService.SetKeyProtector', {'return_code': 32768},
     exception.HyperVOperationFailed),
    ('Msvm_SecurityService.SetKeyProtector', {'job_error': 32768},
     exception.HyperVOperationFailed),
    ('Msvm_SecurityService.ModifySecuritySettings', {'job_error': 32768},
     exception.HyperVOperationFailed),
    ('Msvm_SecurityService.ModifySecuritySettings', {'job_error': 32777,
                                                     'at': 2},
     exception.HyperVOperationFailed),
    ('Msvm_SecurityService.ModifySecuritySettings', {'return_code': 32775,
                                                     'at': 2},
     exception.HyperVOperationFailed),
]


def _step_id(step):
    target, fault, _ = step
    extra = ','.join('%s=%s' % kv for kv in sorted(fault.items()))
    return '%s[%s]' % (target, extra) if extra else target


@pytest.mark.parametrize('target, fault, expected', STEPS,
                         ids=[_step_id(s) for s in STEPS])
def test_fault_at_each_step_leaves_the_vm_as_before(
        hv, host, keys, guardians, fabric, target, fault, expected):
    refs = _keyed(keys, guardians, 'dr')
    req = request(refs, shielded=True)
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
        assert host.vm_security(VM) == before
    assert host.guardian_names() == store
    if planted is not None:
        assert planted.times == 0, 'the fault was never reached'

    # Running it again converges on the same end state as a clean attach.
    keys.fail.clear()
    result = hv.attach(INSTANCE, VM, req)
    state = host.vm_security(VM)
    assert state['TpmEnabled'] and state['ShieldingRequested']
    fake.unwrap_key_protector(state['KeyProtector'],
                              fabric.guardian.encryption_key)
    assert result.fabrics[0] == fabric.fabric_id
    assert host.guardian_names() == store


# The same for the two other kinds of KeyProtector: local (no keys) and raw.
OTHER_STEPS = [
    ('local', 'MSFT_HgsGuardian', {}),
    ('local', 'MSFT_HgsGuardian.NewByGenerateCertificates',
     {'return_code': 32768}),
    ('local', 'MSFT_HgsKeyProtector.NewByGuardians', {'return_code': 32768}),
    ('local', 'Msvm_SecurityService.SetKeyProtector', {'job_error': 32768}),
    ('local', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768, 'at': 2}),
    ('raw', 'MSFT_HgsKeyProtector.ConvertToByRawBytes',
     {'return_code': 32768}),
    ('raw', 'Msvm_SecurityService.SetKeyProtector', {'return_code': 32773}),
    ('raw', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768}),
    ('raw', 'Msvm_SecurityService.ModifySecuritySettings',
     {'job_error': 32768, 'at': 2}),
]


@pytest.mark.parametrize('kind, target, fault', OTHER_STEPS,
                         ids=['%s-%s' % (k, _step_id((t, f, None)))
                              for k, t, f in OTHER_STEPS])
def test_fault_in_local_and_raw_attach_leaves_the_vm_as_before(
        hv, host, keys, guardians, fabric, kind, target, fault):
    refs = []
    if kind == 'raw':
        refs = [keys.add(fake.build_key_protector(
            guardians['owner'], [fabric.guardian.public()]))]
    before = host.vm_security(VM)
    planted = host.fail(target, **fault)
    with pytest.raises(exception.VTPMError):
        hv.attach(INSTANCE, VM, request(refs))
    assert planted.times == 0, 'the fault was never reached'
    assert host.vm_security(VM) == before
    # Only the host's own local guardian may have been created.
    assert set(host.guardian_names()) <= {fabric.name, fake.LOCAL_GUARDIAN}
    hv.attach(INSTANCE, VM, request(refs))
    assert host.vm_security(VM)['TpmEnabled']


def test_backend_waits_for_running_jobs(make_backend, fabric, keys,
                                        guardians):
    host = fake.FakeHyperVHost('hv-jobs', fabric=fabric, job_polls=1)
    host.add_vm(VM)
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32768,
              description='the job failed late', at=2)
    hv = make_backend(host)
    with pytest.raises(exception.HyperVOperationFailed,
                       match='the job failed late') as err:
        hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    assert err.value.code == 32768 and VM in str(err.value)
    assert host.vm_security(VM)['KeyProtector'] == b''
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    assert host.vm_security(VM)['TpmEnabled']


def test_steps_cover_every_call_of_an_attach(hv, host, keys, guardians):
    """The table above lists every WMI method a keyed attach calls."""
    host.calls.clear()
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians, 'dr'), True))
    tested = {t for t, _, _ in STEPS if '.' in t}
    assert set(host.calls) <= tested
    host.add_vm('vm-local')
    host.calls.clear()
    hv.attach('other', 'vm-local', request())
    assert set(host.calls) <= tested | {t for _, t, _ in OTHER_STEPS}


def test_guardian_that_cannot_be_removed_is_named_and_swept_later(
        hv, host, keys, guardians, fabric):
    before = host.vm_security(VM)
    host.fail('MSFT_HgsGuardian.Remove', return_code=32768,
              times=backend.REMOVE_ATTEMPTS)
    with pytest.raises(exception.HyperVOperationFailed) as err:
        hv.attach(INSTANCE, VM, request(_keyed(keys, guardians)))
    left = _instance_guardians(host)
    assert len(left) == 1 and left[0] in str(err.value)
    assert host.vm_security(VM) == before
    hv.detach(INSTANCE, VM)
    assert host.guardian_names() == [fabric.name]


# --- detach ------------------------------------------------------------------

def test_detach_removes_what_attach_added(hv, host, keys, guardians, fabric):
    hv.attach(INSTANCE, VM, request(_keyed(keys, guardians), shielded=True))
    # A guardian an interrupted attach left behind.
    host.import_guardian(guardians['dr'].public(),
                         'openstack-vtpm-%s-leftover' % INSTANCE)
    hv.detach(INSTANCE, VM)
    state = host.vm_security(VM)
    assert not state['TpmEnabled'] and not state['ShieldingRequested']
    assert state['KeyProtector'] == b''
    assert host.guardian_names() == [fabric.name]
    hv.detach(INSTANCE, VM)       # idempotent
    hv.detach(INSTANCE, None)     # VM already gone


# --- capabilities ------------------------------------------------------------

def test_capabilities_of_a_guarded_host(hv, fabric):
    caps = hv.get_capabilities()
    assert caps.vtpm_supported and caps.guarded
    assert caps.attestation_status == 'Passed'
    assert caps.attestation_mode == 'TPM'
    assert caps.fabric_id == fabric.fabric_id
    assert caps.os_version == '10.0.20348'
    assert caps.measured_at.tzinfo is not None


@pytest.mark.parametrize('kwargs, expected', [
    # local mode
    ({}, dict(vtpm_supported=True, guarded=False,
              attestation_status='NotConfigured', fabric_id=None)),
    # Windows Server 2012 R2: no Gen2 vTPM
    ({'os_version': '6.3.9600'}, dict(vtpm_supported=False)),
    # no HGS client feature: no KeyProtector can be made
    ({'hgs_installed': False}, dict(vtpm_supported=False, guarded=False)),
], ids=['local-mode', 'ws2012r2', 'no-hgs-client'])
def test_capabilities_of_other_hosts(make_backend, kwargs, expected):
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
    hv.attach(INSTANCE, VM, request(refs))
    host.add_vm('vm-2')
    host.fail('Msvm_SecurityService.ModifySecuritySettings', job_error=32768)
    with pytest.raises(exception.HyperVOperationFailed) as err:
        hv.attach('other', 'vm-2', request(refs))
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
    source = conftest.MemoryKeySource()
    conf = cfg.ConfigOpts()
    conf([])
    vmutils, hostutils = host.os_win_utils()
    hv = backend.HyperVBackend(conf, key_source=source, vmutils=vmutils,
                               hostutils=hostutils)
    refs = [source.add(p) for p in payloads]
    before = host.vm_security(VM)
    with pytest.raises(exception.VTPMError):
        hv.attach(INSTANCE, VM, request(refs))
    assert host.vm_security(VM) == before
    assert host.guardian_names() == [fabric.name]
