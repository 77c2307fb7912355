# SPDX-License-Identifier: Apache-2.0
"""Glance: a fresh database and file store for every start."""

import shutil
import time

from tools.services import common
from tools.services import install
from tools.services import keystone

HEALTH_PATH = '/healthcheck'
CATALOG_TYPE = 'image'  # no /v2 in the catalog: the clients discover it
# Glance loads last, while Keystone (which everything waits for) and
# Barbican take the two cores: the three start about 3 s sooner
NICENESS = 10


def _schema(state_dir, venv_digest):
    """An empty, migrated Glance database to copy; built once per venv.

    ``glance-manage db_sync`` takes seconds; a copy of its result takes
    none, and every start still gets an empty Glance.
    """
    directory = state_dir / 'glance-schema'
    database = directory / 'glance.db'
    ready = directory / '.ready'
    if (ready.exists() and ready.read_text() == venv_digest
            and database.exists()):
        return database
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    (directory / 'glance-manage.conf').write_text('\n'.join([
        '[DEFAULT]', 'log_file = %s/glance-manage.log' % directory, '',
        '[database]', 'connection = sqlite:///%s' % database, '']))
    started = time.monotonic()
    common.run_logged('glance-manage db_sync', [
        str(install.bin_path('glance-manage')), '--config-file',
        str(directory / 'glance-manage.conf'), 'db_sync'],
        state_dir / 'setup.log', cwd=directory)
    ready.write_text(venv_digest)
    common.log('Glance database schema ready in %.1fs'
               % (time.monotonic() - started))
    return database


def setup(state_dir, credentials, venv_digest):
    """Glance's configuration, with an empty database and image store."""
    schema = _schema(state_dir, venv_digest)
    directory = state_dir / 'glance'
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for sub in ('images', 'staging', 'tasks', 'locks'):
        (directory / sub).mkdir()
    shutil.copyfile(schema, directory / 'glance.db')
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
    ] + keystone.authtoken_section(common.urls(state_dir)['keystone'],
                                   'glance', credentials['glance']))
    common.write_private(directory / 'glance-api.conf', conf)
    # the wheel's paste file, with the healthcheck's switch-off file moved
    # out of /etc/glance
    shipped = install.VENV / 'etc' / 'glance' / 'glance-api-paste.ini'
    try:
        paste = shipped.read_text()
    except OSError as e:
        raise common.ServiceError('cannot read glance\'s paste file %s: %s'
                                  % (shipped, e)) from None
    (directory / 'glance-api-paste.ini').write_text(paste.replace(
        '/etc/glance/healthcheck_disable',
        str(directory / 'healthcheck_disable')))


def app(directory):
    """gunicorn's application arguments and the environment it reads."""
    # glance.wsgi.api reads $OS_GLANCE_CONFIG_DIR/glance-api.conf and
    # parses no argv
    return (['glance.wsgi.api:application'],
            common.python_env(OS_GLANCE_CONFIG_DIR=str(directory)))
