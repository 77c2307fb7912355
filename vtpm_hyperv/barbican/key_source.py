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

**Secret consumers** (``register_consumer``, ``remove_consumer``): an
instance is registered with Barbican as a consumer of the secrets it was
sealed from (service ``nova``, resource type ``instance``, its UUID), with
the owner's credentials, on the same client and under the same rules as a
read. From key-manager API microversion 1.2 on (the client negotiates the
newest it and Barbican share; one that stops at 1.1, as 2023.1's does, is
moved up where Barbican offers 1.2), Barbican refuses to delete a secret
that has consumers ("Secret cannot be deleted as it has consumers", HTTP
400); an older Barbican is told apart before any consumer request
(``ConsumersUnsupported``).

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
import contextlib
import functools
import logging

from barbicanclient import client as barbican_client
from barbicanclient import exceptions as barbican_exceptions
from keystoneauth1 import discover
from keystoneauth1 import exceptions as ks_exceptions
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import plugin as ks_plugin
from oslo_log import log

from vtpm_core import exception
from vtpm_core import policy
from vtpm_hyperv.barbican import conf as barbican_conf
from vtpm_hyperv.barbican import exception as guard_exception
from vtpm_hyperv.barbican import http_guard

LOG = log.getLogger(__name__)

API_VERSION = 'v1'
# What the payload is asked as. Any type given spares barbicanclient its
# metadata GET; '*/*' makes Barbican answer in the type the secret was
# stored with (barbican.plugin.resources.get_secret), the same bytes as
# 'application/octet-stream' would be, and Barbican 23 serves it about 5 ms
# sooner per request (benchmarks/bench_secrets.py; the figures are in
# doc/source/admin/barbican.rst)
PAYLOAD_CONTENT_TYPE = '*/*'
# how long fetch waits for its threads once the deadline has shut their
# sockets; they end in milliseconds, this only bounds a stuck TLS handshake
ABORT_GRACE = 1.0

# Secret consumers: who the instance is to Barbican, and the microversion
# from which Barbican refuses to delete a secret that has consumers
# (barbican.api.controllers.secrets.SecretController.on_delete)
CONSUMER_SERVICE = 'nova'
CONSUMER_RESOURCE_TYPE = 'instance'
CONSUMER_MICROVERSION = '1.2'
REGISTER = 'register'
REMOVE = 'remove'

# the adapter options barbicanclient's Client passes on to keystoneauth
_RETRY_OPTS = ('connect_retries', 'connect_retry_delay',
               'status_code_retries', 'status_code_retry_delay',
               'retriable_status_codes')


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
_CLIENT_ERRORS = (guard_exception.Refused, barbican_exceptions.HTTPError,
                  barbican_exceptions.BarbicanException,
                  ks_exceptions.ClientException)


