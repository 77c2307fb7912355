# SPDX-License-Identifier: Apache-2.0
"""Keystone: its configuration, its one-time setup, its users and catalog.

The database, fernet keys and users are made once per state directory and
reused while the configuration and port hold (``keystone-manage`` takes
seconds); passwords are random per database, kept in
``keystone/credentials.json`` (mode 0600).
"""

import grp
import hashlib
import json
import os
import pwd
import secrets
import shutil
import time

from tools.services import common
from tools.services import install

HEALTH_PATH = '/v3'

# (kind, user, project, roles on that project), all in domain ``default``
IDENTITIES = (
    # the tenant
    ('owner', 'vtpm-owner', 'vtpm-owner', ('member', 'creator')),
    # another tenant
    ('other', 'vtpm-other', 'vtpm-other', ('member', 'creator')),
    # what [vtpm_key_manager] service credentials look like
    ('service', 'vtpm-service', 'service', ('member', 'creator')),
    # keystonemiddleware's users: 'service' is enough to validate tokens
    # (nova's for an in-process nova-api)
    ('nova', 'vtpm-nova', 'service', ('service',)),
    ('barbican', 'barbican', 'service', ('service',)),
    ('glance', 'glance', 'service', ('service',)),
)
ROLES = ('member', 'reader', 'admin', 'service', 'creator')


def _conf(directory):
    return '\n'.join([
        '[DEFAULT]', 'log_file = %s/keystone.log' % directory, '',
        '[database]', 'connection = sqlite:///%s/keystone.db' % directory, '',
        '[token]', 'provider = fernet', '',
        '[fernet_tokens]', 'key_repository = %s/fernet-keys' % directory, '',
        # its default is /etc/keystone/fernet-keys, which fernet_setup
        # would create too
        '[fernet_receipts]', 'key_repository = %s/fernet-keys' % directory, '',
        '[credential]', 'key_repository = %s/credential-keys' % directory, '',
        # bcrypt cost 4: a password check in ~1 ms instead of ~250 ms
        '[identity]', 'password_hash_rounds = 4', '',
        # ~200 SQL queries per call without it; one worker, so in-process
        # memory is coherent
        '[cache]', 'enabled = true', 'backend = dogpile.cache.memory', ''])


# keystone-manage's steps in one interpreter: each keystone-manage process
# spends ~2 s importing keystone, and there are four of them
_KEYSTONE_MANAGE = '''
import json, sys
from keystone.cmd import cli
job = json.load(sys.stdin)
for command in job['commands']:
    cli.CONF.clear()
    cli.main(argv=['keystone-manage', '--config-file', job['conf']] + command)
'''


def setup(state_dir):
    """Keystone's database and keys, once; returns kind -> password.

    ``admin`` is Keystone's bootstrap administrator.
    """
    directory = state_dir / 'keystone'
    port = common.ports(state_dir)['keystone']
    conf = _conf(directory)
    stamp = hashlib.sha256(repr((conf, port, IDENTITIES)).encode())
    ready = directory / '.ready'
    credentials = common.read_json(directory / 'credentials.json')
    if (ready.exists() and ready.read_text() == stamp.hexdigest()
            and credentials):
        common.log('reusing the Keystone database in %s' % directory)
        return credentials
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for keys in ('fernet-keys', 'credential-keys'):
        (directory / keys).mkdir(mode=0o700)
    (directory / 'keystone.conf').write_text(conf)
    # keystone's app runs oslo.config over sys.argv: hide gunicorn's flags
    (directory / 'ks_wsgi.py').write_text(
        'import sys\nsys.argv = sys.argv[:1]\n'
        'from keystone.wsgi.api import application  # noqa: E402,F401\n')
    # hex: never starts with '-', so no argument parser takes one for an
    # option
    credentials = {kind: secrets.token_hex(18)
                   for kind in ['admin'] + [i[0] for i in IDENTITIES]}
    common.write_private(directory / 'credentials.json',
                         json.dumps(credentials))
    owner = ['--keystone-user', pwd.getpwuid(os.getuid()).pw_name,
             '--keystone-group', grp.getgrgid(os.getgid()).gr_name]
    url = 'http://%s:%d/v3' % (common.HOST, port)
    commands = [
        ['db_sync'], ['fernet_setup'] + owner, ['credential_setup'] + owner,
        ['bootstrap', '--bootstrap-password', credentials['admin'],
         '--bootstrap-username', 'admin', '--bootstrap-project-name', 'admin',
         '--bootstrap-role-name', 'admin', '--bootstrap-service-name',
         'keystone', '--bootstrap-region-id', common.REGION,
         '--bootstrap-public-url', url, '--bootstrap-internal-url', url,
         '--bootstrap-admin-url', url]]
    started = time.monotonic()
    # the password goes through stdin, not the process list
    common.run_logged(
        'keystone-manage',
        [str(install.bin_path('python')), '-c', _KEYSTONE_MANAGE],
        state_dir / 'setup.log', stdin=json.dumps({
            'conf': str(directory / 'keystone.conf'),
            'commands': commands}).encode())
    ready.write_text(stamp.hexdigest())
    common.log('Keystone database, fernet and credential keys ready in %.1fs'
               % (time.monotonic() - started))
    return credentials


