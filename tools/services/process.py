# SPDX-License-Identifier: Apache-2.0
"""gunicorn daemons: start one, wait for its answer, stop it and its workers.

A service lives in its own directory (its configuration, logs and
``gunicorn.pid``); only a live process whose working directory is that
directory is ever signalled, so a stale pid file never gets a stranger
killed.
"""

import os
import pathlib
import shutil
import signal
import socket
import time

from tools.services import common
from tools.services import install

START_TIMEOUT = 60
STOP_TIMEOUT = 10


def free_port():
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((common.HOST, 0))
        return sock.getsockname()[1]


def port_free(port):
    """Whether gunicorn could bind ``port`` now."""
    with socket.socket() as sock:
        # as gunicorn binds: a port in TIME_WAIT is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((common.HOST, port))
        except OSError:
            return False
        return True


def _proc_state(pid):
    try:
        stat = pathlib.Path('/proc/%d/stat' % pid).read_text()
    except OSError:
        return None
    return stat.rsplit(')', 1)[1].split()[0]


def _alive(pid):
    return _proc_state(pid) not in (None, 'Z')


def _children(pid):
    kids = []
    for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _wait_gone(pid):
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


def master_pid(directory):
    """The pid of the gunicorn master serving ``directory``, or None."""
    directory = pathlib.Path(directory).resolve()
    try:
        pid = int((directory / 'gunicorn.pid').read_text().strip())
    except (OSError, ValueError):
        return None
    if not _alive(pid):
        return None
    try:
        cwd = os.readlink('/proc/%d/cwd' % pid)
    except OSError:
        return None
    return pid if pathlib.Path(cwd) == directory else None


def launch(directory, port, app, env, niceness=0):
    """Start a daemonized gunicorn master for ``app``; do not wait for it.

    ``app`` is gunicorn's application arguments, ``env`` the environment
    the application reads its configuration from.
    """
    directory = pathlib.Path(directory).resolve()
    if not port_free(port):
        raise common.ServiceError('cannot start %s: %s:%d is in use'
                                  % (directory.name, common.HOST, port))
    nice = (['nice', '-n', str(niceness)]
            if niceness and shutil.which('nice') else [])
    argv = nice + [
        str(install.bin_path('gunicorn')), '--daemon', '--no-control-socket',
        '--chdir', str(directory), '--bind', '%s:%d' % (common.HOST, port),
        '--workers', '1', '--worker-class', 'gthread', '--threads', '1',
        '--timeout', '120', '--graceful-timeout', '5',
        '--pid', str(directory / 'gunicorn.pid'),
        '--access-logfile', str(directory / 'access.log'),
        '--error-logfile', str(directory / 'gunicorn.log')] + list(app)
    common.run_logged('gunicorn for %s' % directory.name, argv,
                      directory / 'stdout.log', cwd=directory, env=env)


def wait_healthy(directory, url, timeout=START_TIMEOUT):
    """Wait for an HTTP answer below 500 from ``url``.

    gunicorn's master binds the port before the application loads, so only
    an answer says the service works. Stops it and raises ServiceError,
    with the end of its log, when none comes.
    """
    directory = pathlib.Path(directory).resolve()
    deadline = time.monotonic() + timeout
    seen_pid = False
    why = 'within %ds' % timeout
    while time.monotonic() < deadline:
        pid = master_pid(directory)
        if pid is None and seen_pid:
            why = '(gunicorn exited)'  # the application failed to load
            break
        seen_pid = seen_pid or pid is not None
        try:
            status, _, _ = common.http('GET', url, timeout=2)
            if status < 500:
                return
        except OSError:
            pass
        time.sleep(0.1)
    stop(directory)
    log = directory / 'gunicorn.log'
    raise common.ServiceError('%s did not answer on %s %s; last lines of '
                              '%s:\n%s' % (directory.name, url, why, log,
                                           common.tail(log)))


def stop(directory, port=None):
    """Stop the gunicorn of ``directory`` and its workers; a no-op if down.

    With ``port``, also wait until the port can be bound again.
    """
    directory = pathlib.Path(directory).resolve()
    pid = master_pid(directory)
    if pid is None:
        (directory / 'gunicorn.pid').unlink(missing_ok=True)
        return
    workers = _children(pid)
    # gunicorn's quick shutdown: a graceful one waits on idle keep-alives
    os.kill(pid, signal.SIGQUIT)
    _wait_gone(pid)
    if _alive(pid):
        for victim in [pid] + workers:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for worker in workers:
        _wait_gone(worker)
    (directory / 'gunicorn.pid').unlink(missing_ok=True)
    if port:
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and not port_free(port):
            time.sleep(0.05)
