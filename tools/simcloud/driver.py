# SPDX-License-Identifier: Apache-2.0
"""A fake Hyper-V compute driver for nova's in-process services.

For the demo and the end-to-end tests; no real compute host runs it. It is
built the way the install guide builds a real one: ``FakeHyperVDriver`` is
``vtpm_hyperv.nova.driver.VTPMDriverMixin`` composed with
``SimulatedHyperVDriver``, a driver that knows nothing of vTPMs (nova's
``MediumFakeDriver`` whose instances are VMs on a ``vtpm_hyperv.fake``
simulated Hyper-V host). So the tests and the demo run the mixin's hooks
themselves, over the real backend: every VM setting goes through os-win's
own code and the simulator's WMI.

What it models of Hyper-V: a VM per instance (Generation 2 when the image
says ``hw_machine_type=hyperv-gen2``); the VM powers on only where its
KeyProtector unwraps (the simulator's rule); a cold or live migration moves
the VM's configuration, with its KeyProtector and vTPM, to the destination's
simulated host (Hyper-V's export and import); a confirmed migration removes
the source's copy.

Use it with a ``SimulatedCloud``, which installs the simulator for its
``with`` block, owns the simulated hosts, and says how each host's backend
is built and whose credentials a request carries::

    with driver.SimulatedCloud(nova.conf.CONF, owner_auth=...) as cloud:
        cloud.add_host('hv1', fabric=fabric_a)
        # nova.virt.driver.load_compute_driver -> cloud.make_driver(virtapi)

nova loads compute drivers only from ``nova.virt`` by name, so the demo and
the tests hand it this driver through ``load_compute_driver``
(``tools.simcloud.nova``).
"""

from __future__ import annotations

import contextlib
import copy

from nova.virt import fake as nova_fake

from vtpm_core import constants
from vtpm_hyperv import backend
from vtpm_hyperv import fake
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import driver as vtpm_driver


def simulated_backend(conf, hv_host):
    """The real ``HyperVBackend`` on os-win's own utils over ``hv_host``."""
    vmutils, hostutils = hv_host.os_win_utils()
    # One process runs every simulated host, so each backend is told its
    # host's name rather than taking nova's conf.host.
    return backend.HyperVBackend(conf, vmutils=vmutils, hostutils=hostutils,
                                 host_name=hv_host.name)


class SimulatedCloud:
    """The simulated Hyper-V hosts behind nova's computes, by host name.

    A context manager: the simulator is installed inside its ``with`` block.

    :param conf: the oslo.config object the backends read (nova's
        ``CONF``, as on a real compute host).
    :param owner_auth: ``context -> keystoneauth1 plugin`` of the instance
        owner. On a real cloud that is ``context.get_auth_plugin()``, the
        token nova received; nova's in-process API has no Keystone, so the
        demo and the tests map the request's project to a real Keystone
        user's plugin. The compute sends it with nova's service token, as
        ``[service_user]`` says (``VTPMCompute``'s default).
    :param make_backend: ``(conf, FakeHyperVHost) -> VTPMBackend``.
    """

    def __init__(self, conf, owner_auth=None, make_backend=None):
        self.conf = conf
        self.owner_auth = owner_auth or (lambda ctx: ctx.get_auth_plugin())
        self.make_backend = make_backend or simulated_backend
        self.hosts: dict[str, fake.FakeHyperVHost] = {}
        self.drivers: dict[str, FakeHyperVDriver] = {}
        self._installed = contextlib.ExitStack()

    def __enter__(self):
        """Install the simulator (``fake.installed``) until the exit."""
        self._installed.enter_context(fake.installed())
        return self

    def __exit__(self, *exc_info):
        for hv in self.hosts.values():
            hv.close()
        self._installed.close()

    def add_host(self, name, **kwargs) -> fake.FakeHyperVHost:
        """A simulated host for nova compute ``name`` (start it after)."""
        hv = fake.FakeHyperVHost(name, **kwargs)
        self.hosts[name] = hv
        return hv

    def make_driver(self, virtapi):
        """What ``nova.virt.driver.load_compute_driver`` should return."""
        return FakeHyperVDriver(virtapi, self)

    def host_ip(self, name):
        # stable: hosts are only ever added
        return '192.0.2.%d' % (list(self.hosts).index(name) + 1)


