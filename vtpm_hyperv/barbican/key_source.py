# SPDX-License-Identifier: Apache-2.0
"""Key material from Barbican: the secrets an image names in os_vtpm_keys.

**Whose credentials.** Secrets are read with the keystoneauth1 plugin the
caller passes for the instance owner, so Barbican itself refuses another
project's secret. In nova that is
``nova.service_auth.get_service_user_token_auth_plugin(context)``: the
owner's token, wrapped with a service token when ``[service_user]
send_service_user_token`` is set, with which Barbican still accepts an
owner token that expired during a long build. Service credentials of
``[vtpm_key_manager]`` are used only when the caller passes none (castellan
owns ``[barbican]`` and ``[key_manager]`` in nova.conf).

**How.** python-barbicanclient's ``secrets.get(uuid,
payload_content_type='*/*').payload``: given a content type, the client
skips its metadata GET, so each secret costs one
``GET /v1/secrets/{uuid}/payload``. All secrets are read at once, a thread
each. One client per Barbican endpoint serves every fetch (building one
asks Barbican for its API versions, so that happens once); its auth plugin
is the fetch's own (``_CallAuth``), so fetches for different owners at the
same time each send their own token. Retries: connection errors and 5xx
answers only (``connect_retries``, ``status_code_retries``).

**Rules on the wire** (``vtpm_hyperv.barbican.http_guard``, beneath the
client):
one deadline for the whole fetch (``fetch_timeout``), redirects only
within the same origin, and answers from Barbican over
``max_payload_bytes`` refused before they are read in full.

**Secrets stay secret.** Payloads come back as ``bytearray`` (the buffer
the transport read into, not a copy) so the consumer can wipe them. They
are never logged: keystoneauth's request log for these calls goes through
a logger that drops response bodies, which keystoneauth would otherwise
log for a ``text/plain`` answer. Tokens never reach a log either
(keystoneauth logs a hash of them).
"""

from __future__ import annotations

from collections.abc import Sequence
import concurrent.futures
import copy
import functools
import logging
import uuid

from barbicanclient import client as barbican_client
from barbicanclient import exceptions as barbican_exceptions
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import plugin as ks_plugin
from oslo_config import cfg

from vtpm_core import exception
from vtpm_hyperv.barbican import http_guard

LOG = logging.getLogger(__name__)

GROUP = 'vtpm_key_manager'
SERVICE_TYPE = 'key-manager'
API_VERSION = 'v1'
# What the payload is asked as. Any type given spares barbicanclient its
# metadata GET; '*/*' makes Barbican answer in the type the secret was
# stored with (barbican.plugin.resources.get_secret), the same bytes as
# 'application/octet-stream' would be, and Barbican 23 serves it about 5 ms
# sooner per request (benchmarks/bench_secrets.py: about 1.1x the raw
# bound against 1.57x)
PAYLOAD_CONTENT_TYPE = '*/*'
# how long fetch waits for its threads once the deadline has shut their
# sockets; they end in milliseconds, this only bounds a stuck TLS handshake
ABORT_GRACE = 1.0
REASON_CHARS = 200

_own_opts = [
    cfg.IntOpt('max_concurrency', default=6, min=1,
               help='How many secrets of one instance are read from Barbican '
                    'at the same time. The default, 6, is the most keys '
                    'os_vtpm_keys can name, so an instance waits for one '
                    'round trip, not six.'),
    cfg.IntOpt('fetch_timeout', default=30, min=1,
               help='Seconds for reading all the secrets of one instance, '
                    'Keystone and retries included; then the build fails '
                    'with KeyManagerUnavailable. timeout bounds each wait '
                    'for data, this bounds the whole call, so a Barbican '
                    'that answers a byte at a time cannot hold a build. The '
                    'default, 30, leaves room for a slow token request and '
                    'a retried read, where a healthy Barbican answers in '
                    'milliseconds.'),
    cfg.IntOpt('max_payload_bytes', default=1024 * 1024, min=1,
               help='The largest answer accepted from Barbican, in bytes; a '
                    'larger secret is refused (KeyTooLarge) before it is '
                    'read in full. The default, 1 MiB, is a few times the '
                    'largest key material an image can name: a shielding '
                    'data file (a KeyProtector, volume ID qualifiers, an '
                    'unattend file and other files, which Windows limits '
                    'to 384 KB) holds about 400 KB at most, a KeyProtector '
                    'or guardian bundle a few KB; Barbican itself refuses '
                    'secrets over 20,000 bytes until its limits are raised '
                    'as the install guide says. It also bounds what one '
                    'build holds in memory to max_concurrency times this.'),
]

