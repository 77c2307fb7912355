# SPDX-License-Identifier: Apache-2.0
"""Start and stop real Keystone, Barbican and Glance on loopback for the tests.

Stdlib only: ``run.py`` imports it before any virtualenv exists.

``start(state_dir)`` builds ``.venv-services`` (keystone 30, barbican 23,
glance 33 and gunicorn, pinned by ``tools/services-constraints.txt``; kept
apart from ``.venv`` because these services want SQLAlchemy 2.1 and nova's
harness needs < 2.1), configures the services under ``state_dir`` (SQLite,
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

A second start() on a state dir whose services are up restarts them; the
Keystone database is reused while its configuration and port hold, Barbican
and Glance start empty. ``stop(state_dir)`` stops them all. A test can stop
and start one service with ``stop_service(state_dir, 'barbican')`` and
``start_service(...)`` (``tests/realservices.py`` wraps them), and put an
in-process API (nova's, through wsgi-intercept) in the catalog with
``register_endpoint(state_dir, 'nova', 'compute', url)`` until
``unregister_endpoint(state_dir, 'nova')`` (and call it as Keystone's admin
with ``admin_token(state_dir)``); the state directory is in
``$VTPM_TEST_STATE_DIR``.

Identities, all in domain ``default``:

- owner: a member (and creator) of project ``vtpm-owner``: the tenant;
- other: a member of project ``vtpm-other``: another tenant;
- service: a member of project ``service``: what ``[vtpm_key_manager]``
  service credentials look like;
- nova: role ``service`` in ``service``, for the keystonemiddleware of an
  in-process nova-api;
- barbican, glance: role ``service`` in ``service``, for their
  keystonemiddleware.

Passwords are random per Keystone database, kept in the state directory
(mode 0600) and printed only by ``services.py env``.
"""

import base64
import grp
import hashlib
import json
import os
import pathlib
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv

ROOT = pathlib.Path(__file__).resolve().parent.parent
VENV = ROOT / '.venv-services'
CONSTRAINTS = ROOT / 'tools' / 'services-constraints.txt'
PACKAGES = ('keystone==30.0.0', 'barbican==23.0.0', 'glance==33.0.0',
            'gunicorn')
HOST = '127.0.0.1'
REGION = 'RegionOne'
SERVICES = ('keystone', 'barbican', 'glance')
# what _wait_healthy asks each service for
HEALTH_PATHS = {'keystone': '/v3', 'barbican': '/', 'glance': '/healthcheck'}
START_TIMEOUT = 60
STOP_TIMEOUT = 10

# (kind, user, project, roles on that project)
IDENTITIES = (
    ('owner', 'vtpm-owner', 'vtpm-owner', ('member', 'creator')),
    ('other', 'vtpm-other', 'vtpm-other', ('member', 'creator')),
    ('service', 'vtpm-service', 'service', ('member', 'creator')),
    # keystonemiddleware's users: 'service' is enough to validate tokens
    ('nova', 'vtpm-nova', 'service', ('service',)),
    ('barbican', 'barbican', 'service', ('service',)),
    ('glance', 'glance', 'service', ('service',)),
)
# the identities of the services started here: not in the tests' env
SERVICE_USERS = ('barbican', 'glance')


class ServiceError(RuntimeError):
    """A service could not be set up or started."""


def log(message):
    print('==> %s' % message, flush=True)


# --- the virtualenv ----------------------------------------------------------

def _venv_python():
    return VENV / 'bin' / 'python'


