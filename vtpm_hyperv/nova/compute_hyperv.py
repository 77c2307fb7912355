# SPDX-License-Identifier: Apache-2.0
"""compute-hyperv 16.0.0's Hyper-V driver, ported to nova 34, with the vTPM.

compute-hyperv 16.0.0 (2023.1, its last release; the project is retired)
was written for nova 27. ``HyperVDriver`` here is ``VTPMDriverMixin``
composed with it, and bridges what nova changed since, each where it is
met:

* nova 34 runs nova-compute on native threads and refuses eventlet, which
  os-win and compute-hyperv import: they are imported through
  ``vtpm_hyperv.oswin.load`` (``EVENTLET_IMPORTERS``);
* nova 29 removed its Hyper-V driver and the 18 ``[hyperv]`` options that
  compute-hyperv reads but does not register (``REMOVED_HYPERV_OPTS``);
* nova 34 removed ``nova.utils.spawn_n``, which compute-hyperv calls to
  run its power-state listener and its event callbacks (``_NovaUtils``);
* nova 34's ``VirtAPI.wait_for_instance_event`` takes ``timeout`` (it took
  ``deadline``) and raises ``InstanceEventTimeout`` (it raised eventlet's
  ``Timeout``, which compute-hyperv catches while it waits for Neutron's
  vif-plugged events) (``_VirtAPI``);
* nova 34 passes ``share_info`` to seven driver methods (nova 27 did not),
  which compute-hyperv's do not take (the overrides below);
* compute-hyperv's own shielded-VM path acts on the same image properties
  as hyperv-vtpm: it is off, so that only the mixin gives the VM its vTPM;
* compute-hyperv's wheel ships nova's ``nova/__init__.py`` and
  ``nova/virt/__init__.py``, with which nova imports eventlet before it
  chooses its threading mode: the driver refuses to start on them
  (``check_nova_files``).

Where a nova still matches compute-hyperv (27 and 28, eventlet only), each
bridge stands aside, told by what that nova has, not by its version.

nova imports compute drivers from ``nova.virt`` only; the install guide's
``nova/virt/hyperv_vtpm.py`` names this class there.
"""

from __future__ import annotations

import contextlib
import inspect
import pathlib
import threading

import nova
import nova.conf
from nova import exception as nova_exception
from nova import utils as nova_utils
from nova import version as nova_version
from oslo_config import cfg

from vtpm_hyperv.nova import driver as vtpm_driver
from vtpm_hyperv.nova import exception
from vtpm_hyperv import oswin

# compute-hyperv 16.0.0's modules that import eventlet when imported, with
# os-win's (tests/unit/vtpm_hyperv/nova/test_compute_hyperv.py reads its
# sources against it)
EVENTLET_IMPORTERS = oswin.EVENTLET_IMPORTERS + (
    'compute_hyperv.nova.serialconsolehandler',
    'compute_hyperv.nova.serialproxy',
    'compute_hyperv.nova.vmops',
)

# nova 29.0.0 removed nova/conf/hyperv.py with its driver; compute-hyperv
# registers only its own additions to [hyperv] and reads these too. Types
# and defaults as nova 27.0.0's nova/conf/hyperv.py defined them.
REMOVED_HYPERV_OPTS = [
    cfg.BoolOpt('config_drive_cdrom', default=False),
    cfg.BoolOpt('config_drive_inject_password', default=False),
    cfg.FloatOpt('dynamic_memory_ratio', default=1.0),
    cfg.BoolOpt('enable_instance_metrics_collection', default=False),
    cfg.BoolOpt('enable_remotefx', default=False),
    cfg.StrOpt('instances_path_share', default=''),
    cfg.ListOpt('iscsi_initiator_list', default=[]),
    cfg.BoolOpt('limit_cpu_features', default=False),
    cfg.IntOpt('mounted_disk_query_retry_count', default=10),
    cfg.IntOpt('mounted_disk_query_retry_interval', default=5),
    cfg.IntOpt('power_state_check_timeframe', default=60),
    cfg.IntOpt('power_state_event_polling_interval', default=2),
    cfg.StrOpt('qemu_img_cmd', default='qemu-img.exe'),
    cfg.BoolOpt('use_multipath_io', default=False),
    cfg.IntOpt('volume_attach_retry_count', default=10),
    cfg.IntOpt('volume_attach_retry_interval', default=5),
    cfg.StrOpt('vswitch_name'),
    cfg.IntOpt('wait_soft_reboot_seconds', default=60),
]


def register_removed_hyperv_opts(conf):
    """Register the [hyperv] options that this nova no longer defines (all
    18 from nova 29 on; none on nova 27 and 28, whose own stand)."""
    for opt in REMOVED_HYPERV_OPTS:
        try:
            conf.register_opt(opt, group='hyperv')
        except cfg.DuplicateOptError:
            pass  # nova's own definition


# compute-hyperv reads them when its modules are imported (a default argument
# of VMOps.reboot's), so they are registered first, on the conf compute-hyperv
# reads, nova's, as nova registers its own options when nova.conf is imported
register_removed_hyperv_opts(nova.conf.CONF)
hyperv_driver = oswin.load('compute_hyperv.nova.driver', EVENTLET_IMPORTERS)
eventhandler = oswin.load('compute_hyperv.nova.eventhandler',
                          EVENTLET_IMPORTERS)
vmops = oswin.load('compute_hyperv.nova.vmops', EVENTLET_IMPORTERS)

# What compute-hyperv's wheel puts in nova's package, recognisable by the
# pkg_resources namespace nova's own files never declare.
NOVA_FILES = ('__init__.py', 'virt/__init__.py')
_REPLACED_MARK = 'declare_namespace'


