# SPDX-License-Identifier: Apache-2.0
"""The ``real_services`` fixture: who starts the services, when they stop.

Each test runs pytest on a small suite of its own, in a subprocess, with
``tests.realservices`` as its plugin and ``tools.services.start``/``stop``
replaced by recorders (starting the real ones is the job of the tests that
need them); then the whole suite's plan shows which tests use them.
"""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

# the suite's conftest: the plugin under test, the services recorded
CONFTEST = '''
import os
import pathlib

from tools import services
from tools.services import common

pytest_plugins = ['tests.realservices']
CALLS = pathlib.Path(__file__).parent / 'calls'


def start(state_dir=services.STATE_DIR):
    with CALLS.open('a') as calls:
        calls.write('start\\n')
    if os.environ.get('START_FAILS'):
        raise common.ServiceError('keystone-manage failed (exit 1)')
    return {'VTPM_TEST_KEYSTONE_URL': 'http://127.0.0.1:9/v3'}


def stop(state_dir=services.STATE_DIR):
    with CALLS.open('a') as calls:
        calls.write('stop\\n')


services.start = start
services.stop = stop
'''

# three tests: two need the services (one through a fixture of its own,
# one a unittest.TestCase), one does not
TESTS = '''
import os
import unittest

import pytest


@pytest.fixture
def keystone(real_services):
    return os.environ['VTPM_TEST_KEYSTONE_URL']


def test_through_a_fixture(keystone):
    assert keystone == 'http://127.0.0.1:9/v3'


@pytest.mark.usefixtures('real_services')
class TestCase(unittest.TestCase):
    def test_reads_the_environment(self):
        assert os.environ['VTPM_TEST_KEYSTONE_URL']
        if os.environ.get('TEST_FAILS') == 'interrupt':
            raise KeyboardInterrupt
        assert not os.environ.get('TEST_FAILS')


def test_needs_nothing():
    pass
'''


@pytest.fixture
def suite(pytester, monkeypatch):
    """run(*pytest_args, **environment) -> (result, calls to start/stop)."""
    monkeypatch.setenv('PYTHONPATH', str(ROOT))
    for name in ('VTPM_TEST_KEYSTONE_URL', 'START_FAILS', 'TEST_FAILS'):
        monkeypatch.delenv(name, raising=False)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TESTS)

    def run(*args, **environment):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        result = pytester.runpytest_subprocess('-p', 'no:cacheprovider',
                                               *args)
        calls = pytester.path / 'calls'
        return result, calls.read_text().split() if calls.exists() else []

    return run


def test_started_once_for_the_tests_that_need_them_and_stopped_at_the_end(
        suite):
    result, calls = suite()

    result.assert_outcomes(passed=3)
    assert calls == ['start', 'stop']


def test_a_run_that_selects_no_test_needing_them_starts_nothing(suite):
    result, calls = suite('-k', 'needs_nothing')

    result.assert_outcomes(passed=1, deselected=2)
    assert calls == []


def test_the_marker_selects_exactly_the_tests_that_need_them(suite):
    without, calls = suite('-m', 'not real_services')
    only, _ = suite('-m', 'real_services', '-rp')

    without.assert_outcomes(passed=1, deselected=2)
    assert calls == []
    only.assert_outcomes(passed=2, deselected=1)
    only.stdout.fnmatch_lines(
        ['PASSED test_suite.py::test_through_a_fixture',
         'PASSED test_suite.py::TestCase::test_reads_the_environment'])


def test_a_failing_test_still_stops_them(suite):
    result, calls = suite(TEST_FAILS='yes')

    result.assert_outcomes(passed=2, failed=1)
    assert calls == ['start', 'stop']


def test_ctrl_c_still_stops_them(suite):
    result, calls = suite(TEST_FAILS='interrupt')

    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert calls == ['start', 'stop']


def test_services_that_cannot_start_fail_the_tests_never_skip(suite):
    result, calls = suite(START_FAILS='yes')

    result.assert_outcomes(passed=1, errors=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(['*the real Keystone, Barbican and Glance did '
                                 'not start: keystone-manage failed*'])
    assert calls == ['start']  # once: the session caches the failure


def test_services_named_in_the_environment_are_used_and_left_running(suite):
    result, calls = suite(VTPM_TEST_KEYSTONE_URL='http://127.0.0.1:9/v3')

    result.assert_outcomes(passed=3)
    assert calls == []


# --- the suite itself --------------------------------------------------------

def _modules_importing_realservices():
    found = set()
    for path in (ROOT / 'tests').rglob('test_*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.module == 'tests'
                    and any(a.name == 'realservices' for a in node.names)):
                found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope='module')
def plan():
    """test id -> the fixtures it uses, for the whole suite (not run)."""
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '--setup-plan', '-q',
         '-p', 'no:cacheprovider'], cwd=ROOT, capture_output=True,
        text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    tests = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r'\s+(tests/\S+::\S+)(?: \(fixtures used: '
                             r'(.*)\))?', line)
        if match:
            tests[match[1]] = set((match[2] or '').split(', '))
    return tests


def test_unit_property_and_tools_tests_start_no_service(plan):
    light = [t for t in plan if t.startswith(
        ('tests/unit/', 'tests/property/', 'tests/tools/'))]

    assert len(light) > 300
    assert [t for t in light if 'real_services' in plan[t]] == []


def test_every_test_that_reads_the_services_has_them_started(plan):
    readers = _modules_importing_realservices()
    using = {t for t in plan if 'real_services' in plan[t]}

    assert len(readers) >= 4
    assert {t.split('::')[0] for t in using} == readers
    assert [t for t in plan if t.split('::')[0] in readers
            and t not in using] == []
