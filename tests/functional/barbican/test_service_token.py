# SPDX-License-Identifier: Apache-2.0
"""Owner credentials plus nova's service token, against the real services.

nova sends other services the user's token and, with ``[service_user]
send_service_user_token = true``, a service token beside it
(``nova.service_auth.get_service_user_token_auth_plugin``); Barbican's
keystonemiddleware then accepts a user token that expired during a long
build. The owner token here is one Keystone issued that expired two minutes
ago; nova's service user is the ``nova`` identity (role ``service``).
"""

from keystoneauth1 import loading as ks_loading
from keystoneauth1 import service_token
from keystoneauth1 import session as ks_session
from keystonemiddleware.auth_token import _request as authtoken_request
from nova import conf as nova_conf
from nova import context as nova_context
from nova import service_auth
import pytest

from tests import realservices
from vtpm_core import exception
from vtpm_hyperv.barbican import key_source
from vtpm_hyperv.nova import compute

GROUP = 'service_user'


@pytest.fixture(autouse=True)
def nova_conf_parsed():
    # as nova-compute starts, less its config file (the overrides below);
    # reset afterwards, as oslo.config's own fixture leaves it
    nova_conf.CONF([], project='nova', default_config_files=[])
    yield
    nova_conf.CONF.reset()


@pytest.fixture
def service_user(services, nova_conf_parsed):
    """nova's [service_user] as an operator writes it (see the admin guide)."""
    conf = nova_conf.CONF
    # a config file registers these once it reads auth_type; overrides need
    # them first, and nova's global CONF must not keep them (auth_url is
    # required: the next parse of CONF would fail)
    plugin_opts = ks_loading.get_auth_plugin_conf_options('password')
    conf.register_opts(plugin_opts, group=GROUP)
    nova = services['nova']
    for name, value in {
            'send_service_user_token': True, 'auth_type': 'password',
            'auth_url': services['keystone'], 'username': nova['username'],
            'password': nova['password'], 'project_name': nova['project'],
            'user_domain_id': 'default',
            'project_domain_id': 'default'}.items():
        conf.set_override(name, value, GROUP)
    service_auth.reset_globals()
    yield
    conf.reset()
    conf.unregister_opts(plugin_opts, group=GROUP)
    service_auth.reset_globals()


def _context(kind, token):
    """A nova RequestContext as nova-api builds it for a user's request."""
    user = realservices.user(kind)
    access = realservices.auth(kind).get_access(ks_session.Session())
    # the catalog as keystonemiddleware hands it to nova-api (the v2 form
    # of X-Service-Catalog, which nova's context reads)
    catalog = authtoken_request._normalize_catalog(
        access.service_catalog.catalog)
    return nova_context.RequestContext(
        user_id=user['user_id'], project_id=user['project_id'],
        auth_token=token, service_catalog=catalog)


def _auth_for(context):
    # what VTPMCompute passes the backend when its caller chose nothing
    return compute.VTPMCompute(None)._auth_for(context)


def test_an_expired_owner_token_alone_fails_as_expired(
        conf, store, expired_owner_token):
    ref = store()
    auth = _auth_for(_context('owner', expired_owner_token))

    with pytest.raises(exception.KeyAuthenticationFailed) as raised:
        key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)

    assert not isinstance(raised.value, exception.KeyAccessDenied)
    assert raised.value.ref == ref
    assert 'project' not in str(raised.value)


def test_an_expired_owner_token_with_novas_service_token_reads_the_secret(
        conf, store, expired_owner_token, service_user):
    payload = b'\x00owner key material\xff'
    ref = store(payload)
    auth = _auth_for(_context('owner', expired_owner_token))

    items = key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)

    assert isinstance(auth, service_token.ServiceTokenAuthWrapper)
    assert bytes(items[0].payload) == payload


def test_a_service_token_opens_no_other_projects_secret(
        conf, store, service_user):
    theirs = store(kind='owner')
    other = realservices.auth('other')
    auth = _auth_for(_context('other', other.get_token(
        ks_session.Session())))

    with pytest.raises(exception.KeyAccessDenied) as raised:
        key_source.BarbicanKeySource(conf).fetch([theirs], auth=auth)

    assert type(raised.value) is exception.KeyAccessDenied
    assert raised.value.ref == theirs


def test_without_service_user_the_owner_token_goes_alone(conf, store):
    token = realservices.auth('owner').get_token(ks_session.Session())
    context = _context('owner', token)
    ref = store()

    auth = _auth_for(context)
    items = key_source.BarbicanKeySource(conf).fetch([ref], auth=auth)

    assert not isinstance(auth, service_token.ServiceTokenAuthWrapper)
    assert items[0].ref == ref
