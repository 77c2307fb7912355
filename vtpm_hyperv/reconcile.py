# SPDX-License-Identifier: Apache-2.0
"""What calls that died with their process left on a Hyper-V host.

An attach undoes its steps when it fails; a process that is killed (OOM,
``kill -9``, power loss) undoes nothing. It may leave:

* instance guardians in the host's guardian store (named
  ``<guardian_name_prefix><instance uuid>-<secret>``), the owner's among
  them with its private signing key, which the attach removes at once;
* its private directory (``keyprotector.PrivateFiles``): PFX files whose
  password died with the process, guardian files, a shielding data file.

``sweep`` removes both, and nothing a running call holds: every attach
registers its instance (``attaching``) and every call its private directory
(``private_files``) in this process before its first step, and a sweep of
the host holds the same lock while it reads and removes. Private
directories carry their process's id (``keyprotector.PrivateFiles``): those
of another live process are left alone, those of this process only while
registered. One nova-compute runs per Hyper-V host, so a process registry
is the host's.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import tempfile
import threading

from oslo_log import log
import psutil

from vtpm_hyperv import keyprotector

LOG = log.getLogger(__name__)

# Guardians and private directories in use, by this process's calls.
_LOCK = threading.RLock()
_ATTACHING: dict[str, collections.Counter] = collections.defaultdict(
    collections.Counter)
_LIVE_DIRS: set[str] = set()

# keyprotector.PrivateFiles' directory names: vtpm-<pid>-<random>
_PRIVATE_DIR = re.compile(r'\Avtpm-(\d+)-[^-]+\Z')
# an instance UUID, as nova writes it
_UUID_LENGTH = 36


@contextlib.contextmanager
def attaching(host, instance_uuid):
    """Mark an attach for ``instance_uuid`` on ``host`` (the backend's
    host name) as running."""
    with _LOCK:
        _ATTACHING[host][instance_uuid] += 1
    try:
        yield
    finally:
        with _LOCK:
            _ATTACHING[host][instance_uuid] -= 1
            if not _ATTACHING[host][instance_uuid]:
                del _ATTACHING[host][instance_uuid]


@contextlib.contextmanager
def private_files(base):
    """``keyprotector.PrivateFiles(base)``, registered while it exists."""
    files = keyprotector.PrivateFiles(base)
    with _LOCK:  # a sweep sees the directory as live from its creation
        files.__enter__()
        _LIVE_DIRS.add(files.path)
    try:
        yield files
    finally:
        try:
            files.__exit__(None, None, None)
        finally:
            with _LOCK:
                _LIVE_DIRS.discard(files.path)


def sweep(hgs, host, prefix, private_dir, remove):
    """Remove the instance guardians no attach runs for (those with a
    private signing key first); find the private directories of dead calls
    (``remove_directories`` removes them).

    :param hgs: ``keyprotector.Hgs`` of the host.
    :param prefix: ``[hyperv_vtpm] guardian_name_prefix``.
    :param remove: ``names -> None``, the backend's verified removal; it
        runs under the lock, so that no attach of those instances starts
        and imports a guardian of the same name meanwhile.
    :returns: (guardian names removed, directories left by dead calls).
    """
    with _LOCK:
        running = set(_ATTACHING.get(host, ()))
        stale = [g for g in hgs.guardians() if g.Name.startswith(prefix)
                 and g.Name[len(prefix):len(prefix) + _UUID_LENGTH]
                 not in running]
        # the owner's private signing key first
        stale.sort(key=lambda g: not g.HasPrivateSigningKey)
        names = [g.Name for g in stale]
        if names:
            remove(names)
        paths = _dead_directories(private_dir)
    return names, paths


def _dead_directories(base):
    base = base or tempfile.gettempdir()
    try:
        entries = os.listdir(base)
    except FileNotFoundError:
        return []
    me = os.getpid()
    found = []
    for name in sorted(entries):
        m = _PRIVATE_DIR.match(name)
        if m is None:
            continue
        path = os.path.join(base, name)
        pid = int(m.group(1))
        if path in _LIVE_DIRS or (pid != me and psutil.pid_exists(pid)):
            continue
        found.append(path)
    return found


def remove_directories(paths):
    """Remove private directories; returns those that stay."""
    left = []
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
        if os.path.exists(path):
            left.append(path)
    return left