def ensure_venv():
    """Create or refresh .venv-services; a no-op while the pins hold."""
    digest = hashlib.sha256(CONSTRAINTS.read_bytes())
    digest.update(repr((PACKAGES, sys.version_info[:2])).encode())
    wanted = digest.hexdigest()
    stamp = VENV / '.hyperv-vtpm-services'
    if stamp.exists() and stamp.read_text() == wanted:
        return
    started = time.monotonic()
    if not _venv_python().exists():
        log('creating %s' % VENV)
        venv.EnvBuilder(with_pip=True).create(VENV)
    log('installing keystone, barbican, glance and gunicorn into %s (pinned)'
        % VENV.name)
    pip_log = VENV / 'pip.log'
    with open(pip_log, 'wb') as out:
        result = subprocess.run(
            [str(_venv_python()), '-m', 'pip', 'install', '--quiet',
             '--disable-pip-version-check', '--no-compile',
             '-c', str(CONSTRAINTS)]
            + list(PACKAGES), stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise ServiceError('pip install into %s failed (exit %d):\n%s' % (
            VENV, result.returncode, _tail(pip_log)))
    stamp.write_text(wanted)
    log('services virtualenv ready in %.1fs' % (time.monotonic() - started))


# --- small helpers -----------------------------------------------------------

def _tail(path, lines=25):
    try:
        text = pathlib.Path(path).read_text(errors='replace')
    except OSError:
        return '(no %s)' % path
    return '\n'.join(text.splitlines()[-lines:])


def _free_port():
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _port_free(port):
    with socket.socket() as sock:
        # as gunicorn binds: a port in TIME_WAIT is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _read_json(path):
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write(text)


def _run(argv, log_path, env=None, cwd=None):
    with open(log_path, 'ab') as out:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd)
    if result.returncode != 0:
        raise ServiceError('%s failed (exit %d):\n%s' % (
            ' '.join(str(a) for a in argv[:3]), result.returncode,
            _tail(log_path)))


