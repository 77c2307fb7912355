# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter in nova's functional harness, its images in nova's
``GlanceFixture``, as a deployer's CI runs it.

nova's in-process services (``tools.simcloud.nova``: nova-api, conductor,
scheduler with ``VTPMFilter``, placement), with nova's ``GlanceFixture``
standing in for Glance behind ``nova.image.glance.API`` and nothing else
serving images; computes run the simulated Hyper-V driver over the real
backend, os-win's own code and the simulator (``tools.simcloud.driver``).
The scheduler is configured by the install guide. The filter reads each
image through nova's image API: a keyed image lands only on a guarded,
attested host of its fabric, a vTPM-required image that no host can serve
ends with no valid host, and a boot that asks for no vTPM passes every
host.

When a compute refuses a build, nova's conductor retries it on another
host the scheduler passed; these tests allow one attempt (``[scheduler]
max_attempts = 1``), so the host the scheduler picked is the one that must
run the instance. The key material comes from memory: Barbican is not what
these tests are about (``test_end_to_end`` reads it from the real one).
"""

import functools

from nova import conf as nova_conf
from nova import objects as nova_objects

from tests.fixtures import hyperv as hyperv_fixtures
from tools.simcloud import driver
from tools.simcloud import nova
from vtpm_core import constants
from vtpm_hyperv import backend
from vtpm_hyperv import conf as hv_conf
from vtpm_hyperv import fake

CONF = nova_conf.CONF
GEN2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}
NO_VALID_HOST = 'No valid host'
ZERO_HOSTS = 'Filter VTPMFilter returned 0 hosts'
READ_FAILED = 'VTPMFilter could not read image'


@functools.lru_cache(maxsize=None)
def fabric(name):
    """A guarded fabric (its HGS guardian), made once per test run."""
    return fake.Fabric(name, reuse_keys=True)


@functools.lru_cache(maxsize=None)
def guardian(name):
    """A tenant's guardian with its private keys, made once per run."""
    return fake.make_guardian(name, reuse_keys=True)


