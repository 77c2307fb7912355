# SPDX-License-Identifier: Apache-2.0
"""BarbicanKeySource against the real Keystone and Barbican on loopback.

Refusals come from Barbican itself (its new-RBAC policies), not from us.
"""

import base64
import logging
import pathlib
import secrets as random_bytes
import time
import uuid

from barbicanclient import exceptions as barbican_exceptions
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import session as ks_session
import pytest

from tests import realservices
from tools.simcloud import guide
from vtpm_core import exception
from vtpm_hyperv.barbican import conf as barbican_conf
from vtpm_hyperv.barbican import key_source
from vtpm_hyperv import fake


def test_owner_reads_its_secrets_in_the_order_asked(conf, store):
    # binary payloads of several sizes, NUL and 0xff included
    payloads = [b'\x00' + random_bytes.token_bytes(n) + b'\xff'
                for n in (1, 31, 256, 1000, 4096, 12000)]
    refs = [store(p) for p in payloads]
    order = [5, 0, 3, 1, 4, 2]

    items = key_source.BarbicanKeySource(conf).fetch(
        [refs[i] for i in order], auth=realservices.auth('owner'))

    assert [item.ref for item in items] == [refs[i] for i in order]
    assert [bytes(item.payload) for item in items] == [
        payloads[i] for i in order]
    assert all(type(item.payload) is bytearray for item in items)


def test_a_shielding_data_file_of_the_size_windows_allows(conf, store):
    """Stored in the Barbican configured as the install guide says (~400 KB:
    other files up to New-ShieldingDataFile's 384 KB and an answer file),
    read back whole; one past the guide's limit is Barbican's 413."""
    pdk = fake.shielding_data_file(fake.make_guardian('tenant-owner'))
    assert len(pdk) > 384 * 1024
    (item,) = key_source.BarbicanKeySource(conf).fetch(
        [store(pdk)], auth=realservices.auth('owner'))
    assert bytes(item.payload) == pdk
    limit = {o.name: int(o.values[-1]) for o in guide.options(
        'barbican-conf')}['max_allowed_secret_in_bytes']
    # base64 of 3 * n bytes is 4 * n characters
    too_large = bytes(3 * (limit // 4 + 1))
    with pytest.raises(barbican_exceptions.HTTPClientError) as e:
        store(too_large)
    assert e.value.status_code == 413


def _access_log_lines():
    path = pathlib.Path(realservices.state_dir()) / 'barbican' / 'access.log'
    return path.read_text().splitlines()


def _new_access_lines(before, expected):
    """The access log lines after ``before``, once ``expected`` are in."""
    # gunicorn writes the access line after the answer: wait for it
    deadline = time.monotonic() + 5
    while (len(_access_log_lines()) < before + expected
           and time.monotonic() < deadline):
        time.sleep(0.05)
    time.sleep(0.3)  # and make sure nothing else follows
    return _access_log_lines()[before:]


def test_one_http_request_per_secret(conf, store):
    first, second = [store() for _ in range(3)], [store() for _ in range(2)]
    auth = realservices.auth('owner')
    auth.get_token(ks_session.Session())  # Keystone, not Barbican
    source = key_source.BarbicanKeySource(conf)

    before = len(_access_log_lines())
    source.fetch(first, auth=auth)
    built = _new_access_lines(before, 4)
    before += len(built)
    source.fetch(second, auth=auth)
    again = _new_access_lines(before, 2)

    # python-barbicanclient asks for Barbican's versions once, when the
    # key source builds it; then one GET per secret and nothing else
    assert len(built) == 4, built
    assert sum('"GET / ' in line for line in built) == 1, built
    assert len(again) == 2, again
    for ref, lines in [(r, built) for r in first] + [(r, again)
                                                     for r in second]:
        assert sum('GET /v1/secrets/%s/payload ' % ref in line
                   for line in lines) == 1, lines


def test_another_project_is_refused_by_barbican(conf, store):
    ref = store(kind='owner')

    with pytest.raises(exception.KeyAccessDenied) as raised:
        key_source.BarbicanKeySource(conf).fetch(
            [ref], auth=realservices.auth('other'))

    assert raised.value.ref == ref
    assert ref in str(raised.value)


def test_refusal_of_one_secret_names_that_one(conf, store):
    mine = store(kind='other')
    theirs = store(kind='owner')

    with pytest.raises(exception.KeyAccessDenied) as raised:
        key_source.BarbicanKeySource(conf).fetch(
            [mine, theirs], auth=realservices.auth('other'))

    assert raised.value.ref == theirs


def test_missing_secret_is_named(conf, store):
    present = store()
    missing = str(uuid.uuid4())

    with pytest.raises(exception.KeyNotFound) as raised:
        key_source.BarbicanKeySource(conf).fetch(
            [present, missing], auth=realservices.auth('owner'))

    assert raised.value.ref == missing
    assert missing in str(raised.value)
    assert present not in str(raised.value)


def test_deleted_secret_is_missing(conf, store):
    ref = store()
    realservices.delete_secret(ref)

    with pytest.raises(exception.KeyNotFound) as raised:
        key_source.BarbicanKeySource(conf).fetch(
            [ref], auth=realservices.auth('owner'))

    assert raised.value.ref == ref


def test_barbican_down_is_unavailable(conf, store):
    ref = store()
    auth = realservices.auth('owner')
    auth.get_token(ks_session.Session())  # Keystone stays up
    conf.set_override('connect_retries', 1, barbican_conf.GROUP)
    # Barbican down, as the client sees it: nothing answers at its address
    conf.set_override('endpoint_override', realservices.unreachable_url(),
                      barbican_conf.GROUP)
    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)

    assert raised.value.ref == ref
    assert ref in str(raised.value)
    assert 'ConnectFailure after 1 retries' in str(raised.value)
    # and the same secret reads again from the Barbican that answers
    conf.clear_override('endpoint_override', barbican_conf.GROUP)
    items = key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)
    assert items[0].ref == ref


