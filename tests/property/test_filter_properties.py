# SPDX-License-Identifier: Apache-2.0
"""Properties of VTPMFilter's per-host reading: the fast path decides as
``satisfies`` decides on the full object."""

import json

import hypothesis
from hypothesis import strategies as st
from nova.scheduler import host_manager
from oslo_config import cfg

from tests import strategies
from vtpm_core import capabilities
from vtpm_filters import conf as vtpm_conf
from vtpm_filters import vtpm_filter

_FLAG = {'1': True, '0': False, '-': None}


def oslo_reads_facts(raw):
    """The HostCapabilities that a facts string describes, as oslo reads it
    (None where oslo refuses it), following the admin guide's layout:
    version|measured_at|flags|attestation_status|attestation_mode|fabric_id|
    os_version|fabric_ids, flags for vtpm_supported, guarded and
    local_key_protector, '' for None in the nullable strings, fabric_ids
    joined by ','. Values the layout does not define are handed to oslo as
    they are."""
    parts = raw.split('|')
    if len(parts) != 8 or len(parts[2]) != 3:
        return None
    (version, measured_at, flags, status, mode, fabric, os_version,
     fabrics) = parts
    data = {
        'vtpm_supported': _FLAG.get(flags[0], flags[0]),
        'guarded': _FLAG.get(flags[1], flags[1]),
        'local_key_protector': _FLAG.get(flags[2], flags[2]),
        'measured_at': measured_at, 'attestation_status': status,
        'attestation_mode': mode or None, 'fabric_id': fabric or None,
        'os_version': os_version or None,
        'fabric_ids': fabrics.split(',') if fabrics else None}
    primitive = {'vtpm_object.name': 'HostCapabilities',
                 'vtpm_object.namespace': 'vtpm',
                 'vtpm_object.version': version, 'vtpm_object.data': data}
    return capabilities.from_stats(
        {capabilities.STATS_KEY: json.dumps(primitive)})


def reference(stats):
    """The full object a host's stats stand for: the one its facts describe
    when the fast reader reads them (which then reads exactly what oslo
    reads), else the versioned entry's, as from_stats reads it."""
    if not isinstance(stats, dict):
        return None
    raw = stats.get(capabilities.FACTS_KEY)
    fast = capabilities.read_facts(raw)
    if fast is None:
        return capabilities.from_stats(stats)
    described = oslo_reads_facts(raw)
    assert described is not None and fast == capabilities.view(described)
    return described


_reports = strategies.reports_for_moves
# A facts part, near what the writer writes and not.
_parts = st.one_of(
    st.sampled_from(('', '1', '0', '-', '11', '110', '01-', '1-0', '1x0',
                     '1.2', '1.3', '1.4', '2.0', 'Passed', 'Expired',
                     'fabric-a', 'fabric-a,fabric-b', ',', 'fabric-a,',
                     '2026-11-26T12:00:00Z', '2026-11-26T12:00:00',
                     '2026-11-26 12:00:00Z', '2026-02-30T12:00:00Z',
                     '2026-W48-4T12:00:00Z')),
    st.text(max_size=24).filter(lambda t: '|' not in t))


@st.composite
def host_stats(draw):
    """What a compute node's stats may hold: a report as a compute writes it,
    facts and versioned entry of different reports (mixed), facts with parts
    replaced, dropped or added (partial), facts or versioned entry that are
    garbage, an older compute's versioned entry alone, or no dict at all."""
    report, other = draw(_reports), draw(_reports)
    stats = dict(capabilities.to_stats(report), num_instances='3')
    facts = stats.get(capabilities.FACTS_KEY)
    kind = draw(st.sampled_from((
        'intact', 'mixed', 'part-replaced', 'part-dropped', 'part-added',
        'facts-garbage', 'facts-none', 'older-compute', 'versioned-garbage',
        'not-a-dict')))
    hypothesis.event(kind)
    if kind == 'mixed':
        stats[capabilities.FACTS_KEY] = capabilities.to_stats(other).get(
            capabilities.FACTS_KEY, '')
    elif kind.startswith('part-') and facts is not None:
        parts = facts.split('|')
        where = draw(st.integers(0, len(parts) - 1))
        if kind == 'part-replaced':
            parts[where] = draw(_parts)
        elif kind == 'part-dropped':
            del parts[where]
        else:
            parts.insert(where, draw(_parts))
        stats[capabilities.FACTS_KEY] = '|'.join(parts)
    elif kind == 'facts-garbage':
        stats[capabilities.FACTS_KEY] = draw(st.text(max_size=80))
    elif kind == 'facts-none':
        stats[capabilities.FACTS_KEY] = None
    elif kind == 'older-compute':
        stats.pop(capabilities.FACTS_KEY, None)
    elif kind == 'versioned-garbage':
        stats[capabilities.STATS_KEY] = draw(st.text(max_size=80))
    elif kind == 'not-a-dict':
        return draw(st.one_of(st.none(), st.text(max_size=20),
                              st.lists(st.text(max_size=5), max_size=3)))
    return stats


def _state(i, stats):
    state = host_manager.HostState('h%d' % i, 'h%d' % i, None)
    state.stats = stats
    return state