class GlanceFixtureTestCase(nova.Services):

    def setUp(self):
        self.keys = hyperv_fixtures.MemoryKeySource()
        self.cloud = self.enterContext(driver.SimulatedCloud(
            CONF, make_backend=self._backend))
        super().setUp()
        # one attempt per build: no reschedule hides where the scheduler
        # placed it
        self.flags(max_attempts=1, group='scheduler')
        # the install guide's [hyperv_vtpm] (tenants' guardians are
        # self-signed); its [service_user] would need a Keystone
        hv_conf.register_opts(CONF)
        self.flags(allow_untrusted_root=True, group=hv_conf.GROUP)

    def _backend(self, conf, hv_host):
        vmutils, hostutils = hv_host.os_win_utils()
        return backend.HyperVBackend(
            conf, key_source=self.keys, vmutils=vmutils, hostutils=hostutils,
            host_name=hv_host.name)

    def make_driver(self, virtapi):
        return self.cloud.make_driver(virtapi)

    # --- the cloud ---------------------------------------------------------

    def hosts(self, *names):
        """Simulated hosts, then their nova computes, from this menu."""
        menu = {
            # guarded, attested by fabric A's HGS
            'a1': dict(fabric=fabric('fabric-a'), attestation_status='Passed'),
            'a2': dict(fabric=fabric('fabric-a'), attestation_status='Passed'),
            'b1': dict(fabric=fabric('fabric-b'), attestation_status='Passed'),
            # guarded, its attestation expired: no vTPM of any kind (HGS
            # releases no key to it, and it opens no local key protector)
            'b-expired': dict(fabric=fabric('fabric-b'),
                              attestation_status='Expired'),
            # a vTPM with a local KeyProtector only: no fabric
            'local': {},
            # no vTPM: no HGS client (the simulated hosts of one process
            # share one Windows version, so not an older Windows)
            'no-hgs': dict(hgs_installed=False),
            'no-hgs-b': dict(hgs_installed=False),
        }
        for name in names:
            self.cloud.add_host(name, **menu[name])
        for name in names:
            self.start_compute(name)

    def keyed_image(self):
        """os_vtpm_keys: the owner's bundle and a DR site's guardian."""
        keys = [self.keys.add(fake.export_owner_pkcs12(guardian('owner'))),
                self.keys.add(fake.export_guardian_file(guardian('dr')))]
        return self.create_image(**dict(
            GEN2, os_vtpm='required', os_vtpm_keys=','.join(keys)))

    def vm(self, server):
        """The server's simulated VM security settings, where nova says."""
        hv = self.cloud.hosts[self.host_of(server)]
        return hv.vm_security(server['OS-EXT-SRV-ATTR:instance_name'])

    def fabrics_of(self, server):
        with self.instance_context(server['id']) as cctxt:
            instance = nova_objects.Instance.get_by_uuid(
                cctxt, server['id'], expected_attrs=['system_metadata'])
        return instance.system_metadata[constants.SYSMETA_FABRICS]

    def assert_images_read(self):
        """No read of nova's GlanceFixture failed."""
        self.assertNotIn(READ_FAILED, self.stdlog.logger.output)

    # --- the tests ---------------------------------------------------------

    def test_a_keyed_image_lands_only_on_an_attested_host_of_its_fabric(self):
        self.hosts('a1', 'b-expired', 'local', 'no-hgs')
        flavor, image = self.create_flavor(), self.keyed_image()
        # each boot goes to the emptiest host that passes: the second shows
        # the first was no accident
        servers = [self.boot(flavor, image) for _ in range(2)]
        self.assertEqual(['a1', 'a1'], [self.host_of(s) for s in servers])
        for server in servers:
            vm = self.vm(server)
            self.assertTrue(vm['TpmEnabled'])
            # the simulator starts a VM only where its KeyProtector unwraps
            self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])
            self.assertTrue(fake.unwrap_key_protector(
                vm['KeyProtector'],
                fabric('fabric-a').guardian.encryption_key))
        self.assert_images_read()
        # Its KeyProtector names fabric A: a cold migration goes to the other
        # host of fabric A, never to fabric B's, although b1 is attested and
        # the emptiest.
        self.hosts('a2', 'b1')
        fabric_a = fabric('fabric-a').fabric_id
        self.assertIn(fabric_a, self.fabrics_of(servers[0]).split(','))
        server = self._migrate_server(servers[0])
        self.assertEqual('a2', self.host_of(server))
        self._confirm_resize(server)
        self.assertEqual(fake.host.VM_ENABLED, self.vm(server)['EnabledState'])

    def test_a_vtpm_image_no_host_can_serve_is_no_valid_host(self):
        self.hosts('no-hgs', 'no-hgs-b')
        flavor = self.create_flavor()
        for image in (self.create_image(**dict(GEN2, os_vtpm='required')),
                      self.keyed_image()):
            server = self.boot(flavor, image, expected_state='ERROR')
            self.assertIn(NO_VALID_HOST, server['fault']['message'])
        self.assertEqual(2, self.stdlog.logger.output.count(ZERO_HOSTS))
        self.assert_images_read()
        # neither host was asked to build
        for hv in self.cloud.hosts.values():
            self.assertEqual({}, hv.vms)

    def test_a_boot_without_a_vtpm_passes_every_host(self):
        hosts = ('a1', 'b-expired', 'local', 'no-hgs')
        self.hosts(*hosts)
        flavor = self.create_flavor()
        # a Generation 2 image is read (nova keeps os_vtpm out of the
        # request spec); it asks for no vTPM
        image = self.create_image(**GEN2)
        landed = [self.host_of(self.boot(flavor, image)) for _ in hosts]
        self.assertEqual(sorted(hosts), sorted(landed))
        self.assert_images_read()
        self.assertNotIn(ZERO_HOSTS, self.stdlog.logger.output)
