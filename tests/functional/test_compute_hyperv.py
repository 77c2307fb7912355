# SPDX-License-Identifier: Apache-2.0
"""compute-hyperv 16.0.0's own driver, through the port, as the consumer:
nova 34's own services (``tools.simcloud.nova``), computes whose driver is
``vtpm_hyperv.nova.compute_hyperv.HyperVDriver`` over simulated Hyper-V
hosts.

os-win's VM, host and job utilities run over the simulator; the VM's
definition, disks, NICs, host facts and migrations, which it does not
model, are recording fakes with a small lifecycle model
(``tools.compute_hyperv.host``), and any other os-win call fails the test.
The hosts keep their instances on a cluster shared volume. Each operation's
os-win calls are pinned: a compute-hyperv or os-win that calls differently
fails here.
"""

import tempfile

import fixtures
from oslo_utils import uuidutils

from tools.compute_hyperv import driver as consumer
from tools.compute_hyperv import host as chv_host
from tools.simcloud import driver
from tools.simcloud import nova
from vtpm_core import constants
from vtpm_hyperv import fake

GEN2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}
FABRIC = fake.Fabric('contoso-hgs')


class ComputeHyperVCloud(nova.Services):

    def setUp(self):
        # unittest's enterContext is Python 3.11's; this test runs on 3.10
        # too (tox -e nova27)
        cloud = driver.SimulatedCloud(nova.CONF)
        self.cloud = cloud.__enter__()
        self.addCleanup(cloud.__exit__, None, None, None)
        # The hosts' instances live on a Cluster Shared Volume, which
        # compute-hyperv reaches by the same path from every host
        # (PathUtils.get_remote_path): C:\ClusterStorage\ on the system
        # drive, here a temporary folder.
        drive = tempfile.mkdtemp()
        self.useFixture(fixtures.EnvironmentVariable('SYSTEMDRIVE', drive))
        self.useFixture(fixtures.MonkeyPatch(
            'os_win.utils.pathutils.PathUtils.copy', chv_host.copy_file))
        super().setUp()
        self.flags(instances_path=drive + '\\ClusterStorage\\instances')

    def make_driver(self, virtapi):
        host = self._starting
        return consumer.ConsumerDriver(virtapi, self.cloud, host)

    def start_compute(self, host):
        self.cloud.add_host(host, fabric=FABRIC)
        self._starting = host
        return super().start_compute(host)

    def create_image(self, **properties):
        """A Glance image (nova's fixture) of a VHDX, the format
        compute-hyperv boots."""
        image_id = uuidutils.generate_uuid()
        self.glance.create(None, {
            'id': image_id, 'name': 'chv-%s' % image_id[:8],
            'status': 'active', 'container_format': 'bare',
            'disk_format': 'vhdx', 'size': 1024, 'min_ram': 0,
            'min_disk': 0, 'visibility': 'public',
            'properties': properties})
        return image_id

    def calls_of(self, host, operation, *args, **kwargs):
        """What ``operation`` made the host's os-win and WMI do (the
        resource tracker's reads left out), and its result."""
        hv = self.cloud.hosts[host]
        start = len(hv.calls)
        result = operation(*args, **kwargs)
        calls = hv.calls[start:]
        return without_reports(calls), result

    def vtpm_server(self, host='hv1'):
        """A server whose flavor and image both ask for a vTPM: the image's
        os_vtpm=required is what compute-hyperv's own path acts on too."""
        flavor = self.create_flavor(vtpm='required')
        image = self.create_image(os_vtpm='required', **GEN2)
        return self.calls_of(host, self.boot, flavor, image)

    def vm(self, server):
        hv = self.cloud.hosts[self.host_of(server)]
        return hv.vm_security(server['OS-EXT-SRV-ATTR:instance_name'])


# What nova's resource tracker reads of the host (compute-hyperv's
# get_available_resource), whenever it runs; left out of the operations'
# lists and pinned on its own
REPORT = [
    'hostutils.get_memory_info', 'diskutils.get_disk_capacity',
    'hostutils.get_cpus_info'] + ['hostutils.is_cpu_feature_present'] * 11 + [
    'hostutils.get_windows_version', 'hostutils.get_numa_nodes',
    'hostutils.get_pci_passthrough_devices']

