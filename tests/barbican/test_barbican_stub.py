# SPDX-License-Identifier: Apache-2.0
"""BarbicanKeySource's HTTP rules, against a local stub that misbehaves.

The real Barbican cannot be made to answer 503 or drop a connection on
demand; this stub can. Everything else is tested against the real one.
"""

import http.server
import pickle
import socket
import sys
import threading
import time
import uuid

from keystoneauth1 import token_endpoint
import pytest

from vtpm_core import exception
from vtpm_hyperv import secrets

TOKEN = 'stub-token-4f6c'


class _Stub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.script = {}        # secret id -> list of actions, one per hit
        self.delays = {}        # secret id -> seconds before answering
        self.hits = []          # (path, headers) of every request
        self.lock = threading.Lock()

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]

    def handle_error(self, request, client_address):
        # A client that timed out or dropped the connection on purpose (the
        # tests do) makes the answer fail with a broken pipe: expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def count(self, ref):
        return sum(ref in path for path, _ in self.hits)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        secret_id = self.path.split('/')[3] if self.path.count('/') >= 4 \
            else ''
        with server.lock:
            server.hits.append((self.path, dict(self.headers)))
            actions = server.script.get(secret_id, [])
            action = actions.pop(0) if len(actions) > 1 else (
                actions[0] if actions else 200)
        time.sleep(server.delays.get(secret_id, 0))
        if action == 'drop':
            # close without an answer: a connection error for the client
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        body = (_payload(secret_id) if action == 200 else
                b'{"code": %d, "title": "stub", "description": '
                b'"stub says %d"}' % (action, action))
        self.send_response(action)
        self.send_header('Content-Type', 'application/octet-stream'
                         if action == 200 else 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _payload(secret_id):
    return b'\x00key-of-' + secret_id.encode() + b'\xff'


@pytest.fixture
def stub():
    server = _Stub()
    thread = threading.Thread(target=server.serve_forever, args=(0.02,),
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def source(conf, stub):
    conf.set_override('endpoint_override', stub.url, secrets.GROUP)
    return secrets.BarbicanKeySource(conf)


def _auth():
    return token_endpoint.Token(None, TOKEN)


def _refs(n):
    return [str(uuid.uuid4()) for _ in range(n)]


def test_one_get_per_secret_with_the_owner_token(source, stub):
    refs = _refs(3)

    items = source.fetch(refs, auth=_auth())

    assert [i.ref for i in items] == refs
    assert [bytes(i.payload) for i in items] == [_payload(r) for r in refs]
    assert sorted(path for path, _ in stub.hits) == sorted(
        '/v1/secrets/%s/payload' % r for r in refs)
    assert all(h['X-Auth-Token'] == TOKEN and h['Accept'] == '*/*'
               for _, h in stub.hits)


@pytest.mark.parametrize('suffix', ['', '/', '/v1', '/v1/'],
                         ids=['bare', 'slash', 'versioned', 'versioned-slash'])
def test_endpoint_with_or_without_version(conf, stub, suffix):
    conf.set_override('endpoint_override', stub.url + suffix, secrets.GROUP)
    ref = _refs(1)[0]

    secrets.BarbicanKeySource(conf).fetch([ref], auth=_auth())

    assert [path for path, _ in stub.hits] == ['/v1/secrets/%s/payload' % ref]


def test_5xx_is_retried_until_it_answers(source, stub):
    ref = _refs(1)[0]
    stub.script[ref] = [503, 500, 200]

    items = source.fetch([ref], auth=_auth())

    assert bytes(items[0].payload) == _payload(ref)
    assert stub.count(ref) == 3


def test_5xx_gives_up_after_the_configured_retries(conf, source, stub):
    conf.set_override('status_code_retries', 1, secrets.GROUP)
    ref = _refs(1)[0]
    stub.script[ref] = [502]

    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        source.fetch([ref], auth=_auth())

    assert raised.value.ref == ref
    assert 'HTTP 502' in str(raised.value)
    assert stub.count(ref) == 2


# (status, error class): Barbican's answer, never retried
@pytest.mark.parametrize('status, error', [
    (404, exception.KeyNotFound),
    (403, exception.KeyAccessDenied),
    (401, exception.KeyAccessDenied),
    (400, exception.KeyFetchFailed),
    (406, exception.KeyFetchFailed),
    (429, exception.KeyFetchFailed),
], ids=['404-not-found', '403-forbidden', '401-unauthorized', '400',
        '406-not-acceptable', '429-too-many'])
def test_4xx_is_not_retried(source, stub, status, error):
    ref = _refs(1)[0]
    stub.script[ref] = [status]

    with pytest.raises(error) as raised:
        source.fetch([ref], auth=_auth())

    assert type(raised.value) is error
    assert raised.value.ref == ref
    assert ref in str(raised.value)
    assert stub.count(ref) == 1


def test_dropped_connection_is_retried(source, stub):
    ref = _refs(1)[0]
    stub.script[ref] = ['drop', 'drop', 200]

    items = source.fetch([ref], auth=_auth())

    assert bytes(items[0].payload) == _payload(ref)
    assert stub.count(ref) == 3


def test_refused_connection_is_unavailable(conf):
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    # nothing listens on port any more
    conf.set_override('endpoint_override', 'http://127.0.0.1:%d' % port,
                      secrets.GROUP)
    ref = _refs(1)[0]

    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        secrets.BarbicanKeySource(conf).fetch([ref], auth=_auth())

    assert raised.value.ref == ref
    assert 'ConnectFailure' in str(raised.value)


def test_a_hung_barbican_times_out(conf, source, stub):
    conf.set_override('timeout', 1, secrets.GROUP)
    conf.set_override('connect_retries', 0, secrets.GROUP)
    ref = _refs(1)[0]
    stub.delays[ref] = 3

    started = time.monotonic()
    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        secrets.BarbicanKeySource(conf).fetch([ref], auth=_auth())

    assert time.monotonic() - started < 2.5
    assert raised.value.ref == ref


def test_secrets_are_read_concurrently_and_returned_in_order(source, stub):
    refs = _refs(6)
    # the first asked answers last
    for i, ref in enumerate(refs):
        stub.delays[ref] = 0.3 - 0.05 * i

    started = time.monotonic()
    items = source.fetch(refs, auth=_auth())
    elapsed = time.monotonic() - started

    assert [i.ref for i in items] == refs
    assert [bytes(i.payload) for i in items] == [_payload(r) for r in refs]
    assert elapsed < 0.9  # one after the other: 1.05 s


def test_max_concurrency_bounds_the_threads(conf, source, stub):
    conf.set_override('max_concurrency', 1, secrets.GROUP)
    refs = _refs(3)
    for ref in refs:
        stub.delays[ref] = 0.15

    started = time.monotonic()
    source.fetch(refs, auth=_auth())

    assert time.monotonic() - started >= 0.45


def test_a_failure_wipes_what_was_read_and_names_the_secret(
        source, stub, monkeypatch):
    good, bad = _refs(2), _refs(1)[0]
    stub.script[bad] = [404]
    wiped = []
    original = secrets.SecretPayload.wipe

    def spy(item):
        wiped.append((item.ref, item.payload))
        original(item)

    monkeypatch.setattr(secrets.SecretPayload, 'wipe', spy)

    with pytest.raises(exception.KeyNotFound) as raised:
        source.fetch([good[0], bad, good[1]], auth=_auth())

    assert raised.value.ref == bad
    assert sorted(ref for ref, _ in wiped) == sorted(good)
    assert all(len(p) and not any(p) for _, p in wiped)  # zeros, in place


def test_first_failure_in_request_order_is_raised(source, stub):
    refs = _refs(3)
    stub.script[refs[1]] = [403]
    stub.script[refs[2]] = [404]

    with pytest.raises(exception.KeyAccessDenied) as raised:
        source.fetch(refs, auth=_auth())

    assert raised.value.ref == refs[1]


def test_not_a_uuid_is_refused_before_any_request(source, stub):
    with pytest.raises(exception.KeyNotFound) as raised:
        source.fetch([_refs(1)[0], '../v1/secrets'], auth=_auth())

    assert raised.value.ref == '../v1/secrets'
    assert 'not a secret UUID' in str(raised.value)
    assert stub.hits == []


def test_no_owner_and_no_service_credentials(source, stub):
    ref = _refs(1)[0]

    with pytest.raises(exception.KeySourceNotConfigured) as raised:
        source.fetch([ref])

    assert ref in str(raised.value)
    assert '[vtpm_key_manager]' in str(raised.value)
    assert stub.hits == []


def test_nothing_asked_nothing_fetched(source, stub):
    assert source.fetch([], auth=_auth()) == []
    assert stub.hits == []


def test_payload_never_in_repr_or_pickle(source, stub):
    ref = _refs(1)[0]
    item = source.fetch([ref], auth=_auth())[0]

    assert repr(item) == str(item) == '<SecretPayload %s>' % ref
    with pytest.raises(TypeError):
        pickle.dumps(item)


def test_wipe_zeroes_the_payload_in_place(source, stub):
    item = source.fetch(_refs(1), auth=_auth())[0]
    payload = item.payload

    item.wipe()

    assert len(payload) and not any(payload)
    assert item.payload == bytearray()


def test_list_opts_for_the_sample_config():
    (group, opts), = secrets.list_opts()
    by_name = {opt.dest: opt for opt in opts}

    assert group == 'vtpm_key_manager'
    assert {'auth_type', 'auth_url', 'password', 'endpoint_override',
            'valid_interfaces', 'region_name', 'timeout', 'cafile',
            'connect_retries', 'status_code_retries',
            'max_concurrency'} <= set(by_name)
    assert by_name['service_type'].default == 'key-manager'
    assert by_name['timeout'].default == 10
    assert by_name['retriable_status_codes'].default == [500, 502, 503, 504]
    # deep copies: a caller changing one does not change the next
    by_name['timeout'].default = 99
    (_, again), = secrets.list_opts()
    assert {o.dest: o for o in again}['timeout'].default == 10


def test_register_opts_twice_is_harmless(conf):
    secrets.register_opts(conf)

    assert conf.vtpm_key_manager.service_type == 'key-manager'
    assert conf.vtpm_key_manager.auth_type is None

