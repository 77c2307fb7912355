# SPDX-License-Identifier: Apache-2.0
"""``vtpm-check --audit --nova-config``: instances and hosts from nova's DB.

nova's API shows neither an instance's system metadata, where the compute
records the fabrics its KeyProtector names (``vtpm_fabrics``), nor a
compute node's stats, where each host publishes its capability report
(``vtpm:capabilities``). So the audit reads both as ``nova-status`` reads
nova: with nova's own objects, in every cell, on a host that has nova's
configuration and may reach its databases (a controller, where this
package is installed for nova-scheduler and nova-api). It changes nothing.
"""

from __future__ import annotations

from nova import context as nova_context
from nova import objects

from vtpm_cli import audit
from vtpm_cli import exception as cli_exception
from vtpm_core import capabilities
from vtpm_core import constants as c
from vtpm_core import sysmeta


def _read_cell(context):
    instances = objects.InstanceList.get_by_filters(
        context, {'deleted': False}, expected_attrs=['system_metadata'])
    nodes = objects.ComputeNodeList.get_all(context)
    return ([(i.uuid, i.display_name, dict(i.system_metadata))
             for i in instances], [dict(n.stats or {}) for n in nodes])


def gather(context):
    """Return (instances, reports) of every cell but cell0.

    ``instances`` are ``audit.Resource`` objects of kind 'instance' for
    those with recorded fabrics; ``reports`` every compute node's
    ``HostCapabilities`` (None where unreadable). cell0 holds only
    instances that were never scheduled: none has a KeyProtector.

    :raises vtpm_cli.exception.NovaUnreadable: a cell did not answer, or
        failed.
    """
    instances, reports = [], []
    results = nova_context.scatter_gather_skip_cell0(context, _read_cell)
    for cell, result in sorted(results.items()):
        _raise_on_failure(cell, result)
        found, stats = result
        # an instance whose key protector names no fabric has none recorded
        instances += audit.carriers('instance', [
            i for i in found if sysmeta.fabrics(i[2])],
            (c.SYSMETA_FABRICS,))
        reports += [capabilities.from_stats(s) for s in stats]
    return instances, reports


def _read_nodes(context):
    return [(n.host, n.hypervisor_hostname, dict(n.stats or {}))
            for n in objects.ComputeNodeList.get_all(context)]


def node_stats(context):
    """(host, node, stats) of every compute node in every cell but cell0.

    :raises vtpm_cli.exception.NovaUnreadable: a cell did not answer, or
        failed.
    """
    nodes = []
    results = nova_context.scatter_gather_skip_cell0(context, _read_nodes)
    for cell, result in sorted(results.items()):
        _raise_on_failure(cell, result)
        nodes += result
    return nodes


def _raise_on_failure(cell, result):
    if nova_context.is_cell_failure_sentinel(result):
        raise cli_exception.NovaUnreadable(cell=cell, reason=(
            'it did not answer' if result is
            nova_context.did_not_respond_sentinel else
            '%s: %s' % (type(result).__name__, result)))


def read(config_files):
    """``gather`` for a process that has not loaded nova's configuration:
    load ``config_files`` (nova.conf) into nova's CONF first."""
    import nova.conf

    nova.conf.CONF(['--config-file=%s' % f for f in config_files],
                   project='nova')
    objects.register_all()
    return gather(nova_context.get_admin_context())
