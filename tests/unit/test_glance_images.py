# SPDX-License-Identifier: Apache-2.0
"""The filter's Glance reader over HTTP, against a local Glance stand-in.

``tools.glance_v2`` answers as Glance's v2 API; the reader, nova's Glance
client and its HTTP stack are the real ones. What Glance lets a token see
is held against the real Glance in ``tests/functional/test_glance_reads``.
"""

import logging
import socket

import nova.conf
from nova import context as nova_context
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


def read(image_id=IMAGE_ID):
    context = nova_context.RequestContext('user', 'project', is_admin=False,
                                          auth_token=TOKEN)
    return glance_images.ImageReader()(context, image_id)


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


def test_glance_down_is_a_failure_that_names_the_server(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        url = 'http://127.0.0.1:%d' % s.getsockname()[1]
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


def test_the_token_is_never_logged(server, caplog):
    caplog.set_level(logging.DEBUG)
    read()
    with pytest.raises(exception.ImageReadFailed):
        read('0c5e2a4b-1111-4a63-9b2e-5d3f1f0c9a11')
    assert TOKEN not in caplog.text