class SimulatedHyperVDriver(nova_fake.MediumFakeDriver):
    """A Hyper-V driver that knows nothing of vTPMs: nova's fake driver
    whose instances are VMs on a simulated Hyper-V host.

    It stands where compute-hyperv's ``HyperVDriver`` stands on a real host,
    and names VMs as it does (``instance.name``).
    """

    def __init__(self, virtapi, cloud: SimulatedCloud):
        super().__init__(virtapi)
        self.cloud = cloud
        self.hv = None

    def init_host(self, host):
        super().init_host(host)
        self.hv = self.cloud.hosts[host]
        self.cloud.drivers[host] = self

    def get_host_ip_addr(self):
        # distinct per host, so a move can tell whether it stays
        return self.cloud.host_ip(self._host)

    # --- build and delete ----------------------------------------------------

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        gen = 2 if image_meta.properties.get('hw_machine_type') == \
            constants.MACHINE_TYPE_GEN2 else 1
        self.hv.add_vm(instance.name, generation=gen,
                       instance_uuid=instance.uuid)
        if power_on:
            self.hv.start_vm(instance.name)
        self._track(context, instance, power_on)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        if instance.name in self.hv.vms:
            self.hv.stop_vm(instance.name)
            self.hv.remove_vm(instance.name)
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets)

    def _track(self, context, instance, power_on):
        # nova's fake bookkeeping (resources, power state), nothing else
        nova_fake.FakeDriver.spawn(self, context, instance, None, None, None,
                                   None, power_on=power_on)

    # --- power ---------------------------------------------------------------

    def power_off(self, instance, timeout=0, retry_interval=0):
        if instance.name in self.hv.vms:
            self.hv.stop_vm(instance.name)
        super().power_off(instance, timeout, retry_interval)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        if instance.name in self.hv.vms:
            self.hv.start_vm(instance.name)
        super().power_on(context, instance, network_info,
                         block_device_info=block_device_info,
                         accel_info=accel_info, share_info=share_info)

    # --- resize and cold migration -------------------------------------------

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        if instance.name in self.hv.vms:
            self.hv.stop_vm(instance.name)
        return ''

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        # Hyper-V imports the exported configuration: the KeyProtector and
        # the vTPM state come along; the source keeps its copy until the
        # migration is confirmed (a revert powers it on again).
        if migration.source_compute != self._host:
            self._import_vm(self.cloud.hosts[migration.source_compute],
                            instance.name, keep_source=True)
        if power_on:
            self.hv.start_vm(instance.name)
        self._track(context, instance, power_on)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        if power_on and instance.name in self.hv.vms:
            self.hv.start_vm(instance.name)
        super().finish_revert_migration(
            context, instance, network_info, migration,
            block_device_info=block_device_info, power_on=power_on,
            share_info=share_info)

    def _import_vm(self, source, name, keep_source):
        with source.lock, self.hv.lock:
            vm = source.vms[name]
            self.hv.vms[name] = copy.deepcopy(vm) if keep_source else vm
            self.hv.vms[name].state = fake.host.VM_DISABLED
            if not keep_source:
                del source.vms[name]

    # --- live migration ------------------------------------------------------

    def live_migration(self, context, instance, dest, post_method,
                       recover_method, block_migration=False,
                       migrate_data=None):
        target = self.cloud.drivers[dest]
        target._import_vm(self.hv, instance.name, keep_source=False)
        try:
            target.hv.start_vm(instance.name)
        except Exception:
            self._import_vm(target.hv, instance.name, keep_source=False)
            self.hv.start_vm(instance.name)
            recover_method(context, instance, dest, migrate_data)
            return
        post_method(context, instance, dest, block_migration, migrate_data)

    def post_live_migration(self, context, instance, block_device_info,
                            migrate_data=None):
        # the VM left with its configuration; nova's bookkeeping follows
        self.instances.pop(instance.uuid, None)

    def post_live_migration_at_destination(self, context, instance,
                                           network_info,
                                           block_migration=False,
                                           block_device_info=None):
        self._track(context, instance, True)


class FakeHyperVDriver(vtpm_driver.VTPMDriverMixin, SimulatedHyperVDriver):
    """The simulated Hyper-V driver with the vTPM, composed as the install
    guide composes a real one (``doc/source/install.rst``).

    Every hook is the mixin's; only where the host's ``VTPMCompute`` comes
    from differs: one process runs every simulated host, so each gets a
    backend over its own simulated host and the cloud's owner credentials,
    where a real host loads the ``hyperv`` backend by name and sends nova's.
    """

    def vtpm_compute(self):
        return compute.VTPMCompute(
            self.cloud.conf, backend=self.cloud.make_backend(self.cloud.conf,
                                                             self.hv),
            auth_for=self._auth_for, host=self.vtpm_host)

    def _auth_for(self, context):
        return compute.service_user_token_auth(
            context, user_auth=self.cloud.owner_auth(context))
