# SPDX-License-Identifier: Apache-2.0
"""Real Keystone, Barbican and Glance on loopback, for the tests and the demo.

Stdlib only: ``run.py`` imports it before any virtualenv exists.

``start(state_dir)`` builds ``.venv-services`` (keystone 30, barbican 23,
glance 33 and gunicorn, pinned by ``tools/services/constraints.txt``),
configures the services under ``state_dir`` (default ``.state``: SQLite,
fernet tokens, Glance's file store, one gunicorn worker each, free loopback
ports), provisions Keystone (users, the ``key-manager`` and ``image``
services and their endpoints), checks a secret round trip and an image
listing, and returns the environment the tests read (also in
``state_dir/env.json``):

- ``VTPM_TEST_KEYSTONE_URL`` (``http://127.0.0.1:PORT/v3``),
  ``VTPM_TEST_BARBICAN_URL``, ``VTPM_TEST_GLANCE_URL``,
  ``VTPM_TEST_REGION``, ``VTPM_TEST_STATE_DIR``;
- for KIND in OWNER, OTHER, SERVICE, NOVA: ``VTPM_TEST_<KIND>_USERNAME``,
  ``_PASSWORD``, ``_PROJECT`` (name), ``_USER_ID``, ``_PROJECT_ID``.

``stop(state_dir)`` stops them; ``with running(state_dir) as env:`` does
both. A second start() on a state dir whose services are up restarts them;
the Keystone database is reused while its configuration and port hold,
Barbican and Glance start empty. A test can stop and start one service with
``stop_service(state_dir, 'barbican')`` and ``start_service(...)``, and put
an in-process API (nova's, through wsgi-intercept) in the catalog with
``register_endpoint(state_dir, 'nova', 'compute', url)`` until
``unregister_endpoint(state_dir, 'nova')`` (and call it as Keystone's admin
with ``admin_token(state_dir)``).

Identities, all in domain ``default``: ``owner`` and ``other`` are members
of projects ``vtpm-owner`` and ``vtpm-other`` (two tenants); ``service`` a
member of project ``service`` (what ``[vtpm_key_manager]`` service
credentials look like); ``nova``, ``barbican`` and ``glance`` have role
``service`` there, for their keystonemiddleware. Passwords are random per
Keystone database, kept in the state directory (mode 0600) and printed only
by the ``env`` command.

By hand, from the repository's root (``python3 -m tools.services --help``)::

    python3 -m tools.services start [STATE_DIR]
    eval "$(python3 -m tools.services env [STATE_DIR])"
    python3 -m tools.services stop [STATE_DIR]

The modules, one job each: ``install`` (the virtualenv), ``process``
(gunicorn daemons), ``keystone``, ``barbican``, ``glance`` (each service's
configuration; Keystone's users and catalog), ``smoke`` (the check after a
start), ``stack`` (the three together), ``cli`` (the command line).
"""

from tools.services.common import ServiceError
from tools.services.install import VENV
from tools.services.stack import admin_token
from tools.services.stack import environment
from tools.services.stack import register_endpoint
from tools.services.stack import running
from tools.services.stack import start
from tools.services.stack import start_service
from tools.services.stack import STATE_DIR
from tools.services.stack import stop
from tools.services.stack import stop_service
from tools.services.stack import unregister_endpoint

__all__ = ['ServiceError', 'STATE_DIR', 'VENV', 'admin_token', 'environment',
           'register_endpoint', 'running', 'start', 'start_service', 'stop',
           'stop_service', 'unregister_endpoint']
