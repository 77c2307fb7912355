# SPDX-License-Identifier: Apache-2.0
"""Sphinx directive ``vtpm-lifecycle-rules``: the table of lifecycle.RULES.

The admin guide shows the decision table the compute side applies, rendered
from ``vtpm_hyperv.nova.lifecycle.RULES`` at build time, so the two cannot
disagree (as the user guide's merge table is rendered from its CSV).
"""

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

from vtpm_hyperv.nova import lifecycle


class LifecycleRules(Directive):
    """A list-table: operation, the two kinds of vTPM, and why."""

    def run(self):
        lines = ['.. list-table::', '   :header-rows: 1',
                 '   :widths: 14 18 22 46', '']
        rows = [('Operation', lifecycle.LOCAL, lifecycle.KEYED, 'Why')]
        rows += [(r.operation, r.local, r.keyed, r.why)
                 for r in lifecycle.RULES]
        for first, *rest in rows:
            lines.append('   * - %s' % first)
            lines.extend('     - %s' % cell for cell in rest)
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source='vtpm_hyperv.nova.lifecycle.RULES'),
            self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive('vtpm-lifecycle-rules', LifecycleRules)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
