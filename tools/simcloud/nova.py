# SPDX-License-Identifier: Apache-2.0
"""nova's own services in this process, with VTPMFilter (tests, the demo).

nova builds its in-process cloud (nova-api through wsgi-intercept, conductor,
scheduler, placement, computes) from its test machinery: ``nova.test``'s
``TestCase`` and the fixtures of ``nova.tests.fixtures``, several of which
take the test case itself to stub and clean up with. ``Services`` is that
machinery set up for us: real nova-api (microversion latest), conductor,
scheduler with ``VTPMFilter`` configured by the install guide's
``nova-scheduler-conf`` block (``tools.simcloud.guide``), and placement,
with computes whose driver ``make_driver`` gives, configured by its
``nova-compute-conf`` block when the cloud says how (``compute_conf``).
Images live in nova's ``GlanceFixture`` (``create_image``), which nova-api,
the computes and ``VTPMFilter`` all read through nova's image API, as in
any deployer's functional tests. The functional tests are ``Services``
test cases; a program (the demo) runs the same set-up and clean-up around
a ``with`` block::

    with nova.running(cloud.make_driver) as services:
        services.start_compute('hv1')
        services.boot(services.create_flavor(), services.create_image(...))
"""

from __future__ import annotations

import contextlib

import fixtures
from keystoneauth1 import loading as ks_loading
from nova.api.validation.extra_specs import validators as es_validators
import nova.conf
from nova import context as nova_context
from nova import objects as nova_objects
from nova.tests.functional import integrated_helpers
from oslo_utils import uuidutils

from tools.simcloud import guide
from vtpm_core import constants
from vtpm_filters import conf as filter_conf
from vtpm_filters import validators as vtpm_validators
from vtpm_hyperv.barbican import conf as barbican_conf
from vtpm_hyperv import conf as hv_conf

CONF = nova.conf.CONF


class Services(integrated_helpers.ProviderUsageBaseTestCase):
    """nova-api, conductor, scheduler with VTPMFilter, placement; no computes.

    ``make_driver(virtapi)`` gives the driver of each compute started with
    ``start_compute``; nova's ``InstanceHelperMixin`` methods
    (``_create_server``, ``_migrate_server``, ...) drive the API.
    """

    # nova imports 'nova.virt.' + compute_driver, so our drivers come in
    # through make_driver() instead (see setUp).
    compute_driver = 'fake.MediumFakeDriver'
    # What the computes' nova.conf has beyond the guide's, as
    # guide.apply's ``replace``: {(group, option): (the guide's, ours)};
    # None: the guide's compute block is not applied (fake computes).
    compute_conf = None

    def setUp(self):
        # HostManager loads filters when the scheduler starts, so before
        # super().setUp(); the ConfFixture undoes these overrides.
        filter_conf.register_opts(CONF)
        # block name -> the guide's options it set, with their lines
        self.from_guide = {guide.SCHEDULER: guide.apply(
            self._set, guide.SCHEDULER, CONF)}
        if self.compute_conf is not None:
            hv_conf.register_opts(CONF)
            barbican_conf.register_opts(CONF)
            # the driver comes from make_driver, composed as the guide's is
            self.from_guide[guide.COMPUTE] = guide.apply(
                self._set, guide.COMPUTE, CONF, replace=self.compute_conf,
                skip=[('DEFAULT', 'compute_driver')])
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.driver.load_compute_driver',
            lambda virtapi, compute_driver=None: self.make_driver(virtapi)))
        super().setUp()
        self.assert_validator_loaded()

    def _set(self, group, name, value):
        if name == 'auth_type':
            # what keystoneauth does when it reads auth_type from a file
            opts = ks_loading.get_auth_plugin_conf_options(value)
            CONF.register_opts(opts, group=group)
            # Run after the ConfFixture's reset (cleanups run last in, first
            # out): left registered, the plugin's auth_url would be required
            # in nova's next parse of CONF.
            self.addCleanup(CONF.unregister_opts, opts, group=group)
        self.flags(**{name: value, 'group': group})

    def make_driver(self, virtapi):
        """The driver of each compute this cloud starts (a hook)."""
        raise NotImplementedError('a Services cloud needs make_driver')

    def assert_validator_loaded(self):
        """nova-api found os:vtpm through our entry point, unpatched."""
        loaded = es_validators.VALIDATORS.get(constants.FLAVOR_VTPM)
        self.assertIs(
            vtpm_validators.EXTRA_SPEC_VALIDATORS[0], loaded,
            'nova-api did not load vtpm_filters.validators through the '
            'nova.api.extra_spec_validators entry point; install the '
            'project (pip install -e .) in this environment')

    # --- computes ---------------------------------------------------------

    def start_compute(self, host):
        """Start nova-compute ``host``, whose driver ``make_driver`` gives."""
        return self._start_compute(host)

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

    def boot(self, flavor_id, image_id=None, expected_state='ACTIVE',
             **kwargs):
        return self._create_server(
            flavor_id=flavor_id, image_uuid=image_id, networks='none',
            expected_state=expected_state, **kwargs)

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

    def latest_fault(self, server):
        """The message of the server's latest instance fault, or None."""
        with self.instance_context(server['id']) as cctxt:
            faults = nova_objects.InstanceFaultList.\
                get_latest_by_instance_uuids(cctxt, [server['id']])
        return faults[0].message if faults else None

    def set_system_metadata(self, instance_uuid, **items):
        """Write instance system metadata as the compute side does."""
        with self.instance_context(instance_uuid) as cctxt:
            instance = nova_objects.Instance.get_by_uuid(
                cctxt, instance_uuid, expected_attrs=['system_metadata'])
            instance.system_metadata.update(items)
            instance.save()


class _Program(Services):
    """``Services`` set up for a program rather than a test run."""

    def __init__(self, make_driver, compute_conf):
        super().__init__()
        self._make_driver = make_driver
        self.compute_conf = compute_conf

    def make_driver(self, virtapi):
        return self._make_driver(virtapi)

    def runTest(self):  # noqa: N802 - unittest's name for the default test
        """Nothing: the program runs inside ``running()``'s block."""


@contextlib.contextmanager
def running(make_driver, *, project_id=None, compute_conf=None):
    """nova's services in this process for the ``with`` block; yields them.

    The ``Services`` set-up runs on entry and its clean-up on exit, even
    when the block raises: every service stops, every fixture (nova's
    configuration, databases, placement, the API's interception) is undone.

    :param make_driver: ``virtapi -> ComputeDriver`` for each compute.
    :param project_id: the project the API acts in (nova's in-process API
        has no Keystone; servers belong to this project).
    :param compute_conf: ``Services.compute_conf``: the computes then run
        with the install guide's nova.conf.
    """
    services = _Program(make_driver, compute_conf)
    try:
        services.setUp()
        if project_id is not None:
            services.api.project_id = project_id
        yield services
    finally:
        clean = services.doCleanups()
    if not clean:
        raise RuntimeError("nova's in-process services did not stop cleanly; "
                           'see their log')
