# SPDX-License-Identifier: Apache-2.0
"""An HGS certificate renewal in nova's in-process services.

Microsoft's procedure ("Managing the Host Guardian Service", Renewing or
replacing keys) on a simulated fabric: HGS adds a new signing and
encryption pair and makes it primary; the hoster imports the new guardian
metadata on every host beside the old guardian; VM owners grant the new
guardian (here: tenants whose KeyProtector names both, or the new one
alone, and one owner who re-grants a running instance through nova's API,
as the user guide's re-authorization says); HGS disables, then removes,
the old pair and the hosts drop the old guardian. Through it all an
instance whose KeyProtector names the new guardian keeps moving within the
fabric, and the audit lists those that name only the old one: during the
renewal as soon to be stranded, after it as stranded.

nova-api, conductor, scheduler with ``VTPMFilter``, placement and computes
running the real backend over the simulator, configured by the install
guide; the tenants' KeyProtectors are in the real Barbican, read with the
owner's real Keystone token. Missing services fail these tests.
"""

from nova import conf as nova_conf
from nova import context as nova_context
from nova import objects as nova_objects
import pytest

from tests.functional import test_reauthorize
from tests import realservices
from tools.simcloud import driver
from tools.simcloud import guide
from tools.simcloud import nova
from vtpm_cli import audit
from vtpm_cli import novadb
from vtpm_core import constants
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

pytestmark = pytest.mark.usefixtures('real_services')
CONF = nova_conf.CONF
OLD, NEW = 'rotating-hgs', 'rotating-hgs-2027'
GEN2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}


