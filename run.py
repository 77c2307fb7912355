#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""usage: python3 run.py COMMAND [ARGUMENTS]

Run hyperv-vtpm on a fresh machine that has python3 (3.11 or newer) and git.

commands:
  demo            the demonstration: Keystone, Barbican and Glance on
                  loopback, nova's services in process, simulated Hyper-V
                  hosts in two fabrics, a handful of boots
  test            every test: the real Keystone, Barbican and Glance start,
                  each test file runs in a pytest of its own (so each
                  passes alone), as many at a time as there are cores, and
                  the services stop at the end; then the documentation
                  (warnings are errors), pep8, the tests that need no
                  service on Python 3.12 and 3.13, and on nova 2023.1 (27)
                  with Python 3.10 (tox -e docs,pep8,py312,py313,nova27; a
                  Python that is not installed is skipped, except in CI)
  test ARGUMENTS  pytest with these arguments, nothing else, in one process
                  (python3 run.py test tests/unit -q): the services start
                  only if a selected test needs them

Each creates or updates .venv with the pinned versions of constraints.txt
first (about a minute the first time).
"""

import os
import pathlib
import signal
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent
VENV = ROOT / '.venv'
# what the tests run against, and tox for the documentation and the other
# Pythons
REQUIREMENTS = ['-e', '%s[test]' % ROOT, 'tox']
PINS = [ROOT / 'constraints.txt', ROOT / 'setup.cfg', ROOT / 'pyproject.toml']
OTHER_PYTHONS = 'py312,py313'
# nova 2023.1 (27) on Python 3.10, at setup.cfg's floors (tox.ini)
OLDEST_NOVA = 'nova27'


def log(message):
    print('==> %s' % message, flush=True)


def ensure_venv():
    """Create or update .venv; a no-op while the pins hold."""
    from tools import venvs
    try:
        venvs.ensure(VENV, 'the pinned dependencies (about a minute the '
                     'first time)',
                     ['-c', str(ROOT / 'constraints.txt')] + REQUIREMENTS,
                     inputs=PINS, log=log)
    except venvs.InstallError as e:
        sys.exit(str(e))
    # the compute-hyperv consumer tests' driver, beside nova, not over it
    from tools.compute_hyperv import install
    try:
        install.ensure(VENV, log=log)
    except install.InstallError as e:
        sys.exit(str(e))


def venv_env(extra=None):
    """The environment of a command run from .venv."""
    env = dict(os.environ, **(extra or {}))
    env['PATH'] = '%s%s%s' % (VENV / 'bin', os.pathsep, env.get('PATH', ''))
    env.pop('PYTHONPATH', None)
    # nova's in-process services with native threads, not eventlet: the
    # same process also talks to Keystone, Barbican and Glance over real
    # sockets
    env['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
    return env


def run(argv):
    """Run ``argv`` from .venv; its exit code.

    Ctrl-C reaches the command alone, which stops what it started (the
    services) before it exits; this process waits for it.
    """
    process = subprocess.Popen([str(a) for a in argv], cwd=ROOT,
                               env=venv_env())
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return process.wait()
    finally:
        signal.signal(signal.SIGINT, interrupt)


def demo(args):
    ensure_venv()
    return run([VENV / 'bin' / 'python', '-m', 'tools.demo'] + args)


def test(args):
    ensure_venv()
    from tools import services
    if args:
        try:
            return run([VENV / 'bin' / 'python', '-m', 'pytest'] + args)
        finally:
            # the tests stop the services they started, unless pytest
            # itself was killed; services named in the environment are not
            # ours
            if 'VTPM_TEST_KEYSTONE_URL' not in os.environ:
                services.stop()
    code = every_file_alone(services)
    if code != 0:
        return code
    envs = 'docs,pep8,%s,%s' % (OTHER_PYTHONS, OLDEST_NOVA)
    log('the documentation (warnings are errors), pep8, and the tests that '
        'need no service on the other Pythons and on nova 27, in parallel: '
        'tox -e %s' % envs)
    # CI must run every Python setup.cfg claims; elsewhere a missing one is
    # skipped
    skip = 'false' if os.environ.get('CI') else 'true'
    return run([VENV / 'bin' / 'tox', '-q', '-p', 'auto', '-e', envs,
                '--skip-missing-interpreters', skip])


def every_file_alone(services):
    """Every test file in a pytest of its own, against services started
    once for all of them (or those named in the environment)."""
    from tools import testrun
    ours = 'VTPM_TEST_KEYSTONE_URL' not in os.environ
    try:
        env = venv_env(services.start() if ours else None)
        return testrun.run(VENV / 'bin' / 'python', ROOT, env,
                           testrun.default_jobs(), log)
    except services.ServiceError as e:
        sys.exit('run.py: %s' % e)
    except KeyboardInterrupt:
        return 130
    finally:
        if ours:
            services.stop()


COMMANDS = {'demo': demo, 'test': test}


def main(argv):
    if not argv or argv[0] in ('-h', '--help', 'help'):
        print(__doc__.strip(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print('run.py: unknown command %r (commands: %s; python3 run.py '
              '--help)' % (command, ', '.join(COMMANDS)), file=sys.stderr)
        return 2
    if sys.version_info < (3, 11):
        sys.exit('run.py: hyperv-vtpm needs Python 3.11 or newer (nova 34 '
                 'does)')
    sys.path.insert(0, str(ROOT))
    return COMMANDS[command](args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
