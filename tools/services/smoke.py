# SPDX-License-Identifier: Apache-2.0
"""The smoke test after a start: a token, a secret round trip, images."""

import base64
import json
import secrets

from tools.services import common
from tools.services import keystone


def check(urls, user, password, project):
    """The paths the tests take work; ServiceError says which does not."""
    auth = {'X-Auth-Token': keystone.login(urls['keystone'], user, password,
                                           project)}
    barbican = urls['barbican']
    payload = secrets.token_bytes(32)
    status, _, body = common.http('POST', barbican + '/v1/secrets', {
        'name': 'services-smoke-test',
        'payload': base64.b64encode(payload).decode(),
        'payload_content_type': 'application/octet-stream',
        'payload_content_encoding': 'base64'}, auth, timeout=30)
    if status != 201:
        raise common.ServiceError(
            'smoke test: storing a secret failed: HTTP %d %s'
            % (status, body[:300].decode(errors='replace')))
    secret = '%s/v1/secrets/%s' % (
        barbican, json.loads(body)['secret_ref'].rsplit('/', 1)[1])
    status, _, read = common.http(
        'GET', secret + '/payload',
        headers=dict(auth, Accept='application/octet-stream'))
    if status != 200 or read != payload:
        raise common.ServiceError('smoke test: reading the secret back '
                                  'failed: HTTP %d' % status)
    common.http('DELETE', secret, headers=auth)
    # Glance's keystonemiddleware validates the token with its own user
    status, _, body = common.http('GET', urls['glance'] + '/v2/images',
                                  headers=auth, timeout=30)
    if status != 200:
        raise common.ServiceError(
            'smoke test: listing images failed: HTTP %d %s'
            % (status, body[:300].decode(errors='replace')))
