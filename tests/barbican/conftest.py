# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the key source tests: a conf, the real services, secrets."""

import json
import pathlib
import secrets as random_bytes
import subprocess

from barbicanclient import exceptions as barbican_exceptions
from keystoneauth1 import exceptions as ks_exceptions
from oslo_config import cfg
import pytest

from tests.barbican import stub as stub_server
from tests import realservices
from tools import services as services_tool
from vtpm_hyperv import secrets

# Keystone's own fernet formatter and keys, in the services' virtualenv: a
# real project-scoped token, only with an expiry in the past (waiting for
# one to expire would take Keystone's [token] expiration, an hour)
_EXPIRED_TOKEN = '''
import base64, datetime, json, os, sys, warnings
warnings.simplefilter('ignore')
job = json.load(sys.stdin)
import keystone.conf
from keystone.token import token_formatters
keystone.conf.configure()
keystone.conf.CONF(['--config-file', job['conf']], project='keystone',
                   default_config_files=[])
expires = (datetime.datetime.now(datetime.timezone.utc)
           - datetime.timedelta(seconds=job['ago']))
audit_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip('=')
print(token_formatters.TokenFormatter().create_token(
    job['user_id'], expires.strftime('%Y-%m-%dT%H:%M:%S.%fZ'), [audit_id],
    token_formatters.ProjectScopedPayload, methods=['password'],
    project_id=job['project_id']))
'''


@pytest.fixture
def conf():
    """A fresh conf with [vtpm_key_manager] and quick retries."""
    conf = cfg.ConfigOpts()
    conf([], project='hyperv-vtpm-test')
    secrets.register_opts(conf)
    conf.set_override('connect_retry_delay', 0.05, secrets.GROUP)
    conf.set_override('status_code_retry_delay', 0.05, secrets.GROUP)
    yield conf
    conf.reset()


@pytest.fixture
def stub():
    """A Barbican stand-in that misbehaves on demand (tests.barbican.stub)."""
    server = stub_server.start()
    yield server
    stub_server.stop(server)


@pytest.fixture
def source(conf, stub):
    """A key source whose Barbican is the stub."""
    conf.set_override('endpoint_override', stub.url, secrets.GROUP)
    return secrets.BarbicanKeySource(conf)


@pytest.fixture
def wiped(monkeypatch):
    """(ref, payload buffer) of every SecretPayload wiped during the test."""
    seen = []
    original = secrets.SecretPayload.wipe

    def spy(item):
        seen.append((item.ref, item.payload))
        original(item)

    monkeypatch.setattr(secrets.SecretPayload, 'wipe', spy)
    return seen


@pytest.fixture(scope='session')
def services(real_services):
    """Where the real Keystone and Barbican are, and their users."""
    try:
        return {'keystone': realservices.keystone_url(),
                'barbican': realservices.barbican_url(),
                'owner': realservices.user('owner'),
                'other': realservices.user('other'),
                'service': realservices.user('service'),
                'nova': realservices.user('nova')}
    except realservices.ServicesMissing as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def store(services):
    """store(payload=None, kind='owner') -> UUID; deleted after the test."""
    stored = []

    def _store(payload=None, kind='owner'):
        if payload is None:
            payload = random_bytes.token_bytes(64)
        ref = realservices.store_secret(payload, kind)
        stored.append((ref, kind))
        return ref

    yield _store
    for ref, kind in stored:
        try:
            realservices.delete_secret(ref, kind)
        except (barbican_exceptions.HTTPError, ks_exceptions.ConnectionError):
            pass  # deleted by the test already


@pytest.fixture(scope='session')
def expired_owner_token(services):
    """A token of the owner that Keystone issued and that expired 2 min ago."""
    owner = services['owner']
    conf = pathlib.Path(realservices.state_dir()) / 'keystone' / \
        'keystone.conf'
    result = subprocess.run(
        [str(services_tool.VENV / 'bin' / 'python'), '-c', _EXPIRED_TOKEN],
        input=json.dumps({'conf': str(conf), 'ago': 120,
                          'user_id': owner['user_id'],
                          'project_id': owner['project_id']}),
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail('cannot make an expired token with Keystone\'s '
                    'formatter:\n%s' % result.stderr[-2000:], pytrace=False)
    return result.stdout.strip()
