# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter inside nova's real select_destinations, per filter.

    .venv/bin/python benchmarks/bench_select_destinations.py [--nodes 1000]

Real: nova's ``SchedulerManager.select_destinations`` and everything under
it: the request filters, ``HostManager`` loading the compute nodes and
services from a cell database and building a HostState per node per
request, nova's filter handler calling each enabled filter's
``filter_all``, the weighers; the API database (cell and host mappings),
the cell databases (1,000 ``ComputeNode`` and ``Service`` rows, written
through nova's objects, stats as the compute writes them), all SQLite
through nova's own ``Database`` fixtures; nova's image read
(``nova.image.glance.API().get``: python-glanceclient fetches the image
schema, then the image) over HTTP from a local server that answers as
Glance's v2 API (``tools.glance_v2``), where VTPMFilter reads each image
once per ``image_cache_ttl``.

Stubbed: placement, which this does not measure: allocation candidates are
every node (the report client's ``get_allocation_candidates``), and the
allocation claim succeeds.

Each request changes every node's report in the database first (a new
measured_at, as a compute writes when its report changes), so VTPMFilter
reads changed reports; ``--distinct`` gives every node a fabric of its own.
Every filter's passed hosts are checked in every request against those
that must pass (exit status 1 otherwise); a report is at most 60 s old
when read, so none ages past max_report_age during the run. Logging is at
INFO, as with nova.conf's ``debug = false``. Per filter: its CPU time per
host, as the handler called it, and the ratio to AllHostsFilter in the
same requests. Per request, VTPMFilter's wall
time (it waits for Glance): the request that read the image, the requests
that found it kept, and their mean, the read amortised over the requests
of one image within its cache lifetime, beside AllHostsFilter's.
"""

import argparse
import collections
import datetime
import importlib
import logging
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# before nova: the process prepared for nova's test fixtures
importlib.import_module('tools.simcloud.process').prepare()

import fixtures  # noqa: E402
import nova.conf  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova.db.main import api as main_db  # noqa: E402
from nova.image import glance  # noqa: E402
from nova import objects as nova_objects  # noqa: E402
from nova.scheduler import manager  # noqa: E402
from nova import test  # noqa: E402
from oslo_serialization import jsonutils  # noqa: E402
from oslo_utils import timeutils  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402
import sqlalchemy  # noqa: E402

from tools import glance_v2  # noqa: E402
from vtpm_core import capabilities  # noqa: E402
from vtpm_core import objects  # noqa: E402
from vtpm_filters import conf as filter_conf  # noqa: E402

FILTERS = ['AllHostsFilter', 'ComputeFilter', 'ComputeCapabilitiesFilter',
           'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
           'ServerGroupAffinityFilter', 'VTPMFilter']
KEYS = ('8f14e45f-ceea-467a-9575-7a6c8c2b3a11,'
        '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2')
IMAGES = {
    'keys': {'hw_machine_type': 'hyperv-gen2', 'os_vtpm': 'required',
             'os_vtpm_keys': KEYS, 'hw_architecture': 'x86_64',
             'img_hv_type': 'hyperv', 'hw_vm_mode': 'hvm'},
    # read once per image_cache_ttl: nova keeps os_vtpm out of the spec
    'no vTPM, Generation 2': {'hw_machine_type': 'hyperv-gen2',
                              'hw_architecture': 'x86_64',
                              'img_hv_type': 'hyperv', 'hw_vm_mode': 'hvm'},
    # nothing read
    'no vTPM': {'hw_architecture': 'x86_64', 'img_hv_type': 'hyperv',
                'hw_vm_mode': 'hvm'},
}


# Node kinds (node number mod 10) that pass a keyed request: all but 1 (no
# vTPM), 2 (not guarded), 3 (attestation Expired), 4 (a report an hour
# old: older than max_report_age plus REPUBLISH_INTERVAL).
KEYED_PASS_KINDS = frozenset((0, 5, 6, 7, 8, 9))
# Whether node i has a fabric of its own (--distinct), else one of seven.
DISTINCT = {'fabrics': False}


def expected_passes(nodes, name, image):
    """How many nodes a filter must pass: VTPMFilter for the keyed image
    the KEYED_PASS_KINDS, every filter before it and for other images all
    (ComputeFilter: every service is up for the run)."""
    if name == 'VTPMFilter' and image == 'keys':
        return sum(1 for i in range(nodes) if i % 10 in KEYED_PASS_KINDS)
    return nodes


def report(i, measured_at):
    """Node i's report: six in ten pass a keyed request."""
    kind = i % 10
    return objects.HostCapabilities(
        vtpm_supported=kind != 1, guarded=kind != 2,
        attestation_status='Expired' if kind == 3 else 'Passed',
        attestation_mode='TpmTrustedAttestation',
        fabric_id='fabric-%d' % (i if DISTINCT['fabrics'] else i % 7),
        measured_at=measured_at - datetime.timedelta(
            seconds=3600 if kind == 4 else i % 60),
        os_version='10.0.20348', local_key_protector=False)


def node_stats(i, measured_at):
    stats = {'num_instances': '0', 'io_workload': '0', 'failed_builds': '0'}
    stats.update(capabilities.to_stats(report(i, measured_at)))
    return stats


class Cloud(test.TestCase):
    """nova's databases and scheduler, set up as nova's tests set them up;
    run as a program (setUp, then the benchmark, then doCleanups)."""

    def __init__(self, nodes):
        super().__init__()
        self.nodes = nodes

    def runTest(self):  # noqa: N802 - unittest's name for the default test
        """Nothing: main() drives the cloud between setUp and cleanup."""

    def setUp(self):
        super().setUp()
        self.flags(available_filters=['nova.scheduler.filters.all_filters',
                                      'vtpm_filters.all_filters'],
                   enabled_filters=FILTERS, group='filter_scheduler')
        # the services stay up, and the filter keeps the images it read,
        # however long the run takes: on a loaded machine a request may
        # take longer than image_cache_ttl (60 s), and the kept requests
        # would read Glance again
        self.flags(service_down_time=24 * 3600)
        filter_conf.register_opts(nova.conf.CONF)
        self.flags(image_cache_ttl=24 * 3600, group='vtpm_filter')
        # Glance over HTTP, read by nova's own client
        self.images = {}
        glance = glance_v2.GlanceV2(self.images.get).start()
        self.addCleanup(glance.stop)
        self.flags(api_servers=[glance.url], group='glance')
        self.context = nova_context.get_admin_context()
        # as keystonemiddleware gives nova-api's requests: nova's Glance
        # client sends the request's token
        self.context.auth_token = 'bench-token'  # noqa: S105
        self.cell = self.cell_mappings['cell1']
        now = timeutils.utcnow(with_timezone=True)
        with nova_context.target_cell(self.context, self.cell) as cctxt:
            self.node_ids = [self._add_node(cctxt, i, now)
                             for i in range(self.nodes)]
        self.node_uuids = [self._uuid(i) for i in range(self.nodes)]
        self.placement = self._stub_placement()
        self.manager = manager.SchedulerManager()
        self.timings = collections.defaultdict(list)
        for filt in self.manager.host_manager.enabled_filters:
            self._time(filt)
        # logging as in production (nova.conf debug = false): nova's test
        # fixtures format every debug message
        logging.getLogger().setLevel(logging.INFO)

    @staticmethod
    def _uuid(i):
        return '00000000-0000-4000-8000-%012d' % i

    def _add_node(self, cctxt, i, now):
        name = 'host%04d' % i
        service = nova_objects.Service(cctxt, host=name,
                                       binary='nova-compute',
                                       topic='compute', report_count=1)
        service.create()
        node = nova_objects.ComputeNode(
            cctxt, uuid=self._uuid(i), host=name, hypervisor_hostname=name,
            service_id=service.id, vcpus=64, memory_mb=524288, local_gb=4000,
            vcpus_used=0, memory_mb_used=0, local_gb_used=0,
            free_ram_mb=524288, free_disk_gb=4000, current_workload=0,
            running_vms=0, disk_available_least=4000,
            hypervisor_type='hyperv', hypervisor_version=10000,
            cpu_info='{}', host_ip='10.0.%d.%d' % (i // 250, i % 250 + 1),
            supported_hv_specs=[nova_objects.HVSpec(
                arch='x86_64', hv_type='hyperv', vm_mode='hvm')],
            stats=node_stats(i, now), cpu_allocation_ratio=16.0,
            ram_allocation_ratio=1.5, disk_allocation_ratio=1.0)
        node.create()
        nova_objects.HostMapping(self.context, host=name,
                                 cell_mapping=self.cell).create()
        return node.id

    def _stub_placement(self):
        """Allocation candidates: every node; claims succeed."""
        resources = {'VCPU': 1, 'MEMORY_MB': 512, 'DISK_GB': 1}
        alloc_reqs = [{'allocations': {u: {'resources': resources}},
                       'mappings': {}} for u in self.node_uuids]
        summaries = {u: {'resources': {}, 'traits': [],
                         'parent_provider_uuid': None,
                         'root_provider_uuid': u} for u in self.node_uuids}
        self.useFixture(fixtures.MockPatch(
            'nova.scheduler.client.report.SchedulerReportClient.'
            'get_allocation_candidates',
            return_value=(alloc_reqs, summaries, '1.36')))
        self.useFixture(fixtures.MockPatch(
            'nova.scheduler.utils.claim_resources', return_value=True))
        return summaries

    def _time(self, filt):
        """Time filt as nova's handler calls it: filter_all, then list().

        Per call: CPU seconds per host (on a shared machine, the time other
        processes hold the CPU is not the filter's), wall seconds (a
        filter that waits for Glance waits in wall time), hosts passed.
        """
        name = type(filt).__name__
        filter_all = filt.filter_all

        def timed(objs, spec_obj):
            wall, cpu = time.perf_counter(), time.thread_time()
            result = list(filter_all(objs, spec_obj))
            self.timings[name].append(Timing(
                (time.thread_time() - cpu) / len(objs),
                time.perf_counter() - wall, len(result)))
            return result

        filt.filter_all = timed

    def new_reports(self):
        """Every node's periodic update: a new measured_at in its stats."""
        now = timeutils.utcnow(with_timezone=True)
        with nova_context.target_cell(self.context, self.cell) as cctxt:
            for i, node_id in enumerate(self.node_ids):
                values = {'stats': jsonutils.dumps(node_stats(i, now))}
                for attempt in range(100):
                    try:
                        main_db.compute_node_update(cctxt, node_id, values)
                        break
                    except sqlalchemy.exc.OperationalError:
                        # the scheduler's start-up reads the database in a
                        # thread of its own for a while (SQLite: locked)
                        time.sleep(0.1)

    def image(self, properties):
        image_id = uuidutils.generate_uuid()
        self.images[image_id] = glance_v2.image_record(image_id, properties)
        return image_id

    def request_spec(self, image_id):
        """A boot's RequestSpec, as the conductor builds it."""
        flavor = nova_objects.Flavor.get_by_name(self.context, 'm1.small')
        image = nova_objects.ImageMeta.from_image_ref(
            self.context, glance.API(), image_id)
        return nova_objects.RequestSpec.from_components(
            self.context, uuidutils.generate_uuid(), image, flavor, None,
            None, {}, None, None, project_id='p', user_id='u')

    def select(self, spec):
        """One select_destinations for one instance; the host chosen."""
        selections = self.manager.select_destinations(
            self.context, spec_obj=spec,
            instance_uuids=[spec.instance_uuid], return_objects=True,
            return_alternates=True)
        return selections[0][0].service_host


# One filter_all call: CPU seconds per host, wall seconds, hosts passed.
Timing = collections.namedtuple('Timing', 'cpu_per_host wall passed')


def print_filters(cloud, image):
    """Per filter, CPU per host; VTPMFilter's wall time per request. The
    filters whose passed hosts, in any request, were not the expected
    ones."""
    timings = cloud.timings
    wrong = []
    baseline = statistics.median(t.cpu_per_host
                                 for t in timings['AllHostsFilter'])
    print('%-32s %9s %7s %8s' % ('filter (nova\'s order)', 'us/host',
                                 'ratio', 'passed'))
    for filt in cloud.manager.host_manager.enabled_filters:
        name = type(filt).__name__
        samples = timings[name]
        us = statistics.median(t.cpu_per_host for t in samples) * 1e6
        passed = {t.passed for t in samples}
        expected = expected_passes(cloud.nodes, name, image)
        if passed != {expected}:
            wrong.append((image, name, passed, expected))
        print('%-32s %9.3f %7.2f %8s' % (
            name, us, us / (baseline * 1e6),
            ','.join(map(str, sorted(passed)))
            + ('' if passed == {expected} else ' WRONG')))
    base = statistics.median(t.wall for t in timings['AllHostsFilter'])
    first, *kept = [t.wall for t in timings['VTPMFilter']]
    mean = statistics.mean([first] + kept)
    print('VTPMFilter per request: first %.3f ms, kept %s ms, mean %.3f ms; '
          'AllHostsFilter %.3f ms; ratio %.2f' % (
              first * 1e3,
              '%.3f' % (statistics.median(kept) * 1e3) if kept else '-',
              mean * 1e3, base * 1e3, mean / base))
    return wrong


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nodes', type=int, default=1000)
    parser.add_argument('--requests', type=int, default=5)
    parser.add_argument('--distinct', action='store_true',
                        help='a fabric per node (no two nodes share a '
                             'facts string) rather than seven fabrics')
    args = parser.parse_args()
    DISTINCT['fabrics'] = args.distinct
    wrong = []
    cloud = Cloud(args.nodes)
    started = time.perf_counter()
    cloud.setUp()
    try:
        setup = time.perf_counter() - started
        print('nova select_destinations over %d compute nodes in SQLite '
              '(set up in %.0f s); placement stubbed; %d requests per '
              'image, every report changed before each' % (
                  args.nodes, setup, args.requests))
        print('nodes: ten kinds (node number mod 10; six pass a keyed '
              'request) in %s, measured over the last 60 s' % (
                  'a fabric each: no two share a facts string, the worst '
                  'case' if args.distinct else 'seven fabrics: nodes of '
                  'one kind and fabric that reported in the same second '
                  'share a facts string'))
        for kind, properties in IMAGES.items():
            image_id = cloud.image(properties)
            cloud.timings.clear()
            totals = []
            for _ in range(args.requests):
                spec = cloud.request_spec(image_id)
                cloud.new_reports()
                start = time.perf_counter()
                cloud.select(spec)
                totals.append(time.perf_counter() - start)
            print('\nimage: %s; select_destinations median %.0f ms' % (
                kind, statistics.median(totals) * 1e3))
            wrong += print_filters(cloud, kind)
        print('\nus/host: median over the requests of the filter\'s CPU '
              'time in the handler over the hosts it was given; ratio: over '
              'AllHostsFilter\'s. Per request: wall time (with the process\'s '
              'other threads); first: the request that read the image '
              'through nova\'s API; kept: the median of the others; mean: '
              'over the %d requests of the image, all within one '
              'image_cache_ttl, the read amortised; AllHostsFilter: its '
              'median; ratio: mean over it; passed: the hosts the filter '
              'passed in each request, checked against those that must '
              'pass' % args.requests)
        for image, name, passed, expected in wrong:
            print('WRONG: %s passed %s hosts for image %s, not %d' % (
                name, sorted(passed), image, expected))
    finally:
        cloud.doCleanups()
    return 1 if wrong else 0


if __name__ == '__main__':
    sys.exit(main())
