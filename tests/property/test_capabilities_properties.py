# SPDX-License-Identifier: Apache-2.0
"""Properties of host capability reports."""

import datetime
import json

from hypothesis import given
from hypothesis import strategies as st

from tests import strategies as s
from vtpm_core import capabilities
from vtpm_core import objects

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=20), inner,
                                            max_size=4)),
    max_leaves=12)


@given(st.one_of(st.text(), json_values.map(json.dumps)))
def test_from_stats_never_raises_on_random_strings(raw):
    """from_stats on any string returns HostCapabilities or None, never
    raises: one host's garbage must not break scheduling for the others."""
    result = capabilities.from_stats({capabilities.STATS_KEY: raw})
    assert result is None or isinstance(result, objects.HostCapabilities)


@given(s.host_capabilities, st.sampled_from(('vtpm_object.data',
                                             'vtpm_object.version',
                                             'vtpm_object.name')),
       json_values)
def test_from_stats_never_raises_on_damaged_reports(caps, part, value):
    """A real report with any part replaced by any JSON value reads as a
    report or None, never raises."""
    primitive = json.loads(capabilities.to_stats(caps)[capabilities.STATS_KEY])
    primitive[part] = value
    result = capabilities.from_stats(
        {capabilities.STATS_KEY: json.dumps(primitive)})
    assert result is None or isinstance(result, objects.HostCapabilities)


@given(s.host_capabilities)
def test_stats_round_trip(caps):
    """to_stats then from_stats gives back an equal report of strings only."""
    stats = capabilities.to_stats(caps)
    assert all(isinstance(v, str) for v in stats.values())
    assert capabilities.from_stats(stats) == caps


@given(s.host_capabilities, st.sampled_from(('1.0', '1.1', '1.2', '1.3')))
def test_from_stats_reads_what_oslo_reads(caps, version):
    """from_stats gives the same object as oslo.versionedobjects' own
    obj_from_primitive, for reports of every version."""
    stats = capabilities.to_stats(caps, target_version=version)
    primitive = json.loads(stats[capabilities.STATS_KEY])
    assert capabilities.from_stats(stats) == \
        objects.HostCapabilities.obj_from_primitive(primitive)


@given(s.host_capabilities,
       st.sampled_from(sorted(objects.HostCapabilities.fields)), json_values)
def test_from_stats_coerces_as_oslo_coerces(caps, name, value):
    """A real report with any field's value replaced by any JSON value reads
    as obj_from_primitive reads it, coerced by oslo's own fields (1 is
    True, a number is a string), or as None where oslo refuses the value:
    there is one deserialiser, oslo's."""
    primitive = json.loads(capabilities.to_stats(caps)[
        capabilities.STATS_KEY])
    primitive['vtpm_object.data'][name] = value
    raw = json.dumps(primitive)
    try:
        expected = objects.HostCapabilities.obj_from_primitive(
            json.loads(raw))
    # oslo's fields refuse what they cannot coerce (a list field, a value
    # it cannot iterate, with TypeError)
    except (TypeError, ValueError):
        expected = None
    assert capabilities.from_stats({capabilities.STATS_KEY: raw}) == expected


fabric_names = st.sampled_from(('old', 'new', 'dr', 'other'))


@given(s.host_capabilities, st.frozensets(fabric_names, min_size=1),
       st.one_of(st.none(), s.vtpm_requests))
def test_a_move_goes_where_the_fabrics_meet(caps, named, request):
    """A move of an instance whose KeyProtector names the fabrics ``named``
    is refused for its fabric exactly when ``named`` and the host's
    identities (``fabric_id`` and ``fabric_ids``) have no fabric in common.
    Where they meet, the host is judged as a host reporting that common
    fabric alone (a 1.2 report) would be: the other rules are unchanged."""
    identities = {caps.fabric_id} | set(caps.fabric_ids or ())
    kwargs = dict(max_report_age=600, now=caps.measured_at,
                  allowed_fabrics=named)
    verdict = capabilities.satisfies(request, caps, **kwargs)
    outside = 'is not one the instance' in verdict.reason
    assert outside is named.isdisjoint(identities)
    if outside:
        assert not verdict
    elif caps.fabric_id:
        alone = caps.obj_clone()
        alone.fabric_id = sorted(named & identities)[0]
        alone.fabric_ids = None
        assert bool(verdict) is bool(
            capabilities.satisfies(request, alone, **kwargs))


@given(s.host_capabilities, s.host_capabilities,
       st.integers(-10, 2 * capabilities.REPUBLISH_INTERVAL),
       st.booleans())
def test_a_compute_republishes_only_what_changed_or_aged(
        published, other, seconds, same):
    """The report a compute publishes after a measurement is the one it
    published before, strings and all (so nova writes nothing), exactly
    when the measurement says the same of the host in every field but
    measured_at and the published one is not REPUBLISH_INTERVAL old (nor
    from a clock that since went back); otherwise it is the measurement."""
    measured = objects.HostCapabilities(**{
        name: getattr(published if same else other, name)
        for name in objects.HostCapabilities.fields
        if (published if same else other).obj_attr_is_set(name)})
    measured.measured_at = published.measured_at + datetime.timedelta(
        seconds=seconds)
    result = capabilities.republished(published, measured)
    unchanged = {k: v for k, v in capabilities.view(published)._asdict(
    ).items() if k != 'measured_at'} == {
        k: v for k, v in capabilities.view(measured)._asdict().items()
        if k != 'measured_at'}
    keep = unchanged and 0 <= seconds < capabilities.REPUBLISH_INTERVAL
    assert result is (published if keep else measured)
    if keep:
        assert capabilities.to_stats(result) == capabilities.to_stats(
            published)
    assert capabilities.republished(None, measured) is measured
    assert capabilities.republished(published, None) is None
