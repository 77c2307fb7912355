# SPDX-License-Identifier: Apache-2.0
"""A local Barbican stand-in that misbehaves on demand.

The real Barbican cannot be made to answer 503, drop a connection, send a
byte a second, redirect elsewhere or send 64 MB; this can. It answers what
python-barbicanclient asks: ``GET /`` (the version document, as Barbican
23 sends it: HTTP 300) and ``GET /v1/secrets/{id}/payload``, whose answer a
test scripts per secret (``server.script[id] = [action, ...]``, one action
per request, the last one repeated):

- an HTTP status: 200 sends ``payload(id)``, others a Barbican error body;
- ``'drop'``: close the connection without an answer;
- ``Drip(where, interval)``: send the status line and headers (``where =
  'headers'``) or the body (``'body'``) one byte every ``interval`` s;
- ``Redirect(url, status)``: answer a redirect to ``url``;
- ``Huge(size, length=True)``: a body of ``size`` bytes, with or without a
  ``Content-Length``;
- ``Text()``: the payload as ``text/plain``.

It records every request (``hits``: path and headers) and, per secret, the
body bytes it managed to send (``sent``) and whether the client cut the
connection (``cut``, an Event).
"""

import collections
import dataclasses
import http.server
import json
import socket
import sys
import threading
import time

# what Barbican 23 answers to GET / with OpenStack-API-Version 1.1
VERSIONS = {'versions': [{
    'id': 'v1', 'status': 'CURRENT', 'min_version': '1.0',
    'max_version': '1.2', 'links': [{'rel': 'self', 'href': '%s/v1/'}]}]}


@dataclasses.dataclass
class Drip:
    where: str = 'body'
    interval: float = 0.5
    size: int = 60


@dataclasses.dataclass
class Redirect:
    url: str
    status: int = 302


@dataclasses.dataclass
class Huge:
    size: int
    length: bool = True


@dataclasses.dataclass
class Text:
    pass


def payload(secret_id):
    return b'\x00key-of-' + secret_id.encode() + b'\xff'


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(('127.0.0.1', 0), _Handler)
        self.script = {}        # secret id -> list of actions, one per hit
        self.delays = {}        # secret id -> seconds before answering
        self.hits = []          # (path, headers) of every request
        self.sent = collections.Counter()   # secret id -> body bytes sent
        self.cut = collections.defaultdict(threading.Event)
        self.lock = threading.Lock()

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server_address[1]

    def handle_error(self, request, client_address):
        # A client that timed out or dropped the connection on purpose (the
        # tests do) makes the answer fail with a broken pipe: expected.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def count(self, ref):
        return sum(ref in path for path, _ in self.hits)

    def payload_hits(self):
        return [path for path, _ in self.hits if path.endswith('/payload')]

    def discovery_hits(self):
        return [path for path, _ in self.hits if path == '/']


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'   # keep-alive, as Barbican's gunicorn
    disable_nagle_algorithm = True   # no 40 ms delayed-ACK stalls

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits.append((self.path, dict(self.headers)))
        if self.path == '/':
            body = json.dumps(VERSIONS).replace('%s', server.url).encode()
            return self._answer(300, body, 'application/json')
        secret_id = self.path.rstrip('/').split('/')[-2 if self.path.endswith(
            '/payload') else -1]
        with server.lock:
            actions = server.script.get(secret_id, [])
            action = actions.pop(0) if len(actions) > 1 else (
                actions[0] if actions else 200)
        time.sleep(server.delays.get(secret_id, 0))
        try:
            self._act(action, secret_id)
        except ConnectionError:
            server.cut[secret_id].set()
            self.close_connection = True

    def _act(self, action, secret_id):
        if action == 'drop':
            # close without an answer: a connection error for the client
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif isinstance(action, Drip):
            self._drip(action, secret_id)
        elif isinstance(action, Redirect):
            self.send_response(action.status)
            self.send_header('Location', action.url)
            self.send_header('Content-Length', '0')
            self.end_headers()
        elif isinstance(action, Huge):
            self._huge(action, secret_id)
        elif isinstance(action, Text):
            self._answer(200, payload(secret_id), 'text/plain')
        elif action == 200:
            self._answer(200, payload(secret_id), 'application/octet-stream')
        else:
            self._answer(action, b'{"code": %d, "title": "stub", '
                         b'"description": "stub says %d"}' % (action, action),
                         'application/json')

    def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, drip, secret_id):
        body = b'x' * drip.size
        head = (b'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream'
                b'\r\nContent-Length: %d\r\n\r\n' % len(body))
        if drip.where == 'body':
            self.wfile.write(head)
            slow = body
        else:
            slow = head + body
        for i in range(len(slow)):
            self.wfile.write(slow[i:i + 1])
            self.wfile.flush()
            self.server.sent[secret_id] += 1
            time.sleep(drip.interval)

    def _huge(self, huge, secret_id):
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        if huge.length:
            self.send_header('Content-Length', str(huge.size))
        else:
            # the body ends when the connection does
            self.send_header('Connection', 'close')
            self.close_connection = True
        self.end_headers()
        chunk = b'\x5a' * (64 * 1024)
        left = huge.size
        while left > 0:
            part = chunk[:left]
            self.wfile.write(part)
            self.server.sent[secret_id] += len(part)
            left -= len(part)


def start():
    """A running stub; call stop(server) afterwards."""
    server = Server()
    threading.Thread(target=server.serve_forever, args=(0.02,),
                     daemon=True).start()
    return server


def stop(server):
    server.shutdown()
    server.server_close()
