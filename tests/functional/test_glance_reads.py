# SPDX-License-Identifier: Apache-2.0
"""VTPMFilter's image reads against the real Glance, as a user's token.

The reader (``vtpm_filters.glance_images``) sends one GET with nova's own
Glance configuration and session; Glance, behind its keystonemiddleware,
decides what the token may see. Held here: it gives what
``nova.image.glance.API().get`` gives for the properties the filter decides
on, one request per read, Glance's own refusal of another project's private
image, and no token in the logs.
"""

import logging
import uuid

import glanceclient
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


@pytest.fixture(scope='module')
def glance_url():
    url = realservices.env('GLANCE_URL')
    CONF.set_override('api_servers', [url], group='glance')
    CONF.set_override('num_retries', 0, group='glance')
    yield url
    CONF.clear_override('api_servers', group='glance')
    CONF.clear_override('num_retries', group='glance')


def context_of(kind):
    """A nova RequestContext as keystonemiddleware gives nova-api's."""
    session = realservices.session(kind)
    return nova_context.RequestContext(
        session.get_user_id(), session.get_project_id(),
        auth_token=session.get_token(), is_admin=False)


@pytest.fixture(scope='module')
def private_image(glance_url):
    """A private image of the owner's project with the vTPM properties."""
    client = glanceclient.Client('2', session=realservices.session('owner'),
                                 endpoint_override=glance_url)
    image = client.images.create(
        name='vtpm-reads-%s' % uuid.uuid4().hex[:8], visibility='private',
        disk_format='raw', container_format='bare', **PROPERTIES)
    yield image['id']
    client.images.delete(image['id'])


def test_the_owner_reads_what_nova_reads(private_image):
    owner = context_of('owner')
    record = glance_images.ImageReader()(owner, private_image)
    nova_properties = glance.API().get(owner, private_image)['properties']
    assert {k: record[k] for k in PROPERTIES} == PROPERTIES
    assert {k: nova_properties[k] for k in PROPERTIES} == PROPERTIES
    assert record['id'] == private_image
    assert record['visibility'] == 'private'


def test_another_project_gets_glances_refusal(private_image):
    with pytest.raises(exception.ImageReadFailed) as caught:
        glance_images.ImageReader()(context_of('other'), private_image)
    # Glance hides another project's private image: 404, as nova's read
    # gets it (ImageNotFound)
    assert 'HTTP 404: Not Found: No image found' in str(caught.value)
    assert private_image in str(caught.value)


def test_an_unknown_image_is_a_404(glance_url):
    missing = str(uuid.uuid4())
    with pytest.raises(exception.ImageReadFailed, match='HTTP 404'):
        glance_images.ImageReader()(context_of('owner'), missing)


def test_no_token_is_a_clear_failure(private_image):
    tokenless = nova_context.RequestContext('user', 'project',
                                            is_admin=False)
    with pytest.raises(exception.ImageReadFailed,
                       match='No valid authentication'):
        glance_images.ImageReader()(tokenless, private_image)


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
    return vtpm_filter.VTPMFilter(conf=conf)  # its own Glance reader


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
    assert ('VTPMFilter could not read image %s from Glance: HTTP 404'
            % private_image) in caplog.text
    for context in (owner, other):
        assert context.auth_token not in caplog.text
