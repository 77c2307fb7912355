# SPDX-License-Identifier: Apache-2.0
"""Keystone, Barbican and Glance together: start, stop, and what tests read.

A state directory holds everything of one set of services: ``ports.json``,
one directory per service, ``env.json`` (the environment of ``start()``,
mode 0600) and the logs.
"""

import contextlib
import json
import pathlib
import time

from tools.services import barbican
from tools.services import common
from tools.services import glance
from tools.services import install
from tools.services import keystone
from tools.services import process
from tools.services import smoke

STATE_DIR = install.ROOT / '.state'
# in start order; Keystone is the one the others wait for
SERVICES = {'keystone': keystone, 'barbican': barbican, 'glance': glance}
# Glance loads last, while Keystone and Barbican take the two cores: the
# three start about 3 s sooner
NICENESS = {'glance': 10}
# the identities of the services started here: not in the tests' env
SERVICE_USERS = ('barbican', 'glance')


def _launch(state_dir, name):
    directory = pathlib.Path(state_dir).resolve() / name
    args, env = SERVICES[name].app(directory)
    process.launch(directory, common.ports(state_dir)[name], args, env,
                   niceness=NICENESS.get(name, 0))


def _wait_healthy(state_dir, name):
    url = common.urls(state_dir)[name] + SERVICES[name].HEALTH_PATH
    process.wait_healthy(pathlib.Path(state_dir).resolve() / name, url)


def start_service(state_dir, name):
    """Start one configured service and wait until it answers."""
    _launch(state_dir, name)
    _wait_healthy(state_dir, name)


def stop_service(state_dir, name):
    """Stop one service (its gunicorn master and workers); a no-op if down."""
    port = (common.read_json(pathlib.Path(state_dir) / 'ports.json')
            or {}).get(name)
    process.stop(pathlib.Path(state_dir) / name, port)


def _choose_ports(state_dir):
    """Keep the ports of the last start while they are free, else new ones.

    Keystone's database holds its own URL: the same port keeps it valid.
    """
    ports = common.read_json(state_dir / 'ports.json') or {}
    if not all(ports.get(n) and process.port_free(ports[n])
               for n in SERVICES):
        ports = {}
        while len(set(ports.values())) < len(SERVICES):
            ports = {name: process.free_port() for name in SERVICES}
    (state_dir / 'ports.json').write_text(json.dumps(ports))


def start(state_dir=STATE_DIR):
    """Start Keystone, Barbican and Glance; return the tests' environment.

    Services of ``state_dir`` that are up are restarted. Raises
    ServiceError (after stopping whatever it started) when any service
    cannot be set up or does not answer.
    """
    started = time.monotonic()
    state_dir = pathlib.Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    if any(process.master_pid(state_dir / name) for name in SERVICES):
        common.log('services from a previous run are up: stopping them')
    stop(state_dir)
    venv_digest = install.ensure()
    _choose_ports(state_dir)
    urls = common.urls(state_dir)
    try:
        credentials = keystone.setup(state_dir)
        barbican.setup(state_dir, credentials)
        glance.setup(state_dir, credentials, venv_digest)
        common.log('starting Keystone on %(keystone)s, Barbican on '
                   '%(barbican)s and Glance on %(glance)s' % urls)
        # their authtoken only calls Keystone on the first request
        for name in SERVICES:
            _launch(state_dir, name)
        _wait_healthy(state_dir, 'keystone')
        identities = keystone.provision(state_dir, credentials, {
            name: (SERVICES[name].CATALOG_TYPE, urls[name])
            for name in ('barbican', 'glance')})
        _wait_healthy(state_dir, 'barbican')
        _wait_healthy(state_dir, 'glance')
        user, _, project, _ = identities['owner']
        smoke.check(urls, user, credentials['owner'], project)
    except BaseException:
        common.log('starting the services failed: stopping what was started')
        stop(state_dir)
        raise
    env = {'VTPM_TEST_STATE_DIR': str(state_dir),
           'VTPM_TEST_KEYSTONE_URL': urls['keystone'] + '/v3',
           'VTPM_TEST_BARBICAN_URL': urls['barbican'],
           'VTPM_TEST_GLANCE_URL': urls['glance'],
           'VTPM_TEST_REGION': common.REGION}
    for kind, (user, user_id, project, project_id) in identities.items():
        if kind in SERVICE_USERS:
            continue
        prefix = 'VTPM_TEST_%s_' % kind.upper()
        env.update({prefix + 'USERNAME': user, prefix + 'USER_ID': user_id,
                    prefix + 'PASSWORD': credentials[kind],
                    prefix + 'PROJECT': project,
                    prefix + 'PROJECT_ID': project_id})
    common.write_private(state_dir / 'env.json', json.dumps(env, indent=1))
    common.log('Keystone, Barbican and Glance up in %.1fs (state in %s)'
               % (time.monotonic() - started, state_dir))
    return env


def stop(state_dir=STATE_DIR):
    """Stop the services of ``state_dir``; a no-op if they are down."""
    if not pathlib.Path(state_dir).exists():
        return
    for name in reversed(SERVICES):
        stop_service(state_dir, name)


@contextlib.contextmanager
def running(state_dir=STATE_DIR):
    """``with running() as env:`` the services, stopped on the way out.

    ``env`` is what ``start()`` returns; they stop however the block ends
    (an error, Ctrl-C).
    """
    env = start(state_dir)
    try:
        yield env
    finally:
        stop(state_dir)


def environment(state_dir=STATE_DIR):
    """The environment of the last ``start()`` of ``state_dir``, or None."""
    return common.read_json(pathlib.Path(state_dir) / 'env.json')


def register_endpoint(state_dir, name, service_type, url):
    """Put service ``name`` of ``service_type`` at ``url`` in the catalog.

    For an API served in the test's own process (nova-api through
    wsgi-intercept): tokens issued from now on list it.
    """
    _admin(state_dir).ensure_endpoints(name, service_type, url)


def unregister_endpoint(state_dir, name):
    """Remove service ``name`` and its endpoints; a no-op if absent."""
    _admin(state_dir).remove_service(name)


def admin_token(state_dir):
    """A token of Keystone's admin (role admin on project admin).

    For API calls only an admin may make, such as creating nova flavors;
    never log it.
    """
    return _admin(state_dir).token


def _admin(state_dir):
    return keystone.admin(pathlib.Path(state_dir).resolve())
