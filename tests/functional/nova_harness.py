# SPDX-License-Identifier: Apache-2.0
"""nova's in-process services for our functional tests: shims and a base.

Importing this module prepares nova's functional harness for pytest
(/work/shared/notes/nova-functional/REPORT.md has the why of each shim):

* native threads, not eventlet (``OS_NOVA_DISABLE_EVENTLET_PATCHING``), set
  before nova is imported;
* ``[wsgi] api_paste_config`` pointed at the file a wheel install ships
  (``<sys.prefix>/etc/nova/api-paste.ini``);
* ``nova.test.TestCase._clear_attrs`` keeps the test method attribute that
  pytest deletes itself.

``VTPMServicesTestCase`` then runs real nova-api, conductor, scheduler (with
VTPMFilter) and placement, and starts computes whose driver reports the
capability each test gives per host (``CapabilityFakeDriver``). The compute
integration tests subclass both: set ``driver_class`` or override
``make_driver``.
"""

import datetime
import os
import sys

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')
if os.path.exists(_PASTE):
    # OS_<GROUP>__<OPT> beats the ConfFixture's set_default.
    os.environ.setdefault('OS_WSGI__API_PASTE_CONFIG', _PASTE)

# Monkey patching (or the lack of it) is decided by this import.
import nova.tests.functional  # noqa: E402,F401,I100
from nova import context as nova_context  # noqa: E402
from nova import objects as nova_objects  # noqa: E402
from nova import test  # noqa: E402
from nova.api.validation.extra_specs import (  # noqa: E402
    validators as es_validators)
from nova.tests.functional import integrated_helpers  # noqa: E402
from nova.virt import fake  # noqa: E402
from oslo_utils import timeutils  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402
import fixtures  # noqa: E402

from vtpm_core import capabilities  # noqa: E402
from vtpm_core import constants  # noqa: E402
from vtpm_core import objects as vtpm_objects  # noqa: E402
from vtpm_filters import validators as vtpm_validators  # noqa: E402


def _clear_attrs(self):
    # nova deletes every public attribute at cleanup; pytest (>= 8) sets the
    # test method's name as one and deletes it afterwards itself.
    keep = {'id', getattr(self, '_testMethodName', None)}
    for key in [k for k in self.__dict__ if k[0] != '_' and k not in keep]:
        del self.__dict__[key]


test.TestCase._clear_attrs = _clear_attrs

# Our filters added to nova's defaults, loaded through vtpm_filters.all_filters
# exactly as an operator configures them.
AVAILABLE_FILTERS = ['nova.scheduler.filters.all_filters',
                     'vtpm_filters.all_filters']


def host_capabilities(*, vtpm_supported=True, guarded=False,
                      attestation_status='NotConfigured',
                      attestation_mode=None, fabric_id=None,
                      age=0, **extra):
    """A HostCapabilities report measured ``age`` seconds ago."""
    measured_at = (timeutils.utcnow(with_timezone=True) -
                   datetime.timedelta(seconds=age))
    return vtpm_objects.HostCapabilities(
        vtpm_supported=vtpm_supported, guarded=guarded,
        attestation_status=attestation_status,
        attestation_mode=attestation_mode, fabric_id=fabric_id,
        measured_at=measured_at, **extra)


def attested_host(fabric_id, age=0):
    """A guarded host that HGS attested, in ``fabric_id``."""
    return host_capabilities(guarded=True, attestation_status='Passed',
                             attestation_mode='TpmTrustedAttestation',
                             fabric_id=fabric_id, age=age)


class CapabilityFakeDriver(fake.MediumFakeDriver):
    """A fake compute that reports what ``reports[its host]`` says.

    A value is a ``HostCapabilities`` (published as ``to_stats`` and as
    placement traits), a plain stats dict (published verbatim, for
    unreadable reports), or absent (no report). Tests change the mapping and
    run nova's periodic task to publish a change.
    """

    def __init__(self, virtapi, reports=None):
        super().__init__(virtapi)
        self.reports = reports if reports is not None else {}

    def vtpm_report(self):
        return self.reports.get(self._host)

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        report = self.vtpm_report()
        if isinstance(report, vtpm_objects.HostCapabilities):
            stats = capabilities.to_stats(report)
        else:
            stats = dict(report or {})
        resources['stats'] = dict(resources.get('stats') or {}, **stats)
        return resources

    def update_provider_tree(self, provider_tree, nodename, allocations=None):
        super().update_provider_tree(provider_tree, nodename, allocations)
        report = self.vtpm_report()
        wanted = capabilities.traits(
            report if isinstance(report, vtpm_objects.HostCapabilities)
            else None)
        current = provider_tree.data(nodename).traits
        stale = capabilities.managed_traits(current) - wanted
        if stale:
            provider_tree.remove_traits(nodename, *stale)
        if wanted:
            provider_tree.add_traits(nodename, *wanted)


