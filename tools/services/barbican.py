# SPDX-License-Identifier: Apache-2.0
"""Barbican: a fresh database and key-encryption key for every start.

Its limits are the install guide's (its ``barbican-conf`` block, read here
with the standard library): the tests store shielding data files of the
size Windows allows in a Barbican configured as an operator is told to.
"""

import base64
import configparser
import secrets
import shutil

from tools.services import common
from tools.services import keystone
from tools.simcloud import blocks

GUIDE_BLOCK = 'barbican-conf'

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
    default = [
        '[DEFAULT]', 'log_file = %s/barbican.log' % directory,
        'host_href = %s' % urls['barbican'],
        # creates the tables at start: no barbican-manage process to wait for
        'db_auto_create = true',
    ] + guide_lines('DEFAULT')
    conf = '\n'.join(default + [
        '',
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


def guide_options():
    """{section: {option: value}} of the install guide's Barbican block."""
    code, _ = blocks.snippet(GUIDE_BLOCK)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(code)
    found = {name: dict(parser[name]) for name in parser.sections()}
    if parser.defaults():
        found['DEFAULT'] = dict(parser.defaults())
    return found


def guide_lines(section):
    """The guide's options of ``section``, as lines of barbican.conf; the
    guide may set no other section."""
    found = guide_options()
    if set(found) - {section}:
        raise blocks.GuideError('the install guide\'s %s sets %s; only [%s] '
                                'is applied' % (GUIDE_BLOCK, sorted(found),
                                                section))
    return ['%s = %s' % item for item in found.get(section, {}).items()]


def app(directory):
    """gunicorn's application arguments and the environment it reads."""
    # barbican reads ~/barbican.conf at import time and nothing else
    return (['--paste', str(directory / 'barbican-api-paste.ini')],
            common.python_env(HOME=str(directory)))