def _http(method, url, body=None, headers=None, timeout=10):
    """One request: (status, headers, body); an HTTP error is no exception."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers['Content-Type'] = 'application/json'
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


# --- processes ---------------------------------------------------------------

def _proc_state(pid):
    try:
        stat = pathlib.Path('/proc/%d/stat' % pid).read_text()
    except OSError:
        return None
    return stat.rsplit(')', 1)[1].split()[0]


def _alive(pid):
    return _proc_state(pid) not in (None, 'Z')


def _children(pid):
    kids = []
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _our_pid(state_dir, name):
    """The gunicorn master of this state dir's service, or None.

    Only a live process whose working directory is the service's own
    directory counts: a stale pid file never gets a stranger signalled.
    """
    directory = pathlib.Path(state_dir).resolve() / name
    try:
        pid = int((directory / 'gunicorn.pid').read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        cwd = os.readlink('/proc/%d/cwd' % pid)
    except OSError:
        return None
    return pid if pathlib.Path(cwd) == directory else None


def _ports(state_dir):
    ports = _read_json(pathlib.Path(state_dir) / 'ports.json')
    if not ports:
        raise ServiceError('%s has no ports.json: run start() first'
                           % state_dir)
    return ports


def _urls(ports):
    """name -> base URL (no version) of every service."""
    return {name: 'http://%s:%d' % (HOST, ports[name])
            for name in SERVICES if name in ports}


def stop_service(state_dir, name):
    """Stop one service (its gunicorn master and workers); a no-op if down."""
    directory = pathlib.Path(state_dir).resolve() / name
    pid = _our_pid(state_dir, name)
    if pid is None:
        (directory / 'gunicorn.pid').unlink(missing_ok=True)
        return
    workers = _children(pid)
    # gunicorn's quick shutdown: a graceful one waits on idle keep-alives
    os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        for victim in [pid] + workers:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for worker in workers:
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.05)
    (directory / 'gunicorn.pid').unlink(missing_ok=True)
    port = (_read_json(pathlib.Path(state_dir) / 'ports.json') or {}).get(name)
    if port:
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and not _port_free(port):
            time.sleep(0.05)


def _launch(state_dir, name):
    """Start a daemonized gunicorn master for one service; do not wait."""
    state_dir = pathlib.Path(state_dir).resolve()
    directory = state_dir / name
    port = _ports(state_dir)[name]
    if not _port_free(port):
        raise ServiceError('cannot start %s: 127.0.0.1:%d is in use'
                           % (name, port))
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    if name == 'keystone':
        env['OS_KEYSTONE_CONFIG_FILES'] = str(directory / 'keystone.conf')
        app = ['ks_wsgi:application']
    elif name == 'glance':
        # glance.wsgi.api reads $OS_GLANCE_CONFIG_DIR/glance-api.conf and
        # parses no argv
        env['OS_GLANCE_CONFIG_DIR'] = str(directory)
        app = ['glance.wsgi.api:application']
    else:
        # barbican reads ~/barbican.conf at import time and nothing else
        env['HOME'] = str(directory)
        app = ['--paste', str(directory / 'barbican-api-paste.ini')]
    # Glance loads last, while Keystone (which everything waits for) and
    # Barbican take the two cores: the three start about 3 s sooner
    nice = (['nice', '-n', '10'] if name == 'glance' and shutil.which('nice')
            else [])
    argv = nice + [
        str(VENV / 'bin' / 'gunicorn'), '--daemon', '--no-control-socket',
        '--chdir', str(directory), '--bind', '%s:%d' % (HOST, port),
        '--workers', '1', '--worker-class', 'gthread', '--threads', '1',
        '--timeout', '120', '--graceful-timeout', '5',
        '--pid', str(directory / 'gunicorn.pid'),
        '--access-logfile', str(directory / 'access.log'),
        '--error-logfile', str(directory / 'gunicorn.log')] + app
    _run(argv, directory / 'stdout.log', env=env, cwd=directory)


def _wait_healthy(state_dir, name, timeout=START_TIMEOUT):
    """Wait for an HTTP answer (the master binds before the app loads)."""
    url = _urls(_ports(state_dir))[name] + HEALTH_PATHS[name]
    directory = pathlib.Path(state_dir).resolve() / name
    deadline = time.monotonic() + timeout
    seen_pid = False
    why = 'within %ds' % timeout
    while time.monotonic() < deadline:
        pid = _our_pid(state_dir, name)
        if pid is None and seen_pid:
            why = '(gunicorn exited)'  # the app failed to load
            break
        seen_pid = seen_pid or pid is not None
        try:
            status, _, _ = _http('GET', url, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    stop_service(state_dir, name)
    raise ServiceError('%s did not answer on %s %s; last lines of %s:\n%s'
                       % (name, url, why, directory / 'gunicorn.log',
                          _tail(directory / 'gunicorn.log')))


def start_service(state_dir, name):
    """Start one configured service and wait until it answers."""
    _launch(state_dir, name)
    _wait_healthy(state_dir, name)


# --- configuration -----------------------------------------------------------

def _keystone_conf(directory):
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


def _setup_keystone(state_dir, ports, python_env):
    """One-time Keystone setup, reused while its config is unchanged."""
    directory = state_dir / 'keystone'
    conf = _keystone_conf(directory)
    stamp = hashlib.sha256(repr((conf, ports['keystone'], IDENTITIES))
                           .encode())
    ready = directory / '.ready'
    credentials = _read_json(directory / 'credentials.json')
    if (ready.exists() and ready.read_text() == stamp.hexdigest()
            and credentials):
        log('reusing the Keystone database in %s' % directory)
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
    _write_private(directory / 'credentials.json', json.dumps(credentials))
    owner = ['--keystone-user', pwd.getpwuid(os.getuid()).pw_name,
             '--keystone-group', grp.getgrgid(os.getgid()).gr_name]
    url = 'http://%s:%d/v3' % (HOST, ports['keystone'])
    commands = [
        ['db_sync'], ['fernet_setup'] + owner, ['credential_setup'] + owner,
        ['bootstrap', '--bootstrap-password', credentials['admin'],
         '--bootstrap-username', 'admin', '--bootstrap-project-name', 'admin',
         '--bootstrap-role-name', 'admin', '--bootstrap-service-name',
         'keystone', '--bootstrap-region-id', REGION,
         '--bootstrap-public-url', url, '--bootstrap-internal-url', url,
         '--bootstrap-admin-url', url]]
    started = time.monotonic()
    # the password goes through stdin, not the process list
    with open(state_dir / 'setup.log', 'ab') as out:
        result = subprocess.run(
            [str(_venv_python()), '-c', _KEYSTONE_MANAGE],
            input=json.dumps({'conf': str(directory / 'keystone.conf'),
                              'commands': commands}).encode(),
            stdout=out, stderr=subprocess.STDOUT, env=python_env)
    if result.returncode != 0:
        raise ServiceError('keystone-manage failed (exit %d):\n%s' % (
            result.returncode, _tail(state_dir / 'setup.log')))
    ready.write_text(stamp.hexdigest())
    log('Keystone database, fernet and credential keys ready in %.1fs'
        % (time.monotonic() - started))
    return credentials


def _authtoken_section(keystone, user, password):
    """keystonemiddleware's section for a service user of project service."""
    return [
        '[keystone_authtoken]', 'www_authenticate_uri = %s/v3' % keystone,
        'auth_url = %s/v3' % keystone, 'auth_type = password',
        'username = %s' % user, 'password = %s' % password,
        'project_name = service', 'user_domain_id = default',
        'project_domain_id = default', 'service_token_roles_required = true',
        '']


