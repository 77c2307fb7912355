# SPDX-License-Identifier: Apache-2.0
"""vtpm-status upgrade check: a test per rule, over compute nodes' stats."""

import datetime
import json

from oslo_upgradecheck import upgradecheck
import pytest

from vtpm_cli import status
from vtpm_core import capabilities
from vtpm_core import objects

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
CODE = upgradecheck.Code


def report(**overrides):
    values = dict(vtpm_supported=True, guarded=True,
                  attestation_status='Passed', fabric_id='fabric-a',
                  measured_at=NOW)
    values.update(overrides)
    return objects.HostCapabilities(**values)


def current(name):
    """A compute of this release: the report and its facts."""
    return (name, name, capabilities.to_stats(report()))


def older(name, version='1.2'):
    """A compute of an older release (no facts at another version)."""
    return (name, name, capabilities.to_stats(report(),
                                              target_version=version))


def newer(name, version='1.9'):
    """A compute of a newer minor release than this scheduler's."""
    stats = capabilities.to_stats(report())
    primitive = json.loads(stats[capabilities.STATS_KEY])
    primitive['vtpm_object.version'] = version
    primitive['vtpm_object.data']['a_future_field'] = 'x'
    return (name, name, {capabilities.STATS_KEY: json.dumps(primitive)})


def run(nodes, check):
    checks = status.Checks(read_nodes=lambda: nodes)
    (method,) = [m for title, m in checks._upgrade_checks if title == check]
    return method(checks)


READABLE = 'vTPM capability reports readable'
ORDER = 'vTPM schedulers before computes'
FACTS = 'vTPM facts published'

# (id, the nodes, the check, its code, words its details must hold)
RULES = [
    ('no vTPM compute yet', [('h0', 'h0', {'cpu': '1'})], READABLE,
     CODE.SUCCESS, 'No compute node publishes'),
    ('every report readable', [current('h1'), older('h2'), newer('h3')],
     READABLE, CODE.SUCCESS, None),
    ('another major version', [current('h1'), newer('h2', '2.0')], READABLE,
     CODE.FAILURE, 'cannot read the vTPM capability report of h2 (node h2)'),
    ('not a report', [('h2', 'n2', {'vtpm:capabilities': '{"x": 1}'})],
     READABLE, CODE.FAILURE, 'h2 (node n2)'),
    ('computes at or before the schedulers', [current('h1'), older('h2')],
     ORDER, CODE.SUCCESS, None),
    ('a compute upgraded before the schedulers', [current('h1'),
                                                  newer('h3')],
     ORDER, CODE.WARNING, 'h3 (node h3) publish a vTPM capability report '
     'newer than this release\'s'),
    ('another major is the first rule\'s', [newer('h2', '2.0')], ORDER,
     CODE.SUCCESS, None),
    ('this release with its facts, an older one without',
     [current('h1'), older('h2')], FACTS, CODE.SUCCESS, None),
    ('this release without facts',
     [('h4', 'h4', {capabilities.STATS_KEY: current('x')[2][
         capabilities.STATS_KEY]})],
     FACTS, CODE.WARNING, 'h4 (node h4) publish a report of this release'),
    ('this release with unreadable facts',
     [('h5', 'h5', dict(current('x')[2], **{capabilities.FACTS_KEY: 'x'}))],
     FACTS, CODE.WARNING, 'no readable vtpm:facts'),
]


@pytest.mark.parametrize('nodes,check,code,words', [r[1:] for r in RULES],
                         ids=[r[0] for r in RULES])
def test_each_rule(nodes, check, code, words):
    result = run(nodes, check)
    assert result.code == code
    if words is None:
        assert result.details is None
    else:
        assert words in result.details


def test_the_command_runs_every_rule_and_exits_with_the_worst(capsys):
    checks = status.Checks(read_nodes=lambda: [current('h1'), newer('h3')])
    assert checks.check() == CODE.WARNING
    out = capsys.readouterr().out
    for title, _ in checks._upgrade_checks:
        assert 'Check: %s' % title in out
    assert 'hyperv-vtpm upgrade check results' in out
