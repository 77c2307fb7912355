# SPDX-License-Identifier: Apache-2.0
"""nova-compute dies at every WMI call of every path; a restarted compute,
as nova 34 restarts it, keeps every promise.

The process dies: at the k-th WMI call of a path (a method, a query or an
enumeration: the simulator's WMI layer, ``vtpm_hyperv.fake.wmi.Namespace``)
a ``ProcessDied`` is raised, a ``BaseException`` that no ``except
Exception`` rollback catches; from then on every WMI call raises it too (a
dead process reaches Windows no more) and no private directory is removed
(``PrivateFiles.__exit__`` does nothing): what a ``kill -9`` leaves. The
registries of running calls unwind, as a dead process's memory goes.

Then a new compute over the same simulated host, as nova 34's
``ComputeManager.init_host`` starts it: ``driver.init_host``, then
``driver.process_instances_at_startup`` with the host's instances, then
``_init_instance`` for each (a ``BUILDING`` instance is set to ``ERROR``; a
``POWERING_ON`` one is started again with nova's admin context; a
``DELETING`` one is deleted again), then a periodic run
(``get_available_resource``). Then what people do next: for a build, the
admin's recovery that ``doc/source/admin/hgs.rst`` gives (``openstack
server set --state active``, then a hard reboot or a start, with the
admin's context), then the owner's hard reboot; for a re-authorization,
the owner's start again.

Checked at every crash point, after the restart and after every step: no
instance guardian in the host's store (so no owner private key), nothing
in the private directory, and no VM running without the TPM, key
protector, shielding and encryption its request asks for, or, with keys,
without ``vtpm_fabrics`` naming what its KeyProtector names. The
re-authorization records its outcome consistently with the VM. The figure
("N crash points over M paths, 0 failures") is printed in the session's
summary.
"""

import copy
import time
import types
import uuid

from nova.virt import driver as nova_driver
from os_win import _utils as os_win_utils
from os_win import constants as os_win_constants
import pytest

from tests.fixtures import hyperv
from vtpm_core import constants
from vtpm_core import sysmeta
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import driver
from vtpm_hyperv.nova import reauthorize

VM = hyperv.VM
PROJECT = 'c0ffee00c0ffee00c0ffee00c0ffee00'
OWNER = types.SimpleNamespace(auth_token='owner-token', project_id=PROJECT)
# nova.context.get_admin_context(): no token, no project
ADMIN = types.SimpleNamespace(auth_token=None, project_id=None,
                              is_admin=True)
CRASHES = hyperv.CRASHES


class ProcessDied(BaseException):
    """The process is gone: nothing after it runs."""


class Death:
    """Kills the process at the k-th WMI call on ``host``."""

    def __init__(self, monkeypatch):
        self.host = None
        self.at = None
        self.calls = 0
        self.dead = False
        for name in ('invoke', 'instances', 'query'):
            self._hook(monkeypatch, name)
        exit_ = keyprotector.PrivateFiles.__exit__

        def private_exit(files, *exc):
            if not self.dead:
                return exit_(files, *exc)
        monkeypatch.setattr(keyprotector.PrivateFiles, '__exit__',
                            private_exit)

    def _hook(self, monkeypatch, name):
        original = getattr(fake.wmi.Namespace, name)

        def call(ns, *args, **kwargs):
            if ns.host is self.host:
                self.tick()
            return original(ns, *args, **kwargs)
        monkeypatch.setattr(fake.wmi.Namespace, name, call)

    def tick(self):
        """One call out of the process (WMI, or nova's database)."""
        if self.at is not None:
            self.calls += 1
            if self.dead or self.calls >= self.at:
                self.dead = True
                raise ProcessDied()

    def arm(self, at):
        self.at, self.calls, self.dead = at, 0, False

    def disarm(self):
        """A new process: its calls reach Windows, its files go."""
        self.at, self.dead = None, False


class HyperVDriver(nova_driver.ComputeDriver):
    """A Hyper-V driver that knows nothing of vTPMs: VMs on ``hv``,
    started and stopped by os-win (compute-hyperv's power calls: a hard
    reboot is off, then on)."""

    def __init__(self, hv):
        super().__init__(virtapi=None)
        self.hv = hv
        self.vmutils = hv.os_win_utils()[0]

    def _state(self, instance, state):
        # os-win's set_vm_state: Msvm_ComputerSystem.RequestStateChange
        self.vmutils.set_vm_state(instance.name, state)

    def init_host(self, host):
        pass

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        self.hv.add_vm(instance.name, generation=2,
                       instance_uuid=instance.uuid)
        if power_on:
            self._state(instance, os_win_constants.HYPERV_VM_STATE_ENABLED)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        if self.hv.vms[instance.name].state != 2:
            self._state(instance, os_win_constants.HYPERV_VM_STATE_ENABLED)

    def power_off(self, instance, timeout=0, retry_interval=0):
        if self.hv.vms[instance.name].state != 3:
            self._state(instance, os_win_constants.HYPERV_VM_STATE_DISABLED)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        self.power_off(instance)
        self.power_on(context, instance, network_info)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.name in self.hv.vms:
            self.hv.stop_vm(instance.name)
            self.hv.remove_vm(instance.name)

    def get_available_resource(self, nodename):
        return {'stats': {}}