def _setup_barbican(state_dir, ports, credentials):
    """A fresh Barbican (database and KEK) for every start()."""
    directory = state_dir / 'barbican'
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    urls = _urls(ports)
    keystone, barbican = urls['keystone'], urls['barbican']
    # simple_crypto wants a Fernet key: urlsafe base64 of 32 bytes
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    conf = '\n'.join([
        '[DEFAULT]', 'log_file = %s/barbican.log' % directory,
        'host_href = %s' % barbican,
        # creates the tables at start: no barbican-manage process to wait for
        'db_auto_create = true',
        # PKCS#12 bundles with a chain exceed the 20,000-byte default once
        # base64-encoded
        'max_allowed_secret_in_bytes = 65536',
        'max_allowed_request_size_in_bytes = 100000', '',
        '[database]', 'connection = sqlite:///%s/barbican.db' % directory, '',
        '[secretstore]', 'namespace = barbican.secretstore.plugin',
        'enabled_secretstore_plugins = store_crypto', '',
        '[crypto]', 'namespace = barbican.crypto.plugin',
        'enabled_crypto_plugins = simple_crypto', '',
        '[simple_crypto_plugin]', 'kek = %s' % kek, '',
        '[queue]', 'enable = false', '',
        ] + _authtoken_section(keystone, 'barbican', credentials['barbican']))
    _write_private(directory / 'barbican.conf', conf)
    # the shipped paste file hard-codes /etc paths; this is its
    # keystone-authenticated pipeline
    filters = {
        'authtoken': 'keystonemiddleware.auth_token:filter_factory',
        'context': 'barbican.api.middleware.context:'
                   'ContextMiddleware.factory',
        'microversion': 'barbican.api.middleware.microversion:'
                        'MicroversionMiddleware.factory',
        'request_id': 'oslo_middleware.request_id:RequestId.factory',
        'http_proxy_to_wsgi': 'oslo_middleware:HTTPProxyToWSGI.factory',
    }
    paste = [
        '[composite:main]', 'use = egg:Paste#urlmap', '/: versions',
        '/v1: api', '',
        '[pipeline:versions]',
        'pipeline = request_id http_proxy_to_wsgi microversion versionapp', '',
        '[pipeline:api]',
        'pipeline = request_id http_proxy_to_wsgi authtoken context '
        'microversion apiapp', '',
        '[app:apiapp]',
        'paste.app_factory = barbican.api.app:create_main_app', '',
        '[app:versionapp]',
        'paste.app_factory = barbican.api.app:create_version_app', '']
    for name, factory in filters.items():
        paste += ['[filter:%s]' % name, 'paste.filter_factory = %s' % factory,
                  '']
    (directory / 'barbican-api-paste.ini').write_text('\n'.join(paste))


def _glance_schema(state_dir, python_env):
    """An empty, migrated Glance database to copy; built once per venv.

    ``glance-manage db_sync`` takes seconds; a copy of its result takes
    none, and every start() still gets an empty Glance.
    """
    directory = state_dir / 'glance-schema'
    database = directory / 'glance.db'
    stamp = (VENV / '.hyperv-vtpm-services').read_text()
    ready = directory / '.ready'
    if ready.exists() and ready.read_text() == stamp and database.exists():
        return database
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / 'glance-manage.conf').write_text('\n'.join([
        '[DEFAULT]', 'log_file = %s/glance-manage.log' % directory, '',
        '[database]', 'connection = sqlite:///%s' % database, '']))
    started = time.monotonic()
    _run([str(VENV / 'bin' / 'glance-manage'), '--config-file',
          str(directory / 'glance-manage.conf'), 'db_sync'],
         state_dir / 'setup.log', env=python_env, cwd=directory)
    ready.write_text(stamp)
    log('Glance database schema ready in %.1fs' % (time.monotonic() - started))
    return database