class VTPMServicesTestCase(integrated_helpers.ProviderUsageBaseTestCase):
    """nova-api, conductor, scheduler with VTPMFilter, placement; no computes.

    Start computes with ``start_hosts({'host1': report, ...})``.
    """

    # nova imports 'nova.virt.' + compute_driver, so our drivers come in
    # through make_driver() instead (see setUp).
    compute_driver = 'fake.MediumFakeDriver'
    driver_class = CapabilityFakeDriver
    # Scheduler filters on top of nova's defaults.
    extra_filters = ('VTPMFilter',)

    def setUp(self):
        # host -> report, read by every driver this test starts.
        self.host_reports = {}
        # HostManager loads filters when the scheduler starts, so before
        # super().setUp(); the ConfFixture undoes these overrides.
        self.flags(available_filters=AVAILABLE_FILTERS,
                   enabled_filters=(list(self._default_filters()) +
                                    list(self.extra_filters)),
                   group='filter_scheduler')
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.driver.load_compute_driver',
            lambda virtapi, compute_driver=None: self.make_driver(virtapi)))
        super().setUp()
        self.assert_validator_loaded()

    @staticmethod
    def _default_filters():
        from nova.conf import scheduler as scheduler_conf
        for opt in scheduler_conf.filter_scheduler_opts:
            if opt.name == 'enabled_filters':
                return opt.default
        raise LookupError('enabled_filters')

    def make_driver(self, virtapi):
        """The driver of each compute this test starts (hook)."""
        return self.driver_class(virtapi, reports=self.host_reports)

    def assert_validator_loaded(self):
        """nova-api found os:vtpm through our entry point, unpatched."""
        loaded = es_validators.VALIDATORS.get(constants.FLAVOR_VTPM)
        self.assertIs(
            vtpm_validators.EXTRA_SPEC_VALIDATORS[0], loaded,
            'nova-api did not load vtpm_filters.validators through the '
            'nova.api.extra_spec_validators entry point; install the '
            'project (pip install -e .) in this environment')

    # --- hosts ----------------------------------------------------------

    def start_hosts(self, reports):
        """Start one compute per host; ``reports`` maps host -> report."""
        self.host_reports.update(reports)
        for host in reports:
            self._start_compute(host)

    def set_report(self, host, report):
        """Change a host's report; publish it with refresh_reports()."""
        if report is None:
            self.host_reports.pop(host, None)
        else:
            self.host_reports[host] = report

    def refresh_reports(self):
        """nova's update_available_resource periodic task, on every host."""
        # raise_on_error would trip over any earlier traceback in the log,
        # such as an expected NoValidHost; callers check the outcome.
        self._run_periodics()

    # --- flavors, images, servers -----------------------------------------

    def create_flavor(self, vtpm=None, **extra_specs):
        if vtpm is not None:
            extra_specs[constants.FLAVOR_VTPM] = vtpm
        return self._create_flavor(extra_spec=extra_specs or None)

    def create_image(self, **properties):
        """A Glance image (nova's fixture) with arbitrary properties."""
        image_id = uuidutils.generate_uuid()
        self.glance.create(None, {
            'id': image_id, 'name': 'vtpm-%s' % image_id[:8],
            'status': 'active', 'container_format': 'bare',
            'disk_format': 'raw', 'size': 1024, 'min_ram': 0, 'min_disk': 0,
            'visibility': 'public', 'properties': properties})
        return image_id

    def boot(self, flavor_id, image_id=None, expected_state='ACTIVE'):
        return self._create_server(
            flavor_id=flavor_id, image_uuid=image_id, networks='none',
            expected_state=expected_state)

    @staticmethod
    def host_of(server):
        return server['OS-EXT-SRV-ATTR:host']

    # --- the cell database ------------------------------------------------

    def instance_context(self, instance_uuid):
        """An admin context targeted at the instance's cell."""
        ctxt = nova_context.get_admin_context()
        mapping = nova_objects.InstanceMapping.get_by_instance_uuid(
            ctxt, instance_uuid)
        return nova_context.target_cell(ctxt, mapping.cell_mapping)

    def set_system_metadata(self, instance_uuid, **items):
        """Write instance system metadata as the compute side does."""
        with self.instance_context(instance_uuid) as cctxt:
            instance = nova_objects.Instance.get_by_uuid(
                cctxt, instance_uuid, expected_attrs=['system_metadata'])
            instance.system_metadata.update(items)
            instance.save()
