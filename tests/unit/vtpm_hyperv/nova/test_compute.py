# SPDX-License-Identifier: Apache-2.0
"""The compute-driver glue: spawn, destroy, reports, lifecycle hooks.

The backend is a recording stand-in (a collaborator of the unit); the
real backend over the simulator is exercised end to end in
tests/functional/test_end_to_end.py.
"""

import datetime
import logging
import types

from nova.compute import provider_tree
from nova import exception as nova_exception
import os_traits
import pytest

from vtpm_core import backend
from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects
from vtpm_core import sysmeta
from vtpm_hyperv import exception as hv_exception
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception as nova_vtpm_exc
from vtpm_hyperv.nova import lifecycle

KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
KEYED_IMAGE = {'image_os_vtpm': 'required', 'image_os_vtpm_keys': KEY,
               'image_hw_machine_type': 'hyperv-gen2'}
LOCAL_IMAGE = {'image_os_vtpm': 'required',
               'image_hw_machine_type': 'hyperv-gen2'}


class RecordingBackend(backend.VTPMBackend):
    def __init__(self, conf=None, fabrics=('fabric-a', 'dr'), fail=None,
                 caps=None):
        super().__init__(conf)
        self.fabrics = fabrics
        self.fail = fail
        self.caps = caps
        self.calls = []

    def get_capabilities(self):
        if isinstance(self.caps, Exception):
            raise self.caps
        return self.caps

    def attach(self, instance_uuid, vm_name, request, auth=None):
        self.calls.append(('attach', instance_uuid, vm_name, request, auth))
        if self.fail:
            raise self.fail
        return backend.AttachResult(
            fabrics=self.fabrics if request.key_refs else ())

    def detach(self, instance_uuid, vm_name):
        self.calls.append(('detach', instance_uuid, vm_name))
        if self.fail:
            raise self.fail

    def reauthorize(self, instance_uuid, vm_name, ref, auth=None):
        self.calls.append(('reauthorize', instance_uuid, vm_name, ref, auth))
        if self.fail:
            raise self.fail
        return (), self.fabrics

    def restore_last_known_good(self, instance_uuid, vm_name):
        self.calls.append(('restore_last_known_good', instance_uuid, vm_name))
        return ()

    def vm_security(self, instance_uuid, vm_name):
        # the VM has what any request asks for (startcheck's own tests
        # give it less)
        self.calls.append(('vm_security', instance_uuid, vm_name))
        return backend.VMSecurity(off=True, tpm=True, shielded=True,
                                  encrypted=True, key_protector=True,
                                  fabrics=self.fabrics)

    def reconcile(self):
        self.calls.append(('reconcile',))
        return backend.Reconciled()


def flavor(flavorid='f1', **specs):
    return types.SimpleNamespace(flavorid=flavorid, extra_specs=specs)


def instance(sysmeta=None, extra_specs=None):
    return types.SimpleNamespace(
        uuid='0b7a1c2e-5d4f-4e8a-9c3b-2f1e0d9c8b7a', name='instance-0001',
        host='hv1', flavor=flavor(**(extra_specs or {})),
        system_metadata=dict(sysmeta or {}), project_id=PROJECT)


OWNER = object()
PROJECT = 'b1e3c5d7f9a24c6e8a0b2d4f6a8c0e12'
# the owner's request (openstack server start): a token of its project
CONTEXT = types.SimpleNamespace(get_auth_plugin=lambda: OWNER,
                                auth_token='owner-token', project_id=PROJECT)


def caps(**overrides):
    values = dict(vtpm_supported=True, guarded=True,
                  attestation_status='Passed', attestation_mode='TPM',
                  fabric_id='fabric-a',
                  measured_at=datetime.datetime.now(datetime.timezone.utc))
    values.update(overrides)
    return objects.HostCapabilities(**values)


# --- spawn -------------------------------------------------------------------

def test_spawn_attaches_with_the_owner_credentials_and_records_fabrics():
    be = RecordingBackend()
    inst = instance(KEYED_IMAGE)
    result = compute.VTPMCompute(None, backend=be).spawn(
        CONTEXT, inst, 'instance-0001')
    assert result.fabrics == ('fabric-a', 'dr')
    (call,) = be.calls
    assert call[:3] == ('attach', inst.uuid, 'instance-0001')
    assert call[3].key_refs == [KEY] and call[4] is OWNER
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == 'fabric-a,dr'
    assert sysmeta.fabrics(inst.system_metadata) == ('fabric-a', 'dr')


