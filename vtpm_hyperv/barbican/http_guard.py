# SPDX-License-Identifier: Apache-2.0
"""The HTTP rules under every Barbican fetch, whatever client sends it.

python-barbicanclient and keystoneauth1 send the requests; this module is
the transport beneath them (a ``requests`` adapter mounted on the
keystoneauth session), so its rules hold for every request of a fetch,
Keystone's included:

- **one deadline for the whole call.** Each request gets at most the time
  left, and ``Call.abort()`` shuts the socket of every request still
  running, whether it waits to send, for headers or for the body. Without it
  a server that sends a byte now and then keeps a read alive for ever,
  because a socket timeout only bounds the wait for the next byte. What a
  shut socket ended is not an answer, nor is any body shorter than its
  ``Content-Length``. (A TLS
  handshake under way is out of its reach: Python's ssl module holds that
  socket to itself until the handshake ends. Its reads are bounded by the
  timeout, and the key source stops waiting at the deadline anyway.)
- **no redirect to another origin.** keystoneauth follows redirects itself,
  sending the same headers (the owner's ``X-Auth-Token``) and taking the
  body of the last answer; a redirect to another scheme, host or port is
  refused before keystoneauth sees it. Same-origin redirects go through.
- **a size cap on what Barbican sends.** An answer from under the Barbican
  endpoint longer than the cap is refused from its ``Content-Length``, or as
  soon as the bytes read pass the cap; the connection is closed, not
  drained. Keystone's answers (a token with its catalog) are not capped.

A body read here is a ``bytearray`` that becomes ``response.content`` as
is, so the payload barbicanclient hands back is that very buffer, which
the caller can wipe.

Requests run inside ``Call.run``, which binds the call to the thread
(a context variable): worker threads of one fetch share its deadline, and
fetches running at the same time do not see each other's.
"""

from __future__ import annotations

import contextvars
import socket
import threading
import time
from urllib import parse

from keystoneauth1 import session as ks_session
import requests
from urllib3 import connection
from urllib3 import connectionpool
from urllib3 import poolmanager

from vtpm_hyperv.barbican import exception

# what keystoneauth's Session follows (Session._REDIRECT_STATUSES)
REDIRECT_STATUSES = frozenset((301, 302, 303, 305, 307, 308))
DEFAULT_PORTS = {'http': 80, 'https': 443}
CHUNK_BYTES = 64 * 1024

_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar(
    'vtpm_barbican_call', default=None)


def origin(url):
    """(scheme, host, port) of ``url``: what must not change on a redirect."""
    parts = parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or '').lower(), (
        parts.port or DEFAULT_PORTS.get(scheme))


def origin_text(url):
    scheme, host, port = origin(url)
    return '%s://%s:%s' % (scheme, host, port)


class Call:
    """One fetch: its deadline, its credentials, the requests in flight.

    :param auth: the keystoneauth1 plugin the fetch acts with (read by the
        key source's client through ``current()``).
    :param timeout: seconds for the whole call.
    :param max_body: the cap on an answer from under ``barbican`` (set once
        the endpoint is known).
    """

    def __init__(self, auth, timeout, max_body):
        self.auth = auth
        self.timeout = timeout
        self.max_body = max_body
        self.barbican = None
        self._deadline = time.monotonic() + timeout
        self._lock = threading.Lock()
        self._in_flight = {}    # thread id -> urllib3 connection
        self._statuses = {}     # thread id -> status of its last answer
        self._aborted = False

    def run(self, function, *args):
        """Call ``function(*args)`` with this call bound to the thread."""
        token = _CURRENT.set(self)
        try:
            return function(*args)
        finally:
            _CURRENT.reset(token)

    def remaining(self):
        return self._deadline - time.monotonic()

    def expired(self):
        return self._aborted or self.remaining() <= 0

    def check(self):
        if self.expired():
            raise exception.DeadlineExceeded(timeout=self.timeout)

    def check_not_aborted(self):
        if self._aborted:
            raise exception.DeadlineExceeded(timeout=self.timeout)

    def abort(self):
        """Fail every request of this call, now and from now on."""
        with self._lock:
            self._aborted = True
            connections = list(self._in_flight.values())
        for conn in connections:
            _shut(conn)

    def answered(self, status):
        self._statuses[threading.get_ident()] = status

    def last_status(self):
        """The HTTP status of this thread's last answer, if any."""
        return self._statuses.get(threading.get_ident())

    def cap_for(self, url):
        """The size cap for an answer from ``url``; None for no cap."""
        base = self.barbican
        if base and (url == base or url.startswith(base.rstrip('/') + '/')):
            return self.max_body
        return None

    def watch(self, conn):
        """Let abort() reach ``conn``, this thread's request under way."""
        with self._lock:
            self._in_flight[threading.get_ident()] = conn
            aborted = self._aborted
        if aborted:
            _shut(conn)

    def unwatch(self):
        with self._lock:
            self._in_flight.pop(threading.get_ident(), None)


