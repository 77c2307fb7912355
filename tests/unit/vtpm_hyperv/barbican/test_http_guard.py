# SPDX-License-Identifier: Apache-2.0
"""BarbicanKeySource against a Barbican (or a network) that misbehaves.

A stub server (tests/fixtures/barbican_stub.py) stands in where the real
Barbican
cannot misbehave: it drips bytes, redirects to another origin, sends 64 MB,
answers 401, and shows which headers arrived.
"""

import base64
import logging
import threading
import time
import uuid

from keystoneauth1 import service_token
from keystoneauth1 import token_endpoint
import pytest

from tests.fixtures import barbican_stub as stub_server
from vtpm_core import exception
from vtpm_hyperv.barbican import conf as barbican_conf

TOKEN = 'stub-owner-token-9d1e'
SERVICE_TOKEN = 'stub-service-token-77ab'
MIB = 1024 * 1024


@pytest.fixture
def elsewhere():
    """Another origin (another port) that must never be contacted."""
    server = stub_server.start()
    yield server
    stub_server.stop(server)


def _auth(token=TOKEN):
    return token_endpoint.Token(None, token)


def _ref():
    return str(uuid.uuid4())


def _payload_url(server, ref):
    return '%s/v1/secrets/%s/payload' % (server.url, ref)


# --- one deadline for the whole call ---------------------------------------

@pytest.mark.parametrize('where, length', [
    ('body', True), ('headers', True), ('body', False)],
    ids=['body', 'headers', 'body-until-close'])
def test_a_slow_drip_ends_at_the_deadline(conf, source, stub, where,
                                          length):
    # a byte every 0.5 s never trips the 5 s wait for data: only the
    # deadline can end it, and it must cut the connection, not abandon it;
    # the body it cut short is no payload, also where no Content-Length
    # tells it was cut
    conf.set_override('timeout', 5, barbican_conf.GROUP)
    conf.set_override('fetch_timeout', 1, barbican_conf.GROUP)
    ref = _ref()
    stub.script[ref] = [stub_server.Drip(where, interval=0.5, size=60,
                                         length=length)]

    started = time.monotonic()
    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        source.fetch([ref], auth=_auth())
    elapsed = time.monotonic() - started

    assert raised.value.ref == ref
    assert 'fetch_timeout = 1 s' in str(raised.value)
    assert elapsed < 10  # the drip alone lasts 30 s or more
    assert stub.cut[ref].wait(5)  # the client shut the socket


def test_the_deadline_covers_retries_and_wipes_what_was_read(
        conf, source, stub, wiped):
    # 503 for ever, retried up to 100 times 0.2 s apart: 20 s without the
    # deadline; the secret that answered at once is wiped
    conf.set_override('fetch_timeout', 1, barbican_conf.GROUP)
    conf.set_override('status_code_retries', 100, barbican_conf.GROUP)
    conf.set_override('status_code_retry_delay', 0.2, barbican_conf.GROUP)
    good, bad = _ref(), _ref()
    stub.script[bad] = [503]
    started = time.monotonic()
    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        source.fetch([good, bad], auth=_auth())

    assert time.monotonic() - started < 10
    assert raised.value.ref == bad
    assert 'fetch_timeout' in str(raised.value)
    assert [ref for ref, _ in wiped] == [good]
    assert not any(wiped[0][1])


# --- redirects ---------------------------------------------------------------

