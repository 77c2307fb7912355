# SPDX-License-Identifier: Apache-2.0
"""os-win's utilsfactory answering compute-hyperv's driver from a simulated
Hyper-V host (``vtpm_hyperv.fake``), every call recorded.

* os-win's own ``VMUtils10``, ``HostUtils10`` and ``JobUtils`` run over the
  simulator for what it models (``SIMULATED``: a VM's existence,
  generation, id and power state changes, the host's version and guarded
  state);
* what it does not model, the VM's definition (create, drives, NICs,
  boot order, Secure Boot, notes) and os-win's other utilities (virtdisk's
  VHDs, paths, networks, metrics, migrations, serial pipes), are
  **recording fakes** (``RecordingVMDefinition``, ``RecordingUtils``): they
  record the call and answer from a small lifecycle model: a created VM is
  added to the simulated host, off, with its definition file in
  ``<instance>/Virtual Machines``; a destroyed one removed; an exported
  definition imported on another host brings the VM as it was (Hyper-V's
  export and import, which carry the KeyProtector and the vTPM state); a
  live migration moves the VM, which runs on the destination only if its
  HGS opens the KeyProtector; a VHDX virtdisk creates is a file;
* any other os-win call is refused (``NotModelled``), so a compute-hyperv
  that calls something new fails here instead of passing on a lenient fake.

``calls`` lists ``'<utils>.<method>'`` in order, for the pinned call lists.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import uuid

from vtpm_hyperv import oswin

utilsfactory = oswin.load('os_win.utilsfactory')
os_win_exc = oswin.load('os_win.exceptions')


# Msvm_ComputerSystem.EnabledState of a VM that is off
VM_OFF = 3


class NotModelled(AttributeError):
    """compute-hyperv called an os-win method this host does not model."""


# os-win's VMUtils methods that run over the simulator as os-win wrote them
SIMULATED = frozenset({'vm_exists', 'get_vm_generation', 'get_vm_id',
                       'set_vm_state'})
# os-win's VMUtils methods of the VM's definition, recorded
DEFINITION = frozenset({
    'attach_drive', 'attach_ide_drive', 'attach_scsi_drive',
    'check_admin_permissions', 'create_nic', 'create_scsi_controller',
    'create_vm', 'destroy_nic', 'destroy_vm', 'detach_vm_disk',
    'enable_secure_boot', 'get_active_instances', 'get_attached_disks',
    'get_disk_attachment_info', 'get_free_controller_slot',
    'get_instance_uuid', 'get_vm_config_root_dir', 'get_vm_disks',
    'get_vm_dvd_disk_paths', 'get_vm_ide_controller', 'get_vm_nic_names',
    'get_vm_physical_disk_mapping', 'get_vm_power_state',
    'get_vm_power_state_change_listener', 'get_vm_scsi_controller',
    'get_vm_serial_port_connections', 'get_vm_state', 'get_vm_storage_paths',
    'get_vm_summary_info', 'is_secure_vm', 'list_instance_notes',
    'list_instances', 'remove_all_pci_devices', 'set_boot_order',
    'set_disk_host_res', 'set_disk_qos_specs', 'set_nested_virtualization',
    'set_vm_serial_port_connection', 'soft_shutdown_vm', 'stop_vm_jobs',
    'update_vm', 'update_vm_disk_path', 'vm_gen_supports_remotefx',
})


# os-win's HostUtils methods that run over the simulator as os-win wrote them
HOST_SIMULATED = frozenset({'get_windows_version', 'is_host_guarded',
                            'check_min_windows_version'})
# what compute-hyperv reads of the host that the simulator does not model:
# a small host's facts (Win32_Processor, Win32_OperatingSystem, NUMA), as
# os-win returns them
HOST_FACTS = {
    'get_cpus_info': [{'Architecture': 9, 'Name': 'Simulated CPU',
                       'Manufacturer': 'GenuineIntel', 'NumberOfCores': 4,
                       'NumberOfLogicalProcessors': 8}],
    'is_cpu_feature_present': False,
    'get_memory_info': (16 * 1024 * 1024, 12 * 1024 * 1024),  # KB
    'get_numa_nodes': [],
    'get_pci_passthrough_devices': [],
    'get_remotefx_gpu_info': [],
    'get_local_ips': ['192.0.2.1'],
    'get_host_tick_count64': 1000,
    'get_default_vm_generation': 'hyperv-gen1',
    'get_supported_vm_types': ['hyperv-gen1', 'hyperv-gen2'],
}


def _new_file(path, *args, **kwargs):
    """A disk virtdisk created: the file exists (it holds nothing)."""
    open(path, 'w').close()


# what the recording fakes of os-win's other utilities answer, per utility
# and method (a value, or a callable of the call's arguments); a method not
# listed answers None
ANSWERS = {
    # Win32 GetDiskFreeSpaceEx of the instances' volume: 100 GiB, 80 free
    'diskutils': {'get_disk_capacity': (100 << 30, 80 << 30)},
    # virtdisk's GetVirtualDiskInformation of the image: a 1 GiB VHDX
    'vhdutils': {'get_vhd_format': 'VHDX',
                 'get_vhd_info': {'VirtualSize': 1 << 30, 'Format': 'VHDX',
                                  'Type': 3, 'ParentPath': None},
                 'get_vhd_size': {'VirtualSize': 1 << 30},
                 # a VHDX's internal size: the size asked (no header cost)
                 'get_best_supported_vhd_format': 'vhdx',
                 'create_differencing_vhd': _new_file,
                 'create_dynamic_vhd': _new_file,
                 'get_internal_vhd_size_by_file_size':
                     lambda path, size: size},
}


class _Recording:
    """Each call of ``method`` recorded as ``'<name>.<method>'``, then made
    on ``_target(method)``."""

    def __init__(self, name, calls):
        self._name = name
        self._calls = calls

    def __getattr__(self, method):
        if method.startswith('_'):
            raise AttributeError(method)
        target = self._target(method)

        def call(*args, **kwargs):
            self._calls.append('%s.%s' % (self._name, method))
            return target(*args, **kwargs)
        return call

    def _target(self, method):
        raise NotImplementedError


class RecordingUtils(_Recording):
    """A recording fake of an os-win utility the simulator does not model:
    each call is recorded and answers ``answers[method]`` (a value or a
    callable of the call's arguments), else None."""

    def __init__(self, name, calls, answers=None):
        super().__init__(name, calls)
        self._answers = answers or {}

    def _target(self, method):
        answer = self._answers.get(method)
        return answer if callable(answer) else lambda *a, **kw: answer


class Simulated(_Recording):
    """os-win's own utils (``real``) over the simulated host for the
    methods in ``simulated``; ``recorded[method]`` for what the simulator
    does not model; nothing else (``NotModelled``)."""

    def __init__(self, name, real, simulated, recorded, calls):
        super().__init__(name, calls)
        self._real = real
        self._simulated = simulated
        self._recorded = recorded

    def _target(self, method):
        if method in self._simulated:
            return getattr(self._real, method)
        if method in self._recorded:
            return self._recorded[method]
        raise NotModelled('os-win %s.%s is not modelled by the simulated '
                          'host' % (self._name, method))


def simulated_vmutils(definition, vmutils, calls):
    """os-win's ``VMUtils10`` for ``SIMULATED``, the recording
    VM-definition fake for ``DEFINITION``."""
    recorded = {m: getattr(definition, m, None) or (lambda *a, **kw: None)
                for m in DEFINITION}
    return Simulated('vmutils', vmutils, SIMULATED, recorded, calls)


def simulated_hostutils(hostutils, calls, facts):
    """os-win's ``HostUtils10`` for ``HOST_SIMULATED``, the host's facts
    (``HOST_FACTS``) for the rest compute-hyperv reads."""
    recorded = {m: (lambda fact: lambda *a, **kw: copy.deepcopy(fact))(f)
                for m, f in facts.items()}
    return Simulated('hostutils', hostutils, HOST_SIMULATED, recorded, calls)


def copy_file(pathutils, src, dest):
    """os-win's ``PathUtils.copy`` (Win32 ``CopyFileW``, which has no
    counterpart here): the file's bytes, by ``shutil``."""
    shutil.copyfile(src, dest)


# each simulated host's VM definitions, by host name (the last installed)
_DEFINITIONS = {}
# the VM definitions create_vm wrote: token -> [host, VM name, the VM as
# destroy_vm left it, its notes]
_EXPORTS = {}


class RecordingVMDefinition:
    """The lifecycle of a VM's definition: a created VM exists on the
    simulated host, off, with the generation asked; a destroyed one is
    gone; its notes hold the instance's UUID (as compute-hyperv writes
    them)."""

    def __init__(self, hv):
        self._hv = hv
        self.notes = {}
        self.paths = {}

    def _vm(self, vm_name):
        if vm_name not in self._hv.vms:
            raise os_win_exc.HyperVVMNotFoundException(vm_name=vm_name)
        return vm_name

    def get_vm_config_root_dir(self, vm_name):
        return self.paths[self._vm(vm_name)]

    def create_vm(self, vm_name, vnuma_enabled, vm_gen, instance_path,
                  notes=None):
        self._hv.add_vm(vm_name, generation=int(vm_gen[-1])
                        if isinstance(vm_gen, str) else int(vm_gen),
                        instance_uuid=(notes or [None])[0])
        self.notes[vm_name] = list(notes or [])
        self.paths[vm_name] = instance_path
        # Hyper-V keeps the definition in <instance>/Virtual Machines/
        # <VM id>.vmcx; here the file names the definition in _EXPORTS
        folder = os.path.join(instance_path, 'Virtual Machines')
        os.makedirs(folder, exist_ok=True)
        token = str(uuid.uuid4())
        _EXPORTS[token] = [self._hv, vm_name, None, list(notes or [])]
        with open(os.path.join(folder, token + '.vmcx'), 'w') as f:
            f.write(token)

    def destroy_vm(self, vm_name):
        # an exported definition keeps the VM as it was (with its
        # KeyProtector and vTPM state)
        for entry in _EXPORTS.values():
            if entry[0] is self._hv and entry[1] == vm_name:
                entry[2] = copy.deepcopy(self._hv.vms[vm_name])
        self._hv.remove_vm(vm_name)
        self.notes.pop(vm_name, None)

    def import_vm_definition(self, config_file, snapshot_dir=None):
        """os-win's ``MigrationUtils.import_vm_definition``: the VM of an
        exported definition, on this host, off (a planned VM until
        ``realize_vm``)."""
        with open(config_file) as f:
            source, vm_name, record, notes = _EXPORTS[f.read()]
        record = copy.deepcopy(record or source.vms[vm_name])
        record.state = VM_OFF
        with self._hv.lock:
            self._hv.vms[vm_name] = record
        self.notes[vm_name] = notes
        # <instance>/export/<VM id>.vmcx
        self.paths[vm_name] = os.path.dirname(os.path.dirname(config_file))

    def live_migrate_vm(self, vm_name, dest_host, migrate_disks=True):
        """os-win's ``LiveMigrationUtils.live_migrate_vm``: Hyper-V moves
        the running VM with its definition (KeyProtector, vTPM state); it
        runs on the destination only if that host's HGS opens the
        KeyProtector (the simulator's rule), else it stays here, running."""
        target = _DEFINITIONS[dest_host]
        record = copy.deepcopy(self._hv.vms[self._vm(vm_name)])
        record.state = VM_OFF
        with target._hv.lock:
            target._hv.vms[vm_name] = record
        try:
            target._hv.start_vm(vm_name)
        except Exception:
            target._hv.remove_vm(vm_name)
            raise
        target.notes[vm_name] = self.notes.pop(vm_name, [])
        target.paths[vm_name] = self.paths.get(vm_name)
        self._hv.remove_vm(vm_name)

    def list_instances(self):
        return list(self._hv.vms)

    def list_instance_notes(self):
        return [(name, self.notes.get(name, [])) for name in self._hv.vms]

    def get_active_instances(self):
        return [name for name in self._hv.vms
                if self._hv.vm_security(name)['EnabledState'] != VM_OFF]

    def get_instance_uuid(self, vm_name):
        notes = self.notes[self._vm(vm_name)]
        return notes[0] if notes else None

    def get_vm_storage_paths(self, vm_name):
        return [], []

    def is_secure_vm(self, vm_name):
        return False

    def get_vm_summary_info(self, vm_name):
        return {'EnabledState': self._hv.vm_security(vm_name)['EnabledState'],
                'NumberOfProcessors': 1, 'MemoryUsage': 512, 'UpTime': 0}

    def soft_shutdown_vm(self, vm_name):
        # Msvm_ShutdownComponent.InitiateShutdown: the guest shuts down
        self._hv.stop_vm(self._vm(vm_name))

    def get_vm_state(self, vm_name):
        return self._hv.vm_security(vm_name)['EnabledState']

    def get_vm_power_state_change_listener(self, **kwargs):
        # the listener os-win runs until the service stops; the simulator
        # sends no WMI events, so it returns at once
        return lambda callback: None

    def get_vm_disks(self, vm_name):
        return [], []

    def get_vm_nic_names(self, vm_name):
        return []

    def get_vm_serial_port_connections(self, vm_name):
        return []

    def get_vm_dvd_disk_paths(self, vm_name):
        return []

    def vm_gen_supports_remotefx(self, vm_gen):
        return False


@contextlib.contextmanager
def installed(hv, calls, answers=None, facts=None):
    """os-win's utilsfactory answering from ``hv`` for the ``with`` block;
    every call appended to ``calls``. ``answers``: per utility name, the
    answers of its recording fake; ``facts``: the host's (``HOST_FACTS``)."""
    answers = dict(ANSWERS, **(answers or {}))
    facts = dict(HOST_FACTS, **(facts or {}))
    vmutils, hostutils = hv.os_win_utils()
    definition = RecordingVMDefinition(hv)
    _DEFINITIONS[hv.name] = definition
    answers.setdefault('migrationutils', {
        'import_vm_definition': definition.import_vm_definition})
    answers.setdefault('livemigrationutils', {
        'live_migrate_vm': definition.live_migrate_vm})
    made = {
        'get_vmutils': lambda host='.': simulated_vmutils(definition, vmutils,
                                                          calls),
        'get_hostutils': lambda: simulated_hostutils(hostutils, calls, facts),
    }
    for name in ('vhdutils', 'metricsutils', 'networkutils', 'pathutils',
                 'diskutils', 'migrationutils', 'livemigrationutils',
                 'rdpconsoleutils', 'clusterutils', 'processutils',
                 'ioutils'):
        made['get_' + name] = (lambda n=name: RecordingUtils(
            n, calls, answers.get(n)))
    saved = {name: getattr(utilsfactory, name) for name in made}
    for name, function in made.items():
        setattr(utilsfactory, name, function)
    try:
        yield
    finally:
        for name, function in saved.items():
            setattr(utilsfactory, name, function)
