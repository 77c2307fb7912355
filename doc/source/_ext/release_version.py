# SPDX-License-Identifier: Apache-2.0
"""The documentation's version, and the release notes', are setup.cfg's.

* ``version`` and ``release`` are read from ``setup.cfg``;
* the release notes are reno's own ``.. release-notes::`` (``reno.sphinxext``).
  reno heads the notes of a tree without a release tag ``0.0.0`` (no option
  of reno's changes that: its ``unreleased_version_title`` applies to
  ``<tag>-<count>`` versions only), and a CI clone has no tags: that one
  heading is given setup.cfg's version, nothing else of reno's output
  changes;
* the build warns, an error with ``-W``, if the release notes page is not
  headed with that version, or is headed ``0.0.0``.
"""

import configparser
import pathlib

from docutils import nodes
from sphinx.util import logging

LOG = logging.getLogger(__name__)
ROOT = pathlib.Path(__file__).resolve().parents[3]
# What reno's scanner calls the version of a tree with no release tag.
NO_TAG = '0.0.0'
PAGE = 'releasenotes'


def version():
    """The version setup.cfg names."""
    setup = configparser.ConfigParser()
    setup.read(ROOT / 'setup.cfg')
    return setup['metadata']['version']


def _retitle(app, doctree):
    if app.env.docname != PAGE:
        return
    for title in doctree.findall(nodes.title):
        if title.astext() == NO_TAG:
            title.children = [nodes.Text(version())]


def _check(app, doctree, docname):
    if docname != PAGE:
        return
    titles = [t.astext() for t in doctree.findall(nodes.title)]
    if version() not in titles or NO_TAG in titles:
        LOG.warning("the release notes are headed %s, not setup.cfg's "
                    'version %s', ', '.join(titles), version(),
                    location=docname)


def _set_version(app, config):
    config.version = config.release = version()


def setup(app):
    app.connect('config-inited', _set_version)
    app.connect('doctree-read', _retitle)
    app.connect('doctree-resolved', _check)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