class BarbicanKeySource:
    """Reads the key material of one instance from Barbican."""

    def __init__(self, conf):
        barbican_conf.register_opts(conf)
        self.conf = conf
        self._session = None
        self._service_auth = None
        self._clients = {}
        # keystoneauth logs each request through the standard library logger
        # it is given (barbicanclient passes it on): one of ours, filtered
        self._log = _WithoutBodies(logging.getLogger(__name__ + '.http'), {})

    def _get_session(self):
        # one keystoneauth session (one connection pool) for every fetch
        if self._session is None:
            group = self.conf[barbican_conf.GROUP]
            self._service_auth = ks_loading.load_auth_from_conf_options(
                self.conf, barbican_conf.GROUP)
            # keystoneauth's TLS options, where it has them (not 5.1, the
            # 2023.1 release's)
            tls = {name: group[name] for name in ('tls_ciphers',
                                                  'tls_min_version')
                   if name in group}
            self._session = ks_loading.load_session_from_conf_options(
                self.conf, barbican_conf.GROUP, session=http_guard.session(
                    pool_maxsize=max(10, group.max_concurrency), **tls))
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
        group = self.conf[barbican_conf.GROUP]
        with self._open(refs, auth, min(len(refs), group.max_concurrency)
                        ) as (ids, owner, call, pool, client):
            LOG.debug('Reading %(count)d Barbican secrets from %(endpoint)s '
                      'with %(who)s credentials', {
                          'count': len(refs), 'endpoint': call.barbican,
                          'who': "the instance owner's" if owner
                          else 'service'})
            return self._run(call, pool, owner, [
                (ref, functools.partial(self._read, client, ref, secret_id))
                for ref, secret_id in zip(refs, ids)])

    @contextlib.contextmanager
    def _open(self, refs, auth, threads):
        """One call on ``refs``: ``(secret ids, owner?, call, pool,
        client)``, the pool shut down afterwards.

        The token, the endpoint and the client come first, once, before
        the threads need them.
        """
        ids = [self._secret_id(ref) for ref in refs]
        session = self._get_session()
        owner = auth is not None
        if not owner:
            auth = self._service_auth
            if auth is None:
                raise exception.KeySourceNotConfigured(
                    ref=', '.join(refs), group=barbican_conf.GROUP)
        group = self.conf[barbican_conf.GROUP]
        call = http_guard.Call(auth, group.fetch_timeout,
                               group.max_payload_bytes)
        pool = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix='vtpm-barbican')
        try:
            client, = self._run(call, pool, owner, [(', '.join(refs), (
                functools.partial(self._client, session, call, refs)))])
            yield ids, owner, call, pool, client
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def register_consumer(self, key_refs: Sequence[str], instance_uuid: str,
                          auth=None) -> None:
        """Register the instance as a consumer of each secret of ``key_refs``.

        All or none: when one registration fails, those this call made are
        removed again. Registering twice is harmless (Barbican keeps one).
        ``auth`` as ``fetch``'s; Barbican lets only the owner's project (a
        member who may read the secret, or its admin) or a user the secret
        is shared with register one. Raises ConsumersUnsupported (an older
        Barbican; nothing was sent), ConsumerRefused (401, 403),
        KeyNotFound (the secret is gone), ConsumerFailed (unreachable,
        5xx, out of time), KeySourceNotConfigured or InvalidSecretRef.
        """
        self._consumers(self._register_all, key_refs, instance_uuid, auth)

    def remove_consumer(self, key_refs: Sequence[str], instance_uuid: str,
                        auth=None) -> None:
        """Remove the instance as a consumer of each secret of ``key_refs``.

        A secret or a registration already gone counts as removed; a
        failure does not stop the others. Raises as ``register_consumer``,
        the first failure after trying every secret.
        """
        self._consumers(self._remove_all, key_refs, instance_uuid, auth)

    def _consumers(self, task, key_refs, instance_uuid, auth):
        refs = list(key_refs)
        if not refs:
            return
        # one thread: the requests go one after another (at most six,
        # milliseconds each), so a failure knows what to undo
        with self._open(refs, auth, 1) as (ids, owner, call, pool, client):
            self._run(call, pool, owner, [(', '.join(refs), functools.partial(
                task, client, call, list(zip(refs, ids)), instance_uuid,
                owner))])

    @staticmethod
    def _check_consumers(client, call, refs, instance_uuid):
        version = _consumer_microversion(client.client, call.barbican)
        if version is not None:
            raise guard_exception.ConsumersUnsupported(
                endpoint=call.barbican, version=version,
                needed=CONSUMER_MICROVERSION, instance=instance_uuid,
                ref=', '.join(ref for ref, _ in refs))

    def _register_all(self, client, call, refs, instance_uuid, owner):
        self._check_consumers(client, call, refs, instance_uuid)
        done = []
        for ref, secret_id in refs:
            try:
                _consumer_request(client.secrets.register_consumer,
                                  secret_id, instance_uuid)
            except _CLIENT_ERRORS as e:
                error = self._consumer_error(e, call, ref, REGISTER,
                                             instance_uuid, owner)
                self._undo(client, call, done, instance_uuid, owner)
                raise error from e
            done.append((ref, secret_id))
        LOG.debug('Instance %(uuid)s registered as a consumer of Barbican '
                  'secrets %(refs)s', {
                      'uuid': instance_uuid,
                      'refs': ', '.join(ref for ref, _ in refs)})

    def _remove_all(self, client, call, refs, instance_uuid, owner):
        self._check_consumers(client, call, refs, instance_uuid)
        errors = []
        for ref, secret_id in refs:
            try:
                _consumer_request(client.secrets.remove_consumer, secret_id,
                                  instance_uuid)
            except _CLIENT_ERRORS as e:
                if getattr(e, 'status_code', None) == 404:
                    continue  # the secret or the registration is gone
                errors.append(self._consumer_error(e, call, ref, REMOVE,
                                                   instance_uuid, owner))
                errors[-1].__cause__ = e
        if errors:
            raise errors[0]

    def _undo(self, client, call, done, instance_uuid, owner):
        """Remove the registrations a failed ``register_consumer`` made."""
        try:
            self._remove_all(client, call, done, instance_uuid, owner)
        except exception.VTPMError as e:
            LOG.warning('A consumer registration left after a failed '
                        'registration: %s', e)

    def _consumer_error(self, error, call, ref, action, instance_uuid,
                        owner):
        """The VTPMError for what a consumer request raised."""
        group = self.conf[barbican_conf.GROUP]
        kwargs = {'action': action, 'instance': instance_uuid, 'ref': ref}
        if call.expired():
            return guard_exception.ConsumerFailed(
                reason='no complete answer within [%s] fetch_timeout = %s s'
                       % (barbican_conf.GROUP, call.timeout), **kwargs)
        status = getattr(error, 'status_code', None)
        if isinstance(error, (barbican_exceptions.HTTPAuthError,
                              ks_exceptions.Unauthorized)) or status == 403:
            return guard_exception.ConsumerRefused(
                status=status or 401, credentials=(
                    "the instance owner's token" if owner else
                    'the service credentials of [%s]' % barbican_conf.GROUP),
                **kwargs)
        if status == 404 and action == REGISTER:
            return exception.KeyNotFound(ref=ref)
        if isinstance(error, barbican_exceptions.HTTPServerError):
            reason = 'HTTP %d after %d retries: %s' % (
                status, group.status_code_retries, _error_text(error))
        elif status is not None:
            reason = 'HTTP %d: %s' % (status, _error_text(error))
        else:
            reason = '%s: %s' % (type(error).__name__, _error_text(error))
        return guard_exception.ConsumerFailed(reason=reason, **kwargs)

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
        except _CLIENT_ERRORS as e:
            # the guard's refusals too, which name no secret
            error = self._error(e, call, ref, owner)
            error.__cause__ = e
            return error
        except exception.VTPMError as e:
            return e

    @staticmethod
    def _secret_id(ref):
        secret_id = policy.secret_uuid(ref)
        if secret_id is None:
            raise exception.InvalidSecretRef(ref=ref)
        return secret_id

    def _client(self, session, call, refs):
        """The client for this call's Barbican (built once per endpoint)."""
        adapter = ks_loading.load_adapter_from_conf_options(
            self.conf, barbican_conf.GROUP, session=session, auth=call.auth)
        # the token first: Keystone answers here, not in every thread
        adapter.get_token()
        try:
            url = adapter.get_endpoint()
        except ks_exceptions.EndpointNotFound:
            url = None
        if not url:
            group = self.conf[barbican_conf.GROUP]
            raise exception.KeyManagerUnavailable(
                ref=', '.join(refs), reason='no %s endpoint in the service '
                'catalog for interfaces %s, region %s; set [%s] '
                'endpoint_override' % (
                    barbican_conf.SERVICE_TYPE,
                    ','.join(group.valid_interfaces or []),
                    group.region_name, barbican_conf.GROUP))
        endpoint = call.barbican = _endpoint_base(url)
        client = self._clients.get(endpoint)
        if client is None:
            # Client() asks Barbican for its versions: once per endpoint
            group = self.conf[barbican_conf.GROUP]
            client = self._clients.setdefault(endpoint, barbican_client.Client(
                session=session, endpoint=endpoint, version=API_VERSION,
                auth=_CallAuth(), logger=self._log,
                **{name: group[name] for name in _RETRY_OPTS}))
        return client

    @staticmethod
    def _read(client, ref, secret_id):
        payload = _answered(lambda: client.secrets.get(
            secret_id, payload_content_type=PAYLOAD_CONTENT_TYPE).payload)
        if not isinstance(payload, bytearray):
            # barbicanclient turns some failures into None
            raise exception.KeyWithoutPayload(ref=ref)
        LOG.debug('Read Barbican secret %s', ref)
        return SecretPayload(ref, payload)

    def _error(self, error, call, ref, owner):
        """The VTPMError for what the client or the transport raised."""
        group = self.conf[barbican_conf.GROUP]
        if call.expired():
            # whatever the aborted socket made of it, the cause is the time
            return _deadline_error(call, ref)
        if isinstance(error, guard_exception.TooLarge):
            return exception.KeyTooLarge(ref=ref, group=barbican_conf.GROUP,
                                         limit=error.limit, seen=error.seen)
        if isinstance(error, guard_exception.RedirectRefused):
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
                else 'the service credentials of [%s]' % barbican_conf.GROUP)
        if isinstance(error, barbican_exceptions.HTTPClientError):
            return self._client_error(error, ref, owner)
        if isinstance(error, barbican_exceptions.HTTPServerError):
            return exception.KeyManagerUnavailable(
                ref=ref, reason='HTTP %d after %d retries: %s' % (
                    error.status_code, group.status_code_retries,
                    _error_text(error)))
        if isinstance(error, ks_exceptions.http.HttpError):
            # Keystone asked for a token, or Barbican for its versions
            return exception.KeyManagerUnavailable(
                ref=ref, reason='HTTP %s from %s' % (
                    error.http_status, _error_text(error.url)))
        if isinstance(error, ks_exceptions.RetriableConnectionFailure):
            return exception.KeyManagerUnavailable(
                ref=ref, reason='%s after %d retries: %s' % (
                    type(error).__name__, group.connect_retries,
                    _error_text(error)))
        # discovery failures, a token that cannot be renewed, ...
        return exception.KeyManagerUnavailable(
            ref=ref, reason='%s: %s' % (type(error).__name__,
                                        _error_text(error)))

    @staticmethod
    def _client_error(error, ref, owner):
        status, reason = error.status_code, _error_text(error)
        if status == 404:
            if 'payload' in reason.lower():
                return exception.KeyWithoutPayload(ref=ref)
            return exception.KeyNotFound(ref=ref)
        if status == 403:
            if owner:
                return exception.KeyAccessDenied(ref=ref)
            return exception.KeyAccessDeniedToService(
                ref=ref, group=barbican_conf.GROUP)
        return exception.KeyFetchFailed(ref=ref, status=status,
                                        reason=reason)