def _setup_glance(state_dir, ports, credentials, python_env):
    """A fresh Glance (database and file store) for every start()."""
    schema = _glance_schema(state_dir, python_env)
    directory = state_dir / 'glance'
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for sub in ('images', 'staging', 'tasks', 'locks'):
        (directory / sub).mkdir()
    shutil.copyfile(schema, directory / 'glance.db')
    keystone = _urls(ports)['keystone']
    conf = '\n'.join([
        '[DEFAULT]', 'log_file = %s/glance-api.log' % directory,
        'enabled_backends = fs:file',
        # the import staging area; its default is file:///tmp/staging/
        'node_staging_uri = file://%s/staging/' % directory, '',
        '[database]', 'connection = sqlite:///%s/glance.db' % directory, '',
        '[glance_store]', 'default_backend = fs', '',
        '[fs]', 'filesystem_store_datadir = %s/images/' % directory, '',
        # with enabled_backends, the reserved stores need their own dirs
        '[os_glance_staging_store]',
        'filesystem_store_datadir = %s/staging/' % directory, '',
        '[os_glance_tasks_store]',
        'filesystem_store_datadir = %s/tasks/' % directory, '',
        '[oslo_concurrency]', 'lock_path = %s/locks' % directory, '',
        '[paste_deploy]', 'flavor = keystone',
        'config_file = %s/glance-api-paste.ini' % directory, '',
        ] + _authtoken_section(keystone, 'glance', credentials['glance']))
    _write_private(directory / 'glance-api.conf', conf)
    # the wheel's paste file, with the healthcheck's switch-off file moved
    # out of /etc/glance
    shipped = VENV / 'etc' / 'glance' / 'glance-api-paste.ini'
    try:
        paste = shipped.read_text()
    except OSError as e:
        raise ServiceError('cannot read glance\'s paste file %s: %s'
                           % (shipped, e)) from None
    (directory / 'glance-api-paste.ini').write_text(paste.replace(
        '/etc/glance/healthcheck_disable',
        str(directory / 'healthcheck_disable')))


# --- provisioning (Keystone's REST API, as admin) ----------------------------

class _Keystone:
    def __init__(self, url, password):
        self.url = url + '/v3'
        status, headers, body = _http('POST', self.url + '/auth/tokens', {
            'auth': {'identity': {'methods': ['password'], 'password': {
                'user': {'name': 'admin', 'domain': {'id': 'default'},
                         'password': password}}},
                'scope': {'project': {'name': 'admin',
                                      'domain': {'id': 'default'}}}}})
        if status != 201:
            raise ServiceError('Keystone refused the admin login: HTTP %d'
                               % status)
        self.token = headers['X-Subject-Token']

    def call(self, method, path, body=None, expect=(200, 201, 204)):
        status, _, data = _http(method, self.url + path, body,
                                {'X-Auth-Token': self.token})
        if status not in expect:
            raise ServiceError('Keystone %s %s: HTTP %d %s' % (
                method, path, status, data[:300].decode(errors='replace')))
        return json.loads(data) if data else None

    def ensure(self, collection, member, body):
        query = '/%s?name=%s' % (collection, body['name'])
        found = self.call('GET', query)[collection]
        if found:
            return found[0]
        return self.call('POST', '/' + collection, {member: body})[member]


def _provision(state_dir, ports, credentials):
    """Users, projects, roles, services and endpoints: once per database.

    Returns kind -> (user, user_id, project, project_id).
    """
    done = state_dir / 'keystone' / 'provisioned.json'
    stamp = hashlib.sha256(repr((ports, IDENTITIES)).encode()).hexdigest()
    known = _read_json(done)
    if known and known.get('stamp') == stamp:
        return {kind: tuple(v) for kind, v in known['identities'].items()}
    urls = _urls(ports)
    ks = _Keystone(urls['keystone'], credentials['admin'])
    roles = {name: ks.ensure('roles', 'role', {'name': name})['id']
             for name in ('member', 'reader', 'admin', 'service', 'creator')}
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
    _ensure_endpoints(ks, 'barbican', 'key-manager', urls['barbican'])
    # no /v2: the clients discover the version
    _ensure_endpoints(ks, 'glance', 'image', urls['glance'])
    done.write_text(json.dumps({'stamp': stamp, 'identities': found}))
    return found


