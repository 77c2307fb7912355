# SPDX-License-Identifier: Apache-2.0
"""``VTPMDriverMixin``: every vTPM hook of a Hyper-V compute driver at once.

An out-of-tree Hyper-V driver gets the vTPM by composition, the mixin first::

    from compute_hyperv.nova import driver as hyperv_driver
    from vtpm_hyperv.nova import driver as vtpm_driver

    class HyperVDriver(vtpm_driver.VTPMDriverMixin,
                       hyperv_driver.HyperVDriver):
        pass

Each hook does its vTPM part and calls ``super()`` with the arguments it
was given, so the driver's own method runs as before (nova 34's signatures,
``nova.virt.driver.ComputeDriver``):

=================================== =========================================
hook                                the vTPM part
=================================== =========================================
``init_host``                       after the driver's: build the host's
                                    ``VTPMCompute`` (``vtpm_compute``), and
                                    remove what calls that died with the
                                    last process left on the host
``process_instances_at_startup``    mark the instances whose VM lacks its
                                    vTPM (``vtpm_hyperv.nova.startcheck``)
``spawn``                           with a vTPM: the driver's ``spawn`` with
                                    ``power_on=False``, the vTPM, then
                                    ``power_on``; without: unchanged
``destroy``                         after the driver's: what the attach left
                                    on the host (instance guardians); at a
                                    delete, the instance's Barbican consumer
                                    registrations
``get_available_resource``          the ``vtpm:capabilities`` stats entry;
                                    the same removal, each periodic run
``update_provider_tree``            the vTPM and HGS traits
``migrate_disk_and_power_off``      refuses a resize or cold migration that
                                    would lose the vTPM, before the guest
                                    stops
``check_can_live_migrate_destination`` the destination checks itself
``instance_on_disk``                refuses an evacuation, on the destination
``rebuild``                         refuses a rebuild, before the VM goes
``power_off``                       refuses a shelve, while the guest runs
``power_on``                        checks the VM's vTPM, applies the
                                    owner's re-authorization
                                    (``vtpm_hyperv.nova.reauthorize``) to the
                                    VM while it is off, then starts it
``reboot``, ``unrescue``,           before the driver's: the VM has the vTPM
``resume_state_on_host_boot``       its request asks for, gets it now, or
                                    does not start
                                    (``vtpm_hyperv.nova.startcheck``)
=================================== =========================================

What the mixin assumes of the driver, each a method to override in the
composed class when the driver differs (the defaults are compute-hyperv's):

* ``vtpm_vm_name(instance)``: the name of the instance's Hyper-V VM;
  ``instance.name``, as compute-hyperv's ``VMOps`` names it.
* ``spawn(..., power_on=False)`` returns with the VM created and off, and
  ``power_on(context, instance, network_info, block_device_info=...,
  accel_info=...)`` starts it: Hyper-V changes the security settings of a
  VM that is off only. A failed attach raises from ``spawn``; nova's
  compute manager then destroys the VM (``destroy``) and reschedules or
  aborts the build as the error says.
* ``get_host_ip_addr()``: what nova passes as ``dest`` to
  ``migrate_disk_and_power_off``, to tell a resize on the same host.
* ``vtpm_compute()``: the host's ``vtpm_hyperv.nova.compute.VTPMCompute``; by
  default over nova's ``CONF`` (``[hyperv_vtpm]``, ``[vtpm_key_manager]``,
  ``[service_user]``) with the ``hyperv`` backend loaded by name.

nova gives a compute driver no configuration object: its own drivers read
``nova.conf.CONF``. ``vtpm_compute`` is where the vTPM side reads it, once;
from there it is passed down (``VTPMCompute``, the backend, the key
source), and nothing below reads a global.
"""

from __future__ import annotations

import nova.conf

from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception

# nova's in-tree Hyper-V driver (nova 28 and older; nova 29 removed it)
# ignores spawn's power_on=False: its VMOps.spawn always starts the VM, so
# the guest would boot without its vTPM, and Hyper-V refuses the
# KeyProtector of a running VM (SetKeyProtector returns 32775, invalid
# state). Stopping the VM after its first boot began would cut a guest's
# first start (Windows setup) short, so the mixin refuses that driver.
_IN_TREE_HYPERV = 'nova.virt.hyperv.driver'


