# SPDX-License-Identifier: Apache-2.0
"""An image's vTPM properties through nova's image API, and its failures.

nova's ``glance.API`` is the collaborator: a stand-in answers as its
``get`` does (custom properties nested under ``'properties'``) or raises
what it raises; one test runs nova's own API against an endpoint where
nothing listens. What nova reads from a real Glance is held in
``tests/functional/test_glance_reads``.
"""

import socket

import glanceclient.exc
from keystoneauth1 import exceptions as ksa_exc
import nova.conf
from nova import context as nova_context
from nova import exception as nova_exception
from nova.image import glance
import pytest

from vtpm_core import exception
from vtpm_filters import glance_images

CONF = nova.conf.CONF
IMAGE_ID = '7b4f8e38-58a1-4a63-9b2e-5d3f1f0c9a11'
KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
CONTEXT = nova_context.RequestContext('user', 'project', is_admin=False)
TOKEN = 'gAAAAAB-a-user-token-never-shown'


class ImageAPI:
    """``nova.image.glance.API``'s ``get``: ``answer``, or it raised."""

    def __init__(self, answer):
        self.answer = answer

    def get(self, context, image_id):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def nova_image(**properties):
    """An image as nova's API gives it: core fields at the top, custom
    properties (every hw_* and os_* one) nested."""
    return {'id': IMAGE_ID, 'status': 'active', 'disk_format': 'raw',
            'min_ram': 0, 'properties': properties}


def read(answer):
    return glance_images.read_properties(ImageAPI(answer), CONTEXT, IMAGE_ID)


def test_the_vtpm_properties_come_flat():
    image = nova_image(os_vtpm='required', os_vtpm_keys=KEY,
                       os_shielded_vm='required',
                       hw_machine_type='hyperv-gen2', os_distro='windows',
                       hw_firmware_type='uefi')
    assert read(image) == {
        'os_vtpm': 'required', 'os_vtpm_keys': KEY,
        'os_shielded_vm': 'required', 'hw_machine_type': 'hyperv-gen2'}


def test_only_the_nested_properties_are_read():
    # a core field of the same name is not an image property
    image = dict(nova_image(hw_machine_type='hyperv-gen2'),
                 os_vtpm='required')
    assert read(image) == {'hw_machine_type': 'hyperv-gen2'}
    del image['properties']
    assert read(image) == {}


@pytest.mark.parametrize('error,words', [
    (nova_exception.ImageNotFound(image_id=IMAGE_ID),
     'ImageNotFound: Image %s could not be found.' % IMAGE_ID),
    (nova_exception.ImageNotAuthorized(image_id=IMAGE_ID),
     'ImageNotAuthorized: Not authorized for image %s.' % IMAGE_ID),
    (nova_exception.GlanceConnectionFailed(
        server='https://glance.example.org:9292', reason='timed out'),
     'GlanceConnectionFailed: Connection to glance host '
     'https://glance.example.org:9292 failed: timed out'),
    # an answer nova passes on untranslated
    (glanceclient.exc.HTTPInternalServerError('boom'),
     'HTTPInternalServerError: HTTP boom'),
    # no image endpoint in the request's catalog
    (ksa_exc.EndpointNotFound('Could not find requested endpoint'),
     'EndpointNotFound: Could not find requested endpoint'),
], ids=['not-found', 'not-authorized', 'connection', 'http-500',
        'no-endpoint'])
def test_nova_s_error_is_a_read_failure_that_names_image_and_reason(
        error, words):
    with pytest.raises(exception.ImageReadFailed) as caught:
        read(error)
    assert str(caught.value) == (
        'VTPMFilter could not read image %s from Glance: %s'
        % (IMAGE_ID, words))
    assert caught.value.__cause__ is error


def test_a_bug_is_not_taken_for_a_failed_read():
    with pytest.raises(TypeError):
        read(TypeError('a bug'))


@pytest.fixture
def glance_down():
    """[glance] api_servers naming a port where nothing listens."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        url = 'http://127.0.0.1:%d' % s.getsockname()[1]
    CONF.set_override('api_servers', [url], group='glance')
    CONF.set_override('num_retries', 0, group='glance')
    yield url
    CONF.clear_override('api_servers', group='glance')
    CONF.clear_override('num_retries', group='glance')


def test_nova_s_own_read_of_a_glance_that_is_down(glance_down):
    context = nova_context.RequestContext('user', 'project', is_admin=False,
                                          auth_token=TOKEN)
    with pytest.raises(exception.ImageReadFailed) as caught:
        glance_images.read_properties(glance.API(), context, IMAGE_ID)
    assert ('VTPMFilter could not read image %s from Glance: '
            'GlanceConnectionFailed: Connection to glance host %s failed'
            % (IMAGE_ID, glance_down)) in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_nova_s_own_read_without_a_token(glance_down):
    # what nova's client says of a request that carries no token
    with pytest.raises(exception.ImageReadFailed,
                       match='AuthorizationFailure: No valid authentication'):
        glance_images.read_properties(glance.API(), CONTEXT, IMAGE_ID)