def _forms(data):
    """Ways a payload could show up in a log line."""
    return [data, data.hex(), base64.b64encode(data).decode(), repr(data)]


def test_no_payload_token_or_password_in_debug_logs(conf, store, caplog):
    binary = b'VTPM-BINARY-' + random_bytes.token_hex(16).encode()
    binary_ref = store(binary)
    # a text/plain secret: keystoneauth would log it if its logging were on
    text = 'VTPM-TEXT-' + random_bytes.token_hex(16)
    text_ref = realservices.barbican('owner').secrets.create(
        name='hyperv-vtpm text', payload=text).store().rsplit('/', 1)[1]
    auth = realservices.auth('owner')
    source = key_source.BarbicanKeySource(conf)
    caplog.set_level(logging.DEBUG)
    try:
        items = source.fetch([binary_ref, text_ref], auth=auth)
        with pytest.raises(exception.KeyAccessDenied):
            source.fetch([binary_ref], auth=realservices.auth('other'))
        with pytest.raises(exception.KeyNotFound):
            source.fetch([str(uuid.uuid4())], auth=auth)
    finally:
        realservices.delete_secret(text_ref)

    assert bytes(items[1].payload) == text.encode()
    token = auth.get_token(ks_session.Session())
    logged = caplog.text + ''.join(repr(r.args) for r in caplog.records)
    assert 'Read Barbican secret %s' % binary_ref in caplog.text  # it logs
    for secret in _forms(binary) + [text, token,
                                    realservices.user('owner')['password']]:
        secret = secret.decode('latin-1') if isinstance(secret, bytes) \
            else secret
        assert secret not in logged
    assert binary.decode() not in repr(items) + str(items)


def test_service_credentials_when_configured(conf, store, services):
    service = services['service']
    # what a config file does: keystoneauth registers a plugin's options
    # once it reads auth_type; an override needs them first
    conf.register_opts(ks_loading.get_auth_plugin_conf_options('password'),
                       group=barbican_conf.GROUP)
    for name, value in (('auth_type', 'password'),
                        ('auth_url', services['keystone']),
                        ('username', service['username']),
                        ('password', service['password']),
                        ('project_name', service['project']),
                        ('user_domain_id', 'default'),
                        ('project_domain_id', 'default')):
        conf.set_override(name, value, barbican_conf.GROUP)
    payload = random_bytes.token_bytes(40)
    theirs = store(payload, kind='service')
    tenant = store(kind='owner')
    source = key_source.BarbicanKeySource(conf)

    items = source.fetch([theirs])
    with pytest.raises(exception.KeyAccessDenied) as raised:
        source.fetch([tenant])

    assert bytes(items[0].payload) == payload
    assert raised.value.ref == tenant
    assert barbican_conf.GROUP in str(raised.value)


def test_endpoint_override_with_version_suffix(conf, store, services):
    ref = store()
    # no catalog entry in this region: only the override can find Barbican
    conf.set_override('region_name', 'Nowhere', barbican_conf.GROUP)
    source = key_source.BarbicanKeySource(conf)
    auth = realservices.auth('owner')
    with pytest.raises(exception.KeyManagerUnavailable) as raised:
        source.fetch([ref], auth=auth)
    assert ref in str(raised.value)
    assert 'endpoint_override' in str(raised.value)

    conf.set_override('endpoint_override', services['barbican'] + '/v1/',
                      barbican_conf.GROUP)
    items = key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)

    assert items[0].ref == ref
