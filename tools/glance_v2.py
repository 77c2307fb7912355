# SPDX-License-Identifier: Apache-2.0
"""A local HTTP server that answers image reads as Glance's v2 API does.

For the benchmarks, which time nova's own image read
(``nova.image.glance.API().get``, as ``VTPMFilter`` reads an image) over
HTTP without a Glance: nova's functional tests replace Glance by nova's
``GlanceFixture`` inside the process, which sends no request at all.
``GET /v2/schemas/image`` answers python-glanceclient's copy of Glance's
schema, which nova's client fetches before each image; ``GET
/v2/images/ID`` answers the record ``lookup`` gives, or, for an unknown
image, 404 with the HTML error page Glance sends. Records are as
https://docs.openstack.org/api-ref/image/v2/#show-image shows them (see
``image_record``). The server checks no token.
"""

import http.server
import json
import socket
import threading
import urllib.parse

from glanceclient.v2 import image_schema


class GlanceV2(http.server.ThreadingHTTPServer):
    """``GlanceV2(lookup)``: ``lookup(image_id)`` -> the v2 record or None.

    ``start()`` serves in a daemon thread; ``stop()`` ends it and closes
    the socket.
    """

    daemon_threads = True

    def __init__(self, lookup):
        self.lookup = lookup
        super().__init__(('127.0.0.1', 0), _Handler)

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]

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
        path = urllib.parse.urlsplit(self.path).path
        if path == '/v2/schemas/image':
            return self._answer(200, image_schema._BASE_SCHEMA)
        prefix, _, image_id = path.rpartition('/')
        record = (self.server.lookup(image_id)
                  if prefix == '/v2/images' else None)
        if record is None:
            # Glance's 404 is webob's HTML error page
            return self._send(404, 'text/html; charset=UTF-8',
                              _NOT_FOUND % image_id)
        return self._answer(200, record)

    def _answer(self, status, body):
        self._send(status, 'application/json', json.dumps(body))

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


def image_record(image_id, properties):
    """An active public image as Glance's v2 API shows it: the custom
    ``properties`` beside the core fields."""
    return dict({
        'id': image_id, 'name': 'bench-%s' % image_id[-4:],
        'status': 'active', 'visibility': 'public', 'protected': False,
        'container_format': 'bare', 'disk_format': 'raw', 'size': 1024,
        'min_ram': 0, 'min_disk': 0, 'owner': 'p', 'tags': [],
        'created_at': '2026-11-26T12:00:00Z',
        'updated_at': '2026-11-26T12:00:00Z',
        'self': '/v2/images/%s' % image_id,
        'file': '/v2/images/%s/file' % image_id,
        'schema': '/v2/schemas/image'}, **properties)
