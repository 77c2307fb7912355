# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter's image reads against the real Glance, as a user's token.

The filter reads through nova's own ``nova.image.glance.API().get``, with
nova configured as the install guide says: no ``[glance] api_servers``,
so nova finds Glance in the request's service catalog, and a request
context as keystonemiddleware gives nova-api's (the user's token and
catalog). Glance, behind its keystonemiddleware, decides what the token may
see. Held here: the flat vTPM properties of a private image for its owner,
Glance's own refusal of another project as a read failure that names it,
and no token in the logs.
"""

import logging
import uuid

import glanceclient
from keystoneauth1 import session as ks_session
from keystonemiddleware.auth_token import _request as authtoken_request
import nova.conf
from nova import context as nova_context
from nova.image import glance
from oslo_config import cfg
from oslo_utils import timeutils
import pytest

from tests import realservices
from tests.unit.vtpm_filters import test_vtpm_filter as t
from vtpm_core import exception
from vtpm_filters import conf as vtpm_conf
from vtpm_filters import glance_images
from vtpm_filters import vtpm_filter

pytestmark = pytest.mark.usefixtures('real_services')
CONF = nova.conf.CONF
PROPERTIES = {'hw_machine_type': 'hyperv-gen2', 'os_vtpm': 'required',
              'os_vtpm_keys': t.KEY}


@pytest.fixture(scope='module', autouse=True)
def nova_as_the_guide_configures_it():
    # the guide sets no [glance] option but cafile: nova reads the catalog
    assert not CONF.glance.api_servers


def context_of(kind):
    """A nova RequestContext as keystonemiddleware gives nova-api's: the
    user's token and the v2 form of X-Service-Catalog, which nova reads."""
    access = realservices.auth(kind).get_access(ks_session.Session())
    catalog = authtoken_request._normalize_catalog(
        access.service_catalog.catalog)
    return nova_context.RequestContext(
        access.user_id, access.project_id, auth_token=access.auth_token,
        service_catalog=catalog, is_admin=False)


@pytest.fixture(scope='module')
def private_image():
    """A private image of the owner's project with the vTPM properties."""
    client = glanceclient.Client(
        '2', session=realservices.session('owner'),
        endpoint_override=realservices.env('GLANCE_URL'))
    image = client.images.create(
        name='vtpm-reads-%s' % uuid.uuid4().hex[:8], visibility='private',
        disk_format='raw', container_format='bare', os_distro='windows',
        **PROPERTIES)
    yield image['id']
    client.images.delete(image['id'])


def read(context, image_id):
    return glance_images.read_properties(glance.API(), context, image_id)


def test_the_owner_reads_the_vtpm_properties(private_image):
    assert read(context_of('owner'), private_image) == PROPERTIES


def test_another_project_gets_glances_refusal(private_image):
    with pytest.raises(exception.ImageReadFailed) as caught:
        read(context_of('other'), private_image)
    # Glance hides another project's private image: a 404, ImageNotFound
    # to nova
    assert str(caught.value) == (
        'VTPMFilter could not read image %s from Glance: ImageNotFound: '
        'Image %s could not be found.' % (private_image, private_image))


def test_an_unknown_image_is_not_found():
    missing = str(uuid.uuid4())
    with pytest.raises(exception.ImageReadFailed, match='ImageNotFound'):
        read(context_of('owner'), missing)


def test_no_token_is_a_clear_failure(private_image):
    owner = context_of('owner')
    owner.auth_token = None
    with pytest.raises(exception.ImageReadFailed,
                       match='No valid authentication'):
        read(owner, private_image)


def _hosts():
    now = timeutils.utcnow(with_timezone=True)
    return [t.host('attested', t.caps(measured_at=now)),
            t.host('unguarded', t.caps(measured_at=now, guarded=False))]


def _spec(context, image_id):
    spec = t.spec(image_id=image_id)
    spec._context = context
    return spec


def _filter():
    conf = cfg.ConfigOpts()
    vtpm_conf.register_opts(conf)
    return vtpm_filter.VTPMFilter(conf=conf)  # nova's image API


def test_the_filter_decides_on_the_owners_image(private_image, caplog):
    caplog.set_level(logging.DEBUG)
    owner, other = context_of('owner'), context_of('other')
    hosts = _hosts()
    filt = _filter()
    # the image names keys: only an attested host can unwrap them
    for _ in range(2):
        assert t.names(filt.filter_all(hosts, _spec(owner, private_image))) \
            == ['attested']
    assert len(filt._images) == 1
    # another project's scheduler request for it: Glance refuses, the
    # filter says so and decides on the flavor alone (nova-api and the
    # compute side refuse the build itself)
    assert _filter().filter_all(hosts, _spec(other, private_image)) == hosts
    assert ('VTPMFilter could not read image %s from Glance: ImageNotFound'
            % private_image) in caplog.text
    for context in (owner, other):
        assert context.auth_token not in caplog.text
