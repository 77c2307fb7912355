# SPDX-License-Identifier: Apache-2.0
"""The install guide's pip commands keep an installed nova as it is.

The guide's ``install-with-constraints`` block, run with this
environment's Python on this checkout, as a dry run that may not fetch
anything (``--dry-run --no-index``): pip would install hyperv-vtpm alone.
With nova held at a release the ``filters`` extra does not accept (a
distribution's older nova), pip refuses instead of replacing it.
"""

import importlib.metadata
import pathlib
import shlex
import subprocess
import sys

from tools.simcloud import guide

ROOT = pathlib.Path(__file__).resolve().parents[2]
# what makes the guide's install a check: nothing changes, nothing is
# fetched, the checkout's metadata is built with what is installed
DRY_RUN = ['--dry-run', '--no-index', '--no-build-isolation']


def guide_commands():
    code, _ = guide.snippet('install-with-constraints')
    return [shlex.split(line[2:]) for line in code.splitlines()
            if line.startswith('$ ')]


def run(tmp_path, hold=None):
    """The guide's two commands; (exit code, pip's output)."""
    (freeze, install) = guide_commands()
    assert freeze[:5] == ['python3', '-m', 'pip', 'list', '--format=freeze']
    assert freeze[5:] == ['>', 'installed.txt']
    listed = subprocess.run([sys.executable] + freeze[1:5], check=True,
                            capture_output=True, text=True).stdout
    # a host where hyperv-vtpm is not installed yet
    lines = [line for line in listed.splitlines()
             if not line.startswith('hyperv-vtpm==')]
    if hold:
        name, version = hold
        lines = [line for line in lines if not line.startswith(name + '==')]
        lines.append('%s==%s' % (name, version))
    (tmp_path / 'installed.txt').write_text('\n'.join(lines) + '\n')
    assert install[:4] == ['python3', '-m', 'pip', 'install']
    assert install[4:6] == ['-c', 'installed.txt']
    target = install[6]
    assert target.startswith('./hyperv-vtpm[')
    done = subprocess.run(
        [sys.executable] + install[1:4] + DRY_RUN + install[4:6] +
        [str(ROOT) + target[len('./hyperv-vtpm'):]],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_the_constrained_install_adds_hyperv_vtpm_and_nothing_else(
        tmp_path):
    code, output = run(tmp_path)
    assert code == 0, output
    (would,) = [line for line in output.splitlines()
                if line.startswith('Would install')]
    assert would.split()[2:] == [
        'hyperv-vtpm-' + importlib.metadata.version('hyperv-vtpm')], would


def test_a_held_nova_the_extra_refuses_stops_pip_instead(tmp_path):
    code, output = run(tmp_path, hold=('nova', '33.0.0'))
    assert code != 0
    assert 'ResolutionImpossible' in output, output
    assert 'Would install' not in output
