# SPDX-License-Identifier: Apache-2.0
"""One boot from nova-api to a simulated Hyper-V vTPM, and what follows.

Everything is real but the hypervisor: nova-api (microversion latest),
conductor, scheduler with ``VTPMFilter``, placement, and computes running
``tools.simcloud.driver.FakeHyperVDriver``: ``VTPMDriverMixin`` composed
with a simulated Hyper-V driver, over the real ``HyperVBackend``, os-win's
own ``VMUtils10``/``HostUtils10`` and the ``vtpm_hyperv.fake`` simulator,
configured by the install guide's scheduler and compute blocks
(``tools.simcloud.guide``). Key
material lives in the real Barbican, read with the real Keystone token of
the instance owner: nova's in-process API has no Keystone, so the servers
are created in the owner's Keystone project and the compute maps that
project to the owner's credentials (what ``context.get_auth_plugin()``
gives a real compute). Missing services fail these tests; they never skip.
"""

import base64
import functools

import fixtures
from keystoneauth1 import session as ks_session
from nova import conf as nova_conf
from nova import objects as nova_objects
from nova.tests.functional.api import client as api_client
import pytest

from tests import realservices
from tools.simcloud import driver
from tools.simcloud import guide
from tools.simcloud import nova
from vtpm_core import constants
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

pytestmark = pytest.mark.usefixtures('real_services')
GEN2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}


@functools.lru_cache(maxsize=None)
def fabric(name):
    """A guarded fabric (its HGS guardian), made once per test run."""
    return fake.Fabric(name)


@functools.lru_cache(maxsize=None)
def guardian(name):
    """A tenant's guardian with its private keys, made once per run."""
    return fake.make_guardian(name)


@functools.lru_cache(maxsize=None)
def secret(what, kind='owner'):
    """The Barbican secret holding ``what``, stored once per run.

    'owner-bundle': the owner guardian's PKCS#12 files; 'raw-kp' and 'pdk':
    what the tenant makes with Microsoft's tools (New-HgsKeyProtector,
    New-ShieldingDataFile) for fabric A and its DR site; any other name:
    that guardian's file, as Export-HgsGuardian writes it.
    """
    owner = guardian('tenant-owner')
    for_fabric_a = [fabric('fabric-a').guardian.public(),
                    guardian('dr-site').public()]
    if what == 'owner-bundle':
        payload = fake.export_owner_pkcs12(owner)
    elif what == 'raw-kp':
        payload = fake.build_key_protector(owner, for_fabric_a)
    elif what == 'pdk':
        # of the size Windows lets a tenant make it: other files up to
        # New-ShieldingDataFile's 384 KB and an answer file (about 400 KB),
        # stored in the real Barbican configured as the install guide says
        payload = fake.shielding_data_file(owner, for_fabric_a)
    else:
        payload = fake.export_guardian_file(guardian(what))
    return realservices.store_secret(payload, kind, name='e2e %s' % what)


