# SPDX-License-Identifier: Apache-2.0
"""The documentation's version, and the release notes', are setup.cfg's.

* ``version`` and ``release`` are read from ``setup.cfg``;
* ``.. vtpm-release-notes::`` is reno's ``release-notes`` for the current
  branch, except that the notes of a tree without a release tag, which reno
  heads ``0.0.0`` (no option of reno's changes that: its
  ``unreleased_version_title`` applies to ``<tag>-<count>`` versions only),
  are headed with setup.cfg's version. A CI clone has no tags;
* the build warns, an error with ``-W``, if the release notes page is not
  headed with that version, or is headed ``0.0.0``.
"""

import configparser
import pathlib

from docutils import nodes
from docutils.parsers import rst
from docutils import statemachine
from reno import config
from reno import formatter
from reno import loader
from sphinx.util import logging
from sphinx.util.nodes import nested_parse_with_titles

LOG = logging.getLogger(__name__)
ROOT = pathlib.Path(__file__).resolve().parents[3]
# What reno's scanner calls the version of a tree with no release tag.
NO_TAG = '0.0.0'


def version():
    """The version setup.cfg names."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / 'setup.cfg')
    return setup['metadata']['version']


class _Renamed:
    """reno's loader, with its untagged version under another name."""

    def __init__(self, notes, renames):
        self._notes = notes
        self._back = {new: old for old, new in renames.items()}
        self.versions = [renames.get(v, v) for v in notes.versions]

    def __getitem__(self, name):
        return self._notes[self._back.get(name, name)]

    def __getattr__(self, name):
        return getattr(self._notes, name)


class ReleaseNotes(rst.Directive):
    """reno's notes of the current branch; the title is the content."""

    has_content = True

    def run(self):
        conf = config.Config(str(ROOT), 'releasenotes')
        with loader.Loader(conf) as notes:
            renamed = _Renamed(notes, {NO_TAG: version()})
            text = formatter.format_report(renamed, conf, renamed.versions,
                                           title=' '.join(self.content))
        lines = statemachine.ViewList()
        for number, line in enumerate(text.splitlines(), 1):
            lines.append(line, '<reno>', number)
        section = nodes.section()
        section.document = self.state.document
        nested_parse_with_titles(self.state, lines, section)
        return section.children


def _check(app, doctree, docname):
    if docname != 'releasenotes':
        return
    titles = [t.astext() for t in doctree.findall(nodes.title)]
    if version() not in titles or NO_TAG in titles:
        LOG.warning("the release notes are headed %s, not setup.cfg's "
                    'version %s', ', '.join(titles), version(),
                    location=docname)


def _set_version(app, config):
    config.version = config.release = version()


def setup(app):
    app.add_directive('vtpm-release-notes', ReleaseNotes)
    app.connect('config-inited', _set_version)
    app.connect('doctree-resolved', _check)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
