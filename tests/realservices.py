# SPDX-License-Identifier: Apache-2.0
"""The real Keystone, Barbican and Glance, for the tests that need them.

A test that needs them uses the session fixture ``real_services`` (or a
fixture that does, as ``tests/barbican/conftest.py``'s ``services``; a
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
    realservices.stop_barbican(); realservices.start_barbican()

Users (``kind``): ``owner`` and ``other`` are members of two different
projects (two tenants); ``service`` is a member of project ``service``;
``nova`` has role ``service`` there (what nova's ``[service_user]`` is).
"""

import functools
import os

from barbicanclient import client as barbican_client
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session
import pytest

from tools import services

KINDS = ('owner', 'other', 'service', 'nova')
FIXTURE = 'real_services'
_HINT = ('the real Keystone, Barbican and Glance are not running (no %s in '
         'the environment): a test that talks to them uses the '
         'real_services fixture, which starts them')


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


class ServicesMissing(RuntimeError):
    pass


def env(name):
    """One ``VTPM_TEST_*`` variable; ServicesMissing if it is not set."""
    key = 'VTPM_TEST_' + name
    try:
        return os.environ[key]
    except KeyError:
        raise ServicesMissing(_HINT % key) from None


def keystone_url():
    return env('KEYSTONE_URL')


def barbican_url():
    return env('BARBICAN_URL')


def user(kind):
    """dict(username, password, project, user_id, project_id) of a user."""
    if kind not in KINDS:
        raise ValueError('kind is %r; allowed: %s' % (kind, ', '.join(KINDS)))
    prefix = kind.upper() + '_'
    return {name.lower(): env(prefix + name) for name in (
        'USERNAME', 'PASSWORD', 'PROJECT', 'USER_ID', 'PROJECT_ID')}


def auth(kind='owner'):
    """A new keystoneauth1 v3 Password plugin scoped to the user's project."""
    u = user(kind)
    return v3.Password(auth_url=keystone_url(), username=u['username'],
                       password=u['password'], project_name=u['project'],
                       user_domain_id='default', project_domain_id='default')


def session(kind='owner'):
    return ks_session.Session(auth=auth(kind))


@functools.lru_cache(maxsize=None)
def _client(kind, keystone):
    # Client() authenticates and discovers Barbican's version: build it once
    return barbican_client.Client(session=session(kind),
                                  region_name=os.environ.get(
                                      'VTPM_TEST_REGION'))


def barbican(kind='owner'):
    """A python-barbicanclient Client acting as the user (cached)."""
    return _client(kind, keystone_url())


def store_secret(payload, kind='owner', name='hyperv-vtpm test'):
    """Store ``payload`` (bytes, as application/octet-stream); its UUID."""
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError('payload must be bytes, not %s'
                        % type(payload).__name__)
    # bytes: barbicanclient sends application/octet-stream, base64-encoded
    secret = barbican(kind).secrets.create(
        name=name, payload=bytes(payload), secret_type='opaque')
    return secret.store().rsplit('/', 1)[1]


def delete_secret(ref, kind='owner'):
    barbican(kind).secrets.delete(ref)


def state_dir():
    return env('STATE_DIR')


def stop_barbican():
    """Stop the real Barbican (its gunicorn) until start_barbican()."""
    services.stop_service(state_dir(), 'barbican')


def start_barbican():
    """Start it again on the same port, with the same database."""
    services.start_service(state_dir(), 'barbican')