class Driver(driver.VTPMDriverMixin, HyperVDriver):
    def __init__(self, hv, backend):
        super().__init__(hv)
        self._backend = backend

    def vtpm_compute(self):
        return compute.VTPMCompute(None, backend=self._backend,
                                   auth_for=lambda ctx: ctx, host=self.hv.name)


class Cloud:
    """One simulated host, its instance, and computes started over it."""

    def __init__(self, make_backend, private_dir, death, hv, keyed_props):
        self.make_backend = make_backend
        self.private_dir = private_dir
        self.death = death
        self.hv = hv
        self.instance = types.SimpleNamespace(
            uuid=str(uuid.uuid4()), name=VM, host=hv.name,
            project_id=PROJECT, flavor=types.SimpleNamespace(
                flavorid='f1', extra_specs={}),
            system_metadata={'image_%s' % k: v
                             for k, v in keyed_props.items()},
            metadata={}, vm_state='building', task_state='spawning',
            deleted=False)
        self.instance.save = self.save
        self.persist()
        self.driver = self.start()

    # nova's cell database: what a restarted compute reads back
    _FIELDS = ('metadata', 'system_metadata', 'vm_state', 'task_state')

    def persist(self):
        """A save by another nova service (nova-api): it always lands."""
        self.db = copy.deepcopy({f: getattr(self.instance, f)
                                 for f in self._FIELDS})

    def save(self):
        """``instance.save()`` in the compute: the process may die first."""
        self.death.tick()
        self.persist()

    def start(self):
        """A compute process: a new backend and driver, init_host."""
        drv = Driver(self.hv, self.make_backend(
            self.hv, private_dir=str(self.private_dir)))
        drv.init_host(self.hv.name)
        return drv

    def restart(self):
        """nova 34's ComputeManager.init_host after the process died."""
        self.death.disarm()
        drv = self.driver = self.start()
        inst = self.instance
        for field, value in copy.deepcopy(self.db).items():
            setattr(inst, field, value)
        drv.process_instances_at_startup(ADMIN, [inst])
        if inst.vm_state == 'building' or inst.task_state == 'spawning':
            inst.vm_state, inst.task_state = 'error', None
            inst.save()
        elif inst.task_state == 'powering-on':
            if attempt(lambda: drv.power_on(ADMIN, inst, None)):
                inst.vm_state = 'active'
            inst.task_state = None
            inst.save()
        elif inst.task_state == 'deleting':
            drv.destroy(ADMIN, inst, None)
            inst.vm_state, inst.task_state = 'deleted', None
            inst.save()
        drv.get_available_resource(self.hv.name)


def attempt(call):
    """A nova operation: an exception fails it (nova records the fault)."""
    try:
        call()
        return True
    except Exception:  # noqa: BLE001 - nova's manager records any
        return False


# --- the paths ---------------------------------------------------------------

_request_props = hyperv.request_properties


def _spawn(cloud):
    cloud.driver.spawn(OWNER, cloud.instance, None, [], None, {},
                       network_info=None, power_on=True)
    cloud.instance.vm_state, cloud.instance.task_state = 'active', None
    cloud.instance.save()


def _spawn_path(material):
    """(setup, operation) of a spawn with ``material(env) -> (refs,
    shielded)``."""
    def setup(env):
        refs, shielded = material(env)
        return _request_props(refs, shielded), None
    return setup, _spawn


def _raw(env, *guardians):
    return env.keys.add(fake.build_key_protector(
        env.guardians['owner'], [g.public() for g in guardians]))


def _pdk(env):
    return env.keys.add(fake.make_shielding_data_file(
        env.guardians['owner'], [env.fabric.guardian.public()]))


def _bundle(env, n):
    owner = env.guardians['owner']
    others = [fake.make_guardian('crash-g%d' % i, reuse_keys=True)
              for i in range(n)]
    return [env.keys.add(fake.export_owner_pkcs12(owner))] + [
        env.keys.add(fake.export_guardian_file(g)) for g in others]


