# SPDX-License-Identifier: Apache-2.0
"""Virtual environments installed from pins, updated only when a pin changes.

Stdlib only: ``run.py`` builds ``.venv`` with it before any virtual
environment exists, and ``tools.services`` builds ``.venv-services``.
"""

import hashlib
import pathlib
import subprocess
import sys
import time
import venv


class InstallError(RuntimeError):
    """pip could not install what a virtual environment needs."""


def python(path):
    """The interpreter of the virtual environment at ``path``."""
    return pathlib.Path(path) / 'bin' / 'python'


def ensure(path, what, pip_args, inputs=(), log=print):
    """Make the virtual environment at ``path`` hold ``pip_args``.

    ``pip_args`` are what ``pip install`` gets (requirements, ``-c`` and
    ``-e`` options); ``inputs`` are the files they name whose content
    matters (constraints, setup.cfg); ``what`` says what they are, for the
    log. A digest of both and of this Python's version is kept in the
    environment: while it matches, this is a no-op. Returns the digest
    (a cache built from the environment can keep it); raises InstallError,
    with the end of pip's output, when pip fails.
    """
    path = pathlib.Path(path)
    digest = hashlib.sha256(repr((list(pip_args),
                                  sys.version_info[:2])).encode())
    for name in inputs:
        digest.update(pathlib.Path(name).read_bytes())
    stamp = path / '.hyperv-vtpm-stamp'
    if stamp.exists() and stamp.read_text() == digest.hexdigest():
        return digest.hexdigest()
    started = time.monotonic()
    if not _made_by_this_python(path):
        log('creating %s (Python %d.%d)' % ((path,) + sys.version_info[:2]))
        venv.EnvBuilder(with_pip=True, clear=True).create(path)
    log('installing %s into %s' % (what, path.name))
    pip_log = path / 'pip.log'
    with open(pip_log, 'wb') as out:
        result = subprocess.run(
            [str(python(path)), '-m', 'pip', 'install', '--quiet',
             '--disable-pip-version-check'] + list(pip_args),
            stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = pip_log.read_text(errors='replace').splitlines()[-25:]
        raise InstallError('pip install into %s failed (exit %d):\n%s'
                           % (path, result.returncode, '\n'.join(tail)))
    stamp.write_text(digest.hexdigest())
    log('%s ready in %.1fs' % (path.name, time.monotonic() - started))
    return digest.hexdigest()


def _made_by_this_python(path):
    """Whether ``path`` is a virtual environment of this Python version."""
    try:
        config = (path / 'pyvenv.cfg').read_text()
    except OSError:
        return False
    for line in config.splitlines():
        key, _, value = line.partition('=')
        if key.strip() == 'version':
            return (python(path).exists() and value.strip().split('.')[:2]
                    == [str(n) for n in sys.version_info[:2]])
    return False
