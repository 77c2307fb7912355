# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter: pass the hosts whose vTPM capability report fits the request.

What a host needs is decided by ``vtpm_core.capabilities.compile_check``,
the rules ``satisfies`` applies. What this module adds is the cost model:
nova calls ``filter_all`` once per request with every candidate host, built
anew from the database, so the filter

* evaluates the request once: the flavor's extra specs and the image's
  machine type from the request spec; only for a Generation 2 image that
  the flavor does not settle, the image's vTPM properties, read from
  Glance at most once per image per ``image_cache_ttl``; on a move one cell
  database read for the fabrics the instance's KeyProtector names; and the
  check compiled from them;
* reads each host's report from its flat ``vtpm:facts`` entry: a dict read
  and, once per request for each distinct string, one split
  (``capabilities.compile_facts_check``); the check runs once per request
  for each distinct combination of what it reads, so hosts of a fabric of
  their own cost about what hosts that share a report do, changed or not,
  and nothing is kept per host. An older compute's
  ``vtpm:capabilities`` entry is parsed once per change of that string
  while its host is among those of the last request;
* refuses a host whose report is older than ``max_report_age`` only if it
  is also older than ``capabilities.REPUBLISH_INTERVAL`` past that, or its
  compute is down: computes republish an unchanged report that often, and
  nova's ``ComputeFilter`` (or, without it, this filter through nova's
  servicegroup API) tells a dead compute.