def _reauthorization(new_guardians):
    """A keyed VM, booted and stopped; its owner set a new KeyProtector."""
    def setup(env):
        ref = _raw(env, env.fabric.guardian)
        return _request_props([ref]), new_guardians

    return setup, _as_nova('powering-on', 'active',
                           lambda drv, inst: drv.power_on(OWNER, inst, None))


def _as_nova(task_state, vm_state, call):
    """An operation as nova runs it: nova-api saves the task state, the
    compute calls the driver and saves the outcome."""
    def operation(cloud):
        inst = cloud.instance
        inst.task_state = task_state  # nova-api
        cloud.persist()
        if attempt(lambda: call(cloud.driver, inst)):
            inst.vm_state = vm_state
        inst.task_state = None  # nova's reverts_task_state, on failure
        inst.save()
    return operation


_delete = _as_nova('deleting', 'deleted',
                   lambda drv, inst: drv.destroy(OWNER, inst, None))


PATHS = {
    'spawn, no keys, local mode': (
        lambda env: (_request_props(), 'local'), _spawn),
    'spawn, no keys, HGS mode': _spawn_path(lambda env: ((), False)),
    'spawn, raw KeyProtector': _spawn_path(
        lambda env: ([_raw(env, env.fabric.guardian)], False)),
    'spawn, PDK': _spawn_path(lambda env: ([_pdk(env)], False)),
    'spawn, owner bundle and 1 guardian': _spawn_path(
        lambda env: (_bundle(env, 1), False)),
    'spawn, owner bundle and 5 guardians': _spawn_path(
        lambda env: (_bundle(env, constants.MAX_GUARDIANS), False)),
    'spawn, shielded, raw KeyProtector': _spawn_path(
        lambda env: ([_raw(env, env.fabric.guardian)], True)),
    'spawn, shielded, PDK': _spawn_path(lambda env: ([_pdk(env)], True)),
    're-authorization at power on': _reauthorization('granted'),
    're-authorization, the last known good restored': _reauthorization(
        'stale'),
    'delete': (lambda env: (_request_props(
        _bundle(env, 1)), 'booted'), _delete),
}


@pytest.fixture
def env(make_backend, keys, guardians, fabric, other_fabric):
    return types.SimpleNamespace(make_backend=make_backend, keys=keys,
                                 guardians=guardians, fabric=fabric,
                                 other_fabric=other_fabric)


def _prepare(env, death, private_dir, path):
    setup, operation = PATHS[path]
    props, extra = setup(env)
    hv = fake.FakeHyperVHost('hv-crash-%s' % uuid.uuid4().hex[:6],
                             fabric=None if extra == 'local' else env.fabric)
    death.host = hv
    cloud = Cloud(env.make_backend, private_dir, death, hv, props)
    if extra in ('granted', 'stale', 'booted'):
        _spawn(cloud)
        cloud.driver.power_off(cloud.instance)
        cloud.instance.vm_state = 'stopped'
    if extra in ('granted', 'stale'):
        if extra == 'granted':
            new = [env.fabric.guardian, env.other_fabric.guardian]
        else:
            # the tenant's copy of the fabric's guardian is stale: HGS
            # cannot unwrap, the VM does not start with it
            stale = fake.make_guardian('crash-stale', reuse_keys=True)
            new = [fake.Guardian('stale', env.fabric.guardian.signing_cert,
                                 stale.encryption_cert)]
        # made from the VM's current one (Grant-HgsKeyProtectorAccess):
        # the same transport key, which the vTPM's state is encrypted with
        owner = env.guardians['owner']
        current = hv.vm_security(VM)['KeyProtector']
        granted = fake.build_key_protector(
            owner, [g.public() for g in new],
            transport_key=fake.unwrap_key_protector(
                current, owner.encryption_key),
            kp_id=fake.parse_key_protector(current).kp_id)
        cloud.instance.metadata[constants.METADATA_KEYPROTECTOR] = \
            env.keys.add(granted)
    return cloud, operation


def _problems(cloud, env, what):
    """What the host and the instance break of the promises, in words."""
    found = []
    hv, inst = cloud.hv, cloud.instance
    prefix = 'openstack-vtpm-'  # [hyperv_vtpm] guardian_name_prefix
    left = [n for n in hv.guardian_names() if n.startswith(prefix)]
    if left:
        found.append('%s: guardians %s' % (what, left))
    owner = env.guardians['owner'].signing_der
    if any(s.has_private and s.guardian.signing_der == owner
           for s in hv.store.values()):
        found.append('%s: the owner\'s private key on the host' % what)
    files = sorted(p.name for p in cloud.private_dir.iterdir())
    if files:
        found.append('%s: private files %s' % (what, files))
    if VM in hv.vms and hv.vms[VM].state == 2:
        request = compute.request_for(inst)
        flags = hv.vm_security(VM)
        lacking = [f for f, want in (
            ('TpmEnabled', True), ('EncryptStateAndVmMigrationTraffic', True),
            ('ShieldingRequested', request.shielded)) if want and not flags[f]]
        if not flags['KeyProtector']:
            lacking.append('KeyProtector')
        elif request.key_refs:
            named = set(_fabrics(flags['KeyProtector']))
            if set(sysmeta.fabrics(inst.system_metadata)) != named:
                lacking.append('recorded fabrics %s, KeyProtector %s' % (
                    sysmeta.fabrics(inst.system_metadata), sorted(named)))
        if lacking:
            found.append('%s: the VM runs without %s' % (what, lacking))
    return found


