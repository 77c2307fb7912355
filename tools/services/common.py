# SPDX-License-Identifier: Apache-2.0
"""What the parts of ``tools.services`` share: the error, logs, files, HTTP."""

import json
import os
import pathlib
import subprocess
import urllib.error
import urllib.request

HOST = '127.0.0.1'
REGION = 'RegionOne'


class ServiceError(RuntimeError):
    """A service could not be set up or started."""


def log(message):
    print('==> %s' % message, flush=True)


def tail(path, lines=25):
    """The last lines of a log file, for an error message."""
    try:
        text = pathlib.Path(path).read_text(errors='replace')
    except OSError:
        return '(no %s)' % path
    return '\n'.join(text.splitlines()[-lines:])


def read_json(path):
    """The JSON document in ``path``; None if it is missing or unreadable."""
    try:
        return json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_private(path, text):
    """Write a file only its owner can read (passwords, keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as out:
        out.write(text)


def python_env(**extra):
    """This process's environment for a tool of the services' virtualenv."""
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)
    env.update(extra)
    return env


def run_logged(what, argv, log_path, cwd=None, env=None, stdin=None):
    """Run a command, its output appended to ``log_path``.

    Raises ServiceError naming ``what`` failed, with the log's last lines.
    """
    with open(log_path, 'ab') as out:
        result = subprocess.run(argv, input=stdin, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd,
                                env=python_env() if env is None else env)
    if result.returncode != 0:
        raise ServiceError('%s failed (exit %d):\n%s'
                           % (what, result.returncode, tail(log_path)))


def http(method, url, body=None, headers=None, timeout=10):
    """One request: (status, headers, body); an HTTP error is no exception."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers['Content-Type'] = 'application/json'
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def ports(state_dir):
    """name -> port of every service of a state directory."""
    found = read_json(pathlib.Path(state_dir) / 'ports.json')
    if not found:
        raise ServiceError('%s has no ports.json: run start() first'
                           % state_dir)
    return found


def urls(state_dir):
    """name -> base URL (no version) of every service of a state directory."""
    return {name: 'http://%s:%d' % (HOST, port)
            for name, port in ports(state_dir).items()}
