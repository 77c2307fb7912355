# SPDX-License-Identifier: Apache-2.0
"""The nova side: the scheduler host filter, the nova-api validator, and
the audit's reader of nova's databases (``novadb``)."""

from stevedore import extension

FILTERS_NAMESPACE = 'vtpm_filters.filters'


def all_filters():
    """Return the project's host filter classes, for ``available_filters``.

    nova expands a plain function named in
    ``[filter_scheduler] available_filters`` by calling it, so
    ``available_filters = vtpm_filters.all_filters`` makes every filter
    registered under the ``vtpm_filters.filters`` entry point group
    available, as nova's own ``nova.scheduler.filters.all_filters`` does for
    the built-in ones.
    """
    manager = extension.ExtensionManager(FILTERS_NAMESPACE)
    return [ext.plugin for ext in sorted(manager, key=lambda e: e.name)]