class VTPMDriverMixin:
    """The vTPM hooks of a Hyper-V compute driver (compose it first)."""

    #: the host's ``VTPMCompute``, from ``init_host`` on
    vtpm: compute.VTPMCompute | None = None
    #: the nova-compute host name ``init_host`` was given
    vtpm_host: str | None = None

    # --- what the driver provides (override in the composed class) --------

    def vtpm_compute(self) -> compute.VTPMCompute:
        """The host's vTPM side: nova's configuration, the ``hyperv``
        backend, notifications published as this host."""
        return compute.VTPMCompute(nova.conf.CONF, host=self.vtpm_host)

    def vtpm_vm_name(self, instance) -> str:
        """The name of ``instance``'s Hyper-V VM (compute-hyperv's)."""
        return instance.name

    # --- the hooks ----------------------------------------------------------

    def init_host(self, host):
        in_tree = next((c for c in type(self).__mro__
                        if c.__module__ == _IN_TREE_HYPERV), None)
        if in_tree is not None:
            raise exception.UnsupportedComputeDriver(
                driver='%s.%s' % (_IN_TREE_HYPERV, in_tree.__name__),
                reason="nova's in-tree Hyper-V driver starts the VM in "
                       "spawn even with power_on=False, and Hyper-V sets "
                       "a KeyProtector on a VM that is off only "
                       "(SetKeyProtector: 32775, invalid state); compose "
                       "the mixin with compute-hyperv 16.0.0 instead "
                       "(doc/source/install.rst, Support matrix)")
        super().init_host(host)
        self.vtpm_host = host
        self.vtpm = self.vtpm_compute()
        self.vtpm.reconcile_host()

    def process_instances_at_startup(self, context, instances):
        """Mark the instances whose VM lacks its vTPM.

        nova 34's compute manager calls it before it initialises the
        host's instances; nova 27 has neither the hook nor the call, so
        there the mark is set by the start check (``before_start``) only,
        when such an instance is started.
        """
        driver_own = getattr(super(), 'process_instances_at_startup', None)
        if driver_own is not None:
            instances = driver_own(context, instances)
        self.vtpm.reconcile_instances(context, instances, self.vtpm_vm_name)
        return instances

    def spawn(self, context, instance, image_meta, injected_files,
              admin_password, allocations, network_info=None,
              block_device_info=None, power_on=True, accel_info=None):
        if not self.vtpm.requested(instance):
            return super().spawn(
                context, instance, image_meta, injected_files,
                admin_password, allocations, network_info=network_info,
                block_device_info=block_device_info, power_on=power_on,
                accel_info=accel_info)
        # Hyper-V sets a KeyProtector and enables the TPM on a VM that is
        # off: the driver creates it off, and it starts once it has both.
        super().spawn(context, instance, image_meta, injected_files,
                      admin_password, allocations, network_info=network_info,
                      block_device_info=block_device_info, power_on=False,
                      accel_info=accel_info)
        self.vtpm.spawn(context, instance, self.vtpm_vm_name(instance))
        if power_on:
            self.vtpm.before_start(context, instance,
                                   self.vtpm_vm_name(instance))
            # the driver's own: the vTPM was made from the image just now
            super().power_on(context, instance, network_info,
                             block_device_info=block_device_info,
                             accel_info=accel_info)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        super().destroy(context, instance, network_info,
                        block_device_info=block_device_info,
                        destroy_disks=destroy_disks,
                        destroy_secrets=destroy_secrets)
        # The VM took its KeyProtector and vTPM with it; what is left are
        # guardians an interrupted attach imported for the instance.
        self.vtpm.destroy(instance, self.vtpm_vm_name(instance), context)

    def get_available_resource(self, nodename):
        self.vtpm.reconcile_host()
        resources = super().get_available_resource(nodename)
        if resources:
            resources['stats'] = dict(resources.get('stats') or {},
                                      **self.vtpm.stats())
        return resources

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename,
                                     allocations=allocations)
        self.vtpm.update_traits(provider_tree, nodename)

    def migrate_disk_and_power_off(self, context, instance, dest, flavor,
                                   network_info, block_device_info=None,
                                   timeout=0, retry_interval=0):
        self.vtpm.before_move(instance, flavor,
                              same_host=dest == self.get_host_ip_addr())
        return super().migrate_disk_and_power_off(
            context, instance, dest, flavor, network_info,
            block_device_info=block_device_info, timeout=timeout,
            retry_interval=retry_interval)

    def check_can_live_migrate_destination(self, context, instance,
                                           src_compute_info, dst_compute_info,
                                           block_migration=False,
                                           disk_over_commit=False):
        self.vtpm.before_live_migration_here(instance, host=self.vtpm_host)
        return super().check_can_live_migrate_destination(
            context, instance, src_compute_info, dst_compute_info,
            block_migration=block_migration,
            disk_over_commit=disk_over_commit)

    def instance_on_disk(self, instance):
        # nova's first driver call on the destination of an evacuation,
        # before it moves networks or the instance record
        if instance.host != self.vtpm_host:
            self.vtpm.before_evacuation_here(instance)
        return super().instance_on_disk(instance)

    def rebuild(self, context, instance, image_meta, injected_files,
                admin_password, allocations, bdms, detach_block_devices,
                attach_block_devices, network_info=None, evacuate=False,
                block_device_info=None, preserve_ephemeral=False,
                accel_uuids=None, reimage_boot_volume=False):
        if not evacuate:
            self.vtpm.before_rebuild(instance)
        return super().rebuild(
            context, instance, image_meta, injected_files, admin_password,
            allocations, bdms, detach_block_devices, attach_block_devices,
            network_info=network_info, evacuate=evacuate,
            block_device_info=block_device_info,
            preserve_ephemeral=preserve_ephemeral, accel_uuids=accel_uuids,
            reimage_boot_volume=reimage_boot_volume)

    def power_off(self, instance, timeout=0, retry_interval=0):
        self.vtpm.before_power_off(instance)
        return super().power_off(instance, timeout=timeout,
                                 retry_interval=retry_interval)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        def start():
            # share_info only when nova passes one: a driver written for an
            # older nova (compute-hyperv) does not take it
            extra = {} if share_info is None else {'share_info': share_info}
            super(VTPMDriverMixin, self).power_on(
                context, instance, network_info,
                block_device_info=block_device_info, accel_info=accel_info,
                **extra)
        self.vtpm.power_on(context, instance, self.vtpm_vm_name(instance),
                           start)

    # A start by any path checks the VM's vTPM first; the arguments go to
    # the driver as nova gave them.
    def reboot(self, context, instance, *args, **kwargs):
        self.vtpm.before_start(context, instance, self.vtpm_vm_name(instance))
        return super().reboot(context, instance, *args, **kwargs)

    def resume_state_on_host_boot(self, context, instance, *args, **kwargs):
        self.vtpm.before_start(context, instance, self.vtpm_vm_name(instance))
        return super().resume_state_on_host_boot(context, instance, *args,
                                                 **kwargs)

    def unrescue(self, context, instance, *args, **kwargs):
        self.vtpm.before_start(context, instance, self.vtpm_vm_name(instance))
        return super().unrescue(context, instance, *args, **kwargs)
