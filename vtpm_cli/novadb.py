# SPDX-License-Identifier: Apache-2.0
"""``vtpm-check --audit --nova-config``: instances and hosts from nova's DB.

nova's API shows neither an instance's system metadata, where the compute
records the fabrics its KeyProtector names (``vtpm_fabrics``), nor a
compute node's stats, where each host publishes its capability report
(``vtpm:capabilities``). So the audit reads both as ``nova-status`` reads
nova, in every cell, on a host that has nova's configuration and may reach
its databases (a controller, where this package is installed for
nova-scheduler and nova-api). It changes nothing.

The instances are read at cloud scale: only our keys' rows, with nova's
own models and database sessions, in pages (keyset pagination), never
every instance and its system metadata as nova objects (which took most
of nova's 60 s per cell at 30,000 instances). The nodes, one row per
compute host, are read with nova's objects.
"""

from __future__ import annotations

from nova import context as nova_context
from nova import objects

from vtpm_cli import audit
from vtpm_cli import exception as cli_exception
from vtpm_core import capabilities
from vtpm_core import constants as c
from vtpm_core import sysmeta

# Our system-metadata keys the audit reads (vtpm_core.sysmeta).
_KEYS = (c.SYSMETA_FABRICS, c.SYSMETA_KEYS, c.SYSMETA_MISSING)
# Instances per query. A page is one range of the instances' primary key
# (the next this many rows, deleted or not), each live one joined to its
# rows of our keys by the system metadata's instance_uuid index: a page
# costs the same however many instances the cell holds, and each page is
# one call of nova's scatter-gather, within its per-cell limit
# (CELL_TIMEOUT); the figures are in doc/source/admin/audit.rst.
PAGE_INSTANCES = 2000


def _page(after, limit):
    """The query of one page: the next ``limit`` instances after instance
    id ``after``, each live one with its rows of our keys; one row without
    for the others, so that the page's last instance is known."""
    from nova.db.main import models
    import sqlalchemy as sa

    meta, instance = models.InstanceSystemMetadata, models.Instance
    # the primary key alone: a database would pick the 'deleted' index for
    # "deleted = 0 AND id > ?" and sort every live row of the cell per page
    page = (sa.select(instance.id, instance.uuid, instance.deleted,
                      instance.display_name, instance.project_id,
                      instance.host, instance.image_ref)
            .where(instance.id > after)
            .order_by(instance.id).limit(limit).subquery())
    return (sa.select(page.c.id, page.c.uuid, meta.key, meta.value,
                      page.c.display_name, page.c.project_id, page.c.host,
                      page.c.image_ref)
            .select_from(page.outerjoin(meta, sa.and_(
                # nova deletes softly: 'deleted' is 0 for a live row
                page.c.deleted == 0, meta.instance_uuid == page.c.uuid,
                meta.key.in_(_KEYS), meta.deleted == 0))))


def _read_page(context, after, limit):
    """One page of one cell (``context`` targets it): rows as tuples;
    ``after`` maps each cell's uuid to its last instance id read."""
    from nova.db.main import api as db_api

    with db_api.get_context_manager(context).reader.using(context) as s:
        return [tuple(row) for row in s.execute(
            _page(after[context.cell_uuid], limit))]


def _cells():
    nova_context.load_cells()
    return [cell for cell in nova_context.CELLS if not cell.is_cell0()]


def instances(context, page_instances=PAGE_INSTANCES):
    """Return the instances with our keys, of every cell but cell0.

    ``audit.Instance`` objects of those with recorded fabrics or secrets,
    read a page at a time (keyset pagination on the instance id), every
    cell at once: each page of each cell is one query and one call of
    nova's scatter-gather, within its per-cell limit. Only our keys' rows
    are read, with the instance's uuid, name, project, host and image;
    nothing is loaded as nova objects. cell0 holds only instances that
    were never scheduled: none has a KeyProtector.

    :raises vtpm_cli.exception.NovaUnreadable: a cell did not answer, or
        failed.
    """
    found = {}  # uuid -> (name, project, host, image, {key: value})
    pending = _cells()
    after = {cell.uuid: 0 for cell in pending}
    while pending:
        results = nova_context.scatter_gather_cells(
            context, pending, nova_context.CELL_TIMEOUT, _read_page, after,
            page_instances)
        more = []
        for cell in sorted(pending, key=lambda cell: cell.uuid):
            rows = results[cell.uuid]
            _raise_on_failure(cell.uuid, rows)
            for _, uuid, key, value, name, project, host, image in rows:
                if key is not None:
                    found.setdefault(uuid, (name, project, host, image, {}))[
                        4][key] = value
            if len({row[0] for row in rows}) == page_instances:
                after[cell.uuid] = max(row[0] for row in rows)
                more.append(cell)
        pending = more
    return [audit.Instance(uuid, name, project, host, image, keys)
            for uuid, (name, project, host, image, keys) in found.items()
            # a local key protector records no fabric and no secret
            if sysmeta.fabrics(keys) or sysmeta.keys(keys)
            or sysmeta.missing(keys)]


def gather(context):
    """Return (instances, reports) of every cell but cell0.

    ``instances`` are ``instances``'; ``reports`` every compute node's
    ``HostCapabilities`` (None where unreadable).

    :raises vtpm_cli.exception.NovaUnreadable: a cell did not answer, or
        failed.
    """
    reports = [capabilities.from_stats(stats) for _, _, stats in
               node_stats(context)]
    return instances(context), reports


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
