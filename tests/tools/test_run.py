# SPDX-License-Identifier: Apache-2.0
"""run.py's command line: its usage, and what it refuses."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _run_py(*args):
    # --help and refusals need no virtualenv: nothing is installed
    return subprocess.run([sys.executable, str(ROOT / 'run.py')] + list(args),
                          capture_output=True, text=True, check=False)


@pytest.mark.parametrize('flag', ['--help', '-h', 'help'])
def test_help_prints_the_usage_and_succeeds(flag):
    result = _run_py(flag)

    assert result.returncode == 0
    assert result.stdout.startswith('usage: python3 run.py COMMAND')
    for command in ('  demo ', '  test ', '  test ARGUMENTS '):
        assert command in result.stdout


def test_no_command_prints_the_usage_and_fails():
    result = _run_py()

    assert result.returncode == 2
    assert result.stderr.startswith('usage: python3 run.py COMMAND')


def test_an_unknown_command_is_named_and_fails():
    result = _run_py('tests', 'tests/unit')

    assert result.returncode == 2
    assert result.stderr == ("run.py: unknown command 'tests' (commands: "
                             "demo, test; python3 run.py --help)\n")
