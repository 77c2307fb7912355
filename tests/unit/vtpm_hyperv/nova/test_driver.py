# SPDX-License-Identifier: Apache-2.0
"""VTPMDriverMixin: each hook does its vTPM part and calls the driver's.

The driver under the mixin records what reaches it (a collaborator); the
mixin and ``VTPMCompute`` are the real ones, over a recording backend.
tests/functional/test_end_to_end.py runs the same composition in nova's
own compute manager.
"""

import inspect
import types

from nova.compute import provider_tree
from nova.compute import task_states
from nova import exception as nova_exception
from nova.virt import driver as nova_driver
import pytest

from tests.unit.vtpm_hyperv.nova import test_compute as support
from tools.simcloud import driver as simcloud_driver
from tools.simcloud import guide
from vtpm_core import exception
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import driver
from vtpm_hyperv.nova import exception as nova_vtpm_exc

HOOKS = ('init_host', 'spawn', 'destroy', 'get_available_resource',
         'update_provider_tree', 'migrate_disk_and_power_off',
         'check_can_live_migrate_destination', 'instance_on_disk',
         'rebuild', 'power_off', 'power_on')
CONTEXT = support.CONTEXT


class RecordingDriver(nova_driver.ComputeDriver):
    """A driver that knows nothing of vTPMs; records the calls it gets."""

    def __init__(self, events):
        super().__init__(virtapi=None)
        self.events = events

    def _record(self, name, **kwargs):
        self.events.append((name, kwargs))

    def init_host(self, host):
        self._record('init_host', host=host)

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        self._record('spawn', power_on=power_on, network_info=network_info)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        self._record('power_on', network_info=network_info)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        self._record('destroy', destroy_disks=destroy_disks)

    def get_available_resource(self, nodename):
        self._record('get_available_resource', nodename=nodename)
        return {'stats': {'failed_builds': '0'}}

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        self._record('update_provider_tree', nodename=nodename)

    def get_host_ip_addr(self):
        return '192.0.2.1'

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        self._record('migrate_disk_and_power_off', dest=dest)
        return 'disk info'

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        self._record('check_can_live_migrate_destination')
        return 'migrate data'

    def instance_on_disk(self, instance):
        self._record('instance_on_disk')
        return True

    def power_off(self, instance, timeout=0, retry_interval=0):
        self._record('power_off', timeout=timeout)


class Driver(driver.VTPMDriverMixin, RecordingDriver):
    """Composed as the install guide composes compute-hyperv's."""

    def __init__(self, events, backend):
        super().__init__(events)
        self._backend = backend

    def vtpm_compute(self):
        return compute.VTPMCompute(None, backend=self._backend,
                                   auth_for=lambda ctx: support.OWNER)


@pytest.fixture
def events():
    return []


@pytest.fixture
def backend(events):
    class Backend(support.RecordingBackend):
        def attach(self, *args, **kwargs):
            events.append(('attach', {}))
            return super().attach(*args, **kwargs)

        def detach(self, *args, **kwargs):
            events.append(('detach', {}))
            return super().detach(*args, **kwargs)

    return Backend(caps=support.caps())


@pytest.fixture
def drv(events, backend):
    d = Driver(events, backend)
    d.init_host('hv1')
    del events[:]
    return d


def spawn(drv, inst, power_on=True):
    return drv.spawn(CONTEXT, inst, None, [], None, {}, network_info='nets',
                     power_on=power_on)


@pytest.mark.parametrize('hook', HOOKS)
def test_each_hook_has_nova_34s_signature(hook):
    """The mixin takes exactly what nova's compute manager passes (nova
    34's; an older nova passes no share_info, which defaults to None)."""
    ours = inspect.signature(getattr(driver.VTPMDriverMixin, hook))
    novas = inspect.signature(getattr(nova_driver.ComputeDriver, hook))
    extra = [] if 'share_info' in novas.parameters else [
        p for p in ours.parameters.values() if p.name == 'share_info']
    assert [p for p in ours.parameters.values() if p not in extra] == \
        list(novas.parameters.values())
    assert all(p.default is None for p in extra)


def test_init_host_runs_the_drivers_first_then_builds_the_vtpm(events,
                                                               backend):
    d = Driver(events, backend)
    assert d.vtpm is None
    d.init_host('hv1')
    assert events == [('init_host', {'host': 'hv1'})]
    assert d.vtpm_host == 'hv1' and d.vtpm.backend is backend


def test_a_vtpm_build_creates_the_vm_off_attaches_then_powers_on(drv,
                                                                 events):
    inst = support.instance(support.KEYED_IMAGE)
    spawn(drv, inst)
    assert [e[0] for e in events] == ['spawn', 'attach', 'power_on']
    assert events[0][1]['power_on'] is False
    assert events[2][1] == {'network_info': 'nets'}
    (call,) = [c for c in drv.vtpm.backend.calls if c[0] == 'attach']
    # the VM was checked before it started
    assert drv.vtpm.backend.calls[-1][0] == 'vm_security'
    # compute-hyperv's VM name, the owner's credentials
    assert call[2] == 'instance-0001' and call[4] is support.OWNER


def test_a_vtpm_build_asked_to_stay_off_is_not_powered_on(drv, events):
    spawn(drv, support.instance(support.KEYED_IMAGE), power_on=False)
    assert [e[0] for e in events] == ['spawn', 'attach']


def test_a_build_without_vtpm_is_the_drivers_alone(drv, events):
    spawn(drv, support.instance({'image_os_vtpm': 'optional'}))
    assert events == [('spawn', {'power_on': True, 'network_info': 'nets'})]


