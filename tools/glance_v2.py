# SPDX-License-Identifier: Apache-2.0
"""A local HTTP server that answers image reads as Glance's v2 API does.

nova's functional tests replace Glance by nova's ``GlanceFixture``, which
stands in for ``nova.image.glance.API`` inside the process. VTPMFilter
reads an image over HTTP (one ``GET /v2/images/ID`` with nova's Glance
configuration and session), so the in-process cloud and the benchmarks run
this server in front of the images they hold: the filter's reader and its
HTTP stack then run as they do against Glance. ``GET
/v2/schemas/image`` answers glanceclient's copy of Glance's schema, which
``nova.image.glance.API`` fetches before each image.

Answers as https://docs.openstack.org/api-ref/image/v2/#show-image: the
image's core fields and its custom properties side by side at the top of
the record; for an unknown image, 404 with the HTML error page Glance
sends (held against the real one in ``tests/functional/
test_glance_reads.py``, which also shows who may read what: this server
checks no token); 503 while ``lookup`` raises ``Unavailable``, as a Glance
behind a load balancer with no backend left.
"""

import datetime
import http.server
import json
import socket
import threading
import urllib.parse

from glanceclient.v2 import image_schema


class Unavailable(Exception):
    """Raised by a ``lookup``: the server answers 503 for that read."""


class GlanceV2(http.server.ThreadingHTTPServer):
    """``GlanceV2(lookup)``: ``lookup(image_id)`` -> the v2 record or None.

    ``reads`` counts the images it answered; ``last_request`` is the
    request target and headers of the last request (an absolute URL when
    the request came to it as to a proxy). With ``ssl_context`` it answers
    HTTPS. ``start()`` serves in a daemon thread; ``stop()`` ends it and
    closes the socket.
    """

    daemon_threads = True

    def __init__(self, lookup, ssl_context=None):
        self.lookup = lookup
        self.reads = 0
        self.last_request = None
        self._count = threading.Lock()
        super().__init__(('127.0.0.1', 0), _Handler)
        self._scheme = 'http'
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket,
                                                  server_side=True)
            self._scheme = 'https'

    @property
    def url(self):
        return '%s://127.0.0.1:%d' % (self._scheme, self.server_address[1])

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True,
                         name='glance-v2').start()
        return self

    def stop(self):
        self.shutdown()
        self.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def setup(self):
        super().setup()
        # headers and body go out in two writes: without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to each answer
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802 - http.server's name
        self.server.last_request = (self.path, dict(self.headers))
        # a proxy is sent the absolute URL
        path = urllib.parse.urlsplit(self.path).path
        if path == '/v2/schemas/image':
            return self._answer(200, image_schema._BASE_SCHEMA)
        prefix, _, image_id = path.rpartition('/')
        try:
            record = (self.server.lookup(image_id)
                      if prefix == '/v2/images' else None)
        except Unavailable:
            return self._send(503, 'text/plain', 'Service Unavailable')
        if record is None:
            return self._not_found(image_id)
        with self.server._count:
            self.server.reads += 1
        return self._answer(200, record)

    def _answer(self, status, body):
        self._send(status, 'application/json', json.dumps(body))

    def _not_found(self, image_id):
        # Glance's 404 is webob's HTML error page
        self._send(404, 'text/html; charset=UTF-8', _NOT_FOUND % image_id)

    def _send(self, status, content_type, text):
        data = text.encode()
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


_NOT_FOUND = ('<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n'
              ' <body>\n  <h1>404 Not Found</h1>\n  No image found with ID '
              '%s<br /><br />\n\n\n\n </body>\n</html>')


def v2_record(image):
    """Glance's v2 record of an image as ``nova.image.glance`` gives it.

    nova's form nests the custom properties under ``properties`` and holds
    times as datetimes; Glance's v2 API sets the properties beside the
    core fields and writes times in ISO 8601.
    """
    record = {}
    for name, value in image.items():
        if isinstance(value, datetime.datetime):
            value = value.strftime('%Y-%m-%dT%H:%M:%SZ')
        if name != 'properties':
            record[name] = value
    record.update(image.get('properties') or {})
    return record


def from_fixture(glance_fixture):
    """A ``lookup`` for ``GlanceV2``: the images of nova's GlanceFixture."""
    def lookup(image_id):
        image = glance_fixture.images.get(image_id)
        return v2_record(image) if image is not None else None
    return lookup


def serve_fixture(test_case, glance_fixture):
    """Serve nova's GlanceFixture's images for a nova test case.

    Started for the test and stopped after it; nova.conf's ``[glance]
    api_servers`` names it. Returns the server.
    """
    server = GlanceV2(from_fixture(glance_fixture)).start()
    test_case.addCleanup(server.stop)
    test_case.flags(api_servers=[server.url], group='glance')
    return server