# 5xx only: a 429 or any other 4xx is Barbican's answer, not a hiccup
RETRIABLE_STATUS_CODES = [500, 502, 503, 504]
# the adapter options barbicanclient's Client passes on to keystoneauth
_RETRY_OPTS = ('connect_retries', 'connect_retry_delay',
               'status_code_retries', 'status_code_retry_delay',
               'retriable_status_codes')


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


# What the sample config and the configuration reference print above the
# group's options.
_GROUP_HELP = (
    'How the Hyper-V vTPM backend reads the Barbican secrets named by the '
    "os_vtpm_keys image property. Secrets are read with the instance owner's "
    "credentials, which the compute driver passes, together with nova's "
    'service token when [service_user] send_service_user_token is set. '
    'Barbican is found in the service catalog (service_type, '
    'valid_interfaces, region_name) unless endpoint_override is set; the '
    'session options (cafile, timeout, ...) apply to every request of a read. '
    'The auth options (auth_type and after) are service credentials, used '
    'only when a caller passes no owner credentials: leave them unset on a '
    "compute host. nova's [key_manager] and [barbican] configure castellan, "
    'which nova uses for its own secrets; this backend reads neither.')


def opt_group():
    """``[vtpm_key_manager]`` with its help; a new one each call (an
    OptGroup holds the options registered on it, with their overrides)."""
    return cfg.OptGroup(GROUP, title='Barbican access for vTPM key material',
                        help=_GROUP_HELP)


def register_opts(conf):
    """Register ``[vtpm_key_manager]`` on ``conf`` (safe to call twice)."""
    conf.register_group(opt_group())
    conf.register_opts(_own_opts + _adapter_opts() + _session_opts(),
                       group=GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)


def list_opts():
    """Options for oslo-config-generator (deep copies: callers may mutate)."""
    opts = (_own_opts + _adapter_opts() + _session_opts()
            + ks_loading.get_auth_common_conf_options()
            + ks_loading.get_auth_plugin_conf_options('password'))
    return [(opt_group(), copy.deepcopy(opts))]


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


class _CallAuth(ks_plugin.BaseAuthPlugin):
    """The auth plugin of the fetch running in this thread.

    The shared client holds this one; each fetch binds its own plugin (the
    owner's, or the service credentials) to its threads (``http_guard``).
    """

    @staticmethod
    def _auth():
        return http_guard.current().auth

    def get_headers(self, session, **kwargs):
        return self._auth().get_headers(session, **kwargs)

    def get_token(self, session):
        return self._auth().get_token(session)

    def get_endpoint(self, session, **kwargs):
        return self._auth().get_endpoint(session, **kwargs)

    def get_connection_params(self, session, **kwargs):
        return self._auth().get_connection_params(session, **kwargs)

    def invalidate(self):
        return self._auth().invalidate()

    def get_user_id(self, session):
        return self._auth().get_user_id(session)

    def get_project_id(self, session):
        return self._auth().get_project_id(session)


class _WithoutBodies(logging.LoggerAdapter):
    """keystoneauth's request log, less the response bodies (payloads)."""

    def log(self, level, msg, *args, **kwargs):
        if not str(msg).startswith('RESP BODY:'):
            super().log(level, msg, *args, **kwargs)


# what a failed request raises below us; anything else is a bug and
# propagates as it is
_CLIENT_ERRORS = (http_guard.Refused, barbican_exceptions.HTTPError,
                  barbican_exceptions.BarbicanException,
                  ks_exceptions.ClientException)


