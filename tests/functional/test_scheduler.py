# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter and the os:vtpm validator inside nova's own services.

Real nova-api (microversion latest), conductor, scheduler and placement
(``tools.simcloud.nova``); fake computes report what each test gives them
(``ReportingDriver``). Every scenario boots or moves through the API.
"""

import datetime
import json

import fixtures
from nova import context as nova_context
from nova.image import glance
from nova import objects as nova_objects
from nova.tests.functional.api import client as api_client
from nova.virt import fake as nova_fake
from oslo_upgradecheck import upgradecheck
from oslo_utils.fixture import uuidsentinel as uuids
from oslo_utils import timeutils

from tools.simcloud import nova
from vtpm_cli import status
from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import objects
from vtpm_filters import glance_images
from vtpm_filters import vtpm_filter
from vtpm_hyperv.nova import compute

KEYS = '%s,%s' % (uuids.owner_bundle, uuids.dr_guardian)
NO_VALID_HOST = 'No valid host'
ZERO_HOSTS = 'Filter VTPMFilter returned 0 hosts'
# Each new server goes to the emptiest host that passes every filter (nova's
# RAM weigher spreads), so a second boot shows that the first was no accident.


def host_capabilities(*, vtpm_supported=True, guarded=False,
                      attestation_status='NotConfigured',
                      attestation_mode=None, fabric_id=None, age=0):
    """A HostCapabilities report measured ``age`` seconds ago."""
    measured_at = (timeutils.utcnow(with_timezone=True) -
                   datetime.timedelta(seconds=age))
    return objects.HostCapabilities(
        vtpm_supported=vtpm_supported, guarded=guarded,
        attestation_status=attestation_status,
        attestation_mode=attestation_mode, fabric_id=fabric_id,
        measured_at=measured_at)


def attested_host(fabric_id, age=0):
    """A guarded host that HGS attested, in ``fabric_id``."""
    return host_capabilities(guarded=True, attestation_status='Passed',
                             attestation_mode='TpmTrustedAttestation',
                             fabric_id=fabric_id, age=age)


class OlderCompute:
    """A compute of the release before the facts: it publishes ``caps`` as
    the versioned entry alone."""

    def __init__(self, caps):
        self.caps = caps

    def stats(self):
        return {capabilities.STATS_KEY: capabilities.to_stats(self.caps)[
            capabilities.STATS_KEY]}


class ReportingDriver(nova_fake.MediumFakeDriver):
    """A fake compute that reports what ``reports[its host]`` says.

    A value is a ``HostCapabilities`` (published as ``to_stats`` and as
    placement traits, as ``vtpm_hyperv.nova.compute`` publishes it), an
    ``OlderCompute``, a plain stats dict (published verbatim, for
    unreadable reports), or absent (no report). Tests change the mapping
    and run nova's periodic task to publish a change.
    """

    def __init__(self, virtapi, reports):
        super().__init__(virtapi)
        self.reports = reports

    def _report(self):
        report = self.reports.get(self._host)
        if isinstance(report, objects.HostCapabilities):
            return report, capabilities.to_stats(report)
        if isinstance(report, OlderCompute):
            return report.caps, report.stats()
        return None, dict(report or {})

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        resources['stats'] = dict(resources.get('stats') or {},
                                  **self._report()[1])
        return resources

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations)
        compute.set_traits(provider_tree, nodename, self._report()[0])


class SchedulerTestCase(nova.Services):

    def setUp(self):
        # host -> report, read by every driver this test starts
        self.host_reports = {}
        super().setUp()

    def make_driver(self, virtapi):
        return ReportingDriver(virtapi, self.host_reports)

    def start_hosts(self, reports):
        """Start one compute per host; ``reports`` maps host -> report."""
        self.host_reports.update(reports)
        for host in reports:
            self.start_compute(host)

    def set_report(self, host, report):
        """Change a host's report; publish it with refresh_reports()."""
        if report is None:
            self.host_reports.pop(host, None)
        else:
            self.host_reports[host] = report

    def gen2_image(self, **properties):
        properties.setdefault(constants.IMAGE_MACHINE_TYPE,
                              constants.MACHINE_TYPE_GEN2)
        return self.create_image(**properties)

    def keyed_image(self, **properties):
        return self.gen2_image(os_vtpm='required', os_vtpm_keys=KEYS,
                               **properties)

    def assert_no_valid_host(self, flavor, image=None):
        server = self.boot(flavor, image, expected_state='ERROR')
        self.assertIn(NO_VALID_HOST, server['fault']['message'])
        self.assertIn(ZERO_HOSTS, self.stdlog.logger.output)
        return server

    def test_image_requires_vtpm_lands_on_capable_host(self):
        self.start_hosts({
            'host1': host_capabilities(vtpm_supported=False),
            'host2': host_capabilities(),
        })
        flavor = self.create_flavor()
        image = self.gen2_image(os_vtpm='required')
        reads = self.useFixture(fixtures.MockPatchObject(
            glance_images, 'read_properties',
            wraps=glance_images.read_properties)).mock
        for _ in range(2):
            server = self.boot(flavor, image)
            self.assertEqual('host2', self.host_of(server))
        # the scheduler read the image once, from nova's GlanceFixture
        # through nova's image API: the second boot came within
        # [vtpm_filter] image_cache_ttl
        self.assertEqual([image], [c.args[2] for c in reads.call_args_list])
        self.assertIsInstance(reads.call_args.args[0], glance.API)

    def test_no_capable_host_is_no_valid_host(self):
        self.start_hosts({
            'host1': host_capabilities(vtpm_supported=False),
            'host2': None,  # reports nothing: fail closed
        })
        self.assert_no_valid_host(
            self.create_flavor(), self.gen2_image(os_vtpm='required'))

    def test_flavor_requires_image_optional_lands_on_capable_host(self):
        self.start_hosts({
            'host1': host_capabilities(vtpm_supported=False),
            'host2': host_capabilities(),
        })
        flavor = self.create_flavor(vtpm='required')
        image = self.gen2_image(os_vtpm='optional')
        for _ in range(2):
            server = self.boot(flavor, image)
            self.assertEqual('host2', self.host_of(server))

    def test_keys_need_guarded_attested_fresh_host(self):
        self.start_hosts({
            'fresh': attested_host('fabric-a'),
            'stale': attested_host('fabric-a', age=3600),  # max 600 s
            'expired': host_capabilities(
                guarded=True, attestation_status='Expired',
                fabric_id='fabric-a'),
            'unguarded': host_capabilities(),
        })
        flavor = self.create_flavor()
        for image in (self.keyed_image(),
                      self.keyed_image(os_shielded_vm='required')):
            server = self.boot(flavor, image)
            self.assertEqual('fresh', self.host_of(server))
        # Without the fresh host, stale and expired reports are all that is
        # left, and a vTPM without keys would still find the unguarded host.
        self.set_report('fresh', attested_host('fabric-a', age=3600))
        self.refresh_reports()
        self.assert_no_valid_host(flavor, self.keyed_image())
        server = self.boot(flavor, self.gen2_image(os_vtpm='required'))
        self.assertIn(self.host_of(server), ('fresh', 'stale', 'expired',
                                             'unguarded'))

    def test_no_vtpm_asked_every_host_passes(self):
        hosts = {
            'host1': None,
            'host2': {capabilities.STATS_KEY: '{not json'},
            'host3': host_capabilities(vtpm_supported=False),
        }
        self.start_hosts(hosts)
        flavors_images = [
            (self.create_flavor(), None),  # nova's default image
            (self.create_flavor(vtpm='disabled'),
             self.gen2_image(os_vtpm='optional')),
            (self.create_flavor(vtpm='optional'),
             self.gen2_image(os_vtpm='optional')),
        ]
        landed = {self.host_of(self.boot(flavor, image))
                  for flavor, image in flavors_images}
        self.assertEqual(set(hosts), landed)

    def test_flavor_extra_spec_api_latest_microversion(self):
        self.assertEqual('latest', self.admin_api.microversion)
        flavor = self.create_flavor()
        for value in constants.VTPM_POLICIES:
            self.admin_api.post_extra_spec(
                flavor, {'extra_specs': {'os:vtpm': value}})
            self.assertEqual({'os:vtpm': value},
                             self.admin_api.get_extra_specs(flavor))
        for value in ('bogus', 'Required', ''):
            error = self.assertRaises(
                api_client.OpenStackApiException,
                self.admin_api.post_extra_spec, flavor,
                {'extra_specs': {'os:vtpm': value}})
            self.assertEqual(400, error.response.status_code)
            self.assertIn("os:vtpm (flavor extra spec) is %r; allowed: "
                          "disabled, optional, required" % value,
                          error.response.text)
        # A refused value never replaced the last accepted one.
        self.assertEqual({'os:vtpm': 'required'},
                         self.admin_api.get_extra_specs(flavor))

    def _keyed_server_on_a1(self):
        self.start_hosts({
            'a1': attested_host('fabric-a'),
            'a2': attested_host('fabric-a'),
            'b1': attested_host('fabric-b'),
        })
        flavor = self.create_flavor()
        server = self._create_server(
            flavor_id=flavor, image_uuid=self.keyed_image(), host='a1',
            networks='none')
        self.assertEqual('a1', self.host_of(server))
        # What the compute side records (fabric-dr has no host here).
        self.set_system_metadata(
            server['id'], **{constants.SYSMETA_FABRICS: 'fabric-a,fabric-dr'})
        # a2 gets a plain server so that b1 is the emptiest host: without
        # the fabric rule every move below would prefer b1.
        plain = self._create_server(flavor_id=flavor, host='a2',
                                    networks='none')
        self.assertEqual('a2', self.host_of(plain))
        return server

    def _make_expired(self, host, fabric):
        self.set_report(host, host_capabilities(
            guarded=True, attestation_status='Expired', fabric_id=fabric))

    def test_cold_migration_stays_in_authorized_fabrics(self):
        server = self._keyed_server_on_a1()
        server = self._migrate_server(server)
        self.assertEqual('a2', self.host_of(server))
        server = self._confirm_resize(server)
        # a1 is now the only authorized host; take it away too.
        self._make_expired('a1', 'fabric-a')
        self.refresh_reports()
        self.api.post_server_action(server['id'], {'migrate': None})
        self._assert_resize_migrate_action_fail(
            server, 'migrate', 'NoValidHost')
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('a2', self.host_of(server))

    def test_live_migration_stays_in_authorized_fabrics(self):
        server = self._keyed_server_on_a1()
        # a1 is the source; a2 its only authorized destination.
        server = self._live_migrate(server)
        self.assertEqual('a2', self.host_of(server))
        # Now a1 is the only one left; with its attestation expired the
        # move fails and the instance stays where it was.
        self._make_expired('a1', 'fabric-a')
        self.refresh_reports()
        server = self._live_migrate(server, migration_expected_state='error')
        self.assertEqual('a2', self.host_of(server))
        self.set_report('a1', attested_host('fabric-a'))
        self.refresh_reports()
        server = self._live_migrate(server)
        self.assertEqual('a1', self.host_of(server))

    def test_resize_and_evacuation_stay_in_authorized_fabrics(self):
        server = self._keyed_server_on_a1()
        bigger = self._create_flavor(memory_mb=3072)
        server = self._resize_server(server, bigger)
        self.assertEqual('a2', self.host_of(server))
        server = self._confirm_resize(server)
        # a1 gets a plain server, so b1 is again the emptiest host.
        plain = self._create_server(flavor_id=self.create_flavor(),
                                    host='a1', networks='none')
        self.assertEqual('a1', self.host_of(plain))
        self.computes['a2'].stop()
        (service,) = self.admin_api.get_services(host='a2',
                                                 binary='nova-compute')
        self.admin_api.put_service_force_down(service['id'], True)
        server = self._evacuate_server(server, expected_host='a1')
        self.assertEqual('a1', self.host_of(server))

    def test_invalid_request_is_not_no_valid_host(self):
        self.start_hosts({
            'host1': None,
            'host2': host_capabilities(vtpm_supported=False),
        })
        cases = [
            # flavor requires a vTPM, the image does not declare support
            (self.create_flavor(vtpm='required'), self.gen2_image(),
             "os:vtpm (flavor extra spec) is 'required' but os_vtpm "
             "(image property) is absent"),
            # a value in the wrong case
            (self.create_flavor(), self.gen2_image(os_vtpm='Required'),
             "os_vtpm (image property) is 'Required'; allowed: disabled, "
             "optional, required"),
        ]
        for flavor, image, message in cases:
            server = self.boot(flavor, image)
            self.assertIn(self.host_of(server), ('host1', 'host2'))
            # once per request, not once per host
            self.assertEqual(1, self.stdlog.logger.output.count(message))
        self.assertNotIn(ZERO_HOSTS, self.stdlog.logger.output)

    def test_report_change_seen_after_periodic_update(self):
        self.start_hosts({
            'host1': attested_host('fabric-a'),
            'host2': host_capabilities(),
        })
        flavor = self.create_flavor()
        image = self.keyed_image()
        self.assertEqual('host1', self.host_of(self.boot(flavor, image)))
        self._make_expired('host1', 'fabric-a')
        self.refresh_reports()
        self.assert_no_valid_host(flavor, image)
        self.set_report('host1', attested_host('fabric-a'))
        self.refresh_reports()
        self.assertEqual('host1', self.host_of(self.boot(flavor, image)))

    # report formats: older computes, nova's database ------------------------

    def stats_in_the_database(self, host):
        """The host's ComputeNode.stats as the scheduler loads them."""
        ctxt = nova_context.get_admin_context()
        cell = nova_objects.HostMapping.get_by_host(ctxt, host).cell_mapping
        with nova_context.target_cell(ctxt, cell) as cctxt:
            return nova_objects.ComputeNode.\
                get_first_node_by_host_for_old_compat(cctxt, host).stats

    def test_older_and_newer_computes_side_by_side(self):
        # An upgrade under way: two computes publish the versioned entry
        # alone, two the facts beside it; the scheduler reads both.
        self.start_hosts({
            'new': attested_host('fabric-a'),
            'new-stale': attested_host('fabric-a', age=3600),
            'old': OlderCompute(attested_host('fabric-a')),
            'old-stale': OlderCompute(attested_host('fabric-a', age=3600)),
        })
        new, old = (self.stats_in_the_database(h) for h in ('new', 'old'))
        # through nova's JSON column, both entries hold the report, to the
        # second (oslo's DateTimeField)
        sent = self.host_reports['new']
        read = capabilities.from_stats(new)
        self.assertEqual(sent.measured_at.replace(microsecond=0),
                         read.measured_at)
        self.assertEqual(capabilities.view(read), capabilities.read_facts(
            new[capabilities.FACTS_KEY]))
        self.assertNotIn(capabilities.FACTS_KEY, old)
        flavor, image = self.create_flavor(), self.keyed_image()
        landed = {self.host_of(self.boot(flavor, image)) for _ in range(2)}
        self.assertEqual({'new', 'old'}, landed)
        # the older compute's attestation expires: seen at its next update
        self.set_report('old', OlderCompute(host_capabilities(
            guarded=True, attestation_status='Expired',
            fabric_id='fabric-a')))
        self.refresh_reports()
        for _ in range(2):
            self.assertEqual('new', self.host_of(self.boot(flavor, image)))

    def test_upgrade_check_reads_the_reports_from_novas_database(self):
        """vtpm-status upgrade check, with nova's own objects over the
        cloud's cell database: an upgrade under way is ready; a compute
        upgraded before the schedulers, and one this release cannot read,
        are not."""
        self.start_hosts({'new': attested_host('fabric-a'),
                          # a compute of the release of report 1.2
                          'old': capabilities.to_stats(
                              attested_host('fabric-a'),
                              target_version='1.2')})
        checks = status.Checks()
        self.assertEqual(upgradecheck.Code.SUCCESS, checks.check(),
                         [method(checks).details
                          for _, method in checks._upgrade_checks])
        ahead = json.loads(capabilities.to_stats(attested_host('fabric-a'))[
            capabilities.STATS_KEY])
        ahead['vtpm_object.version'] = '1.99'
        self.set_report('new', {capabilities.STATS_KEY: json.dumps(ahead)})
        self.set_report('old', {capabilities.STATS_KEY: 'not a report'})
        self.refresh_reports()
        checks = status.Checks()
        self.assertEqual(upgradecheck.Code.FAILURE, checks.check())
        results = {title: method(checks)
                   for title, method in checks._upgrade_checks}
        self.assertIn('old (node old)', results[
            'vTPM capability reports readable'].details)
        self.assertIn('new (node new) publish a vTPM capability report '
                      'newer', results[
                          'vTPM schedulers before computes'].details)

    # placement prefiltering --------------------------------------------------

    def test_placement_prefilters_on_the_published_traits(self):
        self.start_hosts({
            'host1': attested_host('fabric-a'),
            'host2': host_capabilities(),
        })
        rp1 = self._get_provider_uuid_by_host('host1')
        rp2 = self._get_provider_uuid_by_host('host2')
        self.assertLessEqual(
            {capabilities.TRAIT_TPM, capabilities.TRAIT_GUARDED,
             capabilities.TRAIT_ATTESTED, 'CUSTOM_HGS_FABRIC_FABRIC_A'},
            set(self._get_provider_traits(rp1)))
        self.assertIn(capabilities.TRAIT_TPM, self._get_provider_traits(rp2))
        self.assertNotIn(capabilities.TRAIT_ATTESTED,
                         self._get_provider_traits(rp2))
        # No os:vtpm: VTPMFilter passes everything it gets, and placement
        # only offers host1.
        flavor = self.create_flavor(
            **{'trait:' + capabilities.TRAIT_ATTESTED: 'required'})
        for _ in range(2):
            self.assertEqual('host1', self.host_of(self.boot(flavor)))
        # The trait follows the report at the next periodic update.
        self._make_expired('host1', 'fabric-a')
        self.refresh_reports()
        self.assertNotIn(capabilities.TRAIT_ATTESTED,
                         self._get_provider_traits(rp1))
        server = self.boot(flavor, expected_state='ERROR')
        self.assertIn(NO_VALID_HOST, server['fault']['message'])
        self.assertNotIn(ZERO_HOSTS, self.stdlog.logger.output)


