# SPDX-License-Identifier: Apache-2.0
"""One image read from Glance for the scheduler: a single GET.

``nova.image.glance.API().get`` sends two requests per read: python-
glanceclient's image controller first fetches ``/v2/schemas/image`` to build
its model (a fresh client per call, so on every call), then the image, and
nova translates the record field by field. The filter needs four custom
properties, which Glance's v2 API returns at the top of the image record,
so this module sends ``GET /v2/images/{image_id}`` alone, through nova's own
``GlanceClientWrapper``: the same ``[glance]`` endpoints, TLS options,
``num_retries``, user token (and service token when ``[service_user]``
sends one) and global request id as every other Glance call nova makes.
Glance decides what the user may see, as it does for nova's reads.

Image record: https://docs.openstack.org/api-ref/image/v2/#show-image
"""

from __future__ import annotations

import urllib.parse

import glanceclient.exc
from keystoneauth1 import exceptions as ksa_exceptions
from nova import exception as nova_exception
from nova.image import glance

from vtpm_core import exception


class ImageReader:
    """``reader(context, image_id)``: the image's v2 record, a dict."""

    def __init__(self):
        # nova's wrapper picks an endpoint per call and keeps no client
        # between calls (the token is the caller's); made on first use, so
        # that building the filter reads no configuration.
        self._wrapper = None

    def __call__(self, context, image_id):
        """:raises vtpm_core.exception.ImageReadFailed: Glance answered an
            error, could not be reached (after ``[glance] num_retries``),
            or answered something that is not an image record.
        """
        if self._wrapper is None:
            self._wrapper = glance.GlanceClientWrapper()
        path = '/v2/images/%s' % urllib.parse.quote(image_id, safe='')
        try:
            _response, record = self._wrapper.call(
                context, 2, 'get', controller='http_client', args=(path,))
        except glanceclient.exc.HTTPException as e:
            raise exception.ImageReadFailed(
                image=image_id, reason=_http_reason(e))
        except (nova_exception.NovaException,  # GlanceConnectionFailed
                ksa_exceptions.ClientException) as e:
            raise exception.ImageReadFailed(image=image_id, reason=str(e))
        if not isinstance(record, dict):
            raise exception.ImageReadFailed(
                image=image_id, reason='the answer is not a JSON object')
        return record


def _http_reason(error):
    """'HTTP 404: Not Found: No image found with ID ...' from glanceclient's.

    glanceclient keeps the text of Glance's error page in ``details``,
    which repeats the status code first.
    """
    details = (getattr(error, 'details', None) or '').strip()
    details = details.removeprefix('%s ' % error.code)
    return 'HTTP %s: %s' % (error.code, details) if details else (
        'HTTP %s' % error.code)
