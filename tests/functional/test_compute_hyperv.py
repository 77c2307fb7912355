# SPDX-License-Identifier: Apache-2.0
"""compute-hyperv 16.0.0's own driver, through the port, as the consumer:
nova 34's own services (``tools.simcloud.nova``), computes whose driver is
``vtpm_hyperv.nova.compute_hyperv.HyperVDriver`` over simulated Hyper-V
hosts.

os-win's VM, host and job utilities run over the simulator; the VM's
definition, disks, NICs, paths and host facts, which it does not model,
are recording fakes (``tools.compute_hyperv.host``), and any other os-win
call fails the test. Each operation's os-win calls are pinned: a
compute-hyperv or os-win that calls differently fails here.
"""

import tempfile

from oslo_utils import uuidutils

from tools.compute_hyperv import driver as consumer
from tools.simcloud import driver
from tools.simcloud import nova
from vtpm_core import constants
from vtpm_hyperv import fake

GEN2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}
FABRIC = fake.Fabric('contoso-hgs')


class ComputeHyperVCloud(nova.Services):

    def setUp(self):
        self.calls = {}
        self.cloud = self.enterContext(driver.SimulatedCloud(nova.CONF))
        super().setUp()
        self.flags(instances_path=tempfile.mkdtemp())

    def make_driver(self, virtapi):
        host = self._starting
        return consumer.ConsumerDriver(virtapi, self.cloud, host,
                                       self.calls.setdefault(host, []))

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

    def vm(self, server):
        hv = self.cloud.hosts[self.host_of(server)]
        return hv.vm_security(server['OS-EXT-SRV-ATTR:instance_name'])


class ConsumerTestCase(ComputeHyperVCloud):

    def test_build_ends_active_with_its_vtpm(self):
        self.start_compute('hv1')
        flavor = self.create_flavor(vtpm='required')
        image = self.create_image(os_vtpm='optional', **GEN2)
        server = self.boot(flavor, image)
        self.assertEqual('ACTIVE', server['status'])
        vm = self.vm(server)
        self.assertTrue(vm['TpmEnabled'])
        print(self.calls['hv1'])