def current() -> Call | None:
    """The call bound to this thread, if any."""
    return _CURRENT.get()


def _shut(conn):
    # shutdown, not close: the reading thread owns the socket and closes
    # it; shutdown makes its blocked recv() return at once. The socket
    # connect() made: for an answer that ends with the connection
    # (``Connection: close``) http.client has already handed it to the
    # response and set ``conn.sock`` to None.
    sock = conn.sock or conn.connected_sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed, or not connected yet


class _Watched:
    """A urllib3 connection that tells its call which socket it uses.

    Registered as the request starts (the socket exists by then, or is
    created inside it), so abort() reaches it while it sends the request,
    waits for headers or reads the body.
    """

    connected_sock = None

    def connect(self):
        super().connect()
        self.connected_sock = self.sock

    def request(self, *args, **kwargs):
        call = current()
        if call is not None:
            call.watch(self)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Watched, connection.HTTPConnection):
    pass


class _HTTPSConnection(_Watched, connection.HTTPSConnection):
    pass


class _Whole:
    """A pool whose answers are whole or an error.

    A body that ends before its ``Content-Length`` (a socket ``abort()``
    shut, a server gone) is an error (``ProtocolError``), not an answer:
    urllib3 2.0 made that the default (``enforce_content_length=True``),
    urllib3 1.26 (2023.1's) returns the bytes it got as the whole body.
    Said here for both, since both take the argument.
    """

    def urlopen(self, *args, **kwargs):
        kwargs['enforce_content_length'] = True
        return super().urlopen(*args, **kwargs)


class _HTTPPool(_Whole, connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_Whole, connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {'http': _HTTPPool, 'https': _HTTPSPool}


class GuardedAdapter(ks_session.TCPKeepAliveAdapter):
    """keystoneauth's own adapter (TCP keep-alive, TLS options), guarded."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS proxies bring pools of their own: those keep them (the
        # call's deadline still holds through timeouts, not abort())
        if isinstance(manager, poolmanager.ProxyManager):
            manager.pool_classes_by_scheme = _POOLS
        return manager

    def send(self, request, stream=False, timeout=None, **kwargs):
        call = current()
        if call is None:
            raise RuntimeError('a guarded Barbican session is used outside '
                               'a Call')
        call.check()
        timeout = _within(timeout, call.remaining())
        try:
            response = super().send(request, stream=True, timeout=timeout,
                                    **kwargs)
            call.answered(response.status_code)
            try:
                _refuse_other_origin(request.url, response)
                response._content = _read_body(response,
                                               call.cap_for(request.url))
                # a body that ended once abort() shut its socket may be cut
                # short where nothing tells (no Content-Length): not taken
                call.check_not_aborted()
            except BaseException:
                response.close()  # drop the connection, never drain it
                raise
        finally:
            call.unwatch()
        return response


def _within(timeout, remaining):
    """A requests timeout that ends no later than ``remaining`` seconds."""
    remaining = max(remaining, 0.001)
    if isinstance(timeout, tuple):
        return tuple(remaining if t is None else min(t, remaining)
                     for t in timeout)
    return remaining if timeout is None else min(timeout, remaining)


def _refuse_other_origin(url, response):
    location = response.headers.get('Location')
    if response.status_code in REDIRECT_STATUSES and location:
        target = parse.urljoin(url, location)
        if origin(target) != origin(url):
            raise exception.RedirectRefused(
                status=response.status_code, source=origin_text(url),
                target=origin_text(target))


def _read_body(response, cap):
    """The whole body as a bytearray; TooLarge past ``cap`` bytes."""
    if cap is not None:
        length = response.headers.get('Content-Length', '')
        if length.isdigit() and int(length) > cap:
            raise exception.TooLarge(limit=cap,
                                     seen='Content-Length %s' % length)
    body = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        if cap is not None and len(body) + len(chunk) > cap:
            raise exception.TooLarge(limit=cap,
                                     seen='more than %d bytes sent' % cap)
        body += chunk
    # requests hands out _content as response.content once consumed
    return body


def session(**adapter_kwargs) -> requests.Session:
    """A requests session whose every request follows the rules above."""
    guarded = requests.Session()
    adapter = GuardedAdapter(**adapter_kwargs)
    for scheme in ('http://', 'https://'):
        guarded.mount(scheme, adapter)
    return guarded
