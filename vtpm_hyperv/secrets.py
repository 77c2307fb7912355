# SPDX-License-Identifier: Apache-2.0
"""Key material from Barbican: the secrets an image names in os_vtpm_keys.

Secrets are read with the instance owner's credentials (the keystoneauth1
plugin nova's ``context.get_auth_plugin()`` returns), so Barbican itself
refuses another project's secret. Service credentials are used only when the
caller passes none and an operator configured them in ``[vtpm_key_manager]``
(castellan owns ``[barbican]`` and ``[key_manager]`` in nova.conf).

One ``GET /v1/secrets/{uuid}/payload`` per secret, all secrets at once
(threads), with the session's timeout, and retries only on connection errors
and 5xx answers. Payloads come back as ``bytearray`` so the consumer can wipe
them; they are never logged (keystoneauth's request logging is off for these
calls) and never written anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
import copy
import logging
import uuid

from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from vtpm_core import exception

LOG = logging.getLogger(__name__)

GROUP = 'vtpm_key_manager'
SERVICE_TYPE = 'key-manager'
API_VERSION = 'v1'

_own_opts = [
    cfg.IntOpt('max_concurrency', default=6, min=1,
               help='How many secrets of one instance are read from Barbican '
                    'at the same time. The default, 6, is the most keys '
                    'os_vtpm_keys can name, so an instance waits for one '
                    'round trip, not six.'),
]

# 5xx only: a 429 or any other 4xx is Barbican's answer, not a hiccup
RETRIABLE_STATUS_CODES = [500, 502, 503, 504]


def _adapter_opts():
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    cfg.set_defaults(opts, service_type=SERVICE_TYPE,
                     valid_interfaces=['internal', 'public'],
                     connect_retries=2, status_code_retries=2,
                     retriable_status_codes=RETRIABLE_STATUS_CODES)
    return opts


def _session_opts():
    opts = ks_loading.get_session_conf_options()
    # keystoneauth's default is no timeout at all: a hung Barbican would
    # hang the instance build with it
    cfg.set_defaults(opts, timeout=10)
    return opts


def register_opts(conf):
    """Register ``[vtpm_key_manager]`` on ``conf`` (safe to call twice)."""
    conf.register_group(cfg.OptGroup(
        GROUP, title='Barbican access for vTPM key material',
        help='How the Hyper-V vTPM backend reads the Barbican secrets named '
             'by the os_vtpm_keys image property. Secrets are read with the '
             "instance owner's credentials; the keystoneauth auth options "
             '(auth_type, ...) here are service credentials, used only when '
             'a caller has no owner credentials to pass. Barbican is found '
             'in the service catalog (service_type, valid_interfaces, '
             'region_name) unless endpoint_override is set.'))
    conf.register_opts(_own_opts + _adapter_opts() + _session_opts(),
                       group=GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts():
    """Options for oslo-config-generator (deep copies: callers may mutate)."""
    opts = (_own_opts + _adapter_opts() + _session_opts()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password'))
    return [(GROUP, copy.deepcopy(opts))]


class SecretPayload:
    """One secret's payload. ``repr`` names the secret, never its bytes."""

    __slots__ = ('ref', 'payload')

    def __init__(self, ref: str, payload: bytearray):
        self.ref = ref
        self.payload = payload

    def wipe(self) -> None:
        """Overwrite the payload with zeros in place (then drop it)."""
        payload = self.payload
        payload[:] = bytes(len(payload))
        self.payload = bytearray()

    def __repr__(self):
        return '<SecretPayload %s>' % self.ref

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError('SecretPayload is not serialisable: it holds key '
                        'material')


def wipe_all(items: Sequence[SecretPayload]) -> None:
    for item in items:
        item.wipe()


def _endpoint_base(url: str) -> str:
    """The endpoint without a trailing API version, as barbicanclient does."""
    base = url.rstrip('/')
    if base.endswith('/' + API_VERSION):
        base = base[:-len(API_VERSION) - 1]
    return base


