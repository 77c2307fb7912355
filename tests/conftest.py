# SPDX-License-Identifier: Apache-2.0
"""Suite-wide setup: the one hypothesis profile, nova's threading mode, and
the real services for the tests that need them (``tests/realservices.py``)."""

import os
import sys

import hypothesis

from tools.simcloud import process

# First, before any conftest or test module imports nova, os-win or
# vtpm_core: whichever tests run, nova's test packages set nova's threading
# mode (native threads: eventlet would also patch the sockets the Keystone
# and Barbican tests use) and then refuse eventlet, which os-win and
# oslo.versionedobjects import.
process.prepare()

# the fixture real_services and its marker; pytester, for their tests
pytest_plugins = ['pytester', 'tests.realservices']

# One profile. In CI (CI=true) it is derandomized, so a run is repeatable
# and a failure there reproduces here with the same command.
hypothesis.settings.register_profile(
    'vtpm',
    derandomize=bool(os.environ.get('CI')),
    deadline=None,
    print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.load_profile('vtpm')


def pytest_terminal_summary(terminalreporter):
    """What the simulated Hyper-V tests counted (``tests.fixtures.hyperv``),
    when they ran."""
    hyperv = sys.modules.get('tests.fixtures.hyperv')
    if hyperv is None:
        return
    if hyperv.HOST_CHECK:
        terminalreporter.write_line(
            'vtpm-hyperv-check --compare tests/data/wmi-signatures-sample'
            '.json:')
        for line in hyperv.HOST_CHECK:
            terminalreporter.write_line('  ' + line)
    if hyperv.INJECTIONS['injections']:
        terminalreporter.write_line(
            'rollback: %(injections)d faults injected at every WMI step of '
            'every attach path, %(leftovers)d leftovers' % hyperv.INJECTIONS)
    if hyperv.CRASHES['paths']:
        terminalreporter.write_line(
            'crash: %(points)d crash points over %(paths)d paths, '
            '%(failures)d failures' % hyperv.CRASHES)
    if hyperv.CONFORMANCE['tests']:
        terminalreporter.write_line(
            'WMI conformance: %(tests)d tests, %(validated)d WMI calls '
            'validated against vtpm_hyperv.wmi_schema, %(undocumented)d '
            'undocumented' % hyperv.CONFORMANCE)
