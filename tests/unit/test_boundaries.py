# SPDX-License-Identifier: Apache-2.0
"""Package boundaries, each checked in a fresh interpreter.

Importing every module of a package loads no third-party distribution but
those its declared dependencies pull in themselves, and changes no process
state. Each package's allowance is computed, not listed: a fresh
interpreter imports the package's dependencies (``ALLOWED``), notes what is
loaded and the process state, then imports every module of the package and
reports what it added. For ``vtpm_core`` the allowance is what
oslo.versionedobjects, oslo.config, oslo.utils and stevedore load: the oslo
libraries and what they import (oslo.messaging, and through oslo.service
eventlet and greenlet, among others), never nova, os-win or a client
library.
"""

import json
import subprocess
import sys

import pytest

# What each package may import: its dependencies' modules it imports.
CORE = ['oslo_config.cfg', 'oslo_utils.versionutils',
        'oslo_versionedobjects.base', 'oslo_versionedobjects.fields',
        'stevedore.driver', 'stevedore.extension']
NOVA = ['nova.api.validation.extra_specs.base', 'nova.compute.task_states',
        'nova.conf', 'nova.context', 'nova.exception', 'nova.image.glance',
        'nova.objects', 'nova.scheduler.filters', 'nova.service_auth']
ALLOWED = {
    'vtpm_core': CORE,
    'vtpm_filters': CORE + NOVA,
    'vtpm_hyperv': CORE + NOVA + [
        'barbicanclient.client', 'barbicanclient.exceptions',
        'cryptography.x509', 'keystoneauth1.session', 'os_win.exceptions',
        'os_win.utils.baseutils', 'os_win.utils.compute.vmutils10',
        'os_win.utils.hostutils10', 'requests'],
    'vtpm_cli': CORE + ['keystoneauth1.exceptions', 'openstack'],
}
# Distributions a package must never load, whatever its dependencies do.
# (nova itself loads python-barbicanclient and openstacksdk.)
FORBIDDEN = {
    'vtpm_core': {'nova', 'os-win', 'python-barbicanclient', 'keystoneauth1',
                  'openstacksdk'},
    'vtpm_filters': {'os-win'},
    'vtpm_hyperv': set(),
    'vtpm_cli': {'nova', 'os-win', 'python-barbicanclient'},
}

PROBE = r'''
import importlib, importlib.metadata, json, logging, os, pkgutil, sys
import warnings

OURS = ('vtpm_core', 'vtpm_filters', 'vtpm_hyperv', 'vtpm_cli')


def distributions():
    owners = importlib.metadata.packages_distributions()
    found = set()
    for name in list(sys.modules):
        top = name.partition('.')[0]
        if (top in sys.stdlib_module_names or top.startswith('__')
                or top in OURS):
            continue
        found.update(owners.get(top, [top]))
    return found


def state():
    baseutils = sys.modules.get('os_win.utils.baseutils')
    root = logging.getLogger()
    return {
        'sys.meta_path': [repr(f) for f in sys.meta_path],
        'os.environ': dict(os.environ),
        'warnings.filters': [repr(f) for f in warnings.filters],
        'logging root': [repr(h) for h in root.handlers] + [root.level],
        'os-win baseutils': None if baseutils is None else [
            repr(baseutils.__dict__.get('wmi', 'absent')),
            repr(baseutils.BaseUtilsVirt._os_version)],
    }


package, allowed = sys.argv[1], json.loads(sys.argv[2])
for name in allowed:
    importlib.import_module(name)
allowance, before = distributions(), state()
root = importlib.import_module(package)
modules = [package] + [m.name for m in pkgutil.walk_packages(
    root.__path__, package + '.')]
for name in modules:
    importlib.import_module(name)
after = state()
print(json.dumps({
    'allowance': sorted(allowance),
    'added': sorted(distributions() - allowance),
    'modules': modules,
    'changed': {k: [before[k], after[k]] for k in before
                if before[k] != after[k]},
}))
'''


def probe(package):
    result = subprocess.run(
        [sys.executable, '-c', PROBE, package, json.dumps(ALLOWED[package])],
        capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.fixture(scope='module', params=sorted(ALLOWED))
def imported(request):
    return request.param, probe(request.param)


def test_a_package_loads_only_what_its_dependencies_load(imported):
    package, found = imported
    assert len(found['modules']) > 1  # every module, not just __init__
    assert found['added'] == [], (
        '%s loads %s, which none of its dependencies %s loads'
        % (package, ', '.join(found['added']), ALLOWED[package]))


def test_its_dependencies_load_nothing_it_must_not(imported):
    package, found = imported
    assert FORBIDDEN[package] & set(found['allowance']) == set()


def test_importing_a_package_changes_no_process_state(imported):
    package, found = imported
    assert found['changed'] == {}
