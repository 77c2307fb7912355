# SPDX-License-Identifier: Apache-2.0
"""Suite-wide setup: the one hypothesis profile, nova's threading mode, and
the real services for the tests that need them (``tests/realservices.py``)."""

import os

import hypothesis

# nova's in-process services run on native threads in this suite (run.py
# sets this too): eventlet's monkey patching would also patch the sockets
# the Keystone and Barbican tests use. It must be set before nova imports.
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

# Import order matters whichever tests are collected. Every nova test
# package sets nova's threading mode when imported, and then refuses any
# eventlet import, failing outright if eventlet is already loaded; os-win
# imports eventlet at import time. So: nova's test packages first, then
# os-win past nova's guard (nova_driver.import_os_win).
import nova.tests.functional  # noqa: E402,F401  (first: sets the mode)
import nova.test  # noqa: E402,F401,I100  (imports nova.tests.unit)
from vtpm_hyperv import nova_driver  # noqa: E402,F401

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