class OlderSchedulerTestCase(SchedulerTestCase):
    """Computes of this release, a scheduler of the release before the
    facts: it reads the versioned entry alone (``vtpm:facts`` is a key it
    does not know), which these computes still publish in full."""

    def setUp(self):
        super().setUp()
        filter_all = vtpm_filter.VTPMFilter.filter_all
        stripped = []

        def versioned_only(filt, host_states, spec_obj):
            for state in host_states:
                stripped.append(state.stats.pop(capabilities.FACTS_KEY))
            return filter_all(filt, host_states, spec_obj)

        # every host's facts reached the scheduler, which ignored them
        self.addCleanup(lambda: self.assertTrue(stripped))

        self.useFixture(fixtures.MonkeyPatch(
            'vtpm_filters.vtpm_filter.VTPMFilter.filter_all', versioned_only))

    def test_keys_need_guarded_attested_fresh_host(self):
        super().test_keys_need_guarded_attested_fresh_host()

    def test_report_change_seen_after_periodic_update(self):
        super().test_report_change_seen_after_periodic_update()


# The older scheduler runs two scenarios, not every test again.
for _name in [n for n in dir(SchedulerTestCase) if n.startswith('test_')]:
    if _name not in vars(OlderSchedulerTestCase):
        setattr(OlderSchedulerTestCase, _name, None)