def _filter():
    """A filter beside nova's ComputeFilter, which tells dead computes: a
    report fresh while its compute is up passes this one."""
    conf = cfg.ConfigOpts()
    vtpm_conf.register_opts(conf)
    conf.register_opt(cfg.ListOpt('enabled_filters',
                                  default=['ComputeFilter', 'VTPMFilter']),
                      group='filter_scheduler')
    return vtpm_filter.VTPMFilter(conf=conf, image_api=object())


# Enough examples to reach keyed requests on attested hosts whose report
# lies just past either limit, for each kind of stats.
@hypothesis.settings(max_examples=1500, deadline=None)
@hypothesis.given(request=strategies.vtpm_requests, stats=host_stats(),
                  others=st.lists(host_stats(), max_size=2),
                  fabrics=st.one_of(st.none(), st.frozensets(
                      st.sampled_from(('fabric-a', 'fabric-a-old',
                                       'fabric-b', 'x')))),
                  max_age=st.integers(1, 10 ** 6),
                  max_skew=st.integers(0, 10 ** 4),
                  while_up=st.sampled_from((0, 1, 1800)), data=st.data())
def test_the_fast_path_decides_as_satisfies_on_the_full_object(
        request, stats, others, fabrics, max_age, max_skew, while_up, data):
    """For any request, fabrics, clock, band of liveness and hosts' stats
    (intact, mixed, partial, garbage, an older compute's; some hosts sharing
    facts, or all but the parts the check does not read), the filter's
    decision for each host, read through its facts without a parse and
    shared by hosts the check cannot tell apart, is satisfies' decision on
    the full HostCapabilities its stats stand for (reference): the facts
    never decide otherwise than the object they were derived from would,
    whatever an earlier request saw."""
    now = strategies.scheduler_clock(data, reference(stats), max_age,
                                     max_skew)
    rules = dict(max_report_age=max_age, max_clock_skew=max_skew,
                 while_up=while_up, now=now, allowed_fabrics=fabrics)
    check = vtpm_filter._Check(capabilities.compile_check(request, **rules),
                               capabilities.compile_facts_check(request,
                                                                **rules),
                               None)
    # the first host's stats again, as another host with the same facts
    # and possibly another versioned entry
    all_stats = [stats] + others + [
        dict(o, **{capabilities.FACTS_KEY: stats[capabilities.FACTS_KEY]})
        for o in others if isinstance(o, dict) and isinstance(stats, dict)
        and capabilities.FACTS_KEY in stats]
    states = [_state(i, s) for i, s in enumerate(all_stats)]
    filt = _filter()
    # a request before, which saw the hosts' facts (or other stats)
    filt._passing([_state(0, data.draw(host_stats()))] + states, check)
    passed = filt._passing(states, check)
    assert passed == [
        state for state, s in zip(states, all_stats)
        if capabilities.satisfies(request, reference(s), **rules).passes]


@hypothesis.settings(max_examples=1000, deadline=None)
@hypothesis.given(request=strategies.vtpm_requests,
                  reports=st.lists(_reports, min_size=1, max_size=6),
                  fabrics=st.one_of(st.none(), st.frozensets(
                      st.sampled_from(('fabric-a', 'fabric-a-old',
                                       'fabric-b', 'x')))),
                  max_age=st.integers(1, 10 ** 6),
                  max_skew=st.integers(0, 10 ** 4),
                  while_up=st.sampled_from((0, 1800)), data=st.data())
def test_a_shared_verdict_is_each_hosts_own(request, reports, fabrics,
                                            max_age, max_skew, while_up,
                                            data):
    """For any request, clock and hosts' facts, ``compile_facts_check``
    gives each host, in any order, the verdict (passing or not, and its
    reason) that ``compile_check`` gives its facts as ``read_facts`` reads
    them, and None exactly where read_facts reads nothing: hosts that share
    a verdict are ones the check cannot tell apart."""
    now = strategies.scheduler_clock(data, reports[0], max_age, max_skew)
    rules = dict(max_report_age=max_age, max_clock_skew=max_skew,
                 while_up=while_up, now=now, allowed_fabrics=fabrics)
    check = capabilities.compile_check(request, **rules)
    decide = capabilities.compile_facts_check(request, **rules)
    # what computes write, and what a damaged or older host may hold
    other = data.draw(host_stats())
    raws = [capabilities.to_stats(r).get(capabilities.FACTS_KEY)
            for r in reports] + [None, other.get(capabilities.FACTS_KEY)
                                 if isinstance(other, dict) else other]
    for raw in data.draw(st.permutations(raws)):
        read = capabilities.read_facts(raw)
        verdict = decide(raw)
        if read is None:
            assert verdict is None
        else:
            expected = check(read)
            assert (verdict.passes, verdict.reason) == (expected.passes,
                                                        expected.reason)


@hypothesis.given(_reports)
def test_what_a_compute_writes_reads_fast(report):
    """Every report a compute writes in full, with values of their one flat
    form, has facts that the fast reader reads as the versioned entry reads:
    the fast path is the normal path."""
    stats = capabilities.to_stats(report)
    fabric = report.fabric_id
    hypothesis.assume(fabric is None or (fabric and '|' not in fabric))
    ids = report.fabric_ids
    hypothesis.assume(ids is None or (ids and all(
        i and '|' not in i and ',' not in i for i in ids)))
    assert capabilities.read_facts(stats[capabilities.FACTS_KEY]) == \
        capabilities.view(capabilities.from_stats(stats)) == \
        capabilities.view(report)