# compute-hyperv 16.0.0's os-win calls per operation, through the port and
# the mixin, with the WMI methods the simulated host ran (os-win's and the
# backend's) in between
BUILD = [
    'vmutils.check_admin_permissions', 'vmutils.vm_exists',
    'hostutils.get_default_vm_generation', 'hostutils.get_supported_vm_types',
    # the root disk: a differencing VHDX of the cached image, resized
    'vmutils.get_vm_config_root_dir', 'vhdutils.get_vhd_format',
    'vmutils.get_vm_config_root_dir', 'vhdutils.create_differencing_vhd',
    'vhdutils.get_vhd_format', 'vhdutils.get_vhd_info',
    'vhdutils.get_internal_vhd_size_by_file_size', 'vhdutils.resize_vhd',
    # the ephemeral disk
    'vhdutils.get_vhd_format', 'vhdutils.get_best_supported_vhd_format',
    'vhdutils.create_dynamic_vhd',
    # the VM, off, and its devices
    'vmutils.create_vm', 'vmutils.create_scsi_controller',
    'vmutils.attach_scsi_drive', 'vmutils.attach_scsi_drive',
    'vmutils.set_vm_serial_port_connection', 'vmutils.update_vm',
    'vmutils.get_disk_attachment_info', 'vmutils.set_boot_order',
    # the mixin: the vTPM (a key protector of the host's guardian for the
    # fabric's), while the VM is off
    'MSFT_HgsClientConfiguration.Get', 'Msvm_SecurityService.GetKeyProtector',
    'MSFT_HgsGuardian.NewByGenerateCertificates',
    'MSFT_HgsKeyProtector.NewByGuardians',
    'Msvm_SecurityService.SetKeyProtector',
    'Msvm_SecurityService.ModifySecuritySettings',
    # the start check (vtpm_hyperv.nova.startcheck): the VM's key protector
    # and the guardians it names, before any start
    'Msvm_SecurityService.GetKeyProtector',
    'MSFT_HgsKeyProtector.ConvertToByRawBytes',
    # then the start, compute-hyperv's power_on
    'vmutils.set_vm_state', 'Msvm_ComputerSystem.RequestStateChange',
    # nova's power state sync
    'vmutils.vm_exists', 'vmutils.get_vm_summary_info']
STOP = ['vmutils.vm_exists', 'vmutils.get_vm_summary_info',
        'vmutils.soft_shutdown_vm', 'vmutils.get_vm_summary_info',
        'vmutils.vm_exists', 'vmutils.get_vm_summary_info']
_START_CHECK = ['Msvm_SecurityService.GetKeyProtector',
                'MSFT_HgsKeyProtector.ConvertToByRawBytes']
START = _START_CHECK + [
    'vmutils.set_vm_state', 'Msvm_ComputerSystem.RequestStateChange',
    'vmutils.vm_exists', 'vmutils.get_vm_summary_info']
REBOOT = (['vmutils.vm_exists', 'vmutils.get_vm_summary_info'] + _START_CHECK
          + ['vmutils.set_vm_state', 'Msvm_ComputerSystem.RequestStateChange',
             'vmutils.vm_exists', 'vmutils.get_vm_summary_info'])
DELETE = ['vmutils.vm_exists', 'vmutils.stop_vm_jobs', 'vmutils.set_vm_state',
          'Msvm_ComputerSystem.RequestStateChange', 'vmutils.destroy_vm']
# a cold migration: the source stops the VM, keeps its files and exported
# definition (with the KeyProtector and vTPM state) and removes the VM; the
# destination imports the definition and starts it
MIGRATE_SOURCE = [
    'vmutils.soft_shutdown_vm', 'vmutils.get_vm_summary_info',
    'vmutils.vm_exists', 'vmutils.stop_vm_jobs', 'vmutils.set_vm_state',
    'Msvm_ComputerSystem.RequestStateChange', 'vmutils.destroy_vm']
MIGRATE_DESTINATION = [
    'vmutils.get_vm_config_root_dir', 'hostutils.get_default_vm_generation',
    'hostutils.get_supported_vm_types', 'migrationutils.import_vm_definition',
    'vmutils.update_vm', 'vmutils.get_vm_storage_paths',
    'vhdutils.get_vhd_info', 'migrationutils.realize_vm',
    'vhdutils.get_vhd_info', 'vhdutils.resize_vhd', 'vmutils.set_vm_state',
    'Msvm_ComputerSystem.RequestStateChange']
# a live migration: the destination's checks (the mixin's first, its HGS
# state), then Hyper-V's move from the source; then nova's reads
LIVE_SOURCE = ['livemigrationutils.live_migrate_vm',
               'MSFT_HgsClientConfiguration.Get']
LIVE_DESTINATION = [
    'MSFT_HgsClientConfiguration.Get',
    'livemigrationutils.check_live_migration_config', 'vmutils.vm_exists',
    'vmutils.get_vm_summary_info']
# compute-hyperv's own vTPM path (VMOps._configure_secure_vm), which the
# port switches off
OWN_VTPM = {'vmutils.add_vtpm', 'vmutils.provision_vm',
            'vmutils.populate_fsk'}


