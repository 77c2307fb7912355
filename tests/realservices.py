# SPDX-License-Identifier: Apache-2.0
"""The real Keystone, Barbican and Glance, for the tests that need them.

A test that needs them uses the session fixture ``real_services`` (or a
fixture that does, as ``tests/fixtures/barbican.py``'s ``services``; a
``unittest.TestCase`` through ``pytestmark =
pytest.mark.usefixtures('real_services')``). The first such test starts them
(``tools.services``, state in ``.state``), the session's end stops them,
after a failure or Ctrl-C too; a run that selects none starts nothing.
Services already named in the environment (``python3 -m tools.services
start`` and ``eval "$(python3 -m tools.services env)"``) are used as they
are and left running. Every test that uses the fixture carries the marker
``real_services``: ``pytest -m "not real_services"`` is the suite without
them. When they cannot start, each such test fails, never skips: a suite
that cannot reach them has not tested anything.

Then, in the tests:

    realservices.auth('owner')            keystoneauth1 plugin for a user
    realservices.session('other')         a keystoneauth1 session for a user
    ref = realservices.store_secret(b'...', 'owner')    -> the secret's UUID
    realservices.delete_secret(ref, 'owner')
    realservices.unreachable_url()        Barbican (or any) down, for a client

Users (``kind``): ``owner`` and ``other`` are members of two different
projects (two tenants); ``service`` is a member of project ``service``;
``nova`` has role ``service`` there (what nova's ``[service_user]`` is).
"""

import os
import socket

import pytest

from tools import services
from tools.services import clients
from tools.services import common

# the clients, under the names the tests use
ServicesMissing = clients.ServicesMissing
KINDS = clients.KINDS
env = clients.env
keystone_url = clients.keystone_url
barbican_url = clients.barbican_url
user = clients.user
auth = clients.auth
session = clients.session
barbican = clients.barbican
store_secret = clients.store_secret
delete_secret = clients.delete_secret

FIXTURE = 'real_services'


@pytest.fixture(scope='session')
def real_services(request):
    """Keystone, Barbican and Glance, up until the session ends."""
    if 'VTPM_TEST_KEYSTONE_URL' in os.environ:
        yield  # started by hand: theirs to stop
        return
    # the services' progress is worth seeing: they take a while to start
    plugins = request.config.pluginmanager
    capture = plugins.getplugin('capturemanager')
    try:
        with capture.global_and_fixture_disabled():
            plugins.getplugin('terminalreporter').ensure_newline()
            env = services.start()
    except services.ServiceError as e:
        pytest.fail('the real Keystone, Barbican and Glance did not start: '
                    '%s' % e, pytrace=False)
    os.environ.update(env)
    try:
        yield
    finally:
        for name in env:
            os.environ.pop(name, None)
        with capture.global_and_fixture_disabled():
            services.stop()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', '%s: uses the real Keystone, Barbican and Glance (set on '
        'every test that uses the fixture of that name)' % FIXTURE)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Mark every test that uses the services ``real_services``."""
    for item in items:
        if FIXTURE in getattr(item, 'fixturenames', ()):
            item.add_marker(FIXTURE)


def state_dir():
    return env('STATE_DIR')


def unreachable_url():
    """A URL on loopback where nothing listens: a service that is down, as
    its clients see it, while the real ones stay up for the other test
    files that run at the same time (``python3 run.py test``)."""
    with socket.socket() as probe:
        probe.bind((common.HOST, 0))
        port = probe.getsockname()[1]
    return 'http://%s:%d' % (common.HOST, port)