def _ensure_endpoints(ks, name, service_type, url):
    """The service ``name`` with public, internal and admin ``url``."""
    service = ks.ensure('services', 'service', {
        'name': name, 'type': service_type})
    endpoints = ks.call('GET', '/endpoints?service_id=%s'
                        % service['id'])['endpoints']
    have = {e['interface']: e for e in endpoints}
    for interface in ('public', 'internal', 'admin'):
        if interface not in have:
            ks.call('POST', '/endpoints', {'endpoint': {
                'service_id': service['id'], 'interface': interface,
                'url': url, 'region_id': REGION}})
        elif have[interface]['url'] != url:
            ks.call('PATCH', '/endpoints/%s' % have[interface]['id'],
                    {'endpoint': {'url': url}})


def _admin(state_dir):
    """Keystone as admin, for a test that changes the catalog."""
    state_dir = pathlib.Path(state_dir).resolve()
    credentials = _read_json(state_dir / 'keystone' / 'credentials.json')
    if not credentials:
        raise ServiceError('%s has no Keystone credentials: run start() '
                           'first' % state_dir)
    return _Keystone(_urls(_ports(state_dir))['keystone'],
                     credentials['admin'])


def register_endpoint(state_dir, name, service_type, url):
    """Put service ``name`` of ``service_type`` at ``url`` in the catalog.

    For an API served in the test's own process (nova-api through
    wsgi-intercept): tokens issued from now on list it.
    """
    _ensure_endpoints(_admin(state_dir), name, service_type, url)


def unregister_endpoint(state_dir, name):
    """Remove service ``name`` and its endpoints; a no-op if absent."""
    ks = _admin(state_dir)
    for service in ks.call('GET', '/services?name=%s' % name)['services']:
        # deleting a service deletes its endpoints
        ks.call('DELETE', '/services/%s' % service['id'])


def admin_token(state_dir):
    """A token of Keystone's admin (role admin on project admin).

    For API calls only an admin may make, such as creating nova flavors;
    never log it.
    """
    return _admin(state_dir).token


def _smoke_test(keystone_url, barbican_url, glance_url, user, password,
                project):
    """Token, a secret round trip and an image listing: the paths work."""
    status, headers, _ = _http('POST', keystone_url + '/v3/auth/tokens', {
        'auth': {'identity': {'methods': ['password'], 'password': {
            'user': {'name': user, 'domain': {'id': 'default'},
                     'password': password}}},
            'scope': {'project': {'name': project,
                                  'domain': {'id': 'default'}}}}})
    if status != 201:
        raise ServiceError('smoke test: Keystone login failed: HTTP %d'
                           % status)
    auth = {'X-Auth-Token': headers['X-Subject-Token']}
    payload = secrets.token_bytes(32)
    status, _, body = _http('POST', barbican_url + '/v1/secrets', {
        'name': 'services-smoke-test',
        'payload': base64.b64encode(payload).decode(),
        'payload_content_type': 'application/octet-stream',
        'payload_content_encoding': 'base64'}, auth, timeout=30)
    if status != 201:
        raise ServiceError('smoke test: storing a secret failed: HTTP %d %s'
                           % (status, body[:300].decode(errors='replace')))
    ref = json.loads(body)['secret_ref']
    secret_id = ref.rsplit('/', 1)[1]
    status, _, read = _http(
        'GET', '%s/v1/secrets/%s/payload' % (barbican_url, secret_id),
        headers=dict(auth, Accept='application/octet-stream'))
    if status != 200 or read != payload:
        raise ServiceError('smoke test: reading the secret back failed: '
                           'HTTP %d' % status)
    _http('DELETE', '%s/v1/secrets/%s' % (barbican_url, secret_id),
          headers=auth)
    # Glance's keystonemiddleware validates the token with its own user
    status, _, body = _http('GET', glance_url + '/v2/images', headers=auth,
                            timeout=30)
    if status != 200:
        raise ServiceError('smoke test: listing images failed: HTTP %d %s'
                           % (status, body[:300].decode(errors='replace')))