def app(directory):
    """gunicorn's application arguments and the environment it reads."""
    return (['ks_wsgi:application'], common.python_env(
        OS_KEYSTONE_CONFIG_FILES=str(directory / 'keystone.conf')))


def authtoken_section(keystone_url, user, password):
    """keystonemiddleware's section for a service user of project service."""
    return [
        '[keystone_authtoken]', 'www_authenticate_uri = %s/v3' % keystone_url,
        'auth_url = %s/v3' % keystone_url, 'auth_type = password',
        'username = %s' % user, 'password = %s' % password,
        'project_name = service', 'user_domain_id = default',
        'project_domain_id = default', 'service_token_roles_required = true',
        '']


class Admin:
    """Keystone's REST API as its bootstrap administrator."""

    def __init__(self, url, password):
        self.url = url + '/v3'
        self.token = login(url, 'admin', password, 'admin')

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        status, _, data = common.http(method, self.url + path, body,
                                      {'X-Auth-Token': self.token})
        if status not in expect:
            raise common.ServiceError('Keystone %s %s: HTTP %d %s' % (
                method, path, status, data[:300].decode(errors='replace')))
        return json.loads(data) if data else None

    def ensure(self, collection, member, body):
        """The ``collection`` entry named ``body['name']``, made if absent."""
        query = '/%s?name=%s' % (collection, body['name'])
        found = self.call('GET', query)[collection]
        if found:
            return found[0]
        return self.call('POST', '/' + collection, {member: body})[member]

    def ensure_endpoints(self, name, service_type, url):
        """The service ``name`` with public, internal and admin ``url``."""
        service = self.ensure('services', 'service', {
            'name': name, 'type': service_type})
        endpoints = self.call('GET', '/endpoints?service_id=%s'
                              % service['id'])['endpoints']
        have = {e['interface']: e for e in endpoints}
        for interface in ('public', 'internal', 'admin'):
            if interface not in have:
                self.call('POST', '/endpoints', {'endpoint': {
                    'service_id': service['id'], 'interface': interface,
                    'url': url, 'region_id': common.REGION}})
            elif have[interface]['url'] != url:
                self.call('PATCH', '/endpoints/%s' % have[interface]['id'],
                          {'endpoint': {'url': url}})

    def remove_service(self, name):
        """Remove service ``name`` and its endpoints; a no-op if absent."""
        for service in self.call('GET', '/services?name=%s'
                                 % name)['services']:
            # deleting a service deletes its endpoints
            self.call('DELETE', '/services/%s' % service['id'])


def login(url, user, password, project):
    """A project-scoped token of ``user``; ServiceError if refused."""
    domain = {'id': 'default'}
    status, headers, _ = common.http('POST', url + '/v3/auth/tokens', {
        'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': user, 'domain': domain, 'password': password}}},
            'scope': {'project': {'name': project, 'domain': domain}}}})
    if status != 201:
        raise common.ServiceError('Keystone refused the login of %s '
                                  '(project %s): HTTP %d'
                                  % (user, project, status))
    return headers['X-Subject-Token']


def provision(state_dir, credentials, catalog):
    """Users, projects, roles, and the ``catalog``: once per database.

    ``catalog`` maps a service name to its (type, URL). Returns kind ->
    (user, user_id, project, project_id).
    """
    done = state_dir / 'keystone' / 'provisioned.json'
    stamp = hashlib.sha256(repr((sorted(catalog.items()), IDENTITIES))
                           .encode()).hexdigest()
    known = common.read_json(done)
    if known and known.get('stamp') == stamp:
        return {kind: tuple(v) for kind, v in known['identities'].items()}
    ks = admin(state_dir, credentials)
    roles = {name: ks.ensure('roles', 'role', {'name': name})['id']
             for name in ROLES}
    found = {}
    for kind, user, project, granted in IDENTITIES:
        project_id = ks.ensure('projects', 'project', {
            'name': project, 'domain_id': 'default'})['id']
        user_id = ks.ensure('users', 'user', {
            'name': user, 'domain_id': 'default',
            'password': credentials[kind],
            'default_project_id': project_id})['id']
        for role in granted:
            ks.call('PUT', '/projects/%s/users/%s/roles/%s'
                    % (project_id, user_id, roles[role]))
        found[kind] = (user, user_id, project, project_id)
    for name, (service_type, url) in sorted(catalog.items()):
        ks.ensure_endpoints(name, service_type, url)
    done.write_text(json.dumps({'stamp': stamp, 'identities': found}))
    return found


def admin(state_dir, credentials=None):
    """Keystone of a started state directory, as its administrator."""
    if credentials is None:
        credentials = common.read_json(
            state_dir / 'keystone' / 'credentials.json')
    if not credentials:
        raise common.ServiceError('%s has no Keystone credentials: run '
                                  'start() first' % state_dir)
    return Admin(common.urls(state_dir)['keystone'], credentials['admin'])
