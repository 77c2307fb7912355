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
                  the services stop at the end (meanwhile tox installs
                  its environments); then the tests that need no service
                  on nova 2023.1 (27) with Python 3.10, and on Python 3.12
                  and 3.13, the documentation (warnings are errors) and
                  pep8 (tox -e nova27,py312,py313,docs,pep8; a Python that
                  is not installed is skipped, except in CI)
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
# what installing tox's environments printed
TOX_LOG = ROOT / '.tox' / 'install.log'


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
    # the longest first, so that the two slots of a 2-core machine end
    # together
    envs = '%s,%s,docs,pep8' % (OLDEST_NOVA, OTHER_PYTHONS)
    # CI must run every Python setup.cfg claims; elsewhere a missing one is
    # skipped
    skip = 'false' if os.environ.get('CI') else 'true'
    tox = [VENV / 'bin' / 'tox', '-q', '-e', envs,
           '--skip-missing-interpreters', skip]
    # tox's environments are installed while the test files run (mostly
    # downloads and disk), not after them
    installing = install_in_background(tox + ['--notest'])
    code = every_file_alone(services)
    if installing.wait() != 0:
        log('installing the tox environments failed (%s):\n%s' % (
            ' '.join(map(str, installing.args)), TOX_LOG.read_text()))
        return installing.returncode
    if code != 0:
        return code
    log('the tests that need no service on nova 27 and on the other '
        'Pythons, the documentation (warnings are errors) and pep8, in '
        'parallel: tox -e %s' % envs)
    return run(tox[:2] + ['-p', 'auto'] + tox[2:])


def install_in_background(argv):
    """Start ``argv`` from .venv, its output to ``TOX_LOG``."""
    TOX_LOG.parent.mkdir(exist_ok=True)
    with TOX_LOG.open('w') as out:
        return subprocess.Popen([str(a) for a in argv], cwd=ROOT,
                                env=venv_env(), stdout=out,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


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
