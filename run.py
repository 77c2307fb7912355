#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bootstrap and run hyperv-vtpm on a fresh machine: ``demo`` or ``test``.

Needs only python3 (3.11 or newer) and git. It creates ``.venv`` with the
pinned versions of ``constraints.txt`` (reused while the pins and setup.cfg
are unchanged), then:

  python3 run.py demo   runs the demonstration: Keystone, Barbican, Glance on
                        loopback, nova's services in process, simulated
                        Hyper-V hosts in two fabrics, a handful of boots
  python3 run.py test   starts Keystone, Barbican and Glance on loopback,
                        runs every test, builds the docs, and stops the
                        services

Extra arguments after ``test`` go to pytest.
"""

import hashlib
import os
import pathlib
import subprocess
import sys
import venv

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / '.venv'
PYTHON = VENV / 'bin' / 'python'
STAMP = VENV / '.hyperv-vtpm-installed'
EXTRAS = 'test,doc'


def log(message):
    print('==> %s' % message, flush=True)


def ensure_venv():
    """Create or refresh .venv; a no-op when the pins have not changed."""
    digest = hashlib.sha256()
    for name in ('constraints.txt', 'setup.cfg', 'pyproject.toml'):
        digest.update((ROOT / name).read_bytes())
    digest.update(EXTRAS.encode())
    wanted = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if sys.version_info < (3, 11):
        sys.exit('hyperv-vtpm needs Python 3.11 or newer (nova 34 does)')
    if not PYTHON.exists():
        log('creating %s' % VENV)
        venv.EnvBuilder(with_pip=True).create(VENV)
    log('installing pinned dependencies (about a minute the first time)')
    pip = [str(PYTHON), '-m', 'pip', 'install', '--quiet',
           '--disable-pip-version-check']
    quiet_run(pip + ['--upgrade', 'pip'])
    quiet_run(pip + ['-c', str(ROOT / 'constraints.txt'),
                     '-e', '%s[%s]' % (ROOT, EXTRAS)])
    STAMP.write_text(wanted)


def quiet_run(command):
    """Run a command; show its output only if it fails."""
    result = subprocess.run(command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        print(result.stdout[-20000:], file=sys.stderr)
        sys.exit('failed (exit code %d): %s' % (result.returncode,
                                                 ' '.join(command)))


def venv_env(**extra):
    env = dict(os.environ)
    env['PATH'] = '%s%s%s' % (VENV / 'bin', os.pathsep, env.get('PATH', ''))
    env.pop('PYTHONPATH', None)
    # nova's in-process services with native threads, not eventlet: the
    # same process also talks to Keystone, Barbican and Glance over real sockets.
    env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
    env.update(extra)
    return env


def demo(args):
    ensure_venv()
    return subprocess.run([str(PYTHON), '-m', 'tools.demo'] + list(args),
                          cwd=ROOT, env=venv_env()).returncode


def test(args):
    ensure_venv()
    from tools import services  # noqa: E402 (needs nothing but stdlib)
    state = services.start(ROOT / '.state')
    try:
        env = venv_env(**state)
        log('running the tests')
        pytest = [str(PYTHON), '-m', 'pytest', '-p', 'no:cacheprovider']
        result = subprocess.run(pytest + list(args), cwd=ROOT, env=env)
        if result.returncode != 0:
            return result.returncode
    finally:
        services.stop(ROOT / '.state')
    log('building the documentation: tox -e docs (warnings are errors)')
    return subprocess.run([str(VENV / 'bin' / 'tox'), '-q', '-e', 'docs'],
                          cwd=ROOT, env=venv_env()).returncode


def main():
    commands = {'demo': demo, 'test': test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit('usage: python3 run.py {demo|test} [pytest arguments]')
    sys.path.insert(0, str(ROOT))
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))


if __name__ == '__main__':
    main()