class ConsumerTestCase(ComputeHyperVCloud):

    def test_the_report_nova_reads(self):
        self.start_compute('hv1')
        calls, resources = self.calls_of(
            'hv1', lambda: self.cloud.drivers['hv1'].get_available_resource(
                'hv1'))
        hv = self.cloud.hosts['hv1']
        # compute-hyperv's, then the mixin's capability report (HGS)
        self.assertEqual(REPORT + ['MSFT_HgsClientConfiguration.Get'],
                         hv.calls[-len(REPORT) - 1:])
        self.assertEqual(['MSFT_HgsClientConfiguration.Get'], calls)
        self.assertEqual('hyperv', resources['hypervisor_type'])
        self.assertIn('vtpm:capabilities', resources['stats'])

    def test_build_power_reboot_delete(self):
        self.start_compute('hv1')
        hv = self.cloud.hosts['hv1']
        calls, server = self.vtpm_server()
        # the host's own guardian (its first keyless vTPM made it), which
        # every keyless vTPM of the host shares
        guardians = hv.guardian_names()
        self.assertIn('UntrustedGuardian', guardians)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(BUILD, calls)
        self.assertEqual(set(), OWN_VTPM & set(calls))
        # Hyper-V's order: every device, then the KeyProtector, then the
        # start
        set_kp = calls.index('Msvm_SecurityService.SetKeyProtector')
        start = calls.index('Msvm_ComputerSystem.RequestStateChange')
        devices = [i for i, c in enumerate(calls)
                   if c.startswith(('vmutils.create_', 'vmutils.attach_',
                                    'vmutils.set_boot_order',
                                    'vmutils.update_vm'))]
        self.assertLess(max(devices), set_kp)
        self.assertLess(set_kp, start)
        vm = self.vm(server)
        self.assertTrue(vm['TpmEnabled'])
        self.assertTrue(vm['KeyProtector'])
        self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])

        # nova 34 passes share_info to power_on and reboot
        calls, server = self.calls_of('hv1', self._stop_server, server)
        self.assertEqual(STOP, calls)
        self.assertEqual(fake.host.VM_DISABLED,
                         self.vm(server)['EnabledState'])
        calls, server = self.calls_of('hv1', self._start_server, server)
        self.assertEqual(START, calls)
        self.assertEqual('ACTIVE', server['status'])
        calls, server = self.calls_of('hv1', self._reboot_server, server,
                                      hard=True)
        self.assertEqual(REBOOT, calls)
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual(parties(vm['KeyProtector']),
                         parties(self.vm(server)['KeyProtector']))

        calls, _ = self.calls_of('hv1', self._delete_server, server)
        self.assertEqual(DELETE, calls)
        # nothing of the instance's is left on the host
        self.assertEqual({}, hv.vms)
        self.assertEqual(guardians, hv.guardian_names())


class MoveTestCase(ComputeHyperVCloud):
    """An instance with a vTPM moved from hv1 to hv2, hosts of one fabric:
    the KeyProtector comes along, opens there, and the VM runs there."""

    def move(self, operation, source_calls, destination_calls):
        self.start_compute('hv1')
        _, server = self.vtpm_server()
        self.start_compute('hv2')
        name = server['OS-EXT-SRV-ATTR:instance_name']
        before = self.cloud.hosts['hv1'].vm_security(name)
        dest_calls, (calls, server) = self.calls_of(
            'hv2', self.calls_of, 'hv1', operation, server)
        self.assertEqual(source_calls, calls)
        self.assertEqual(destination_calls, dest_calls)
        self.assertEqual('hv2', self.host_of(server))
        moved = self.cloud.hosts['hv2'].vm_security(name)
        self.assertEqual(parties(before['KeyProtector']),
                         parties(moved['KeyProtector']))
        self.assertEqual(fake.host.VM_ENABLED, moved['EnabledState'])
        return server

    def test_cold_migration_keeps_the_key_protector(self):
        """compute-hyperv moves the VM's exported definition; the source
        keeps nothing once the move is confirmed."""
        server = self.move(self._migrate_server, MIGRATE_SOURCE,
                           MIGRATE_DESTINATION)
        self._confirm_resize(server)
        self.assertEqual({}, self.cloud.hosts['hv1'].vms)

    def test_live_migration_in_the_fabric(self):
        """The mixin lets a vTPM move live within its fabric (the
        destination checks itself first); Hyper-V moves the running VM, and
        the source keeps nothing."""
        self.move(self._live_migrate, LIVE_SOURCE, LIVE_DESTINATION)
        self.assertEqual({}, self.cloud.hosts['hv1'].vms)


def parties(raw_kp):
    """Who a KeyProtector names (its bytes change on every start: Hyper-V
    rolls the transport key)."""
    parsed = fake.parse_key_protector(raw_kp)
    return [g.signing_der for g in (parsed.owner,) + parsed.guardians]


def without_reports(calls):
    """``calls`` less the resource tracker's reads (``REPORT``, whole)."""
    out, i = [], 0
    while i < len(calls):
        if calls[i:i + len(REPORT)] == REPORT:
            i += len(REPORT)
        else:
            out.append(calls[i])
            i += 1
    return out
