# SPDX-License-Identifier: Apache-2.0
"""The services' own virtualenv, ``.venv-services``: what it holds, where.

Kept apart from ``.venv``: keystone 30, barbican 23 and glance 33 want
SQLAlchemy 2.1, nova 34's functional harness needs < 2.1.
"""

import pathlib

from tools.services import common
from tools import venvs

ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = ROOT / '.venv-services'
CONSTRAINTS = pathlib.Path(__file__).resolve().parent / 'constraints.txt'
PACKAGES = ('keystone==30.0.0', 'barbican==23.0.0', 'glance==33.0.0',
            'gunicorn')


def bin_path(name):
    """A program of the virtualenv: ``python``, ``gunicorn``, ..."""
    return VENV / 'bin' / name


def ensure():
    """Create or update the virtualenv; a no-op while the pins hold.

    Returns the digest of what is installed, for caches built from it.
    """
    try:
        return venvs.ensure(
            VENV, 'keystone, barbican, glance and gunicorn (pinned)',
            ['--no-compile', '-c', str(CONSTRAINTS)] + list(PACKAGES),
            inputs=[CONSTRAINTS], log=common.log)
    except venvs.InstallError as e:
        raise common.ServiceError(str(e)) from None