def check_nova_files(package_dir=None):
    """Refuse nova files that compute-hyperv's wheel replaced.

    :raises vtpm_hyperv.nova.exception.NovaFilesReplaced: naming them and
        the fix.
    """
    if not hasattr(nova_utils, 'concurrency_mode_threading'):
        # a nova that runs on eventlet only (27, 28): compute-hyperv's files
        # are how it was installed there, and they work
        return
    root = pathlib.Path(package_dir or pathlib.Path(nova.__file__).parent)
    replaced = {}
    for name in NOVA_FILES:
        path = root / name
        text = path.read_text() if path.exists() else ''
        if _REPLACED_MARK in text:
            replaced[str(path)] = text[text.index('__import__'):][:60] \
                if '__import__' in text else text[:60]
    if replaced:
        raise exception.NovaFilesReplaced(
            files=', '.join(sorted(replaced)),
            value=next(iter(replaced.values())),
            nova_version=nova_version.version_string())


def _spawn_n(function, *args, **kwargs):
    """``eventlet.spawn_n`` on a native thread: run, forget the result."""
    threading.Thread(target=function, args=args, kwargs=kwargs,
                     daemon=True).start()


class _NovaUtils:
    """``nova.utils`` as compute-hyperv 16.0.0 calls it.

    nova 34 removed ``spawn_n`` (with eventlet). compute-hyperv starts its
    power-state listener, which runs as long as the service, with it: so a
    thread of its own, not a worker of nova's executors.
    """

    spawn_n = staticmethod(_spawn_n)

    def __getattr__(self, name):
        return getattr(nova_utils, name)


class _VirtAPI:
    """nova's ``VirtAPI`` as compute-hyperv 16.0.0's ``VMOps`` calls it."""

    def __init__(self, virtapi):
        self._virtapi = virtapi

    @staticmethod
    def needed(virtapi):
        """Whether ``virtapi`` is nova 34's (nova 27's takes ``deadline``)."""
        wait = getattr(virtapi, 'wait_for_instance_event', None)
        return wait is not None and 'deadline' not in \
            inspect.signature(wait).parameters

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, event_names, deadline=300,
                                error_callback=None):
        try:
            with self._virtapi.wait_for_instance_event(
                    instance, event_names, timeout=deadline,
                    error_callback=error_callback):
                yield
        except nova_exception.InstanceEventTimeout as e:
            # what compute-hyperv catches (eventlet's, or oswin's stand-in)
            raise vmops.etimeout.Timeout(deadline) from e

    def __getattr__(self, name):
        return getattr(self._virtapi, name)


class _PortedHyperVDriver(hyperv_driver.HyperVDriver):
    """compute-hyperv's ``HyperVDriver`` as nova 34 calls a driver."""

    def __init__(self, virtapi):
        check_nova_files()
        # compute-hyperv's modules that call nova.utils.spawn_n, where nova
        # has it no more
        for module in (eventhandler, vmops):
            if not hasattr(module.utils, 'spawn_n'):
                module.utils = _NovaUtils()
        super().__init__(virtapi)
        if _VirtAPI.needed(virtapi):
            self._vmops._virtapi = _VirtAPI(virtapi)
        # hyperv-vtpm gives the VM its vTPM (the mixin); compute-hyperv's own
        # path (add_vtpm, provision_vm from img_pdk_reference), reached from
        # VMOps.spawn only, stays off
        self._vmops._configure_secure_vm = _secure_vm_off

    # nova 34 passes share_info (ShareMappingList) to these; compute-hyperv
    # attaches no shares (it reports no share support, so nova maps none)

    def power_on(self, context, instance, network_info,
                 block_device_info=None, accel_info=None, share_info=None):
        return super().power_on(context, instance, network_info,
                                block_device_info=block_device_info,
                                accel_info=accel_info)

    def reboot(self, context, instance, network_info, reboot_type,
               block_device_info=None, bad_volumes_callback=None,
               accel_info=None, share_info=None):
        return super().reboot(context, instance, network_info, reboot_type,
                              block_device_info=block_device_info,
                              bad_volumes_callback=bad_volumes_callback,
                              accel_info=accel_info)

    def resume(self, context, instance, network_info, block_device_info=None,
               share_info=None):
        return super().resume(context, instance, network_info,
                              block_device_info=block_device_info)

    def resume_state_on_host_boot(self, context, instance, network_info,
                                  share_info=None, block_device_info=None):
        return super().resume_state_on_host_boot(
            context, instance, network_info,
            block_device_info=block_device_info)

    def rescue(self, context, instance, network_info, image_meta,
               rescue_password, block_device_info, share_info=None):
        return super().rescue(context, instance, network_info, image_meta,
                              rescue_password, block_device_info)

    def finish_migration(self, context, migration, instance, disk_info,
                         network_info, image_meta, resize_instance,
                         allocations, block_device_info=None, power_on=True,
                         share_info=None):
        return super().finish_migration(
            context, migration, instance, disk_info, network_info,
            image_meta, resize_instance, allocations,
            block_device_info=block_device_info, power_on=power_on)

    def finish_revert_migration(self, context, instance, network_info,
                                migration, block_device_info=None,
                                power_on=True, share_info=None):
        return super().finish_revert_migration(
            context, instance, network_info, migration,
            block_device_info=block_device_info, power_on=power_on)


def _secure_vm_off(context, instance, image_meta, secure_boot_enabled):
    """compute-hyperv's ``VMOps._configure_secure_vm``, switched off."""


class HyperVDriver(vtpm_driver.VTPMDriverMixin, _PortedHyperVDriver):
    """compute-hyperv's HyperVDriver on nova 34, with a vTPM for the
    instances that ask."""
