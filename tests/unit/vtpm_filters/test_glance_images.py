# SPDX-License-Identifier: Apache-2.0
"""The filter's Glance reader over HTTP, against a local Glance stand-in.

``tools.glance_v2`` answers as Glance's v2 API; the reader, nova's Glance
session and configuration, keystoneauth and requests are the real ones.
What Glance lets a token see is held against the real Glance in
``tests/functional/test_glance_reads``.
"""

import datetime
import ipaddress
import logging
import socket
import ssl

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography import x509
from cryptography.x509.oid import NameOID
from keystoneauth1 import loading as ks_loading
import nova.conf
from nova import context as nova_context
from nova.image import glance
from nova import service_auth
import pytest

from tools import glance_v2
from vtpm_core import exception
from vtpm_filters import glance_images

CONF = nova.conf.CONF
TOKEN = 'gAAAAAB-a-user-token-never-logged'
IMAGE_ID = '7b4f8e38-58a1-4a63-9b2e-5d3f1f0c9a11'
RECORD = {'id': IMAGE_ID, 'status': 'active', 'visibility': 'private',
          'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}


@pytest.fixture
def images():
    """image id -> what the server answers for it."""
    return {IMAGE_ID: RECORD}


@pytest.fixture
def server(images):
    glance = glance_v2.GlanceV2(images.get).start()
    CONF.set_override('api_servers', [glance.url], group='glance')
    CONF.set_override('num_retries', 0, group='glance')
    yield glance
    glance.stop()
    CONF.clear_override('api_servers', group='glance')
    CONF.clear_override('num_retries', group='glance')


def read(image_id=IMAGE_ID, context=None):
    context = context or nova_context.RequestContext(
        'user', 'project', is_admin=False, auth_token=TOKEN)
    return glance_images.ImageReader()(context, image_id)


@pytest.fixture
def fresh_nova_session():
    """nova keeps one Glance session per process, loaded from [glance]
    once: a test that changes its options makes nova load it again."""
    service_auth.reset_globals()
    yield
    service_auth.reset_globals()


def test_one_get_gives_the_record_with_its_properties(server):
    assert read() == RECORD
    # the image itself, not glanceclient's schema first
    assert server.reads == 1


def test_glances_404_names_the_image(server):
    with pytest.raises(exception.ImageReadFailed) as caught:
        read('0c5e2a4b-1111-4a63-9b2e-5d3f1f0c9a11')
    assert str(caught.value) == (
        'VTPMFilter could not read image 0c5e2a4b-1111-4a63-9b2e-'
        '5d3f1f0c9a11 from Glance: HTTP 404: Not Found: No image found with '
        'ID 0c5e2a4b-1111-4a63-9b2e-5d3f1f0c9a11')


def test_an_answer_that_is_not_an_image_record_is_refused(server, images):
    images[IMAGE_ID] = ['not', 'a', 'record']
    with pytest.raises(exception.ImageReadFailed,
                       match='the answer is not a JSON object'):
        read()


def test_an_image_id_cannot_reach_another_path(server):
    # quoted into one path segment: not /v2/schemas/image, a JSON object
    with pytest.raises(exception.ImageReadFailed, match='HTTP 404'):
        read('../schemas/image')


def _unused_port_url():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        return 'http://127.0.0.1:%d' % s.getsockname()[1]


def test_glance_down_is_a_failure_that_names_the_server(caplog):
    caplog.set_level(logging.DEBUG)
    url = _unused_port_url()
    CONF.set_override('api_servers', [url], group='glance')
    CONF.set_override('num_retries', 0, group='glance')
    try:
        with pytest.raises(exception.ImageReadFailed) as caught:
            read()
    finally:
        CONF.clear_override('api_servers', group='glance')
        CONF.clear_override('num_retries', group='glance')
    assert url in str(caught.value)
    assert isinstance(caught.value, exception.VTPMError)
    assert TOKEN not in caplog.text


def test_no_endpoint_is_a_failure_that_says_where_to_set_one():
    # no [glance] api_servers, and a request whose catalog has no image
    # endpoint
    with pytest.raises(exception.ImageReadFailed,
                       match=r'no Glance endpoint: .*\[glance\] api_servers'):
        read()


def test_the_token_is_never_logged(server, caplog):
    caplog.set_level(logging.DEBUG)
    read()
    with pytest.raises(exception.ImageReadFailed):
        read('0c5e2a4b-1111-4a63-9b2e-5d3f1f0c9a11')
    assert TOKEN not in caplog.text


def test_the_request_carries_nova_s_headers(server, fresh_nova_session,
                                            caplog):
    """User token, nova's service token when it sends one, request id."""
    caplog.set_level(logging.DEBUG)
    service_token = 'gAAAAAB-the-service-token-never-logged'
    # nova loads [service_user] through keystoneauth; a static token plugin
    # gives a service token without a Keystone
    CONF.register_opts(ks_loading.get_auth_plugin_conf_options('admin_token'),
                       group='service_user')
    for name, value in (('send_service_user_token', True),
                        ('auth_type', 'admin_token'),
                        ('endpoint', 'http://keystone.invalid'),
                        ('token', service_token)):
        CONF.set_override(name, value, group='service_user')
    context = nova_context.RequestContext('user', 'project', is_admin=False,
                                          auth_token=TOKEN)
    try:
        assert read(context=context) == RECORD
    finally:
        for name in ('send_service_user_token', 'auth_type', 'endpoint',
                     'token'):
            CONF.clear_override(name, group='service_user')
    _target, headers = server.last_request
    assert headers['X-Auth-Token'] == TOKEN
    assert headers['X-Service-Token'] == service_token
    assert headers['X-OpenStack-Request-ID'] == context.global_id
    assert service_token not in caplog.text and TOKEN not in caplog.text


def test_a_failed_endpoint_is_retried_on_the_next(server, monkeypatch):
    # nova shuffles [glance] api_servers: kept in order, the dead one first
    monkeypatch.setattr(glance.random, 'shuffle', lambda servers: None)
    CONF.set_override('api_servers', [_unused_port_url(), server.url],
                      group='glance')
    CONF.set_override('num_retries', 1, group='glance')
    assert read() == RECORD
    assert server.reads == 1


def test_a_503_is_retried(server):
    answers = [glance_v2.Unavailable(), RECORD]

    def lookup(image_id):
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
    server.lookup = lookup
    CONF.set_override('num_retries', 1, group='glance')
    assert read() == RECORD
    assert answers == []


def test_a_503_after_the_last_attempt_is_the_failure(server):
    def lookup(image_id):
        raise glance_v2.Unavailable()
    server.lookup = lookup
    with pytest.raises(exception.ImageReadFailed, match='HTTP 503'):
        read()


def test_the_environment_s_proxy_is_used(server, monkeypatch):
    """As requests does: HTTP_PROXY, unless NO_PROXY names the host."""
    for name in ('no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('http_proxy', server.url)  # the stand-in as proxy
    glance_url = 'http://glance.invalid:9292'
    CONF.set_override('api_servers', [glance_url], group='glance')
    assert read() == RECORD
    target, _headers = server.last_request
    assert target == '%s/v2/images/%s' % (glance_url, IMAGE_ID)


def _tls_server(tmp_path, images):
    """The stand-in over HTTPS, with a certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'glance')])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address('127.0.0.1'))]),
                critical=False)
            .sign(key, hashes.SHA256()))
    cafile = tmp_path / 'glance-ca.pem'
    cafile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile = tmp_path / 'glance-key.pem'
    keyfile.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cafile, keyfile)
    return glance_v2.GlanceV2(images.get, ssl_context=context), cafile


@pytest.fixture
def tls_server(tmp_path, images, fresh_nova_session):
    glance, cafile = _tls_server(tmp_path, images)
    glance.start()
    CONF.set_override('api_servers', [glance.url], group='glance')
    CONF.set_override('num_retries', 0, group='glance')
    yield glance, cafile
    glance.stop()
    for name in ('api_servers', 'num_retries', 'cafile'):
        CONF.clear_override(name, group='glance')


def test_https_is_verified_with_glance_s_cafile(tls_server):
    _glance, cafile = tls_server
    CONF.set_override('cafile', str(cafile), group='glance')
    assert read() == RECORD


def test_https_with_an_unknown_certificate_is_refused(tls_server):
    glance, _cafile = tls_server
    with pytest.raises(exception.ImageReadFailed,
                       match='CERTIFICATE_VERIFY_FAILED'):
        read()
    assert glance.reads == 0