class KeyedCloud(nova.Services):
    """The cloud of these tests: the real Keystone users, the install
    guide's computes over simulated hosts, nova's log at DEBUG."""

    def setUp(self):
        # Fails (never skips) without the services, before nova starts.
        self.owner = realservices.user('owner')
        self.other = realservices.user('other')
        plugins = {self.owner['project_id']: realservices.auth('owner'),
                   self.other['project_id']: realservices.auth('other')}
        # The computes' nova.conf is the install guide's, with the real
        # Keystone and its nova user in [service_user].
        nova_user = realservices.user('nova')
        self.compute_conf = guide.compute_replacements(
            realservices.keystone_url(), nova_user['username'],
            nova_user['password'])

        def owner_auth(context):
            return plugins.get(context.project_id) or \
                context.get_auth_plugin()

        self.plugins = plugins
        self.cloud = self.enterContext(driver.SimulatedCloud(
            nova_conf.CONF, owner_auth=owner_auth))
        # nova's log capture at DEBUG, so that the leak check sees it all
        self.useFixture(fixtures.EnvironmentVariable('OS_DEBUG', '1'))
        super().setUp()
        # The servers belong to the owner's Keystone project.
        self.api.project_id = self.owner['project_id']

    def make_driver(self, virtapi):
        return self.cloud.make_driver(virtapi)

    # --- the cloud -----------------------------------------------------------

    def hosts(self, **specs):
        """Simulated hosts, then their nova computes: name=(fabric, status)."""
        for name, (fabric_name, status) in specs.items():
            kwargs = {}
            if fabric_name:
                kwargs = {'fabric': fabric(fabric_name),
                          'attestation_status': status}
            self.cloud.add_host(name, **kwargs)
        for name in specs:
            self.start_compute(name)
        return self.cloud.hosts

    def image(self, **properties):
        return self.create_image(**dict(GEN2, **properties))

    def keyed_image(self, *secrets, shielded=False):
        props = {'os_vtpm': 'required',
                 'os_vtpm_keys': ','.join(secrets or (
                     secret('owner-bundle'), secret('dr-site')))}
        if shielded:
            props['os_shielded_vm'] = 'required'
        return self.image(**props)

    def vm(self, server):
        """The server's simulated VM, where nova says it runs."""
        hv = self.cloud.hosts[self.host_of(server)]
        name = server['OS-EXT-SRV-ATTR:instance_name']
        return hv, hv.vm_security(name)

    def instance(self, server):
        with self.instance_context(server['id']) as cctxt:
            return nova_objects.Instance.get_by_uuid(
                cctxt, server['id'], expected_attrs=['system_metadata'])

    def assert_unwraps(self, raw_kp, allowed, refused):
        for name, key in allowed:
            self.assertTrue(fake.unwrap_key_protector(raw_kp, key), name)
        for name, key in refused:
            self.assertRaises(fake.UnwrapError, fake.unwrap_key_protector,
                              raw_kp, key)

    @staticmethod
    def parties(raw_kp):
        """Who a KeyProtector names (its bytes change on every start: the
        transport key is rolled)."""
        parsed = fake.parse_key_protector(raw_kp)
        return [g.signing_der for g in (parsed.owner,) + parsed.guardians]

    def snapshot(self):
        """Every simulated host's VMs (with settings) and guardian store."""
        return {name: ({vm: hv.vm_security(vm) for vm in hv.vms},
                       hv.guardian_names())
                for name, hv in self.cloud.hosts.items()}