@pytest.mark.parametrize('status', [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_is_refused(source, stub, elsewhere,
                                                 status):
    ref = _ref()
    stub.script[ref] = [stub_server.Redirect(_payload_url(elsewhere, ref),
                                             status)]

    with pytest.raises(exception.KeyFetchFailed) as raised:
        source.fetch([ref], auth=_auth())

    assert raised.value.ref == ref
    assert 'another origin' in str(raised.value)
    assert elsewhere.url.replace('http://', '') in str(raised.value)
    # the owner's token never went there, and nothing came from there
    assert elsewhere.hits == []
    assert stub.count(ref) == 1


def test_a_redirect_within_the_origin_is_followed(source, stub):
    ref = _ref()
    # the stub answers /moved/<ref> with the payload of <ref>
    stub.script[ref] = [
        stub_server.Redirect('%s/moved/%s' % (stub.url, ref), 307), 200]

    items = source.fetch([ref], auth=_auth())

    assert bytes(items[0].payload) == stub_server.payload(ref)
    assert [p for p, _ in stub.hits if ref in p] == [
        '/v1/secrets/%s/payload' % ref, '/moved/%s' % ref]


# --- the size cap ------------------------------------------------------------

@pytest.mark.parametrize('length', [True, False],
                         ids=['content-length', 'until-close'])
def test_an_oversized_payload_is_refused_before_it_is_read(
        source, stub, length):
    ref = _ref()
    stub.script[ref] = [stub_server.Huge(64 * MIB, length=length)]

    with pytest.raises(exception.KeyTooLarge) as raised:
        source.fetch([ref], auth=_auth())

    assert isinstance(raised.value, exception.InvalidKeyMaterial)
    assert raised.value.ref == ref
    assert 'max_payload_bytes = 1048576' in str(raised.value)
    assert stub.cut[ref].wait(10)
    # the client closed the connection: at most what socket buffers hold
    # went out, not the 64 MB
    assert stub.sent[ref] < 16 * MIB


@pytest.mark.parametrize('length', [True, False],
                         ids=['content-length', 'until-close'])
def test_the_size_cap_is_inclusive(conf, source, stub, length):
    conf.set_override('max_payload_bytes', 1000, barbican_conf.GROUP)
    fits, over = _ref(), _ref()
    stub.script[fits] = [stub_server.Huge(1000, length=length)]
    stub.script[over] = [stub_server.Huge(1001, length=length)]

    items = source.fetch([fits], auth=_auth())
    with pytest.raises(exception.KeyTooLarge) as raised:
        source.fetch([over], auth=_auth())

    assert bytes(items[0].payload) == b'\x5a' * 1000
    assert raised.value.ref == over


# --- credentials -------------------------------------------------------------

def test_401_is_not_a_refusal_of_the_secret(source, stub):
    ref = _ref()
    stub.script[ref] = [401]

    with pytest.raises(exception.KeyAuthenticationFailed) as raised:
        source.fetch([ref], auth=_auth())

    assert not isinstance(raised.value, exception.KeyAccessDenied)
    assert raised.value.ref == ref
    message = str(raised.value)
    assert 'HTTP 401' in message and ref in message
    assert "owner's token" in message
    assert 'project' not in message
    assert '[service_user] send_service_user_token' in message
    assert stub.count(ref) == 1


def test_a_service_token_travels_beside_the_owners(source, stub):
    # what nova's service_auth.get_service_user_token_auth_plugin returns
    # when [service_user] send_service_user_token is set
    auth = service_token.ServiceTokenAuthWrapper(
        user_auth=_auth(), service_auth=_auth(SERVICE_TOKEN))
    refs = [_ref(), _ref()]

    items = source.fetch(refs, auth=auth)

    assert [i.ref for i in items] == refs
    assert len(stub.payload_hits()) == 2
    for _, headers in stub.hits:  # the version request too
        assert headers['X-Auth-Token'] == TOKEN
        assert headers['X-Service-Token'] == SERVICE_TOKEN


def test_fetches_at_the_same_time_send_their_own_tokens(source, stub):
    # one client serves every fetch: each request must carry the token of
    # the fetch it belongs to, also when they overlap
    tokens = ['owner-%d' % i for i in range(4)]
    refs = {token: [_ref() for _ in range(3)] for token in tokens}
    for ref in sum(refs.values(), []):
        stub.delays[ref] = 0.05
    results, errors = {}, []

    def fetch(token):
        try:
            results[token] = source.fetch(refs[token], auth=_auth(token))
        except exception.VTPMError as e:
            errors.append(e)

    threads = [threading.Thread(target=fetch, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for token in tokens:
        assert [i.ref for i in results[token]] == refs[token]
        for ref in refs[token]:
            assert [h['X-Auth-Token'] for p, h in stub.hits
                    if ref in p] == [token]


# --- nothing secret in the logs -------------------------------------------

def _forms(data):
    """Ways a payload could show up in a log line."""
    return [data.decode('latin-1'), data.hex(),
            base64.b64encode(data).decode(), repr(data)]


def test_no_payload_or_token_in_debug_logs(source, stub, elsewhere, caplog):
    # a text/plain answer: keystoneauth logs such bodies at DEBUG
    text, missing, moved = _ref(), _ref(), _ref()
    stub.script[text] = [stub_server.Text()]
    stub.script[missing] = [404]
    stub.script[moved] = [stub_server.Redirect(_payload_url(elsewhere,
                                                            moved))]
    for name in ('keystoneauth', 'barbicanclient', 'urllib3', 'vtpm_hyperv'):
        caplog.set_level(logging.DEBUG, logger=name)
    auth = service_token.ServiceTokenAuthWrapper(
        user_auth=_auth(), service_auth=_auth(SERVICE_TOKEN))

    items = source.fetch([text], auth=auth)
    for ref, error in ((missing, exception.KeyNotFound),
                       (moved, exception.KeyFetchFailed)):
        with pytest.raises(error):
            source.fetch([ref], auth=auth)

    assert bytes(items[0].payload) == stub_server.payload(text)
    logged = caplog.text + ''.join(repr(r.args) for r in caplog.records)
    assert 'GET %s' % _payload_url(stub, text) in logged  # it does log
    assert 'Read Barbican secret %s' % text in logged
    for secret in _forms(stub_server.payload(text)[1:-1]) + [
            TOKEN, SERVICE_TOKEN]:
        assert secret not in logged
