# SPDX-License-Identifier: Apache-2.0
"""An image's vTPM properties, read through nova's own image API.

nova drops the image properties it does not know from the request spec,
so the filter reads the image as nova-api and the computes do:
``nova.image.glance.API().get`` with the request's context. nova's
``[glance]`` options (endpoints, TLS, timeout, ``num_retries``) and its
service token apply, and in nova's functional tests its ``GlanceFixture``
answers. This module turns nova's answer into what ``build_request``
takes, and nova's errors into ``ImageReadFailed``.
"""

from glanceclient import exc as glance_exc
from keystoneauth1 import exceptions as ksa_exc
from nova import exception as nova_exception

from vtpm_core import constants
from vtpm_core import exception

# What nova's image API raises when a read fails: its own translations
# (ImageNotFound, ImageNotAuthorized, GlanceConnectionFailed once [glance]
# num_retries are spent, ...), the errors it passes on untranslated
# (python-glanceclient's for other HTTP answers, keystoneauth's from
# finding Glance's endpoint or the service token). Anything else is a bug
# and is not hidden.
_READ_FAILURES = (nova_exception.NovaException, glance_exc.ClientException,
                  glance_exc.BaseException, ksa_exc.ClientException)


def read_properties(image_api, context, image_id):
    """The image's ``constants.IMAGE_KEYS`` that it sets, as a flat dict.

    nova nests an image's custom properties under ``'properties'``;
    ``build_request`` takes them flat, as Glance's v2 API shows them.

    :param image_api: ``nova.image.glance.API()``, or what has its ``get``.
    :raises vtpm_core.exception.ImageReadFailed: nova could not read the
        image; the reason names nova's error and its text.
    """
    try:
        image = image_api.get(context, image_id)
    except _READ_FAILURES as e:
        raise exception.ImageReadFailed(
            image=image_id, reason='%s: %s' % (type(e).__name__, e)) from e
    properties = image.get('properties') or {}
    return {k: properties[k] for k in constants.IMAGE_KEYS
            if k in properties}
