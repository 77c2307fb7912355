# SPDX-License-Identifier: Apache-2.0
"""Clients of the running services, as the tests and the benchmarks use them.

After ``start()`` (or ``eval "$(python3 -m tools.services env)"``) the
``VTPM_TEST_*`` environment says where the services are and who the users
are; these build keystoneauth1 plugins and sessions for those users and
store and delete Barbican secrets as them. Unlike the rest of the package
this module needs the project's virtualenv (keystoneauth1,
python-barbicanclient): ``run.py`` never imports it.

Users (``kind``): ``owner`` and ``other`` are members of two different
projects (two tenants); ``service`` is a member of project ``service``;
``nova`` has role ``service`` there (what nova's ``[service_user]`` is).
"""

import functools
import os

from barbicanclient import client as barbican_client
from keystoneauth1.identity import v3
from keystoneauth1 import session as ks_session

KINDS = ('owner', 'other', 'service', 'nova')
_HINT = ('the real Keystone, Barbican and Glance are not running (no %s in '
         'the environment): in the tests, use the real_services fixture, '
         'which starts them; elsewhere, python3 -m tools.services start, '
         'then eval "$(python3 -m tools.services env)"')


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
