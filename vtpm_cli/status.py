# SPDX-License-Identifier: Apache-2.0
"""``vtpm-status upgrade check``: is this cloud ready for this release?

The convention of ``nova-status upgrade check`` (oslo.upgradecheck), for
the project's own ordering rules. Run it on a controller, with this
release installed and nova's configuration (``--config-file``, nova's
defaults otherwise), before restarting the services; it reads every
compute node's capability report from nova's databases (``vtpm_cli.novadb``)
and changes nothing. Its exit status is oslo.upgradecheck's: 0 ready, 1 a
warning, 2 a failure.

The rules (the admin guide's, :doc:`/admin/scheduling` and
:doc:`/admin/hgs`):

* **Reports readable**: a scheduler of this release reads every report a
  compute publishes; one of another major version, or garbage, makes that
  host refuse every vTPM instance (a failure);
* **Schedulers before computes**: a report of a newer minor version than
  this release's comes from a compute upgraded before the schedulers,
  which read it without the fields they do not know (``fabric_ids`` for a
  1.2 scheduler: instances that name only a renewed fabric's previous
  guardian would find no host); upgrade the schedulers first (a warning);
* **Facts**: a compute of this release publishes ``vtpm:facts`` beside its
  report, which the scheduler reads without a parse; one that publishes
  none, or none readable, costs a parse per change of its report (a
  warning); a compute of an older release is read from its report until it
  is upgraded (no warning: that is the order the rules ask for).
"""

from __future__ import annotations

import json
import sys

from oslo_upgradecheck import upgradecheck
from oslo_utils import versionutils

from vtpm_core import capabilities
from vtpm_core import objects

_OURS = objects.HostCapabilities.VERSION
_OUR_VERSION = versionutils.convert_version_to_tuple(_OURS)
_CODE = upgradecheck.Code


def _version(stats):
    """(major, minor) of a node's report, or None if it has none."""
    try:
        return versionutils.convert_version_to_tuple(json.loads(
            stats[capabilities.STATS_KEY])['vtpm_object.version'])
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _names(nodes):
    return ', '.join(sorted('%s (node %s)' % (host, node)
                            for host, node, _ in nodes))


class Checks(upgradecheck.UpgradeCommands):
    """The project's upgrade checks, over the compute nodes' stats.

    :param read_nodes: () -> [(host, node, stats)], every compute node;
        by default read from nova's databases with nova's configuration.
    """

    display_title = 'hyperv-vtpm upgrade check results'

    def __init__(self, read_nodes=None):
        super().__init__()
        self._read_nodes = read_nodes or _nodes_from_nova
        self._nodes = None

    def _reporting(self):
        """The compute nodes that publish a vTPM report."""
        if self._nodes is None:
            self._nodes = [n for n in self._read_nodes()
                           if capabilities.STATS_KEY in n[2]]
        return self._nodes

    def _check_reports_readable(self):
        nodes = self._reporting()
        if not nodes:
            return upgradecheck.Result(
                _CODE.SUCCESS, 'No compute node publishes a vTPM capability '
                'report (%s).' % capabilities.STATS_KEY)
        unreadable = [n for n in nodes if capabilities.from_stats(n[2])
                      is None]
        if unreadable:
            return upgradecheck.Result(_CODE.FAILURE, (
                'The schedulers of this release (report %s) cannot read the '
                'vTPM capability report of %s, so they give those hosts no '
                'vTPM instance: a report of another major version, or not a '
                'report. Upgrade the schedulers to the computes\' release '
                'before the computes, or fix those computes.' % (
                    _OURS, _names(unreadable))))
        return upgradecheck.Result(_CODE.SUCCESS)

    def _check_schedulers_before_computes(self):
        newer = [n for n in self._reporting()
                 if (_version(n[2]) or (None,))[0] == _OUR_VERSION[0]
                 and _version(n[2]) > _OUR_VERSION]
        if newer:
            return upgradecheck.Result(_CODE.WARNING, (
                '%s publish a vTPM capability report newer than this '
                'release\'s (%s): they were upgraded before the schedulers, '
                'which read their reports without the fields they do not '
                'know. Upgrade every nova-scheduler first, then the '
                'computes.' % (_names(newer), _OURS)))
        return upgradecheck.Result(_CODE.SUCCESS)

    def _check_facts(self):
        current = [n for n in self._reporting()
                   if _version(n[2]) == _OUR_VERSION]
        without = [n for n in current if capabilities.read_facts(
            n[2].get(capabilities.FACTS_KEY)) is None]
        if without:
            return upgradecheck.Result(_CODE.WARNING, (
                '%s publish a report of this release (%s) but no readable '
                '%s: the scheduler parses their report on every change, '
                'which costs more per request than the facts (the admin '
                'guide\'s "Cost"). A compute publishes none when told to '
                'publish for older schedulers; once they are upgraded, '
                'restart those computes.' % (
                    _names(without), _OURS, capabilities.FACTS_KEY)))
        return upgradecheck.Result(_CODE.SUCCESS)

    _upgrade_checks = (
        ('vTPM capability reports readable', _check_reports_readable),
        ('vTPM schedulers before computes',
         _check_schedulers_before_computes),
        ('vTPM facts published', _check_facts),
    )


def _nodes_from_nova():
    from nova import context as nova_context
    from nova import objects as nova_objects

    from vtpm_cli import novadb

    nova_objects.register_all()
    return novadb.node_stats(nova_context.get_admin_context())


def main(argv=None):
    """``vtpm-status upgrade check [--config-file nova.conf ...]``."""
    from vtpm_cli import check

    with check.quiet_dependencies():
        import nova.conf

        return upgradecheck.main(nova.conf.CONF, project='nova',
                                 upgrade_command=Checks(),
                                 argv=sys.argv[1:] if argv is None else argv)