def _answered(request):
    """``request()``, whose failure on an error body is the HTTP status's.

    barbicanclient (7.6) reads an error body's top-level 'title';
    keystonemiddleware's 401 has it under 'error', and the client fails on
    its own parsing (KeyError): the status says what happened.
    """
    try:
        return request()
    except KeyError:
        status = http_guard.current().last_status()
        if status is None or status < 400:
            raise
        raise _http_error(status) from None


def _consumer_request(method, secret_id, instance_uuid):
    """``secrets.register_consumer`` or ``remove_consumer`` for the
    instance, as service ``nova``, resource type ``instance``."""
    _answered(lambda: method(secret_id, service=CONSUMER_SERVICE,
                             resource_type=CONSUMER_RESOURCE_TYPE,
                             resource_id=instance_uuid))


def _consumer_microversion(http, endpoint):
    """None when barbicanclient's ``http`` client may send consumer
    requests at ``CONSUMER_MICROVERSION``; else the newest microversion
    this Barbican speaks.

    barbicanclient negotiates the newest microversion it and Barbican
    share, and keeps it (``http.microversion``). One that knows no newer
    than 1.1 (2023.1's 5.5.0; constraints.txt's 7.6 knows 1.2) stops there
    also with a Barbican that offers 1.2: then Barbican's version document
    says (asked once per client), and a Barbican that offers 1.2 is spoken
    to at 1.2 from then on, as a newer barbicanclient would. The consumer
    requests are the same at both; 1.2 is where Barbican refuses to delete
    a secret in use. A Barbican at 1.0 has no consumers: told apart
    without a request.
    """
    def version(text):
        return discover.normalize_version_number(text)

    needed = version(CONSUMER_MICROVERSION)
    if version(http.microversion) >= needed:
        return None
    if version(http.microversion) < (1, 1):
        return http.microversion
    offered = max((v.get('max_version') or '1.0'
                   for v in discover.get_version_data(
                       http.session, endpoint, version_header='%s %s' % (
                           barbican_conf.SERVICE_TYPE, http.microversion))),
                  key=version, default=http.microversion)
    if version(offered) < needed:
        return offered
    http.microversion = http.default_microversion = CONSUMER_MICROVERSION
    return None


def _deadline_error(call, ref):
    return exception.KeyManagerUnavailable(
        ref=ref, reason='no complete answer within [%s] fetch_timeout = %s s'
                        % (barbican_conf.GROUP, call.timeout))


def _http_error(status):
    """The barbicanclient error for ``status``, as its client raises them."""
    text = 'HTTP %d (an error body barbicanclient cannot read)' % status
    if status == 401:
        return barbican_exceptions.HTTPAuthError(text)
    if status >= 500:
        return barbican_exceptions.HTTPServerError(text, status)
    return barbican_exceptions.HTTPClientError(text, status)


def _error_text(error):
    """An error's text as our messages quote a foreign value: a bounded
    excerpt (``vtpm_core.exception.excerpt``), its class for no text."""
    return exception.excerpt(str(error).strip() or type(error).__name__)


def _wipe_late(future):
    # a read that finished after fetch gave up on it: nobody will see it
    if (not future.cancelled() and future.exception() is None
            and isinstance(future.result(), SecretPayload)):
        future.result().wipe()