def test_an_invalid_request_aborts_before_the_vm_exists(drv, events):
    inst = support.instance({'image_os_vtpm': 'disabled'},
                            extra_specs={'os:vtpm': 'required'})
    with pytest.raises(nova_vtpm_exc.VTPMBuildAborted):
        spawn(drv, inst)
    assert events == []


def test_a_failed_attach_raises_from_spawn_and_leaves_the_vm_off(events):
    error = exception.KeyNotFound(ref=support.KEY)
    d = Driver(events, support.RecordingBackend(fail=error))
    d.init_host('hv1')
    del events[:]
    with pytest.raises(nova_vtpm_exc.VTPMBuildAborted):
        spawn(d, support.instance(support.KEYED_IMAGE))
    # nova's compute manager destroys it (destroy, below)
    assert [e[0] for e in events] == ['spawn']


def test_destroy_runs_the_drivers_then_sweeps(drv, events):
    inst = support.instance(support.KEYED_IMAGE)
    drv.destroy(CONTEXT, inst, 'nets', destroy_disks=False)
    assert events == [('destroy', {'destroy_disks': False}), ('detach', {})]
    # init_host reconciled the host first
    assert drv.vtpm.backend.calls == [('reconcile',),
                                      ('detach', inst.uuid, 'instance-0001')]


def test_the_report_joins_the_drivers_stats_and_traits(drv, events):
    resources = drv.get_available_resource('hv1')
    assert resources['stats']['failed_builds'] == '0'
    assert 'vtpm:capabilities' in resources['stats']
    tree = provider_tree.ProviderTree()
    tree.new_root('hv1', 'rp-uuid')
    drv.update_provider_tree(tree, 'hv1')
    assert 'COMPUTE_SECURITY_TPM_2_0' in tree.data('hv1').traits
    assert [e[0] for e in events] == ['get_available_resource',
                                      'update_provider_tree']


def test_a_refused_move_stops_before_the_driver(drv, events):
    inst = support.instance(support.LOCAL_IMAGE)
    with pytest.raises(nova_exception.InstanceFaultRollback):
        drv.migrate_disk_and_power_off(CONTEXT, inst, '192.0.2.7',
                                       support.flavor(), 'nets')
    assert events == []
    # on the same host it is the driver's: its answer comes back
    assert drv.migrate_disk_and_power_off(
        CONTEXT, inst, '192.0.2.1', support.flavor(), 'nets') == 'disk info'


def test_live_migration_checks_the_destination_then_asks_the_driver(drv,
                                                                    events):
    inst = support.instance()
    assert drv.check_can_live_migrate_destination(
        CONTEXT, inst, {}, {}) == 'migrate data'
    assert events == [('check_can_live_migrate_destination', {})]


def test_an_evacuation_here_is_refused_before_the_driver(drv, events):
    inst = support.instance(support.LOCAL_IMAGE)
    inst.host = 'hv-gone'
    with pytest.raises(nova_exception.InstanceFaultRollback):
        drv.instance_on_disk(inst)
    assert events == []
    inst.host = 'hv1'  # its own host: not an evacuation
    assert drv.instance_on_disk(inst) is True


def test_a_refused_rebuild_stops_before_nova_destroys_the_vm(drv, events):
    inst = support.instance(support.KEYED_IMAGE)
    with pytest.raises(nova_exception.InstanceFaultRollback):
        drv.rebuild(CONTEXT, inst, None, [], None, {}, [], None, None)
    # an instance without a vTPM: the driver's rebuild, here nova's default
    with pytest.raises(NotImplementedError):
        drv.rebuild(CONTEXT, support.instance(), None, [], None, {}, [],
                    None, None)


def test_a_shelve_is_refused_while_the_guest_runs(drv, events):
    inst = support.instance(support.KEYED_IMAGE)
    inst.task_state = task_states.SHELVING_OFFLOADING
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused):
        drv.power_off(inst, timeout=60)
    assert events == []
    inst.task_state = None  # a plain stop is not ours to refuse
    drv.power_off(inst, timeout=60)
    assert events == [('power_off', {'timeout': 60})]


# --- the install guide's composition and the simulated cloud's ---------------

def test_the_guides_driver_module_names_the_compute_hyperv_port():
    """nova.conf's compute_driver names the class the guide's module
    defines: the mixin composed with compute-hyperv's driver through the
    port (tests/functional/test_compute_hyperv_load.py loads it with nova's
    load_compute_driver, as nova-compute does)."""
    from vtpm_hyperv.nova import compute_hyperv

    (compute_driver,) = [o.values[0] for o in guide.options(guide.COMPUTE)
                         if o.name == 'compute_driver']
    module_name, _, class_name = compute_driver.rpartition('.')
    module = types.ModuleType('nova.virt.' + module_name)
    code, _ = guide.snippet(guide.COMPUTE_DRIVER_MODULE)
    exec(compile(code, str(guide.GUIDE), 'exec'), module.__dict__)

    loaded = getattr(module, class_name)
    assert loaded is compute_hyperv.HyperVDriver
    assert loaded.__mro__[1:4] == (
        driver.VTPMDriverMixin, compute_hyperv._PortedHyperVDriver,
        compute_hyperv.hyperv_driver.HyperVDriver)


def test_the_simulated_cloud_composes_its_driver_the_same_way():
    """Mixin first, then a driver without vTPM; only the backend's source
    is overridden (one process runs every simulated host)."""
    fake_driver = simcloud_driver.FakeHyperVDriver
    assert fake_driver.__bases__ == (driver.VTPMDriverMixin,
                                     simcloud_driver.SimulatedHyperVDriver)
    own = {n for n in vars(fake_driver) if not n.startswith('_')}
    assert own == {'vtpm_compute'}
    assert not any('vtpm' in name
                   for name in vars(simcloud_driver.SimulatedHyperVDriver))
