# SPDX-License-Identifier: Apache-2.0
"""One image read from Glance for the scheduler: a single GET.

``nova.image.glance.API().get`` sends two requests per read: python-
glanceclient's image controller first fetches ``/v2/schemas/image`` to build
its model (a fresh client per call, so on every call), then the image, and
nova translates the record field by field. The filter needs four custom
properties, which Glance's v2 API returns at the top of the image record,
so this module sends ``GET /v2/images/{image_id}`` alone.

It is sent as nova sends its own Glance calls, from nova's configuration:
the endpoints nova picks (``[glance] api_servers``, else the catalog through
the ``[glance]`` keystoneauth adapter options), nova's auth plugin for the
request (the user's token, and a service token when ``[service_user]
send_service_user_token`` is set), the global request id, the ``[glance]``
TLS options and timeout, the proxies and CA bundle that requests takes from
the environment, and ``[glance] num_retries``. What differs is the cost: a
first read of an image is on a boot's path, and the keystoneauth session's
and requests session's per-call work (the environment's proxies, cookie and
hook merging, request logging) made the read about five times a raw GET's
(``benchmarks/bench_filter.py``; now under three). So the TLS, proxy and
CA settings are resolved once per endpoint, through keystoneauth and
requests themselves, and each read goes straight to requests' transport
adapter, the connection pool the session would use. Glance decides what
the user may see, as it does for nova's reads.

Image record: https://docs.openstack.org/api-ref/image/v2/#show-image
"""

from __future__ import annotations

import itertools
import logging
import threading
import urllib.parse

import glanceclient.exc
from keystoneauth1 import exceptions as ksa_exceptions
import nova.conf
from nova.image import glance
from nova import service_auth
import requests

from vtpm_core import exception

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)
_USER_AGENT = 'hyperv-vtpm-VTPMFilter'
# nova's GlanceClientWrapper retries these answers on the next endpoint
_RETRIED_STATUS = frozenset([503])


class ImageReader:
    """``reader(context, image_id)``: the image's v2 record, a dict."""

    def __init__(self):
        # Configuration is read on first use, so that building the filter
        # reads none.
        self._lock = threading.Lock()
        self._session = None    # nova's keystoneauth Session for Glance
        # nova's own cycle over the Glance endpoints, shared under the lock
        self._endpoints = None
        self._routes = {}       # endpoint -> (transport adapter, settings)

    def __call__(self, context, image_id):
        """:raises vtpm_core.exception.ImageReadFailed: Glance answered an
            error, could not be reached (after ``[glance] num_retries``),
            or answered something that is not an image record.
        """
        session = self._configure(context, image_id)
        headers = self._headers(context, session, image_id)
        path = '/v2/images/%s' % urllib.parse.quote(image_id, safe='')
        attempts = 1 + CONF.glance.num_retries
        for attempt in range(1, attempts + 1):
            with self._lock:
                endpoint = next(self._endpoints)
            try:
                response = self._send(session, endpoint, path, headers)
            except requests.RequestException as e:
                if attempt == attempts:
                    raise exception.ImageReadFailed(
                        image=image_id,
                        reason='no answer from Glance in %d attempt(s), '
                               'the last at %s: %s' % (attempts, endpoint, e))
                # the next endpoint at once: nova's own calls sleep a
                # second first, which a boot's scheduling should not wait
                continue
            if response.status_code in _RETRIED_STATUS and attempt < attempts:
                continue
            return _record(response, image_id)

    def _configure(self, context, image_id):
        """nova's Glance session and endpoints, looked up once."""
        with self._lock:
            if self._endpoints is None:
                try:
                    endpoints = glance.get_api_servers(context)
                    first = next(endpoints)
                except ksa_exceptions.ClientException as e:
                    first, reason = None, str(e)
                else:
                    reason = 'the catalog has no image endpoint'
                if not first:
                    raise exception.ImageReadFailed(
                        image=image_id, reason='no Glance endpoint: %s; set '
                        '[glance] api_servers or the [glance] keystoneauth '
                        'adapter options' % reason)
                # the one nova's own Glance calls use: [glance] TLS
                # options and timeout, and its connection pool
                self._session = service_auth.get_service_auth_session(
                    nova.conf.glance.glance_group.name)
                self._endpoints = itertools.chain([first], endpoints)
            return self._session

    @staticmethod
    def _headers(context, session, image_id):
        # nova's plugin for a call on the user's behalf: X-Auth-Token, and
        # X-Service-Token when nova sends one
        auth = service_auth.get_service_user_token_auth_plugin(context)
        try:
            auth_headers = auth.get_headers(session)
        except ksa_exceptions.ClientException as e:  # the service token
            raise exception.ImageReadFailed(image=image_id, reason=str(e))
        if not auth_headers:
            raise exception.ImageReadFailed(
                image=image_id,
                reason='No valid authentication is available: the request '
                       'carries no token')
        # the requests session's defaults (Accept: */*, so that Glance's
        # errors come as the HTML page glanceclient reads), as it would
        # merge them
        headers = dict(session.session.headers, **auth_headers)
        headers['User-Agent'] = _USER_AGENT
        if context.global_id:
            headers['X-OpenStack-Request-ID'] = context.global_id
        return headers

    def _send(self, session, endpoint, path, headers):
        adapter, settings = self._route(session, endpoint)
        request = requests.Request('GET', endpoint.rstrip('/') + path,
                                   headers=headers).prepare()
        response = adapter.send(request, timeout=session.timeout, **settings)
        LOG.debug('VTPMFilter read %(url)s: HTTP %(status)s',
                  {'url': request.url, 'status': response.status_code})
        return response

    def _route(self, session, endpoint):
        """The transport adapter and send settings for an endpoint.

        Resolved as the requests session resolves them on every call: the
        [glance] TLS options, then the environment's proxies and CA bundle
        (requests' ``merge_environment_settings``).
        """
        route = self._routes.get(endpoint)
        if route is None:
            http = session.session
            route = self._routes.setdefault(endpoint, (
                http.get_adapter(endpoint),
                http.merge_environment_settings(
                    endpoint, {}, False, session.verify, session.cert)))
        return route


def _record(response, image_id):
    """The image record of a Glance answer, or ImageReadFailed."""
    if response.status_code != 200:
        raise exception.ImageReadFailed(
            image=image_id, reason=_http_reason(response))
    try:
        record = response.json()
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise exception.ImageReadFailed(
            image=image_id, reason='the answer is not a JSON object')
    return record


def _http_reason(response):
    """'HTTP 404: Not Found: No image found with ID ...', as glanceclient
    reads Glance's error pages; its text repeats the status code first.
    """
    error = glanceclient.exc.from_response(response, response.content)
    details = (getattr(error, 'details', None) or '').strip()
    details = details.removeprefix('%s ' % response.status_code)
    return 'HTTP %s: %s' % (response.status_code, details) if details else (
        'HTTP %s' % response.status_code)
