# SPDX-License-Identifier: Apache-2.0
"""What the vTPM capability report writes to nova's cell database.

nova's resource tracker saves a compute node only when it changed
(``ResourceTracker._update``), so an idle compute writes nothing on its
periodic runs. These tests run nova-compute in nova's own services
(``tools.simcloud.nova``) with ``tools.simcloud.driver.FakeHyperVDriver``
(``VTPMDriverMixin`` over the real backend, os-win's code and the simulated
Hyper-V host), and count the ``UPDATE compute_nodes`` statements on the
cell database's engine (an SQLAlchemy event listener) over periodic runs a
minute apart: the backend's clock, the one ``measured_at`` is read from, is
advanced by 60 s before each run.
"""

import datetime

import fixtures
from nova import context as nova_context
from nova.db.main import api as main_db_api
from nova import objects as nova_objects
from nova.virt import fake as nova_fake
from oslo_utils import timeutils
import sqlalchemy

from tools.simcloud import driver
from tools.simcloud import nova
from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_hyperv import fake

# nova's default [DEFAULT] update_resources_interval
PERIOD = 60
RUNS = 10
START = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


class _Clock:
    """``vtpm_hyperv.backend``'s ``datetime`` module, whose ``now`` is a
    clock the test advances (nothing else of the module changes)."""

    def __init__(self):
        self.now = START
        clock = self

        class _DateTime(datetime.datetime):
            @classmethod
            def now(cls, tz=None):
                return clock.now.astimezone(tz) if tz else clock.now

        self.datetime = _DateTime
        self.timezone = datetime.timezone
        self.timedelta = datetime.timedelta


class _OneCompute(nova.Services):
    """One compute, hv1, over a guarded simulated host in fabric A; its
    backend's clock in the test's hands; the cell database's UPDATE
    compute_nodes statements recorded."""

    def setUp(self):
        self.cloud = self.enterContext(driver.SimulatedCloud(
            nova.CONF, owner_auth=lambda context: None))
        super().setUp()
        self.clock = _Clock()
        self.useFixture(fixtures.MonkeyPatch('vtpm_hyperv.backend.datetime',
                                             self.clock))
        self.hv = self.cloud.add_host('hv1', fabric=fake.Fabric('fabric-a'),
                                      attestation_status='Passed')
        self.compute = self.start_compute('hv1')
        self.updates = []
        ctxt = nova_context.get_admin_context()
        cell = nova_objects.HostMapping.get_by_host(ctxt, 'hv1').cell_mapping
        with nova_context.target_cell(ctxt, cell) as cctxt:
            engine = main_db_api.get_engine(context=cctxt)
        sqlalchemy.event.listen(engine, 'before_cursor_execute',
                                self._statement)
        self.addCleanup(sqlalchemy.event.remove, engine,
                        'before_cursor_execute', self._statement)

    def make_driver(self, virtapi):
        return self.cloud.make_driver(virtapi)

    def _statement(self, conn, cursor, statement, parameters, context,
                   executemany):
        if statement.lstrip().upper().startswith('UPDATE COMPUTE_NODES'):
            self.updates.append(statement)

    def periodic_runs(self, runs):
        """``runs`` of nova's update_available_resource, a minute apart;
        the UPDATE compute_nodes statements they made that write stats,
        where the report lives. (After a node was saved, nova's resource
        tracker may save it once more, writing updated_at alone: nova's.)
        """
        before = len(self.updates)
        for _ in range(runs):
            self.clock.now += datetime.timedelta(seconds=PERIOD)
            self.compute.manager.update_available_resource(
                nova_context.get_admin_context())
        return sum(' stats=' in statement
                   for statement in self.updates[before:])

    def report(self):
        ctxt = nova_context.get_admin_context()
        cell = nova_objects.HostMapping.get_by_host(ctxt, 'hv1').cell_mapping
        with nova_context.target_cell(ctxt, cell) as cctxt:
            node = nova_objects.ComputeNode.\
                get_first_node_by_host_for_old_compat(cctxt, 'hv1')
        return capabilities.from_stats(node.stats)


class ReportWritesTestCase(_OneCompute):

    def test_an_idle_compute_writes_nothing(self):
        self.periodic_runs(1)  # whatever start-up left to write
        before = len(self.updates)
        self.assertEqual(0, self.periodic_runs(RUNS))
        self.assertEqual([], self.updates[before:])  # nor anything else
        # what the scheduler reads is still the start-up measurement
        self.assertEqual(START, self.report().measured_at)

    def test_a_change_is_written_at_the_next_run_and_only_once(self):
        self.periodic_runs(1)
        self.hv.attestation_status = 200  # Expired (HGS's uint16)
        self.assertEqual(1, self.periodic_runs(1))
        self.assertEqual('Expired', self.report().attestation_status)
        self.assertEqual(0, self.periodic_runs(RUNS))
        self.hv.attestation_status = 100  # Passed again
        self.assertEqual(1, self.periodic_runs(RUNS))
        self.assertEqual('Passed', self.report().attestation_status)

    def test_an_unchanged_report_is_republished_every_interval(self):
        self.periodic_runs(1)
        first = self.report().measured_at
        runs = capabilities.REPUBLISH_INTERVAL // PERIOD
        # one write in REPUBLISH_INTERVAL of periodic runs, not one per run
        self.assertEqual(1, self.periodic_runs(runs))
        self.assertEqual(
            first + datetime.timedelta(seconds=capabilities.
                                       REPUBLISH_INTERVAL),
            self.report().measured_at)

    def test_without_the_vtpm_report_nova_writes_nothing_either(self):
        """The baseline: nova's own stats of an idle compute do not change
        between runs."""
        self.useFixture(fixtures.MonkeyPatch(
            'tools.simcloud.driver.FakeHyperVDriver.get_available_resource',
            nova_fake.MediumFakeDriver.get_available_resource))
        self.periodic_runs(1)
        self.assertEqual(0, self.periodic_runs(RUNS))


class IdleHostSchedulingTestCase(_OneCompute):
    """The scheduler's side of an idle compute's report: older than
    max_report_age, fresh while nova sees the compute up."""

    def setUp(self):
        super().setUp()
        # the scheduler's clock is the real one: the report is 5 minutes
        # old, older than max_report_age (60 s here), within the band
        self.flags(max_report_age=60, group='vtpm_filter')
        self.clock.now = timeutils.utcnow(with_timezone=True) - \
            datetime.timedelta(seconds=300)
        self.periodic_runs(1)  # measured, and written: a new time
        self.assertEqual(0, self.periodic_runs(3))
        self.image = self.create_image(
            hw_machine_type=constants.MACHINE_TYPE_GEN2, os_vtpm='required')

    def test_an_idle_hosts_report_is_fresh_while_its_compute_is_up(self):
        # a vTPM without keys on a guarded host: a key protector for its
        # fabric, which needs an attested host with a fresh report
        report = self.report()
        self.assertGreater(timeutils.utcnow(with_timezone=True)
                           - report.measured_at,
                           datetime.timedelta(seconds=60))
        server = self.boot(self.create_flavor(), self.image)
        self.assertEqual('hv1', self.host_of(server))
        # its compute goes: nova's ComputeFilter refuses it, whatever the
        # report says
        self.compute.stop()
        (service,) = self.admin_api.get_services(host='hv1',
                                                 binary='nova-compute')
        self.admin_api.put_service_force_down(service['id'], True)
        server = self.boot(self.create_flavor(), self.image,
                           expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
