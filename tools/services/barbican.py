# SPDX-License-Identifier: Apache-2.0
"""Barbican: a fresh database and key-encryption key for every start."""

import base64
import secrets
import shutil

from tools.services import common
from tools.services import keystone

HEALTH_PATH = '/'
CATALOG_TYPE = 'key-manager'

# the shipped paste file hard-codes /etc paths; this is its
# keystone-authenticated pipeline
_FILTERS = {
    'authtoken': 'keystonemiddleware.auth_token:filter_factory',
    'context': 'barbican.api.middleware.context:ContextMiddleware.factory',
    'microversion': 'barbican.api.middleware.microversion:'
                    'MicroversionMiddleware.factory',
    'request_id': 'oslo_middleware.request_id:RequestId.factory',
    'http_proxy_to_wsgi': 'oslo_middleware:HTTPProxyToWSGI.factory',
}
_PASTE = [
    '[composite:main]', 'use = egg:Paste#urlmap', '/: versions', '/v1: api',
    '',
    '[pipeline:versions]',
    'pipeline = request_id http_proxy_to_wsgi microversion versionapp', '',
    '[pipeline:api]',
    'pipeline = request_id http_proxy_to_wsgi authtoken context '
    'microversion apiapp', '',
    '[app:apiapp]',
    'paste.app_factory = barbican.api.app:create_main_app', '',
    '[app:versionapp]',
    'paste.app_factory = barbican.api.app:create_version_app', '',
] + [line for name, factory in _FILTERS.items() for line in (
    '[filter:%s]' % name, 'paste.filter_factory = %s' % factory, '')]


def setup(state_dir, credentials):
    """Barbican's configuration, with an empty database and a new KEK."""
    directory = state_dir / 'barbican'
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    urls = common.urls(state_dir)
    # simple_crypto wants a Fernet key: urlsafe base64 of 32 bytes
    kek = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    conf = '\n'.join([
        '[DEFAULT]', 'log_file = %s/barbican.log' % directory,
        'host_href = %s' % urls['barbican'],
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
    ] + keystone.authtoken_section(urls['keystone'], 'barbican',
                                   credentials['barbican']))
    common.write_private(directory / 'barbican.conf', conf)
    (directory / 'barbican-api-paste.ini').write_text('\n'.join(_PASTE))


def app(directory):
    """gunicorn's application arguments and the environment it reads."""
    # barbican reads ~/barbican.conf at import time and nothing else
    return (['--paste', str(directory / 'barbican-api-paste.ini')],
            common.python_env(HOME=str(directory)))