# --- the public entry points -------------------------------------------------

def start(state_dir):
    """Start Keystone, Barbican and Glance; return the tests' environment.

    Raises ServiceError (after stopping whatever it started) when any
    service cannot be set up or does not answer.
    """
    started = time.monotonic()
    state_dir = pathlib.Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if any(_our_pid(state_dir, name) for name in SERVICES):
        log('services from a previous run are up: stopping them first')
    stop(state_dir)
    ensure_venv()
    ports = _read_json(state_dir / 'ports.json') or {}
    if not all(ports.get(n) and _port_free(ports[n]) for n in SERVICES):
        ports = {}
        while len(set(ports.values())) < len(SERVICES):
            ports = {name: _free_port() for name in SERVICES}
    (state_dir / 'ports.json').write_text(json.dumps(ports))
    urls = _urls(ports)
    keystone_url, barbican_url, glance_url = (
        urls['keystone'], urls['barbican'], urls['glance'])
    python_env = dict(os.environ)
    python_env.pop('PYTHONPATH', None)
    try:
        credentials = _setup_keystone(state_dir, ports, python_env)
        _setup_barbican(state_dir, ports, credentials)
        _setup_glance(state_dir, ports, credentials, python_env)
        log('starting Keystone on %s, Barbican on %s and Glance on %s'
            % (keystone_url, barbican_url, glance_url))
        # their authtoken only calls Keystone on the first request
        for name in SERVICES:
            _launch(state_dir, name)
        _wait_healthy(state_dir, 'keystone')
        identities = _provision(state_dir, ports, credentials)
        _wait_healthy(state_dir, 'barbican')
        _wait_healthy(state_dir, 'glance')
        user, _, project, _ = identities['owner']
        _smoke_test(keystone_url, barbican_url, glance_url, user,
                    credentials['owner'], project)
    except BaseException:
        log('starting the services failed: stopping what was started')
        stop(state_dir)
        raise
    env = {'VTPM_TEST_STATE_DIR': str(state_dir),
           'VTPM_TEST_KEYSTONE_URL': keystone_url + '/v3',
           'VTPM_TEST_BARBICAN_URL': barbican_url,
           'VTPM_TEST_GLANCE_URL': glance_url,
           'VTPM_TEST_REGION': REGION}
    for kind, (user, user_id, project, project_id) in identities.items():
        if kind in SERVICE_USERS:
            continue
        prefix = 'VTPM_TEST_%s_' % kind.upper()
        env.update({prefix + 'USERNAME': user, prefix + 'USER_ID': user_id,
                    prefix + 'PASSWORD': credentials[kind],
                    prefix + 'PROJECT': project,
                    prefix + 'PROJECT_ID': project_id})
    _write_private(state_dir / 'env.json', json.dumps(env, indent=1))
    log('Keystone, Barbican and Glance up in %.1fs (state in %s)'
        % (time.monotonic() - started, state_dir))
    return env


def stop(state_dir):
    """Stop the services of this state directory; a no-op if they are down."""
    state_dir = pathlib.Path(state_dir)
    if not state_dir.exists():
        return
    for name in reversed(SERVICES):
        stop_service(state_dir, name)


def main(argv=None):
    """``python3 tools/services.py {start|stop|env} [STATE_DIR]``.

    ``env`` prints ``export`` lines for a shell, to run single tests by
    hand: ``eval "$(python3 tools/services.py env)"``.
    """
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ('start', 'stop', 'env'):
        sys.exit('usage: services.py {start|stop|env} [STATE_DIR]')
    state_dir = pathlib.Path(argv[1] if len(argv) > 1 else ROOT / '.state')
    if argv[0] == 'stop':
        stop(state_dir)
    elif argv[0] == 'env':
        env = _read_json(state_dir / 'env.json')
        if env is None:
            sys.exit('services.py: no %s; run start first'
                     % (state_dir / 'env.json'))
        for name, value in sorted(env.items()):
            print('export %s=%s' % (name, shlex.quote(value)))
    else:
        try:
            start(state_dir)
        except ServiceError as e:
            sys.exit('services.py: %s' % e)
        print('environment for the tests: python3 tools/services.py env %s'
              % state_dir)
    return 0


if __name__ == '__main__':
    sys.exit(main())