class BarbicanKeySource:
    """Reads the key material of one instance from Barbican."""

    def __init__(self, conf):
        register_opts(conf)
        self.conf = conf
        self._session = None
        self._service_auth = None
        self._clients = {}
        self._log = _WithoutBodies(logging.getLogger(__name__ + '.http'), {})

    def _get_session(self):
        # one keystoneauth session (one connection pool) for every fetch
        if self._session is None:
            group = self.conf[GROUP]
            self._service_auth = ks_loading.load_auth_from_conf_options(
                self.conf, GROUP)
            self._session = ks_loading.load_session_from_conf_options(
                self.conf, GROUP, session=http_guard.session(
                    pool_maxsize=max(10, group.max_concurrency),
                    tls_ciphers=group.tls_ciphers,
                    tls_min_version=group.tls_min_version))
        return self._session

    def fetch(self, key_refs: Sequence[str],
              auth=None) -> list[SecretPayload]:
        """Return the payloads of ``key_refs`` (secret UUIDs), in that order.

        ``auth`` is a keystoneauth1 plugin acting for the instance owner;
        None means the service credentials of ``[vtpm_key_manager]``.
        Raises KeyNotFound, KeyAccessDenied, KeyAuthenticationFailed,
        KeyTooLarge, KeyManagerUnavailable (also when ``fetch_timeout``
        passes), KeyFetchFailed or KeySourceNotConfigured, each naming the
        secret; on any error no payload is returned and those read are
        wiped.
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
        group = self.conf[GROUP]
        call = http_guard.Call(auth, group.fetch_timeout,
                               group.max_payload_bytes)
        pool = concurrent.futures.ThreadPoolExecutor(
            min(len(refs), group.max_concurrency),
            thread_name_prefix='vtpm-barbican')
        try:
            # the token, the endpoint and the client first, once, before
            # the threads need them
            client, = self._run(call, pool, owner, [(', '.join(refs), (
                functools.partial(self._client, session, call, refs)))])
            LOG.debug('Reading %(count)d Barbican secrets from %(endpoint)s '
                      'with %(who)s credentials', {
                          'count': len(refs), 'endpoint': call.barbican,
                          'who': "the instance owner's" if owner
                          else 'service'})
            return self._run(call, pool, owner, [
                (ref, functools.partial(self._read, client, ref, secret_id))
                for ref, secret_id in zip(refs, ids)])
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, call, pool, owner, tasks):
        """Run ``(ref, function)`` tasks in ``pool``; results in order.

        Returns by the call's deadline: tasks still running then are
        aborted, and what they read afterwards is wiped. Raises the first
        error in task order, after wiping every payload read.
        """
        futures = [pool.submit(call.run, self._guarded, call, owner, *task)
                   for task in tasks]
        _, pending = concurrent.futures.wait(
            futures, timeout=max(call.remaining(), 0))
        if pending:
            call.abort()
            _, pending = concurrent.futures.wait(pending,
                                                 timeout=ABORT_GRACE)
        outcomes = []
        for (ref, _), future in zip(tasks, futures):
            if future in pending:
                future.add_done_callback(_wipe_late)
                outcomes.append(_deadline_error(call, ref))
            else:
                outcomes.append(future.exception() or future.result())
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            wipe_all([o for o in outcomes if isinstance(o, SecretPayload)])
            raise errors[0]
        return outcomes

    def _guarded(self, call, owner, ref, function):
        # errors are returned, not raised: the payloads already read must
        # be wiped before anything propagates
        try:
            return function()
        except exception.VTPMError as e:
            return e
        except _CLIENT_ERRORS as e:
            error = self._error(e, call, ref, owner)
            error.__cause__ = e
            return error

    @staticmethod
    def _secret_id(ref):
        try:
            return str(uuid.UUID(ref))
        except (TypeError, ValueError, AttributeError):
            raise exception.KeyNotFound(
                'Barbican secret %.80r named by os_vtpm_keys (image '
                'property) is not a secret UUID; allowed: a UUID such as '
                '8f14e45f-ceea-467a-9575-7a6c8c2b3a11' % (ref,),
                ref=ref) from None

    def _client(self, session, call, refs):
        """The client for this call's Barbican (built once per endpoint)."""
        adapter = ks_loading.load_adapter_from_conf_options(
            self.conf, GROUP, session=session, auth=call.auth)
        # the token first: Keystone answers here, not in every thread
        adapter.get_token()
        try:
            url = adapter.get_endpoint()
        except ks_exceptions.EndpointNotFound:
            url = None
        if not url:
            group = self.conf[GROUP]
            raise exception.KeyManagerUnavailable(
                ref=', '.join(refs), reason='no %s endpoint in the service '
                'catalog for interfaces %s, region %s; set [%s] '
                'endpoint_override' % (
                    SERVICE_TYPE, ','.join(group.valid_interfaces or []),
                    group.region_name, GROUP))
        endpoint = call.barbican = _endpoint_base(url)
        client = self._clients.get(endpoint)
        if client is None:
            # Client() asks Barbican for its versions: once per endpoint
            group = self.conf[GROUP]
            client = self._clients.setdefault(endpoint, barbican_client.Client(
                session=session, endpoint=endpoint, version=API_VERSION,
                auth=_CallAuth(), logger=self._log,
                **{name: group[name] for name in _RETRY_OPTS}))
        return client

    @staticmethod
    def _read(client, ref, secret_id):
        try:
            payload = client.secrets.get(
                secret_id, payload_content_type=PAYLOAD_CONTENT_TYPE).payload
        except KeyError:
            # barbicanclient (7.6) reads an error body's top-level 'title';
            # keystonemiddleware's 401 has it under 'error', and the client
            # fails on its own parsing: the status says what happened
            status = http_guard.current().last_status()
            if status is None or status < 400:
                raise
            raise _http_error(status) from None
        if not isinstance(payload, bytearray):
            # barbicanclient turns some failures into None
            raise exception.KeyNotFound(
                'Barbican secret %s named by os_vtpm_keys (image property) '
                'has no payload; store the key material in it' % ref,
                ref=ref)
        LOG.debug('Read Barbican secret %s', ref)
        return SecretPayload(ref, payload)

    def _error(self, error, call, ref, owner):
        """The VTPMError for what the client or the transport raised."""
        group = self.conf[GROUP]
        if call.expired():
            # whatever the aborted socket made of it, the cause is the time
            return _deadline_error(call, ref)
        if isinstance(error, http_guard.TooLarge):
            return exception.KeyTooLarge(ref=ref, group=GROUP,
                                         limit=error.limit, seen=error.seen)
        if isinstance(error, http_guard.RedirectRefused):
            return exception.KeyFetchFailed(ref=ref, status=error.status,
                                            reason=str(error))
        if isinstance(error, (barbican_exceptions.HTTPAuthError,
                              ks_exceptions.Unauthorized)):
            # keystoneauth raises it for a token request (Barbican asks
            # no token for its version document)
            return exception.KeyAuthenticationFailed(
                ref=ref, service='Barbican' if isinstance(
                    error, barbican_exceptions.HTTPAuthError) else 'Keystone',
                credentials="the instance owner's token" if owner
                else 'the service credentials of [%s]' % GROUP)
        if isinstance(error, barbican_exceptions.HTTPClientError):
            return self._client_error(error, ref, owner)
        if isinstance(error, barbican_exceptions.HTTPServerError):
            return exception.KeyManagerUnavailable(
                ref=ref, reason='HTTP %d after %d retries: %s' % (
                    error.status_code, group.status_code_retries,
                    _excerpt(error)))
        if isinstance(error, ks_exceptions.http.HttpError):
            # Keystone asked for a token, or Barbican for its versions
            return exception.KeyManagerUnavailable(
                ref=ref, reason='HTTP %s from %s' % (
                    error.http_status, _excerpt(error.url)))
        if isinstance(error, ks_exceptions.RetriableConnectionFailure):
            return exception.KeyManagerUnavailable(
                ref=ref, reason='%s after %d retries: %s' % (
                    type(error).__name__, group.connect_retries,
                    _excerpt(error)))
        # discovery failures, a token that cannot be renewed, ...
        return exception.KeyManagerUnavailable(
            ref=ref, reason='%s: %s' % (type(error).__name__,
                                        _excerpt(error)))

    @staticmethod
    def _client_error(error, ref, owner):
        status, reason = error.status_code, _excerpt(error)
        if status == 404:
            if 'payload' in reason.lower():
                return exception.KeyNotFound(
                    'Barbican secret %s named by os_vtpm_keys (image '
                    'property) has no payload; store the key material in it'
                    % ref, ref=ref)
            return exception.KeyNotFound(ref=ref)
        if status == 403:
            if owner:
                return exception.KeyAccessDenied(ref=ref)
            return exception.KeyAccessDenied(
                'Barbican refused secret %s named by os_vtpm_keys (image '
                'property) to the service credentials of [%s] (HTTP 403)'
                % (ref, GROUP), ref=ref)
        return exception.KeyFetchFailed(ref=ref, status=status,
                                        reason=reason)


def _deadline_error(call, ref):
    return exception.KeyManagerUnavailable(
        ref=ref, reason='no complete answer within [%s] fetch_timeout = %s s'
                        % (GROUP, call.timeout))


def _http_error(status):
    """The barbicanclient error for ``status``, as its client raises them."""
    text = 'HTTP %d (an error body barbicanclient cannot read)' % status
    if status == 401:
        return barbican_exceptions.HTTPAuthError(text)
    if status >= 500:
        return barbican_exceptions.HTTPServerError(text, status)
    return barbican_exceptions.HTTPClientError(text, status)


def _excerpt(error):
    """The first REASON_CHARS characters of an error's text."""
    text = str(error).strip() or type(error).__name__
    if len(text) > REASON_CHARS:
        return text[:REASON_CHARS] + '...'
    return text


def _wipe_late(future):
    # a read that finished after fetch gave up on it: nobody will see it
    if (not future.cancelled() and future.exception() is None
            and isinstance(future.result(), SecretPayload)):
        future.result().wipe()