class RotationTestCase(nova.Services):

    def setUp(self):
        # Fails (never skips) without the services, before nova starts.
        self.owner = realservices.user('owner')
        owner_auth = realservices.auth('owner')
        nova_user = realservices.user('nova')
        self.compute_conf = guide.compute_replacements(
            realservices.keystone_url(), nova_user['username'],
            nova_user['password'])
        self.cloud = self.enterContext(driver.SimulatedCloud(
            CONF, owner_auth=lambda context: owner_auth))
        super().setUp()
        self.api.project_id = self.owner['project_id']
        self.fabric = fake.Fabric(OLD)
        self.tenant = fake.make_guardian('rotation-tenant')

    def make_driver(self, virtapi):
        return self.cloud.make_driver(virtapi)

    # --- the cloud, the tenant, the hoster --------------------------------

    def boot_naming(self, *guardians, raw=None):
        """A shielded instance whose raw KeyProtector (in Barbican) names
        ``guardians`` (or is ``raw``), as the tenant makes it with
        New-HgsKeyProtector."""
        raw = raw or fake.build_key_protector(
            self.tenant, [g.public() for g in guardians])
        ref = realservices.store_secret(raw, 'owner', name='rotation kp')
        image = self.create_image(**dict(
            GEN2, os_vtpm='required', os_shielded_vm='required',
            os_vtpm_keys=ref))
        return self.boot(self.create_flavor(), image)

    def renew_hosts(self, new):
        """Import the new metadata on every host, beside the old guardian,
        and name both in [hyperv_vtpm] (hgs.rst's procedure)."""
        for hv in self.cloud.hosts.values():
            hv.import_guardian(self.fabric.guardian_metadata(), NEW)
        self.flags(fabric_guardian_name=NEW,
                   previous_fabric_guardian_names=[OLD], group='hyperv_vtpm')
        self.refresh_reports()

    def retire_old(self, old):
        self.fabric.disable(old)
        for hv in self.cloud.hosts.values():
            hv.remove_guardian(OLD)
        self.flags(previous_fabric_guardian_names=[], group='hyperv_vtpm')
        self.refresh_reports()
        self.fabric.remove(old)

    def regrant(self, server, pc, name):
        """The owner re-grants ``server``'s current KeyProtector, which the
        hoster hands over (Get-VMKeyProtector: Microsoft's steps 2 and 3),
        to guardian ``name`` on its own machine
        (Grant-HgsKeyProtectorAccess, step 5), stores it in Barbican, and
        names it while the server is stopped."""
        hv = self.cloud.hosts[self.host_of(server)]
        current = hv.vm_security(server['OS-EXT-SRV-ATTR:instance_name'])[
            'KeyProtector']
        ref = realservices.store_secret(pc.grant(current, name), 'owner',
                                        name='rotation re-grant')
        server = self._stop_server(server)
        self.api.post_server_metadata(server['id'],
                                      {constants.METADATA_KEYPROTECTOR: ref})
        server = self._start_server(server)
        self.assertEqual('applied %s' % ref, self.api.get_server(
            server['id'])['metadata'][constants.METADATA_KEYPROTECTOR_STATUS])
        return server

    def audit(self):
        """What ``vtpm-check --audit --nova-config`` adds: instances and
        their findings, by server id."""
        instances, reports = novadb.gather(nova_context.get_admin_context())
        found = audit.fabric_findings(instances, reports)
        return ({i.id for i in instances},
                {f.subject.rsplit('(', 1)[1][:-1]: f.problem for f in found})

    def moves_within_the_fabric(self, server):
        """A cold and a live migration; the VM starts on each destination
        (the simulator unwraps through HGS with an enabled pair)."""
        start = self.host_of(server)
        server = self._migrate_server(server)
        self.assertNotEqual(start, self.host_of(server))
        server = self._confirm_resize(server)
        hv = self.cloud.hosts[self.host_of(server)]
        name = server['OS-EXT-SRV-ATTR:instance_name']
        self.assertEqual(fake.host.VM_ENABLED, hv.vm_security(name)[
            'EnabledState'])
        server = self._live_migrate(server)
        self.assertEqual(fake.host.VM_ENABLED, self.cloud.hosts[
            self.host_of(server)].vm_security(name)['EnabledState'])
        return server

    def snapshot(self):
        return {name: ({vm: hv.vm_security(vm) for vm in hv.vms},
                       hv.guardian_names())
                for name, hv in self.cloud.hosts.items()}

    # --- the renewal --------------------------------------------------------

    def test_a_renewal_strands_no_instance_that_names_the_new_guardian(self):
        for name in ('r1', 'r2', 'r3'):
            self.cloud.add_host(name, fabric=self.fabric)
            self.start_compute(name)
        old = self.fabric.guardian
        before = self.boot_naming(old)
        # the owner's machine, with the fabric's guardian as published now
        pc = test_reauthorize.TenantMachine(self.tenant, old)
        self.addCleanup(pc.host.close)
        kp_old = pc.new(old.name)
        regranted = self.boot_naming(raw=kp_old)
        old_id = keyprotector.fabric_id(old.signing_der)
        self.assertEqual(({before['id'], regranted['id']}, {}), self.audit())

        # HGS: a new primary pair beside the old; the hosts follow.
        new = self.fabric.add_certificates(NEW)
        self.fabric.set_primary(new)
        self.renew_hosts(new)
        new_id = keyprotector.fabric_id(new.signing_der)
        self.assertEqual({regranted['id']}, set(self.audit()[1]) - {
            before['id']})
        # its owner imports the new guardian and re-grants (stop, set, start)
        pc.host.import_guardian(new.public(), new.name)
        regranted = self.regrant(regranted, pc, new.name)
        both = self.boot_naming(old, new)  # granted before the boot
        fresh = self.boot_naming(new)  # from the new metadata alone
        recorded = {s['id']: set(self.recorded(s))
                    for s in (before, regranted, both, fresh)}
        self.assertEqual({before['id']: {old_id},
                          regranted['id']: {old_id, new_id},
                          both['id']: {old_id, new_id},
                          fresh['id']: {new_id}}, recorded)

        # During the renewal everything moves; the audit names the one
        # instance whose KeyProtector names only the old certificate.
        listed, findings = self.audit()
        self.assertEqual({before['id'], regranted['id'], both['id'],
                          fresh['id']}, listed)
        self.assertEqual([before['id']], list(findings))
        self.assertIn('only while HGS renews its certificates',
                      findings[before['id']])
        before = self.moves_within_the_fabric(before)

        # HGS retires the old pair; the hosts drop the old guardian.
        self.retire_old(old)
        for server in (regranted, both, fresh):
            self.moves_within_the_fabric(server)
        listed, findings = self.audit()
        self.assertEqual([before['id']], list(findings))
        self.assertIn('none of which a host answers for',
                      findings[before['id']])
        self.assertIn(old_id, findings[before['id']])

        # ... and it is stranded: no host may take it, nothing changes.
        unchanged = self.snapshot()
        self.api.post_server_action(before['id'], {'migrate': None})
        self._assert_resize_migrate_action_fail(before, 'migrate',
                                                'NoValidHost')
        self._wait_for_state_change(before, 'ACTIVE')
        self.assertEqual(unchanged, self.snapshot())

    def recorded(self, server):
        with self.instance_context(server['id']) as cctxt:
            instance = nova_objects.Instance.get_by_uuid(
                cctxt, server['id'], expected_attrs=['system_metadata'])
        return instance.system_metadata[constants.SYSMETA_FABRICS].split(',')