def test_spawn_reads_the_flavor_too():
    be = RecordingBackend()
    inst = instance({'image_os_vtpm': 'optional',
                     'image_hw_machine_type': 'hyperv-gen2'},
                    extra_specs={'os:vtpm': 'required'})
    compute.VTPMCompute(None, backend=be).spawn(CONTEXT, inst, 'vm')
    assert be.calls[0][3].enabled
    # a local key protector names no fabric
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == ''


def test_spawn_without_vtpm_touches_nothing():
    be = RecordingBackend()
    inst = instance({'image_os_vtpm': 'optional'})
    assert compute.VTPMCompute(None, backend=be).spawn(
        CONTEXT, inst, 'vm') is None
    assert be.calls == []
    assert constants.SYSMETA_FABRICS not in inst.system_metadata


def test_an_invalid_request_aborts_with_the_message_and_no_attach():
    be = RecordingBackend()
    inst = instance({'image_os_vtpm': 'disabled'},
                    extra_specs={'os:vtpm': 'required'})
    with pytest.raises(nova_vtpm_exc.VTPMBuildAborted) as info:
        compute.VTPMCompute(None, backend=be).spawn(CONTEXT, inst, 'vm')
    assert be.calls == []
    # nova's fault is format_message(): ours, with both values
    message = info.value.format_message()
    assert "os:vtpm (flavor extra spec) is 'required'" in message
    assert "os_vtpm (image property) is 'disabled'" in message
    assert isinstance(info.value, nova_exception.BuildAbortException)


@pytest.mark.parametrize('error', [
    exception.KeyAccessDenied(ref=KEY),
    exception.KeyNotFound(ref=KEY),
    # the owner's token: every host would send the same one
    exception.KeyAuthenticationFailed(
        ref=KEY, service='Barbican',
        credentials="the instance owner's token"),
    exception.InvalidKeyMaterial(ref=KEY, reason='not PKCS#12'),
    exception.InvalidKeySet(reason='no owner'),
    exception.UnsupportedVM(vm='vm', reason='Generation 1'),
], ids=lambda e: type(e).__name__)
def test_what_another_host_cannot_fix_aborts_the_build(error):
    be = RecordingBackend(fail=error)
    inst = instance(KEYED_IMAGE)
    with pytest.raises(nova_vtpm_exc.VTPMBuildAborted) as info:
        compute.VTPMCompute(None, backend=be).spawn(CONTEXT, inst, 'vm')
    assert info.value.format_message() == str(error)
    assert info.value.__cause__ is error
    assert constants.SYSMETA_FABRICS not in inst.system_metadata


@pytest.mark.parametrize('error', [
    hv_exception.HyperVOperationFailed(operation='SetKeyProtector', vm='vm',
                                       code=32775,
                                       description='Invalid state'),
    exception.HostNotSuitable(host='hv1', reason='not guarded'),
    exception.KeyManagerUnavailable(ref=KEY, reason='connection refused'),
], ids=lambda e: type(e).__name__)
def test_what_another_host_may_fix_is_raised_for_a_reschedule(error):
    be = RecordingBackend(fail=error)
    inst = instance(KEYED_IMAGE)
    with pytest.raises(type(error)) as info:
        compute.VTPMCompute(None, backend=be).spawn(CONTEXT, inst, 'vm')
    assert info.value is error
    assert constants.SYSMETA_FABRICS not in inst.system_metadata


def test_the_backend_is_loaded_by_name_when_not_given(monkeypatch):
    loaded = RecordingBackend()
    seen = []

    def load(name, conf):
        seen.append((name, conf))
        return loaded

    monkeypatch.setattr(backend, 'load_backend', load)
    vtpm = compute.VTPMCompute('CONF')
    assert vtpm.backend is loaded and vtpm.backend is loaded
    assert seen == [('hyperv', 'CONF')]


# --- destroy -----------------------------------------------------------------

def test_destroy_detaches():
    be = RecordingBackend()
    compute.VTPMCompute(None, backend=be).destroy(instance(KEYED_IMAGE), 'vm')
    assert be.calls == [('detach', '0b7a1c2e-5d4f-4e8a-9c3b-2f1e0d9c8b7a',
                         'vm')]