class EndToEndTestCase(KeyedCloud):

    # --- a keyed instance in fabric A ------------------------------------

    def test_keyed_instance_lands_in_fabric_a_and_unwraps_only_there(self):
        hosts = self.hosts(a1=('fabric-a', 'Passed'),
                           b1=('fabric-b', 'Expired'),
                           plain=(None, None))
        before = self.snapshot()
        # a DR secret of its own: the test deletes it before the server
        dr_secret = realservices.store_secret(
            fake.export_guardian_file(guardian('dr-site')))
        server = self.boot(self.create_flavor(), self.keyed_image(
            secret('owner-bundle'), dr_secret))
        self.assertEqual('a1', self.host_of(server))

        hv, vm = self.vm(server)
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.assertEqual(2, hv.vms[name].generation)
        self.assertTrue(vm['TpmEnabled'])
        # an owner bundle: encryption supported, never shielded
        self.assertFalse(vm['ShieldingRequested'])
        self.assertTrue(vm['EncryptStateAndVmMigrationTraffic'])
        self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])
        owner, dr = guardian('tenant-owner'), guardian('dr-site')
        self.assert_unwraps(
            vm['KeyProtector'],
            allowed=[('owner', owner.encryption_key),
                     ('fabric A', fabric('fabric-a').guardian.encryption_key),
                     ('DR', dr.encryption_key)],
            refused=[('fabric B', fabric('fabric-b').guardian.encryption_key),
                     ('stranger', guardian('stranger').encryption_key),
                     ('owner signing key', owner.signing_key)])
        # os-win's own code reads what the backend set up
        vmutils, _ = hv.os_win_utils()
        self.assertTrue(vmutils.is_secure_vm(name))
        self.assertEqual(set(hv.guardian_names()), {'fabric-a'})
        self.assertEqual(2, vmutils.get_vm_generation(name))
        # The fabrics are recorded where the scheduler finds them on a move.
        recorded = self.instance(server).system_metadata[
            constants.SYSMETA_FABRICS].split(',')
        self.assertEqual({fabric('fabric-a').fabric_id,
                          keyprotector.fabric_id(dr.signing_der)},
                         set(recorded))

        # Neither key material nor the owner's token reached a log line.
        log = self.stdlog.logger.output
        self.assertIn('Reading 2 Barbican secrets', log)  # DEBUG is on
        # nova's service token went along, as the guide's [service_user]
        # says (keystoneauth logs a hash of it)
        self.assertIn('X-Service-Token: {SHA256}', log)
        bundle = fake.export_owner_pkcs12(owner)
        token = self.plugins[self.owner['project_id']].get_token(
            ks_session.Session())
        for needle in (token, base64.b64encode(bundle[:48]).decode(),
                       repr(bundle[:24])[2:-1], 'PRIVATE KEY'):
            self.assertNotIn(needle, log)

        # Delete leaves each host as it was before the boot, even
        # though one of its secrets is gone by then (forced: Barbican
        # refuses to delete a secret the instance consumes).
        realservices.barbican('owner').secrets.delete(dr_secret, force=True)
        self._delete_server(server)
        self.assertEqual(before, self.snapshot())
        self.assertEqual({}, hosts['a1'].vms)

    # --- shielded VMs: the owner's keys stay with the tenant -----------------

    def test_shielded_boot_with_an_owner_bundle_fails_with_our_message(self):
        self.hosts(a1=('fabric-a', 'Passed'))
        before = self.snapshot()
        bundle = secret('owner-bundle')
        server = self.boot(self.create_flavor(), self.keyed_image(
            bundle, secret('dr-site'), shielded=True), expected_state='ERROR')
        message = server['fault']['message']
        self.assertIn('Barbican secret %s' % bundle, message)
        self.assertIn('is an owner PKCS#12 bundle, refused because '
                      'os_shielded_vm=required', message)
        # aborted, not rescheduled: nothing was changed anywhere
        self.assertNotIn('Exhausted all hosts', message)
        self.assertEqual(before, self.snapshot())

    def test_shielded_boots_from_a_raw_key_protector_and_a_pdk(self):
        self.hosts(a1=('fabric-a', 'Passed'), b1=('fabric-b', 'Passed'),
                   plain=(None, None))
        owner, dr = guardian('tenant-owner'), guardian('dr-site')
        for what in ('raw-kp', 'pdk'):
            server = self.boot(self.create_flavor(), self.keyed_image(
                secret(what), shielded=True))
            # fabric B passes attestation too, but the artifact names A only
            self.assertEqual('a1', self.host_of(server), what)
            hv, vm = self.vm(server)
            self.assertTrue(vm['TpmEnabled'] and vm['ShieldingRequested'])
            self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])
            self.assert_unwraps(
                vm['KeyProtector'],
                allowed=[('fabric A',
                          fabric('fabric-a').guardian.encryption_key),
                         ('DR', dr.encryption_key)],
                refused=[('fabric B',
                          fabric('fabric-b').guardian.encryption_key),
                         ('stranger', guardian('stranger').encryption_key)])
            self.assertEqual([owner.signing_der],
                             self.parties(vm['KeyProtector'])[:1])
            # nothing of the tenant's was imported on the host
            self.assertEqual(['fabric-a'], hv.guardian_names())
            self._delete_server(server)

    # --- migrations stay within the fabrics ------------------------------

    def test_migrations_stay_within_the_fabrics_and_carry_the_vtpm(self):
        hosts = self.hosts(a1=('fabric-a', 'Passed'),
                           a2=('fabric-a', 'Passed'),
                           b1=('fabric-b', 'Expired'))
        flavor = self.create_flavor()
        server = self._create_server(flavor_id=flavor, host='a1',
                                     image_uuid=self.keyed_image(),
                                     networks='none')
        _, vm_before = self.vm(server)
        # Fabric B passes attestation now: a better host for nova's
        # weighers (empty), but not one the KeyProtector names.
        hosts['b1'].set_attestation('Passed')
        self.refresh_reports()

        server = self._migrate_server(server)
        self.assertEqual('a2', self.host_of(server))
        hv, vm_after = self.vm(server)
        # The configuration moved: same KeyProtector parties, vTPM on, and
        # the VM started on a2 (the simulator unwraps with fabric A's key).
        self.assertEqual(self.parties(vm_before['KeyProtector']),
                         self.parties(vm_after['KeyProtector']))
        self.assertTrue(vm_after['TpmEnabled'])
        self.assertEqual(fake.host.VM_ENABLED, vm_after['EnabledState'])
        server = self._confirm_resize(server)
        self.assertEqual({}, hosts['a1'].vms)

        server = self._live_migrate(server)
        self.assertEqual('a1', self.host_of(server))
        _, vm_live = self.vm(server)
        self.assertEqual(self.parties(vm_before['KeyProtector']),
                         self.parties(vm_live['KeyProtector']))
        self.assertEqual({}, hosts['a2'].vms)

        # A resize that keeps the vTPM on is a migration like the others.
        server = self._resize_server(server, self._create_flavor(
            memory_mb=4096, extra_spec={'os:vtpm': 'required'}))
        self.assertEqual('a2', self.host_of(server))
        self.assertEqual(self.parties(vm_before['KeyProtector']),
                         self.parties(self.vm(server)[1]['KeyProtector']))
        server = self._confirm_resize(server)

        # No authorized host left: no valid host, nothing touched.
        hosts['a1'].set_attestation('Expired')
        self.refresh_reports()
        before = self.snapshot()
        self.api.post_server_action(server['id'], {'migrate': None})
        self._assert_resize_migrate_action_fail(server, 'migrate',
                                                'NoValidHost')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('a2', self.host_of(server))
        self.assertEqual(before, self.snapshot())

    # --- another project's secret ----------------------------------------

    def test_another_projects_secret_is_refused_by_barbican(self):
        self.hosts(a1=('fabric-a', 'Passed'))
        before = self.snapshot()
        foreign = secret('dr-site', kind='other')
        image = self.keyed_image(secret('owner-bundle'), foreign)
        server = self.boot(self.create_flavor(), image,
                           expected_state='ERROR')
        message = server['fault']['message']
        self.assertIn(foreign, message)
        self.assertIn('Barbican refused secret %s' % foreign, message)
        # no guardian, no VM, no key protector left from it
        self.assertEqual(before, self.snapshot())

    # --- a WMI failure halfway through attach ----------------------------

    def test_wmi_failure_halfway_leaves_no_partial_state(self):
        hosts = self.hosts(a1=('fabric-a', 'Passed'))
        before = self.snapshot()
        # the KeyProtector is set; enabling the TPM then fails in its job
        hosts['a1'].fail('Msvm_SecurityService.ModifySecuritySettings',
                         job_error=32768, description='simulated failure')
        server = self.boot(self.create_flavor(), self.keyed_image(),
                           expected_state='ERROR')
        # nova rescheduled it and, with no other host, gave up; the
        # failed host logged what Hyper-V said
        self.assertIn('Exhausted all hosts', server['fault']['message'])
        self.assertIn('Error from last host: a1', self.stdlog.logger.output)
        self.assertIn('Hyper-V Msvm_SecurityService.ModifySecuritySettings '
                      '(enable the TPM) failed', self.stdlog.logger.output)
        self.assertEqual(before, self.snapshot())
        # the host is usable again once Hyper-V is
        hosts['a1'].clear_faults()
        server = self.boot(self.create_flavor(), self.keyed_image())
        self.assertEqual('a1', self.host_of(server))

    # --- refused lifecycle operations ------------------------------------

    def assert_refused(self, server, operation, fragment, action, event):
        """The compute refused ``action``: its event failed, the instance
        fault says why, and the server is back to ACTIVE."""
        self._wait_for_instance_action_event(server, action, event, 'Error')
        server = self._wait_for_server_parameter(
            server, {'status': 'ACTIVE', 'OS-EXT-STS:task_state': None})
        message = self.latest_fault(server)
        self.assertIsNotNone(message)
        self.assertIn('%s of instance %s refused' % (operation, server['id']),
                      message)
        self.assertIn(fragment, message)
        return server

    def test_refused_operations_on_a_keyed_instance_change_nothing(self):
        hosts = self.hosts(a1=('fabric-a', 'Passed'),
                           a2=('fabric-a', 'Passed'))
        flavor = self.create_flavor(vtpm='optional')
        server = self._create_server(
            flavor_id=flavor, host='a1', networks='none',
            image_uuid=self.keyed_image(shielded=False))
        before = self.snapshot()

        # resize to a flavor that disables the vTPM: conflict, named
        self.api.post_server_action(server['id'], {'resize': {
            'flavorRef': self.create_flavor(vtpm='disabled')}})
        self._wait_for_migration_status(server, ['error'])
        self.assert_refused(server, 'resize',
                            "os:vtpm (flavor extra spec) is 'disabled'",
                            'resize', 'compute_resize_instance')
        self.assertEqual(before, self.snapshot())

        # rebuild with its own image
        self.api.post_server_action(server['id'], {'rebuild': {
            'imageRef': server['image']['id']}})
        self.assert_refused(server, 'rebuild', 'empty vTPM', 'rebuild',
                            'compute_rebuild_instance')
        self.assertEqual(before, self.snapshot())

        # shelve (nova offloads at once by default)
        self.api.post_server_action(server['id'], {'shelve': {}})
        self.assert_refused(server, 'shelve', 'shelved_offload_time',
                            'shelve', 'compute_shelve_instance')
        self.assertEqual(before, self.snapshot())
        self.assertEqual(fake.host.VM_ENABLED,
                         self.vm(server)[1]['EnabledState'])

        # evacuate while a1 is down
        self.computes['a1'].stop()
        service = self.api.get_services(binary='nova-compute', host='a1')[0]
        self.api.put_service_force_down(service['id'], True)
        self.api.post_server_action(server['id'], {'evacuate': {}})
        self._wait_for_migration_status(server, ['failed'])
        server = self.assert_refused(server, 'evacuation',
                                     'bring host a1 back', 'evacuate',
                                     'compute_rebuild_instance')
        self.assertEqual('a1', self.host_of(server))
        self.assertEqual(before, self.snapshot())
        self.assertEqual({}, hosts['a2'].vms)

    def test_a_vtpm_without_keys_on_guarded_hosts_moves_in_its_fabric(self):
        """The README's request (a vTPM, no keys) on a guarded fabric: a key
        protector of the host's own guardian for fabric A's, which HGS
        opens on a2 too; never in fabric B; and a host that cannot open it
        refuses the boot before anything changes."""
        hosts = self.hosts(a1=('fabric-a', 'Passed'),
                           a2=('fabric-a', 'Passed'),
                           b1=('fabric-b', 'Passed'),
                           x1=('fabric-a', 'Expired'))
        fabric_a = fabric('fabric-a').fabric_id
        flavor = self.create_flavor(vtpm='required')
        image = self.image(os_vtpm='optional')
        server = self._create_server(flavor_id=flavor, host='a1',
                                     image_uuid=image, networks='none')
        self.assertEqual('a1', self.host_of(server))
        self.assertEqual(fabric_a, self.instance(server).system_metadata[
            constants.SYSMETA_FABRICS])
        _, vm = self.vm(server)
        self.assertTrue(vm['TpmEnabled'])
        parsed = fake.parse_key_protector(vm['KeyProtector'])
        self.assertEqual(
            hosts['a1'].store[fake.LOCAL_GUARDIAN].guardian.signing_der,
            parsed.owner.signing_der)
        self.assertEqual([fabric('fabric-a').guardian.signing_der],
                         [g.signing_der for g in parsed.guardians])

        # fabric B is the better host for nova's weighers (empty), but its
        # HGS could not open the key protector
        server = self._confirm_resize(self._migrate_server(server))
        self.assertEqual('a2', self.host_of(server))
        _, moved = self.vm(server)
        self.assertEqual(self.parties(vm['KeyProtector']),
                         self.parties(moved['KeyProtector']))
        self.assertEqual(fake.host.VM_ENABLED, moved['EnabledState'])
        self.assertEqual({}, hosts['a1'].vms)

        # forced onto a host whose attestation lapsed (nova skips the
        # filters for a forced host): the compute refuses, nothing stays
        before = self.snapshot()
        refused = self._create_server(
            flavor_id=flavor, image_uuid=image, networks='none',
            az='nova:x1', expected_state='ERROR')
        self.assertIn('HGS attestation status is Expired',
                      refused['fault']['message'])
        self.assertEqual(before, self.snapshot())

    def test_refused_moves_of_a_local_key_protector_change_nothing(self):
        self.hosts(p1=(None, None), p2=(None, None))
        server = self._create_server(
            flavor_id=self.create_flavor(), host='p1', networks='none',
            image_uuid=self.image(os_vtpm='required'))
        self.assertEqual('', self.instance(server).system_metadata[
            constants.SYSMETA_FABRICS])
        before = self.snapshot()

        self.api.post_server_action(server['id'], {'migrate': None})
        self._wait_for_migration_status(server, ['error'])
        self.assert_refused(server, 'cold migration',
                            'local key protector that only host p1 can open',
                            'migrate', 'compute_resize_instance')
        self.assertEqual(before, self.snapshot())

        # the destination refuses in its pre-check; no host is left
        self.api.post_server_action(server['id'], {
            'os-migrateLive': {'host': None, 'block_migration': 'auto'}})
        self._wait_for_migration_status(server, ['error'])
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('p1', self.host_of(server))
        self.assertEqual(before, self.snapshot())
        self.assertIn('live migration of instance %s refused' % server['id'],
                      self.stdlog.logger.output)

    # --- nova's own vTPM vocabulary on a Hyper-V cloud ----------------------

    NOVA = {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'}

    def test_novas_vocabulary_boots_a_hyperv_vtpm(self):
        """hw:tpm_version=2.0 with hw:tpm_model=tpm-crb is Hyper-V's vTPM:
        nova's scheduler requires the traits of a TPM 2.0 with a CRB
        interface and of the secret security, which the hosts report where
        true; VTPMFilter and the compute side read the same request."""
        self.hosts(a1=('fabric-a', 'Passed'), p1=(None, None))
        for host, secret_trait in (('a1', 'USER'), ('p1', 'HOST')):
            traits = set(self._get_provider_traits(
                self._get_provider_uuid_by_host(host)))
            self.assertLessEqual({'COMPUTE_SECURITY_TPM_2_0',
                                  'COMPUTE_SECURITY_TPM_CRB',
                                  'COMPUTE_SECURITY_TPM_SECRET_SECURITY_'
                                  + secret_trait}, traits)
            self.assertFalse(traits & {'COMPUTE_SECURITY_TPM_1_2',
                                       'COMPUTE_SECURITY_TPM_TIS'})
        # nova's default secret security, user: the owner's keys
        keyed = self.boot(self.create_flavor(**self.NOVA), self.image(
            os_vtpm='optional', os_vtpm_keys='%s,%s' % (
                secret('owner-bundle'), secret('dr-site'))))
        self.assertEqual('a1', self.host_of(keyed))
        hv, vm = self.vm(keyed)
        self.assertTrue(vm['TpmEnabled'])
        self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])
        self.assertTrue(fake.unwrap_key_protector(
            vm['KeyProtector'], guardian('tenant-owner').encryption_key))
        # host: a vTPM sealed for its host, on one that opens local ones
        local = self.boot(self.create_flavor(**dict(
            self.NOVA, **{'hw:tpm_secret_security': 'host'})),
            self.image(os_vtpm='optional'))
        self.assertEqual('p1', self.host_of(local))
        self.assertTrue(self.vm(local)[1]['TpmEnabled'])

    def test_what_hyperv_does_not_give_is_refused_on_the_flavor(self):
        """TPM 1.2, TIS and 'deployment': nova-api refuses the extra spec
        with our message, before any boot could end in No valid host."""
        flavor = self.create_flavor()
        for key, value, message in (
                ('hw:tpm_version', '1.2',
                 "hw:tpm_version (flavor extra spec) is '1.2' but Hyper-V's "
                 'virtual TPM is a TPM 2.0 and offers no TPM 1.2; allowed: '
                 '2.0'),
                ('hw:tpm_model', 'tpm-tis',
                 "hw:tpm_model (flavor extra spec) is 'tpm-tis' but "
                 "Hyper-V's virtual TPM has a CRB interface, not TIS; "
                 'allowed: tpm-crb'),
                ('hw:tpm_secret_security', 'deployment',
                 "hw:tpm_secret_security (flavor extra spec) is "
                 "'deployment' but no vTPM here is sealed for nova's "
                 'service user')):
            error = self.assertRaises(
                api_client.OpenStackApiException,
                self.admin_api.post_extra_spec, flavor,
                {'extra_specs': {key: value}})
            self.assertEqual(400, error.response.status_code)
            self.assertIn(message, error.response.text)
        self.assertEqual({}, self.admin_api.get_extra_specs(flavor))

    def test_a_model_alone_fails_with_our_message_never_without_a_tpm(self):
        """nova gives no TPM for hw:tpm_model without a version (and asks
        placement for nothing): the compute side refuses the build."""
        self.hosts(p1=(None, None))
        before = self.snapshot()
        server = self.boot(self.create_flavor(**{'hw:tpm_model': 'tpm-crb'}),
                           self.image(), expected_state='ERROR')
        self.assertIn("hw:tpm_model (flavor extra spec) is 'tpm-crb' but the "
                      'vTPM is off', server['fault']['message'])
        self.assertNotIn('Exhausted all hosts', server['fault']['message'])
        self.assertEqual(before, self.snapshot())

    def test_a_version_without_a_model_on_an_image_stops_in_placement(self):
        """What no plugin can reach: nova assumes TIS for an image's
        hw_tpm_version alone and requires its trait, which no Hyper-V host
        has; placement answers before VTPMFilter runs (the guides say so,
        and the audit and vtpm-check name the image)."""
        self.hosts(p1=(None, None))
        server = self.boot(self.create_flavor(**{
            'hw:tpm_secret_security': 'host'}), self.image(
            os_vtpm='required', hw_tpm_version='2.0'),
            expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIn('COMPUTE_SECURITY_TPM_TIS', self.stdlog.logger.output)