"""

from __future__ import annotations

import collections
import threading
import types
import weakref

import nova.conf
from nova import context as nova_context
from nova import exception as nova_exception
from nova.image import glance
from nova import objects
from nova.objects import base as nova_objects_base
from nova.scheduler import filters
from nova import servicegroup
from oslo_config import cfg
from oslo_log import log
from oslo_utils import timeutils

from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import policy
from vtpm_core import sysmeta
from vtpm_filters import conf as vtpm_conf
from vtpm_filters import glance_images
from vtpm_filters import image_cache

LOG = log.getLogger(__name__)


# One request's compiled checks (of a View, of a facts string), and the
# instance it is for (for the logs).
_Check = collections.namedtuple('_Check',
                                ('passes', 'decide', 'instance_uuid'))


class VTPMFilter(filters.BaseHostFilter):
    """Pass hosts that can give the request its vTPM."""

    # A rebuild with a new image may ask for a vTPM, or keys, that the
    # instance's current host cannot give.
    RUN_ON_REBUILD = True
    # A host's capability does not change as the instances of one request
    # consume it, so the later instances of a multi-create need no rerun.
    run_filter_once_per_request = True

    def __init__(self, conf=None, image_api=None):
        # nova instantiates filters with no arguments; tests pass seams.
        self._conf = conf if conf is not None else nova.conf.CONF
        vtpm_conf.register_opts(self._conf)
        opts = self._conf.vtpm_filter
        # For compute nodes that publish no readable facts (older computes):
        # (host, nodename) -> (raw vtpm:capabilities string, its View), for
        # the hosts of the last request: replaced, not grown, per request,
        # so a report is parsed once per change while its host is asked
        # about. Every HostState has a host and a nodename; not every one
        # a uuid.
        self._versioned = {}
        # A report older than max_report_age passes while its compute is up
        # (capabilities.WHILE_UP): nova's ComputeFilter refuses a host whose
        # compute is down for every request; without it, this filter asks
        # nova's servicegroup API itself, for those hosts only.
        self._own_liveness = not _compute_filter_enabled(self._conf)
        self._servicegroup = None  # made when first needed
        # host_passes callers: the last request spec per thread and its check.
        self._last = threading.local()
        # nova's image API: nova's [glance] configuration, and its
        # GlanceFixture in nova's functional tests
        self._image_api = image_api if image_api is not None else \
            glance.API()
        self._images = image_cache.ImageCache(ttl=opts.image_cache_ttl,
                                              max_size=opts.image_cache_size)

    # --- nova's entry points -------------------------------------------------

    def filter_all(self, filter_obj_list, spec_obj):
        check = self._check(spec_obj)
        if check is None:
            return filter_obj_list  # nothing asked of the host
        return self._passing(filter_obj_list, check)

    def host_passes(self, host_state, spec_obj):
        last = self._last
        ref = getattr(last, 'spec', None)
        if ref is None or ref() is not spec_obj:
            last.check = self._check(spec_obj)
            last.spec = weakref.ref(spec_obj)
        check = last.check
        return check is None or bool(self._passing([host_state], check))

    # --- per host ----------------------------------------------------------

    def _passing(self, host_states, check):
        key = capabilities.FACTS_KEY
        debug = LOG.isEnabledFor(log.DEBUG)
        passes, decide, instance_uuid = check
        versioned, self._versioned = self._versioned, {}
        own_liveness = self._own_liveness
        while_up = capabilities.WHILE_UP
        # facts string -> its verdict, for this request: hosts of one
        # profile and fabric that reported in the same second share it
        seen = {}
        passed = []
        for host_state in host_states:
            try:
                facts = host_state.stats[key]
                verdict = seen.get(facts)
                if verdict is None:
                    verdict = seen[facts] = decide(facts)
            except (KeyError, TypeError):  # no facts, stats not a dict,
                verdict = None             # facts not hashable
            if verdict is None:
                verdict = passes(self._versioned_report(host_state,
                                                        versioned))
            if verdict is while_up and own_liveness:
                verdict = self._alive(host_state)
            if verdict.passes:
                passed.append(host_state)
            elif debug:
                LOG.debug('%(host)s (node %(node)s) fails the vTPM request of '
                          'instance %(uuid)s: %(reason)s',
                          {'host': host_state.host,
                           'node': host_state.nodename,
                           'uuid': instance_uuid,
                           'reason': verdict.reason})
        return passed

    def _alive(self, host_state):
        """WHILE_UP if nova sees the host's compute up (nova's servicegroup
        API, as ComputeFilter asks it), else a refusal."""
        if self._servicegroup is None:
            self._servicegroup = servicegroup.API()
        service = getattr(host_state, 'service', None)
        try:
            up = service is not None and \
                self._servicegroup.service_is_up(service)
        except (KeyError, TypeError, AttributeError, ValueError):
            up = False  # no heartbeat to read: fail closed
        return capabilities.WHILE_UP if up else _COMPUTE_DOWN

    def _versioned_report(self, host_state, previous):
        """The View of a host's vtpm:capabilities entry, or None.

        Parsed once per change of the string (``previous``: the last
        request's): an older compute publishes no facts, and its report is
        read as the previous release read it.
        """
        stats = host_state.stats
        # nova's HostState.stats is a dict; anything else reads as no
        # report, which fails closed like an absent one.
        raw = (stats.get(capabilities.STATS_KEY) if isinstance(stats, dict)
               else None)
        node = (host_state.host, host_state.nodename)
        known = previous.get(node)
        if known is None or known[0] != raw:
            known = (raw, capabilities.view(
                capabilities.from_stats({capabilities.STATS_KEY: raw})))
        self._versioned[node] = known
        return known[1]

    # --- per request --------------------------------------------------------

    def _check(self, spec_obj):
        """Return what a host needs for ``spec_obj``, or None for nothing."""
        opts = self._conf.vtpm_filter
        request = self._request(spec_obj, opts)
        fabrics = (self._move_fabrics(spec_obj)
                   if opts.restrict_moves_to_fabrics else None)
        if not (request is not None and request.enabled) and not fabrics:
            return None
        rules = dict(max_report_age=opts.max_report_age,
                     max_clock_skew=opts.max_clock_skew,
                     while_up=capabilities.REPUBLISH_INTERVAL,
                     now=timeutils.utcnow(with_timezone=True),
                     allowed_fabrics=fabrics)
        return _Check(capabilities.compile_check(request, **rules),
                      capabilities.compile_facts_check(request, **rules),
                      _get(spec_obj, 'instance_uuid'))

    def _request(self, spec_obj, opts):
        """The merged VTPMRequest, or None when there is none to enforce."""
        extra_specs = spec_obj.flavor.extra_specs
        image = _get(spec_obj, 'image')
        if policy.settled_without_image(extra_specs, _machine_type(image)):
            return None
        kept = self._kept_image(spec_obj, image) if opts.image_lookup else None
        # Without Glance (image_lookup off or failing) the image allows
        # whatever the flavor asks: os:vtpm=required then needs a vTPM host,
        # and the compute side, which reads every image property, refuses
        # what the flavor could not show.
        outcome = (kept.request(extra_specs) if kept is not None
                   else _build_request(policy.PERMISSIVE_IMAGE, extra_specs))
        if isinstance(outcome, exception.VTPMError):
            # Not hidden behind "No valid host": the compute side aborts the
            # build with a fault that names the problem.
            LOG.info('Instance %(uuid)s has an invalid vTPM request; '
                     'VTPMFilter does not refuse hosts for it, the compute '
                     'side refuses the build: %(error)s',
                     {'uuid': _get(spec_obj, 'instance_uuid'),
                      'error': outcome})
            return None
        return outcome

    def _kept_image(self, spec_obj, image):
        """The image's _KeptImage (kept, or one Glance read), or None.

        Kept for ``image_cache_ttl`` seconds, by image id: whoever asks
        while it is kept gets what the first reader's context read. The
        compute side checks every property again from the instance's own
        copy, so what is kept can at worst place a boot on a host that then
        refuses it.
        """
        image_id = _get(image, 'id') if image is not None else None
        context = getattr(spec_obj, '_context', None)
        if image_id is None or context is None:
            return None
        try:
            return self._images.get(
                image_id, lambda: self._read_image(context, image_id))
        except exception.ImageReadFailed as e:
            LOG.warning('%(error)s; deciding on the flavor alone',
                        {'error': e})
            return None

    def _read_image(self, context, image_id):
        """The image's properties build_request reads, from one read."""
        return _KeptImage(glance_images.read_properties(
            self._image_api, context, image_id))

    def _move_fabrics(self, spec_obj):
        """On a move, the fabrics the instance's KeyProtector names.

        nova's conductor names the instance's cell in the request spec for
        every request about an existing instance (cold migration, resize,
        live migration, evacuation, unshelve, rebuild), never for a first
        boot: that tells a move apart with no database read. The instance's
        system metadata is then one read in that cell; a cross-cell resize
        to a named host is the one case that also reads the instance
        mapping.
        """
        cell = _instance_cell(spec_obj)
        context = getattr(spec_obj, '_context', None)
        if cell is None or context is None:
            return None
        context = context.elevated()
        uuid = spec_obj.instance_uuid
        try:
            if cell is _LOOK_UP:
                cell = objects.InstanceMapping.get_by_instance_uuid(
                    context, uuid).cell_mapping
                if cell is None:
                    return None
            with nova_context.target_cell(context, cell) as cell_context:
                instance = objects.Instance.get_by_uuid(
                    cell_context, uuid, expected_attrs=['system_metadata'])
        except (nova_exception.InstanceNotFound,
                nova_exception.InstanceMappingNotFound):
            return None
        fabrics = frozenset(sysmeta.fabrics(instance.system_metadata))
        if not fabrics:
            return None
        LOG.debug('Instance %(uuid)s moves from host %(source)s; its '
                  'KeyProtector names fabrics %(fabrics)s',
                  {'uuid': uuid, 'source': instance.host,
                   'fabrics': ', '.join(sorted(fabrics))})
        return fabrics


_LOOK_UP = object()
_COMPUTE_DOWN = capabilities.Verdict(
    False, 'capability report older than max_report_age, and nova sees '
    'its compute down')


def _compute_filter_enabled(conf):
    """Whether nova's ComputeFilter runs beside this filter."""
    try:
        return 'ComputeFilter' in conf.filter_scheduler.enabled_filters
    except (AttributeError, cfg.NoSuchOptError):
        return False


def _instance_cell(spec_obj):
    """The cell of an existing instance, _LOOK_UP, or None for a boot."""
    dest = _get(spec_obj, 'requested_destination')
    if dest is None:
        return None
    cell = _get(dest, 'cell')
    if cell is not None:
        return cell
    if _get(dest, 'allow_cross_cell_move') and _get(dest, 'host'):
        return _LOOK_UP
    return None


class _KeptImage:
    """An image's vTPM properties as Glance gave them, and the requests
    they made with the flavors asked so far.

    ``build_request`` reads the flavor's ``constants.FLAVOR_KEYS`` alone, so
    the boots of one image under flavors that agree on them share one
    request: a cached boot builds none.
    """

    __slots__ = ('properties', '_outcomes')

    def __init__(self, properties):
        self.properties = types.MappingProxyType(properties)
        # the flavor's FLAVOR_KEYS values -> VTPMRequest or the VTPMError
        self._outcomes = {}

    def request(self, extra_specs):
        """build_request's VTPMRequest, or the VTPMError it raised."""
        key = tuple(extra_specs.get(k) for k in constants.FLAVOR_KEYS)
        try:
            return self._outcomes[key]
        except KeyError:
            pass
        except TypeError:  # a value nova would not have stored: no memo
            return _build_request(self.properties, extra_specs)
        outcome = self._outcomes[key] = _build_request(self.properties,
                                                       extra_specs)
        return outcome


def _build_request(properties, extra_specs):
    """build_request's VTPMRequest, or the VTPMError it raised."""
    try:
        return policy.build_request(properties, extra_specs)
    except exception.VTPMError as e:
        return e


def _machine_type(image):
    """The image's hw_machine_type as nova keeps it, or None."""
    properties = _get(image, 'properties') if image is not None else None
    return (_get(properties, constants.IMAGE_MACHINE_TYPE)
            if properties is not None else None)


def _get(obj, name):
    """A versioned object's field, or None when it is not set.

    Read from the field's storage, as nova's objects do themselves: on
    every request, ``name in obj`` costs more than the rest of a cached
    boot's decision.
    """
    return getattr(obj, nova_objects_base.get_attrname(name), None)