def _fabrics(raw):
    """The fabrics a KeyProtector names (its guardians, not its owner)."""
    return tuple(keyprotector.fabric_id(g.signing_der)
                 for g in fake.parse_key_protector(raw).guardians)


def _recover_build(cloud):
    """The admin's recovery of an ERROR instance (hgs.rst), then the
    owner's hard reboot; each step checked."""
    drv, inst = cloud.driver, cloud.instance
    steps = []
    inst.vm_state = 'active'  # openstack server set --state active
    cloud.persist()
    steps.append(('admin hard reboot', lambda: drv.reboot(
        ADMIN, inst, None, 'HARD')))
    steps.append(('admin start', lambda: drv.power_on(ADMIN, inst, None)))
    steps.append(('owner hard reboot', lambda: drv.reboot(
        OWNER, inst, None, 'HARD')))
    for name, step in steps:
        attempt(step)
        yield name


def _check_reauthorization(cloud, expected, keys):
    """The owner starts it again; the outcome matches the VM."""
    inst, hv = cloud.instance, cloud.hv
    attempt(lambda: cloud.driver.power_on(OWNER, inst, None))
    status = inst.metadata.get(constants.METADATA_KEYPROTECTOR_STATUS, '')
    ref = inst.metadata[constants.METADATA_KEYPROTECTOR]
    named = _fabrics(hv.vm_security(VM)['KeyProtector'])
    found = []
    if reauthorize.pending(inst) is not None:
        found.append('the re-authorization is still pending')
    if set(sysmeta.fabrics(inst.system_metadata)) != set(named):
        found.append('vtpm_fabrics %s, the KeyProtector names %s' % (
            sysmeta.fabrics(inst.system_metadata), named))
    # applied: the VM runs with it; restored: with its last known good,
    # once anything starts it (nova's retried start may have)
    running = hv.vms[VM].state == 2
    if not status.startswith('%s %s' % (expected, ref)) or (
            expected == 'applied' and not (
                running and set(named) == set(_fabrics(keys.secrets[ref])))):
        found.append('status %r with the VM %s; expected %s' % (
            status, 'running' if running else 'off', expected))
    return found


@pytest.mark.parametrize('path', list(PATHS))
def test_a_compute_that_dies_at_any_wmi_call_keeps_its_promises(
        env, monkeypatch, tmp_path, path):
    failures, points, at = [], 0, 0
    death = Death(monkeypatch)
    # os-win retries a failed start five times, sleeping in between
    # (retry_decorator): the same calls, without the waits
    monkeypatch.setattr(os_win_utils, 'time', types.SimpleNamespace(
        sleep=lambda seconds: None, time=time.time,
        monotonic=time.monotonic))
    while True:
        at += 1
        private_dir = tmp_path / ('p%d' % at)
        private_dir.mkdir()
        cloud, operation = _prepare(env, death, private_dir, path)
        cloud.private_dir = private_dir
        cloud.death.arm(at)
        try:
            operation(cloud)
            cloud.death.disarm()
            cloud.hv.close()
            break  # it ran to the end: every call was a crash point
        except ProcessDied:
            pass
        points += 1
        where = '%s, died at WMI call %d' % (path, at)
        cloud.restart()
        failures += _problems(cloud, env, where + ', restarted')
        if path.startswith('spawn'):
            for step in _recover_build(cloud):
                failures += _problems(cloud, env, '%s, %s' % (where, step))
            if cloud.hv.vms[VM].state != 2:
                failures.append('%s: the owner could not start it' % where)
        elif path.startswith('re-authorization'):
            failures += ['%s: %s' % (where, p)
                         for p in _check_reauthorization(
                           cloud, 'restored' if 'restored' in path
                           else 'applied', env.keys)]
            failures += _problems(cloud, env, where + ', owner start')
        elif VM in cloud.hv.vms:
            failures.append('%s: the VM is still there' % where)
        cloud.hv.close()
    assert points > 0
    CRASHES['paths'] += 1
    CRASHES['points'] += points
    CRASHES['failures'] += len(failures)
    assert failures == [], '\n'.join(failures)
