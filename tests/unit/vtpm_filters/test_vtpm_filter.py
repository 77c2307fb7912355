# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter as a unit: its decisions, its costs, its logs.

nova's RequestSpec and HostState objects are real; Glance and the cell
database are the filter's collaborators and are faked here (the functional
tests use nova's own services for both).
"""

import contextlib
import datetime
import logging
import subprocess
import sys
from unittest import mock

import hypothesis
from hypothesis import strategies as st
from nova import context as nova_context
from nova import exception as nova_exception
from nova import objects as nova_objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import host_manager
from oslo_config import cfg
from oslo_utils import timeutils
import pytest

from tests import strategies
from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import objects
import vtpm_filters
from vtpm_filters import conf as vtpm_conf
from vtpm_filters import image_cache
from vtpm_filters import vtpm_filter

nova_objects.register_all()

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)
IMAGE_ID = '7b4f8e38-58a1-4a63-9b2e-5d3f1f0c9a11'
INSTANCE = 'c2b3a5d0-43a6-4d7e-8b5f-3f1d2c0b9e77'
KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
LOGGER = vtpm_filter.__name__


@pytest.fixture(autouse=True)
def frozen_time():
    def utcnow(with_timezone=False):
        return NOW if with_timezone else NOW.replace(tzinfo=None)

    with mock.patch.object(timeutils, 'utcnow', side_effect=utcnow):
        yield


class FakeImages:
    """nova.image.glance.API: an image as its get() gives it, counting
    calls."""

    def __init__(self, properties=None, error=None):
        self.properties = properties or {}
        self.error = error
        self.calls = []

    def get(self, context, image_id):
        self.calls.append(image_id)
        if self.error:
            raise self.error
        # nova nests the custom properties
        return {'id': image_id, 'status': 'active',
                'properties': dict(self.properties)}


def make_conf(**overrides):
    conf = cfg.ConfigOpts()
    vtpm_conf.register_opts(conf)
    for name, value in overrides.items():
        conf.set_override(name, value, group=vtpm_conf.GROUP)
    return conf


def make_filter(image_properties=None, image_error=None, **conf):
    api = FakeImages(image_properties, image_error)
    return (vtpm_filter.VTPMFilter(conf=make_conf(**conf), image_api=api),
            api)


def spec(extra_specs=None, image_id=IMAGE_ID, cell=None, hints=None,
         machine_type='hyperv-gen2'):
    # nova keeps hw_machine_type in the request spec, not our properties
    image = {'properties': {} if machine_type is None else {
        'hw_machine_type': machine_type}}
    if image_id:
        image['id'] = image_id
    spec_obj = nova_objects.RequestSpec(
        flavor=nova_objects.Flavor(extra_specs=dict(extra_specs or {})),
        image=nova_objects.ImageMeta.from_dict(image),
        instance_uuid=INSTANCE, scheduler_hints=dict(hints or {}))
    if cell is not None:
        spec_obj.requested_destination = nova_objects.Destination(cell=cell)
    spec_obj._context = nova_context.RequestContext('user', 'project',
                                                    is_admin=False)
    return spec_obj


def caps(age=0, **overrides):
    values = dict(vtpm_supported=True, guarded=True,
                  attestation_status='Passed', attestation_mode='TpmTrusted',
                  fabric_id='fabric-a',
                  measured_at=NOW - datetime.timedelta(seconds=age))
    values.update(overrides)
    return objects.HostCapabilities(**values)


_uuids = iter(range(10 ** 9))


def host(name, report):
    """A nova HostState whose stats carry ``report``."""
    state = host_manager.HostState(name, name, None)
    state.uuid = '00000000-0000-4000-8000-%012d' % next(_uuids)
    if isinstance(report, objects.HostCapabilities):
        state.stats = dict(capabilities.to_stats(report), num_instances='0')
    else:
        state.stats = dict(report or {})
    return state


VTPM = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
KEYED = dict(VTPM, os_vtpm_keys=KEY)


def names(hosts):
    return [h.host for h in hosts]


# --- what passes -----------------------------------------------------------

HOSTS = {
    'attested': caps(),
    # older than max_report_age plus the band a live compute's report
    # stays fresh in (REPUBLISH_INTERVAL): its compute is wedged or gone
    'stale': caps(age=600 + capabilities.REPUBLISH_INTERVAL + 1),
    # in the band, and no heartbeat nova can read: refused as down
    'idle-down': caps(age=601),
    'at-limit': caps(age=600),
    # measured by a host whose clock is ahead of the scheduler's
    'ahead': caps(age=-61),
    'ahead-at-limit': caps(age=-60),
    'expired': caps(attestation_status='Expired'),
    'unguarded': caps(guarded=False, attestation_status='NotConfigured'),
    'fabric-b': caps(fabric_id='fabric-b'),
    'no-fabric': caps(fabric_id=None),
    'no-vtpm': caps(vtpm_supported=False),
    'absent': None,
    'unreadable': {capabilities.STATS_KEY: '{"vtpm_object.name": 1'},
}


@pytest.mark.parametrize('image,flavor,expected', [
    # no vTPM asked: every host, reports or not
    ({}, {}, list(HOSTS)),
    (dict(VTPM, os_vtpm='optional'), {'os:vtpm': 'optional'}, list(HOSTS)),
    # a vTPM without keys: any host that supports it, whatever HGS says
    (VTPM, {}, ['attested', 'stale', 'idle-down', 'at-limit', 'ahead',
                'ahead-at-limit', 'expired', 'unguarded', 'fabric-b',
                'no-fabric']),
    (dict(VTPM, os_vtpm='optional'), {'os:vtpm': 'required'},
     ['attested', 'stale', 'idle-down', 'at-limit', 'ahead',
      'ahead-at-limit', 'expired', 'unguarded', 'fabric-b', 'no-fabric']),
    # keys: guarded, Passed, a fabric guardian to name, report at most
    # max_report_age old and at most max_clock_skew ahead; any fabric
    (KEYED, {}, ['attested', 'at-limit', 'ahead-at-limit', 'fabric-b']),
    # shielded: the same
    (dict(KEYED, os_shielded_vm='required'), {'os:vtpm': 'optional'},
     ['attested', 'at-limit', 'ahead-at-limit', 'fabric-b']),
], ids=['nothing-asked', 'optional-both', 'vtpm-image', 'vtpm-flavor',
        'keys', 'shielded'])
def test_hosts_that_pass(image, flavor, expected):
    filt, _ = make_filter(image)
    hosts = [host(n, r) for n, r in HOSTS.items()]
    assert names(filt.filter_all(hosts, spec(flavor))) == expected
    # host_passes, nova's per-host interface, agrees
    spec_obj = spec(flavor)
    assert [h.host for h in hosts if filt.host_passes(h, spec_obj)] == \
        expected


def test_max_report_age_is_the_configured_one():
    filt, _ = make_filter(KEYED, max_report_age=60)
    hosts = [host('61s', caps(age=61)), host('60s', caps(age=60))]
    assert names(filt.filter_all(hosts, spec())) == ['60s']


def service(heartbeat_age, forced_down=False):
    """A nova-compute services row as HostState.service holds it, its last
    heartbeat ``heartbeat_age`` seconds ago."""
    seen = NOW.replace(tzinfo=None) - datetime.timedelta(
        seconds=heartbeat_age)
    return {'host': 'h', 'binary': 'nova-compute', 'disabled': False,
            'forced_down': forced_down, 'last_seen_up': seen,
            'created_at': seen, 'updated_at': seen}


IDLE = 600 + capabilities.REPUBLISH_INTERVAL  # the oldest fresh while up


@pytest.mark.parametrize('age,heartbeat,forced_down,passes', [
    (600, None, False, True),      # fresh by its age: no liveness asked
    (601, 5, False, True),         # idle, its compute up
    (IDLE, 5, False, True),
    (IDLE + 1, 5, False, False),   # up, but the report frozen too long
    (601, 61, False, False),       # no heartbeat for service_down_time
    (601, 5, True, False),         # forced down
    (601, None, False, False),     # no service row at all
], ids=['fresh', 'idle-up', 'idle-up-at-limit', 'frozen-up', 'dead',
        'forced-down', 'no-service'])
def test_an_idle_computes_report_is_fresh_while_nova_sees_it_up(
        age, heartbeat, forced_down, passes):
    """Without nova's ComputeFilter the filter asks nova's servicegroup
    API itself (its DB driver: a heartbeat within service_down_time, 60 s)
    about a report older than max_report_age."""
    filt, _ = make_filter(KEYED)
    state = host('h', caps(age=age))
    if heartbeat is not None:
        state.service = service(heartbeat, forced_down)
    assert bool(filt.filter_all([state], spec())) is passes


def test_beside_compute_filter_an_idle_report_passes_without_a_question():
    """nova's ComputeFilter refuses a host whose compute is down for every
    request, so this filter leaves liveness to it: no per-host question."""
    conf = make_conf()
    conf.register_opt(cfg.ListOpt('enabled_filters'),
                      group='filter_scheduler')
    conf.set_override('enabled_filters', ['ComputeFilter', 'VTPMFilter'],
                      group='filter_scheduler')
    filt = vtpm_filter.VTPMFilter(conf=conf, image_api=FakeImages(KEYED))
    idle = host('idle', caps(age=IDLE))
    frozen = host('frozen', caps(age=IDLE + 1))
    with mock.patch('nova.servicegroup.API') as servicegroup:
        assert names(filt.filter_all([idle, frozen], spec())) == ['idle']
    servicegroup.assert_not_called()


def test_default_max_report_age_is_600():
    assert make_conf().vtpm_filter.max_report_age == 600


def test_max_clock_skew_is_the_configured_one():
    filt, _ = make_filter(KEYED, max_clock_skew=5)
    hosts = [host('6s-ahead', caps(age=-6)), host('5s-ahead', caps(age=-5)),
             host('year-9999', caps(measured_at=NOW.replace(year=9999)))]
    assert names(filt.filter_all(hosts, spec())) == ['5s-ahead']


def test_default_max_clock_skew_is_60():
    assert make_conf().vtpm_filter.max_clock_skew == 60


_reports = st.one_of(st.none(), strategies.reports_for_moves)


# Enough examples to reach the few keyed requests on attested hosts whose
# report lies just past either limit.
@hypothesis.settings(max_examples=1000)
@hypothesis.given(request=strategies.vtpm_requests, report=_reports,
                  fabrics=st.one_of(st.none(), st.frozensets(
                      st.sampled_from(('fabric-a', 'fabric-b', 'x')))),
                  max_age=st.integers(1, 10 ** 6),
                  max_skew=st.integers(0, 10 ** 4),
                  data=st.data())
def test_a_view_gets_the_verdict_of_its_report(request, report, fabrics,
                                               max_age, max_skew, data):
    """For any request, report, fabrics and clock, the compiled check gives
    a report's capabilities.view (what the filter checks per host) the
    verdict it gives the report read back from its stats: the filter's
    per-host copy changes no decision."""
    now = strategies.scheduler_clock(data, report, max_age, max_skew)
    check = capabilities.compile_check(
        request, max_report_age=max_age, max_clock_skew=max_skew, now=now,
        allowed_fabrics=fabrics)
    read = capabilities.from_stats(
        capabilities.to_stats(report) if report is not None else {})
    assert check(capabilities.view(read)).passes == check(read).passes
    assert check(read).passes == capabilities.satisfies(
        request, report, max_report_age=max_age, max_clock_skew=max_skew,
        now=now, allowed_fabrics=fabrics).passes


# --- fail closed, and say why -----------------------------------------------

def test_every_rejection_is_logged_at_debug_with_its_reason(caplog):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    filt, _ = make_filter(KEYED)
    hosts = [host(n, r) for n, r in HOSTS.items()]
    filt.filter_all(hosts, spec())
    rejections = [r for r in caplog.records if r.levelno == logging.DEBUG and
                  'fails the vTPM request' in r.getMessage()]
    by_host = {r.args['host']: r.getMessage() for r in rejections}
    assert set(by_host) == {'stale', 'idle-down', 'ahead', 'expired',
                            'unguarded', 'no-fabric', 'no-vtpm', 'absent',
                            'unreadable'}
    assert 'no readable vTPM capability report' in by_host['absent']
    assert 'no readable vTPM capability report' in by_host['unreadable']
    assert 'report is 2401 s old (max 2400 s)' in by_host['stale']
    assert ('older than max_report_age, and nova sees its compute down'
            in by_host['idle-down'])
    assert ('report is dated 61 s in the future (max 60 s of clock skew)'
            in by_host['ahead'])
    assert 'attestation status is Expired' in by_host['expired']
    assert 'not a guarded host' in by_host['unguarded']
    assert 'no fabric guardian' in by_host['no-fabric']
    assert 'does not support vTPM' in by_host['no-vtpm']
    assert all(INSTANCE in m for m in by_host.values())


@pytest.mark.parametrize('stats', [
    None, 'vtpm:capabilities', ['vtpm:capabilities'], 42,
    {capabilities.STATS_KEY: ['not', 'a', 'string']},
    {capabilities.FACTS_KEY: ['not', 'a', 'string']},
    {capabilities.FACTS_KEY: {'a': 'dict'}},
], ids=['none', 'string', 'list', 'int', 'report-not-a-string',
        'facts-a-list', 'facts-a-dict'])
def test_unreadable_stats_fail_closed_like_an_absent_report(caplog, stats):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    filt, _ = make_filter(KEYED)
    broken, good = host('broken', None), host('good', caps())
    broken.stats = stats
    assert names(filt.filter_all([broken, good], spec())) == ['good']
    assert not filt.host_passes(broken, spec())
    refusal, = {r.getMessage() for r in caplog.records
                if r.levelno == logging.DEBUG and 'broken' in r.getMessage()}
    assert 'no readable vTPM capability report' in refusal
    # nothing asked of the host: no report read, every host passes
    assert filt.filter_all([broken], spec({'os:vtpm': 'disabled'})) == [broken]


def test_newer_report_with_unknown_fields_is_read():
    # A compute one minor version ahead adds a field this scheduler lacks.
    raw = capabilities.to_stats(caps())
    newer = raw[capabilities.STATS_KEY].replace(
        '"vtpm_object.version":"%s"' % objects.HostCapabilities.VERSION,
        '"vtpm_object.version":"1.9"').replace(
        '"vtpm_supported":true', '"vtpm_supported":true,"future_field":7')
    filt, _ = make_filter(KEYED)
    hosts = [host('newer', {capabilities.STATS_KEY: newer})]
    assert names(filt.filter_all(hosts, spec())) == ['newer']


def test_older_report_is_read():
    # A compute not yet upgraded publishes version 1.0.
    filt, _ = make_filter(KEYED)
    hosts = [host('older',
                  capabilities.to_stats(caps(), target_version='1.0'))]
    assert '"vtpm_object.version":"1.0"' in \
        hosts[0].stats[capabilities.STATS_KEY]
    assert names(filt.filter_all(hosts, spec())) == ['older']


def test_report_of_a_future_major_version_is_refused():
    raw = capabilities.to_stats(caps())[capabilities.STATS_KEY].replace(
        '"vtpm_object.version":"%s"' % objects.HostCapabilities.VERSION,
        '"vtpm_object.version":"2.0"')
    filt, _ = make_filter(VTPM)
    assert filt.filter_all([host('v2', {capabilities.STATS_KEY: raw})],
                           spec()) == []


# --- the request: once per request ---------------------------------------

def test_image_read_once_per_request_not_per_host():
    filt, api = make_filter(KEYED)
    hosts = [host('h%d' % i, caps()) for i in range(50)]
    assert len(filt.filter_all(hosts, spec())) == 50
    assert api.calls == [IMAGE_ID]


def test_flavor_that_settles_needs_no_image_read():
    filt, api = make_filter(KEYED)
    hosts = [host('absent', None)]
    # os:vtpm=disabled: no vTPM whatever the image says (or a conflict,
    # which the compute side refuses)
    assert filt.filter_all(hosts, spec({'os:vtpm': 'disabled'})) == hosts
    assert api.calls == []


def test_image_lookup_off_decides_on_the_flavor_alone():
    filt, api = make_filter(KEYED, image_lookup=False)
    hosts = [host('no-vtpm', caps(vtpm_supported=False)),
             host('unguarded', caps(guarded=False))]
    # the image's keys are unknown, so an unguarded host passes
    assert names(filt.filter_all(hosts, spec({'os:vtpm': 'required'}))) == \
        ['unguarded']
    assert filt.filter_all(hosts, spec({})) == hosts
    assert api.calls == []


def test_glance_failure_falls_back_to_the_flavor(caplog):
    filt, api = make_filter(
        image_error=nova_exception.ImageNotFound(image_id=IMAGE_ID))
    hosts = [host('no-vtpm', caps(vtpm_supported=False)),
             host('vtpm', caps())]
    assert names(filt.filter_all(hosts, spec({'os:vtpm': 'required'}))) == \
        ['vtpm']
    assert api.calls == [IMAGE_ID]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        'VTPMFilter could not read image %s from Glance: ImageNotFound: '
        'Image %s could not be found.; deciding on the flavor alone'
        % (IMAGE_ID, IMAGE_ID))


@pytest.mark.parametrize('machine_type', [None, 'hyperv-gen1'],
                         ids=['absent', 'gen1'])
@pytest.mark.parametrize('flavor', [{}, {'os:vtpm': 'required'}],
                         ids=['flavor-silent', 'flavor-requires'])
def test_a_boot_that_is_not_gen2_reads_no_image(machine_type, flavor):
    # A vTPM needs hyperv-gen2: whatever Glance would say, the request asks
    # for no vTPM or is invalid, and every host passes.
    filt, api = make_filter(KEYED)
    hosts = [host(n, r) for n, r in HOSTS.items()]
    assert filt.filter_all(hosts, spec(flavor, machine_type=machine_type)) \
        == hosts
    assert api.calls == []


def test_image_read_once_per_image_per_cache_lifetime():
    filt, api = make_filter(KEYED)
    hosts = [host('attested', caps()), host('unguarded', caps(guarded=False))]
    images = ['7b4f8e38-58a1-4a63-9b2e-5d3f1f0c9a1%d' % i for i in range(3)]
    for _ in range(10):
        for image_id in images:
            assert names(filt.filter_all(hosts, spec(image_id=image_id))) == \
                ['attested']
    assert api.calls == images


def test_one_kept_image_decides_under_each_flavor_as_asked():
    # os_vtpm=optional: the flavor decides, boot by boot, from one read
    filt, api = make_filter(dict(VTPM, os_vtpm='optional'))
    hosts = [host('no-vtpm', caps(vtpm_supported=False)),
             host('vtpm', caps())]
    for flavor, passed in [({}, ['no-vtpm', 'vtpm']),
                           ({'os:vtpm': 'required'}, ['vtpm']),
                           ({'os:vtpm': 'optional'}, ['no-vtpm', 'vtpm']),
                           ({'os:vtpm': 'required', 'hw:cpu_policy': 'x'},
                            ['vtpm']),
                           ({}, ['no-vtpm', 'vtpm'])]:
        assert names(filt.filter_all(hosts, spec(flavor))) == passed, flavor
    assert api.calls == [IMAGE_ID]


def test_an_invalid_request_of_a_kept_image_is_logged_each_time(caplog):
    # kept: the image's os_vtpm=disabled conflicts with the flavor's
    filt, api = make_filter(dict(VTPM, os_vtpm='disabled'))
    hosts = [host('no-vtpm', caps(vtpm_supported=False))]
    for _ in range(2):
        assert filt.filter_all(hosts, spec({'os:vtpm': 'required'})) == hosts
    assert caplog.text.count('has an invalid vTPM request') == 2
    assert api.calls == [IMAGE_ID]


def test_image_properties_are_read_again_after_their_lifetime():
    filt, api = make_filter(VTPM)
    clock = [0.0]
    filt._images = image_cache.ImageCache(ttl=60, max_size=10,
                                          clock=lambda: clock[0])
    hosts = [host('attested', caps()), host('unguarded', caps(guarded=False))]
    assert len(filt.filter_all(hosts, spec())) == 2
    # the operator adds keys to the image: seen once what was kept expires
    api.properties = KEYED
    clock[0] = 59
    assert len(filt.filter_all(hosts, spec())) == 2
    clock[0] = 60
    assert names(filt.filter_all(hosts, spec())) == ['attested']
    assert api.calls == [IMAGE_ID, IMAGE_ID]


def test_image_cache_ttl_zero_reads_every_request():
    filt, api = make_filter(KEYED, image_cache_ttl=0)
    for _ in range(3):
        filt.filter_all([host('attested', caps())], spec())
    assert api.calls == [IMAGE_ID] * 3


def test_only_the_vtpm_properties_are_kept():
    filt, _ = make_filter(dict(KEYED, os_distro='windows', secret='x' * 999))
    filt.filter_all([host('attested', caps())], spec())
    (expires, kept), = filt._images._entries.values()
    assert dict(kept.properties) == KEYED


def test_a_glance_failure_is_not_kept():
    filt, api = make_filter(
        KEYED, image_error=nova_exception.GlanceConnectionFailed(
            server='http://glance.example.org:9292',
            reason='HTTP 503 Service Unavailable'))
    hosts = [host('attested', caps()), host('unguarded', caps(guarded=False))]
    # Glance fails: the flavor alone asks nothing of the host
    assert len(filt.filter_all(hosts, spec())) == 2
    api.error = None
    assert names(filt.filter_all(hosts, spec())) == ['attested']
    assert names(filt.filter_all(hosts, spec())) == ['attested']
    assert api.calls == [IMAGE_ID, IMAGE_ID]


def test_no_image_id_decides_on_the_flavor_alone():
    filt, api = make_filter(KEYED)
    hosts = [host('no-vtpm', caps(vtpm_supported=False))]
    assert filt.filter_all(hosts, spec({'os:vtpm': 'required'},
                                       image_id=None)) == []
    assert api.calls == []


@pytest.mark.parametrize('image,flavor,words', [
    ({}, {'os:vtpm': 'required'}, "os_vtpm (image property) is absent"),
    (dict(VTPM, os_vtpm='Required'), {},
     "os_vtpm (image property) is 'Required'; allowed: disabled, optional, "
     "required"),
    (VTPM, {'os:vtpm': 'bogus'}, "os:vtpm (flavor extra spec) is 'bogus'"),
    (dict(VTPM, hw_machine_type='hyperv-gen1'), {},
     "hw_machine_type (image property) is 'hyperv-gen1'"),
], ids=['conflict', 'bad-image-value', 'bad-flavor-value', 'gen1'])
def test_invalid_request_lets_every_host_through_and_logs_once(
        caplog, image, flavor, words):
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    filt, _ = make_filter(image)
    hosts = [host(n, r) for n, r in HOSTS.items()]
    assert filt.filter_all(hosts, spec(flavor)) == hosts
    logged = [r for r in caplog.records if words in r.getMessage()]
    assert len(logged) == 1
    assert logged[0].levelno == logging.INFO
    assert INSTANCE in logged[0].getMessage()


def test_a_huge_invalid_value_is_logged_as_a_bounded_excerpt(caplog):
    # a hostile 1 MB property, logged at info on every request
    filt, _ = make_filter(dict(VTPM, os_vtpm='A' * 10 ** 6))
    hosts = [host('attested', caps())]
    assert filt.filter_all(hosts, spec()) == hosts
    logged, = [r.getMessage() for r in caplog.records
               if r.levelno == logging.INFO]
    assert "os_vtpm (image property) is 'AAAA" in logged
    assert '(1000000 characters); allowed: disabled' in logged
    assert len(logged) < 1000


def test_keys_are_refs_and_nothing_secret_is_logged(caplog):
    caplog.set_level(logging.DEBUG)
    filt, _ = make_filter(KEYED)
    filt.filter_all([host(n, r) for n, r in HOSTS.items()], spec())
    # The filter never sees key material; it does not even log the refs.
    assert KEY not in caplog.text


# --- host reports: facts, and the versioned entry of older computes --------

def versioned_only(report, **kwargs):
    """The stats of a compute older than the facts: the versioned entry."""
    return {capabilities.STATS_KEY: capabilities.to_stats(
        report, **kwargs)[capabilities.STATS_KEY]}


def reload(hosts):
    """nova rebuilds HostState.stats from the database per request: equal
    strings in new objects."""
    for h in hosts:
        h.stats = {k: ''.join(v) for k, v in h.stats.items()}


def test_facts_are_read_without_a_parse_changed_or_not():
    filt, _ = make_filter(KEYED)
    hosts = [host('h%d' % i, caps()) for i in range(20)]
    assert all(capabilities.FACTS_KEY in h.stats for h in hosts)
    with mock.patch.object(capabilities, 'from_stats',
                           wraps=capabilities.from_stats) as parse:
        for age in range(3):
            reload(hosts)
            assert len(filt.filter_all(hosts, spec())) == 20
            # every report changes (a new measured_at each periodic run)
            for h in hosts:
                h.stats = capabilities.to_stats(caps(age=age))
        # one host's attestation expires, and is seen at once
        hosts[3].stats = capabilities.to_stats(
            caps(attestation_status='Expired'))
        assert len(filt.filter_all(hosts, spec())) == 19
    parse.assert_not_called()
    assert filt._versioned == {}  # nothing kept per host


def test_hosts_the_check_cannot_tell_apart_share_one_verdict():
    """A fabric per host, measured at different seconds: one read per
    distinct combination of what the check reads, per request."""
    filt, _ = make_filter(KEYED)
    hosts = [host('h%d' % i, caps(age=i % 7, fabric_id='fabric-%d' % i))
             for i in range(20)]
    hosts[3].stats = capabilities.to_stats(caps(
        attestation_status='Expired', fabric_id='fabric-x'))
    with mock.patch.object(capabilities, 'read_facts',
                           wraps=capabilities.read_facts) as read:
        for request in range(3):
            reload(hosts)
            assert len(filt.filter_all(hosts, spec())) == 19
            # the attested ones, and the expired one
            assert read.call_count == 2 * (request + 1)


def test_older_compute_report_parsed_once_per_change():
    # A compute not yet upgraded publishes the versioned entry alone.
    filt, _ = make_filter(KEYED)
    hosts = [host('h%d' % i, versioned_only(caps())) for i in range(20)]
    with mock.patch.object(capabilities, 'from_stats',
                           wraps=capabilities.from_stats) as parse:
        for _ in range(3):
            reload(hosts)
            assert len(filt.filter_all(hosts, spec())) == 20
        assert parse.call_count == 20
        # one host's attestation expires: only that host is parsed again
        hosts[3].stats = versioned_only(caps(attestation_status='Expired'))
        assert len(filt.filter_all(hosts, spec())) == 19
        assert parse.call_count == 21
        # ... and passes again
        hosts[3].stats = versioned_only(caps(age=1))
        assert len(filt.filter_all(hosts, spec())) == 20
        assert parse.call_count == 22


def test_older_computes_without_a_uuid_keep_a_report_each():
    # nova's own test fakes build HostStates without a uuid; (host,
    # nodename) tells every compute node apart, so twenty different reports
    # are parsed once each, not once per host per request
    filt, _ = make_filter(KEYED)
    hosts = [host('h%d' % i, versioned_only(caps(age=i))) for i in range(20)]
    for h in hosts:
        h.uuid = None
    with mock.patch.object(capabilities, 'from_stats',
                           wraps=capabilities.from_stats) as parse:
        for _ in range(3):
            assert len(filt.filter_all(hosts, spec())) == 20
        assert parse.call_count == 20


@pytest.mark.parametrize('target', ['1.0', '1.1'])
def test_a_backported_report_is_read_from_the_versioned_entry(target):
    # a compute told to publish for older schedulers writes no facts
    filt, _ = make_filter(KEYED)
    stats = capabilities.to_stats(caps(), target_version=target)
    assert list(stats) == [capabilities.STATS_KEY]
    assert names(filt.filter_all([host('old', stats)], spec())) == ['old']


def test_facts_decide_when_readable_else_the_versioned_entry():
    # Two entries that disagree only through damage: readable facts decide
    # (one dict read); unreadable ones fall back to the reference.
    expired = capabilities.to_stats(caps(attestation_status='Expired'))
    passed = capabilities.to_stats(caps())
    cases = {
        'facts-passed': {capabilities.STATS_KEY: expired[
            capabilities.STATS_KEY],
            capabilities.FACTS_KEY: passed[capabilities.FACTS_KEY]},
        'facts-damaged': {capabilities.STATS_KEY: passed[
            capabilities.STATS_KEY],
            capabilities.FACTS_KEY: passed[capabilities.FACTS_KEY][:-3]
            + '|x'},
        'facts-not-a-string': {capabilities.STATS_KEY: passed[
            capabilities.STATS_KEY], capabilities.FACTS_KEY: None},
        'both-damaged': {capabilities.STATS_KEY: '{',
                         capabilities.FACTS_KEY: '1.2|'},
    }
    filt, _ = make_filter(KEYED)
    hosts = [host(n, s) for n, s in cases.items()]
    assert names(filt.filter_all(hosts, spec())) == [
        'facts-passed', 'facts-damaged', 'facts-not-a-string']


def test_an_older_scheduler_reads_a_newer_compute():
    """What the previous release's filter read, the versioned entry alone,
    is still all there and gives the same decisions."""
    filt, _ = make_filter(KEYED)
    hosts = [host(n, r) for n, r in HOSTS.items()]
    new = names(filt.filter_all(hosts, spec()))
    old_reader, _ = make_filter(KEYED)
    for h in hosts:
        if isinstance(h.stats, dict):
            h.stats = {k: v for k, v in h.stats.items()
                       if k != capabilities.FACTS_KEY}
    assert names(old_reader.filter_all(hosts, spec())) == new
    assert len(old_reader._versioned) == len(hosts)  # it parsed them all


def test_older_computes_kept_are_the_hosts_of_the_last_request():
    """The map of older computes' reports holds the hosts of the last
    request only: it does not grow with every host the process sees."""
    filt, _ = make_filter(KEYED)
    first = [host('a%d' % i, versioned_only(caps())) for i in range(5)]
    second = [host('b%d' % i, versioned_only(caps())) for i in range(3)]
    filt.filter_all(first, spec())
    assert {n for n, _ in filt._versioned} == set(names(first))
    filt.filter_all(second, spec())
    assert {n for n, _ in filt._versioned} == set(names(second))


def test_request_without_vtpm_reads_no_report():
    filt, _ = make_filter({})
    hosts = [host('h', caps())]
    with mock.patch.object(capabilities, 'from_stats') as parse:
        assert filt.filter_all(hosts, spec()) == hosts
    parse.assert_not_called()


# --- moves -------------------------------------------------------------------

CELL = nova_objects.CellMapping(uuid='7a1bfc43-0c2f-4a1e-9b5d-2f8e3c6d4a10',
                                name='cell1')


@contextlib.contextmanager
def cell_db(system_metadata, missing=False):
    """The cell database: Instance.get_by_uuid, counting reads."""
    instance = nova_objects.Instance(uuid=INSTANCE, host='source',
                                     system_metadata=system_metadata)
    reads = []

    def get_by_uuid(context, uuid, expected_attrs=None):
        reads.append((context.cell_uuid, uuid, tuple(expected_attrs)))
        if missing:
            raise nova_exception.InstanceNotFound(instance_id=uuid)
        return instance

    @contextlib.contextmanager
    def target_cell(context, cell):
        targeted = context.elevated()
        targeted.cell_uuid = cell.uuid
        yield targeted

    with mock.patch.object(nova_objects.Instance, 'get_by_uuid',
                           side_effect=get_by_uuid), \
            mock.patch.object(nova_context, 'target_cell', target_cell):
        yield reads


MOVE_HOSTS = {
    'a': caps(fabric_id='fabric-a'),
    'b': caps(fabric_id='fabric-b'),
    'dr': caps(fabric_id='fabric-dr'),
    'a-expired': caps(fabric_id='fabric-a', attestation_status='Expired'),
    'a-stale': caps(fabric_id='fabric-a', age=601),
    'no-fabric': caps(fabric_id=None),
    'absent': None,
}


@pytest.mark.parametrize('image', [KEYED, {}], ids=['keyed', 'image-gone'])
def test_move_passes_only_hosts_of_the_recorded_fabrics(image):
    filt, _ = make_filter(image)
    hosts = [host(n, r) for n, r in MOVE_HOSTS.items()]
    with cell_db({constants.SYSMETA_FABRICS: 'fabric-a, fabric-dr'}) as reads:
        passed = filt.filter_all(hosts, spec(cell=CELL))
    # one cell read, for the system metadata, whatever the number of hosts
    assert reads == [(CELL.uuid, INSTANCE, ('system_metadata',))]
    assert names(passed) == ['a', 'dr']


def test_invalid_request_on_a_move_keeps_the_fabric_rule():
    # The KeyProtector moves with the VM, whatever the image says now.
    filt, _ = make_filter(dict(VTPM, os_vtpm='Required'))
    hosts = [host(n, r) for n, r in MOVE_HOSTS.items()]
    with cell_db({constants.SYSMETA_FABRICS: 'fabric-a'}):
        assert names(filt.filter_all(hosts, spec(cell=CELL))) == ['a']


def test_move_without_recorded_fabrics_is_not_restricted():
    filt, _ = make_filter(VTPM)
    hosts = [host(n, r) for n, r in MOVE_HOSTS.items()]
    with cell_db({}) as reads:
        passed = filt.filter_all(hosts, spec(cell=CELL))
    assert len(reads) == 1
    assert names(passed) == ['a', 'b', 'dr', 'a-expired', 'a-stale',
                             'no-fabric']


def test_vanished_instance_is_not_restricted():
    filt, _ = make_filter({})
    hosts = [host('absent', None)]
    with cell_db({}, missing=True) as reads:
        assert filt.filter_all(hosts, spec(cell=CELL)) == hosts
    assert len(reads) == 1


def test_first_boot_reads_no_database():
    filt, _ = make_filter(KEYED)
    with cell_db({constants.SYSMETA_FABRICS: 'fabric-b'}) as reads:
        # a boot onto a named host carries a destination, but no cell
        spec_obj = spec()
        spec_obj.requested_destination = nova_objects.Destination(host='a')
        assert names(filt.filter_all(
            [host(n, r) for n, r in MOVE_HOSTS.items()], spec_obj)) == [
                'a', 'b', 'dr']
    assert reads == []


def test_restrict_moves_off_reads_no_database():
    filt, _ = make_filter({}, restrict_moves_to_fabrics=False)
    hosts = [host(n, r) for n, r in MOVE_HOSTS.items()]
    with cell_db({constants.SYSMETA_FABRICS: 'fabric-a'}) as reads:
        assert filt.filter_all(hosts, spec(cell=CELL)) == hosts
    assert reads == []


def test_rebuild_is_filtered():
    # A rebuild with a new image asks the current host again.
    filt, _ = make_filter(VTPM)
    assert filt.RUN_ON_REBUILD
    hosts = [host('current', caps(vtpm_supported=False))]
    spec_obj = spec(hints={'_nova_check_type': ['rebuild']})
    assert filt.filter_all(hosts, spec_obj) == []
    assert not filt._filter_one(hosts[0], spec_obj)


# --- loading and options -------------------------------------------------

def test_all_filters_finds_the_filter_through_stevedore():
    assert vtpm_filters.all_filters() == [vtpm_filter.VTPMFilter]


@pytest.mark.parametrize('available', [
    ['vtpm_filters.all_filters'],
    ['vtpm_filters.vtpm_filter.VTPMFilter'],
], ids=['function', 'class-path'])
def test_nova_loads_the_filter_from_available_filters(available):
    handler = nova_filters.HostFilterHandler()
    assert handler.get_matching_classes(available) == [
        vtpm_filter.VTPMFilter]


def test_filter_registers_its_options_on_the_conf_it_is_given():
    conf = cfg.ConfigOpts()
    vtpm_filter.VTPMFilter(conf=conf)
    assert conf.vtpm_filter.max_report_age == 600
    assert conf.vtpm_filter.max_clock_skew == 60
    assert conf.vtpm_filter.image_lookup is True
    assert conf.vtpm_filter.image_cache_ttl == 60
    assert conf.vtpm_filter.image_cache_size == 1000
    assert conf.vtpm_filter.restrict_moves_to_fabrics is True


def test_list_opts_returns_copies():
    (group, opts), = vtpm_conf.list_opts()
    assert group == 'vtpm_filter'
    assert [o.name for o in opts] == [o.name for o in vtpm_conf.OPTS]
    assert all(a is not b for a, b in zip(opts, vtpm_conf.OPTS))


def test_oslo_config_generator_prints_the_options():
    generator = [sys.executable, '-c',
                 'from oslo_config import generator; generator.main()']
    result = subprocess.run(generator + ['--namespace', 'vtpm_filters'],
                            capture_output=True, text=True, check=True)
    assert '[vtpm_filter]' in result.stdout
    assert '#max_report_age = 600' in result.stdout
    assert '#max_clock_skew = 60' in result.stdout
    assert '#image_lookup = true' in result.stdout
    assert '#image_cache_ttl = 60' in result.stdout
    assert '#image_cache_size = 1000' in result.stdout
    assert '#restrict_moves_to_fabrics = true' in result.stdout