def test_a_forbidden_secret_does_not_block_the_delete(caplog):
    be = RecordingBackend(fail=exception.KeyAccessDenied(ref=KEY))
    with caplog.at_level(logging.WARNING):
        compute.VTPMCompute(None, backend=be).destroy(instance(KEYED_IMAGE),
                                                      None)
    assert KEY in caplog.text


def test_a_hyperv_failure_in_cleanup_is_raised():
    error = hv_exception.HyperVOperationFailed(
        operation='RemoveGuardian', vm='vm', code=32768, description='x')
    with pytest.raises(hv_exception.HyperVOperationFailed):
        compute.VTPMCompute(None, backend=RecordingBackend(
            fail=error)).destroy(instance(KEYED_IMAGE), 'vm')


# --- capability reporting ---------------------------------------------------

def _tree(*traits):
    tree = provider_tree.ProviderTree()
    tree.new_root('hv1', 'b6ad4a4e-6c8c-4b8a-9d8f-1e2d3c4b5a69')
    if traits:
        tree.add_traits('hv1', *traits)
    return tree


def test_stats_carry_the_report_and_traits_follow_it():
    be = RecordingBackend(caps=caps())
    vtpm = compute.VTPMCompute(None, backend=be)
    stats = vtpm.stats()
    assert capabilities.from_stats(stats).fabric_id == 'fabric-a'
    tree = _tree('HW_CPU_X86_AVX')
    vtpm.update_traits(tree, 'hv1')
    ours = {capabilities.TRAIT_TPM, capabilities.TRAIT_TPM_CRB,
            capabilities.TRAIT_SECRET_USER, capabilities.TRAIT_SECRET_HOST,
            capabilities.TRAIT_GUARDED, capabilities.TRAIT_ATTESTED,
            capabilities.fabric_trait('fabric-a')}
    # the standard ones as far as this release's os-traits defines them
    # (all on nova 34; 2023.1's lacks TPM_CRB and the secret securities)
    assert tree.data('hv1').traits == {'HW_CPU_X86_AVX'} | {
        t for t in ours if os_traits.is_custom(t) or hasattr(os_traits, t)}
    assert capabilities.TRAIT_TPM in tree.data('hv1').traits


def test_standard_traits_os_traits_lacks_are_not_published(monkeypatch):
    """placement refuses a standard trait it does not know, and with it
    the node's whole report."""
    monkeypatch.delattr(os_traits, capabilities.TRAIT_TPM, raising=False)
    vtpm = compute.VTPMCompute(None, backend=RecordingBackend(caps=caps()))
    vtpm.stats()
    tree = _tree()
    vtpm.update_traits(tree, 'hv1')
    assert capabilities.TRAIT_TPM not in tree.data('hv1').traits
    assert capabilities.TRAIT_GUARDED in tree.data('hv1').traits


def test_expired_attestation_drops_the_trait_on_the_next_period():
    be = RecordingBackend(caps=caps())
    vtpm = compute.VTPMCompute(None, backend=be)
    tree = _tree()
    vtpm.stats()
    vtpm.update_traits(tree, 'hv1')
    be.caps = caps(attestation_status='Expired')
    assert capabilities.from_stats(vtpm.stats()).attestation_status == \
        'Expired'
    vtpm.update_traits(tree, 'hv1')
    assert capabilities.TRAIT_ATTESTED not in tree.data('hv1').traits
    assert capabilities.TRAIT_GUARDED in tree.data('hv1').traits


def test_a_host_that_cannot_measure_reports_nothing():
    be = RecordingBackend(caps=hv_exception.HyperVOperationFailed(
        operation='Get', vm='-', code=32768, description='WMI down'))
    vtpm = compute.VTPMCompute(None, backend=be)
    assert vtpm.stats() == {}
    tree = _tree(capabilities.TRAIT_TPM, 'CUSTOM_OTHER')
    vtpm.update_traits(tree, 'hv1')
    assert tree.data('hv1').traits == {'CUSTOM_OTHER'}


# --- lifecycle hooks ---------------------------------------------------------