class BarbicanKeySource:
    """Reads the key material of one instance from Barbican."""

    def __init__(self, conf):
        register_opts(conf)
        self.conf = conf
        self._session = None
        self._service_auth = None

    def _get_session(self):
        # one keystoneauth session (one connection pool) for every fetch;
        # the auth plugin is chosen per fetch
        if self._session is None:
            self._service_auth = ks_loading.load_auth_from_conf_options(
                self.conf, GROUP)
            self._session = ks_loading.load_session_from_conf_options(
                self.conf, GROUP)
        return self._session

    def fetch(self, key_refs: Sequence[str],
              auth=None) -> list[SecretPayload]:
        """Return the payloads of ``key_refs`` (secret UUIDs), in that order.

        ``auth`` is a keystoneauth1 plugin acting for the instance owner;
        None means the service credentials of ``[vtpm_key_manager]``.
        Raises KeyNotFound, KeyAccessDenied, KeyManagerUnavailable,
        KeyFetchFailed or KeySourceNotConfigured, each naming the secret;
        on any error no payload is returned and those read are wiped.
        """
        refs = list(key_refs)
        if not refs:
            return []
        ids = [self._secret_id(ref) for ref in refs]
        session = self._get_session()
        owner = auth is not None
        if not owner:
            auth = self._service_auth
            if auth is None:
                raise exception.KeySourceNotConfigured(
                    ref=', '.join(refs), group=GROUP)
        adapter = ks_loading.load_adapter_from_conf_options(
            self.conf, GROUP, session=session, auth=auth)
        base = self._endpoint(adapter, refs)
        LOG.debug('Reading %(count)d Barbican secrets from %(endpoint)s with '
                  '%(who)s credentials', {
                      'count': len(refs), 'endpoint': base,
                      'who': "the instance owner's" if owner else 'service'})

        def read(index):
            return self._read(adapter, base, refs[index], ids[index], owner)

        workers = min(len(refs), self.conf[GROUP].max_concurrency)
        if workers == 1:
            outcomes = [self._outcome(read, i) for i in range(len(refs))]
        else:
            with concurrent.futures.ThreadPoolExecutor(
                    workers, thread_name_prefix='vtpm-barbican') as pool:
                outcomes = list(pool.map(
                    lambda i: self._outcome(read, i), range(len(refs))))
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            wipe_all([o for o in outcomes if isinstance(o, SecretPayload)])
            raise errors[0]
        return outcomes

    @staticmethod
    def _outcome(read, index):
        # collect errors rather than raise them: the payloads already read
        # must be wiped before anything propagates
        try:
            return read(index)
        except exception.VTPMError as e:
            return e

    @staticmethod
    def _secret_id(ref):
        try:
            return str(uuid.UUID(ref))
        except (TypeError, ValueError, AttributeError):
            raise exception.KeyNotFound(
                'Barbican secret %r named by os_vtpm_keys (image property) '
                'is not a secret UUID; allowed: a UUID such as '
                '8f14e45f-ceea-467a-9575-7a6c8c2b3a11' % (ref,),
                ref=ref) from None

    def _endpoint(self, adapter, refs):
        """Barbican's base URL: the override, else the catalog (no HTTP)."""
        ref = ', '.join(refs)
        try:
            # the token first, once, before the threads need it
            adapter.get_token()
            url = adapter.get_endpoint()
        except ks_exceptions.ConnectionError as e:
            raise exception.KeyManagerUnavailable(
                ref=ref, reason='Keystone could not be reached to get a '
                                'token: %s' % type(e).__name__) from e
        except ks_exceptions.http.HttpError as e:
            raise exception.KeyAccessDenied(
                'Keystone refused the credentials used to read Barbican '
                'secrets %s named by os_vtpm_keys (image property): HTTP %s'
                % (ref, e.http_status), ref=ref) from e
        except ks_exceptions.EndpointNotFound as e:
            url = None
            cause = e
        else:
            cause = None
        if not url:
            raise exception.KeyManagerUnavailable(
                ref=ref, reason='no %s endpoint in the service catalog for '
                'interfaces %s, region %s; set [%s] endpoint_override' % (
                    SERVICE_TYPE,
                    ','.join(self.conf[GROUP].valid_interfaces or []),
                    self.conf[GROUP].region_name, GROUP)) from cause
        return _endpoint_base(url)

    def _read(self, adapter, base, ref, secret_id, owner):
        url = '%s/%s/secrets/%s/payload' % (base, API_VERSION, secret_id)
        try:
            # log=False: keystoneauth would log a text/plain payload at DEBUG
            response = adapter.get(url, headers={'Accept': '*/*'},
                                   raise_exc=False, log=False)
        except ks_exceptions.ConnectionError as e:
            raise exception.KeyManagerUnavailable(
                ref=ref, reason='%s after %d retries (%s)' % (
                    type(e).__name__, adapter.connect_retries or 0,
                    url)) from e
        except Exception as e:
            # keystoneauth's others (a token that cannot be renewed, ...)
            raise exception.KeyManagerUnavailable(
                ref=ref, reason='%s (%s)' % (type(e).__name__, url)) from e
        status = response.status_code
        if status == 200:
            # the one copy we hand out is wipeable; requests' own bytes
            # cannot be zeroed, so drop them now rather than at garbage time
            payload = bytearray(response.content)
            response._content = None
            LOG.debug('Read Barbican secret %s', ref)
            return SecretPayload(ref, payload)
        reason = _barbican_reason(response)
        LOG.debug('Barbican answered HTTP %(status)d for secret %(ref)s: '
                  '%(reason)s', {'status': status, 'ref': ref,
                                 'reason': reason})
        if status == 404:
            if 'payload' in reason.lower():
                raise exception.KeyNotFound(
                    'Barbican secret %s named by os_vtpm_keys (image '
                    'property) has no payload; store the key material in it'
                    % ref, ref=ref)
            raise exception.KeyNotFound(ref=ref)
        if status in (401, 403):
            if owner:
                raise exception.KeyAccessDenied(ref=ref)
            raise exception.KeyAccessDenied(
                'Barbican refused secret %s named by os_vtpm_keys (image '
                'property) to the service credentials of [%s] (HTTP %d)'
                % (ref, GROUP, status), ref=ref)
        if status >= 500:
            raise exception.KeyManagerUnavailable(
                ref=ref, reason='HTTP %d after %d retries: %s' % (
                    status, adapter.status_code_retries or 0, reason))
        raise exception.KeyFetchFailed(ref=ref, status=status, reason=reason)


def _barbican_reason(response):
    """Barbican's own words from an error answer (JSON title/description)."""
    try:
        body = response.json()
    except ValueError:
        return (response.reason or '').strip() or 'no details'
    if isinstance(body, dict):
        detail = body.get('description') or body.get('title')
        if isinstance(body.get('error'), dict):
            detail = detail or body['error'].get('message')
        if detail:
            return str(detail)[:200]
    return (response.reason or '').strip() or 'no details'
