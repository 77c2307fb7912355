# SPDX-License-Identifier: Apache-2.0
"""Fixtures for the key source tests: a conf, the real services, secrets."""

import secrets as random_bytes

from barbicanclient import exceptions as barbican_exceptions
from keystoneauth1 import exceptions as ks_exceptions
from oslo_config import cfg
import pytest

from tests import realservices
from vtpm_hyperv import secrets


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


@pytest.fixture(scope='session')
def services():
    """The real Keystone and Barbican; a failure (not a skip) without them."""
    try:
        return {'keystone': realservices.keystone_url(),
                'barbican': realservices.barbican_url(),
                'owner': realservices.user('owner'),
                'other': realservices.user('other'),
                'service': realservices.user('service')}
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