def _rollback_message(info):
    inner = info.value.inner_exception
    assert isinstance(inner, nova_vtpm_exc.VTPMOperationRefused)
    return inner.format_message()


def test_cold_migration_of_a_local_key_protector_rolls_back():
    inst = instance(dict(LOCAL_IMAGE, vtpm_fabrics=''))
    with pytest.raises(nova_exception.InstanceFaultRollback) as info:
        compute.VTPMCompute(None, backend=RecordingBackend()).before_move(
            inst, inst.flavor, same_host=False)
    message = _rollback_message(info)
    assert message.startswith('cold migration of instance %s refused'
                              % inst.uuid)
    assert 'only host hv1 can open' in message


def test_resize_to_a_flavor_that_disables_the_vtpm_rolls_back():
    inst = instance(dict(KEYED_IMAGE, vtpm_fabrics='fabric-a'))
    with pytest.raises(nova_exception.InstanceFaultRollback) as info:
        compute.VTPMCompute(None, backend=RecordingBackend()).before_move(
            inst, flavor('f2', **{'os:vtpm': 'disabled'}))
    message = _rollback_message(info)
    assert message.startswith('resize of instance')
    assert "os:vtpm (flavor extra spec) is 'disabled'" in message


def test_keyed_move_is_left_to_the_scheduler():
    inst = instance(dict(KEYED_IMAGE, vtpm_fabrics='fabric-a'))
    compute.VTPMCompute(None, backend=RecordingBackend()).before_move(
        inst, flavor('f2', **{'os:vtpm': 'optional'}))


@pytest.mark.parametrize('hook', ['before_evacuation_here',
                                  'before_rebuild'])
def test_evacuate_and_rebuild_roll_back(hook):
    inst = instance(dict(KEYED_IMAGE, vtpm_fabrics='fabric-a'))
    vtpm = compute.VTPMCompute(None, backend=RecordingBackend())
    with pytest.raises(nova_exception.InstanceFaultRollback) as info:
        getattr(vtpm, hook)(inst)
    assert 'KeyProtector fabrics: fabric-a' in _rollback_message(info)


def test_plain_instances_pass_every_hook():
    inst = instance({'image_hw_machine_type': 'hyperv-gen2'})
    vtpm = compute.VTPMCompute(None, backend=RecordingBackend(caps=caps()))
    vtpm.before_move(inst, inst.flavor)
    vtpm.before_evacuation_here(inst)
    vtpm.before_rebuild(inst)
    vtpm.before_shelve(inst, offload=True)
    vtpm.before_live_migration_here(inst)


def test_shelve_is_refused_when_nova_would_offload():
    inst = instance(LOCAL_IMAGE)
    vtpm = compute.VTPMCompute(None, backend=RecordingBackend())
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused) as info:
        vtpm.before_shelve(inst, offload=True)
    assert 'shelved_offload_time' in info.value.format_message()
    vtpm.before_shelve(inst, offload=False)


@pytest.mark.parametrize('dest,ok', [
    (caps(), True),
    (caps(fabric_id='fabric-b'), False),
    (caps(attestation_status='Expired'), False),
], ids=['same-fabric', 'other-fabric', 'expired'])
def test_live_migration_destination_checks_itself(dest, ok):
    inst = instance(dict(KEYED_IMAGE, vtpm_fabrics='fabric-a,dr'))
    vtpm = compute.VTPMCompute(None, backend=RecordingBackend(caps=dest))
    if ok:
        vtpm.before_live_migration_here(inst, host='hv2')
        return
    with pytest.raises(nova_exception.MigrationPreCheckError) as info:
        vtpm.before_live_migration_here(inst, host='hv2')
    assert 'destination hv2 cannot unwrap' in info.value.format_message()


def test_lifecycle_names_match_the_hooks():
    # the hooks above cover every refused operation of the table
    limited = (lifecycle.REFUSED, lifecycle.SAME_HOST,
               lifecycle.NOT_OFFLOADED)
    refused = {r.operation for r in lifecycle.RULES
               if r.local in limited or r.keyed in limited}
    assert refused == {lifecycle.RESIZE, lifecycle.MIGRATE,
                       lifecycle.LIVE_MIGRATE,
                       lifecycle.EVACUATE, lifecycle.REBUILD,
                       lifecycle.SHELVE, lifecycle.SHELVE_OFFLOAD}
