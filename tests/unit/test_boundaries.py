# SPDX-License-Identifier: Apache-2.0
"""The rooms of the code, and who may import whom.

Each room is a set of modules with one audience. Two rules hold it:

* **our imports** (read from the source, every ``import`` statement,
  in functions too): a room imports only the rooms it lists in
  ``ROOMS``. Dependencies point ``vtpm_filters -> vtpm_core <-
  vtpm_hyperv``; nothing outside ``vtpm_hyperv.fake``, ``tools`` and
  ``tests`` imports the simulator;
* **third-party imports** (each room imported in a fresh interpreter):
  importing every module of a room loads no distribution but those its
  dependencies (``ROOMS[...].allowed``) load themselves, none of its
  ``forbidden`` ones, and changes no process state. For ``vtpm_core`` the
  allowance is what oslo.versionedobjects, oslo.config, oslo.utils and
  stevedore load: the oslo libraries and what they import (oslo.messaging,
  and through oslo.service eventlet and greenlet, among others), never
  nova, os-win or a client library.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ('vtpm_core', 'vtpm_filters', 'vtpm_hyperv', 'vtpm_cli')

CORE = ['oslo_config.cfg', 'oslo_utils.versionutils',
        'oslo_versionedobjects.base', 'oslo_versionedobjects.fields',
        'stevedore.driver', 'stevedore.extension']
NOVA = ['nova.api.validation.extra_specs.base', 'nova.compute.task_states',
        'nova.conf', 'nova.context', 'nova.exception', 'nova.image.glance',
        'nova.objects', 'nova.scheduler.filters', 'nova.service_auth']
# the Windows host: os-win, key material, and which processes live there
# (vtpm_hyperv.reconcile; os-win's dependencies load psutil on nova 34's
# pins, not on nova 27's)
OS_WIN = ['cryptography.x509', 'os_win.exceptions', 'os_win.utils.baseutils',
          'os_win.utils.compute.vmutils10', 'os_win.utils.hostutils10',
          'psutil']
BARBICAN = ['barbicanclient.client', 'barbicanclient.exceptions',
            'keystoneauth1.session', 'requests']


@dataclasses.dataclass(frozen=True)
class Room:
    # the rooms of ours its modules may import (itself always)
    imports: tuple[str, ...]
    # the modules of its dependencies it imports (the allowance)
    allowed: tuple[str, ...]
    # distributions it must never load, whatever its dependencies do
    forbidden: frozenset[str] = frozenset()


# room -> its rule; a module belongs to the longest room that prefixes it
ROOMS = {
    'vtpm_core': Room((), tuple(CORE), frozenset({
        'nova', 'os-win', 'python-barbicanclient', 'keystoneauth1',
        'openstacksdk'})),
    'vtpm_filters': Room(('vtpm_core',), tuple(CORE + NOVA),
                         frozenset({'os-win'})),
    # the backend: os-win, WMI, key material; no nova
    'vtpm_hyperv': Room(('vtpm_core', 'vtpm_hyperv.barbican'),
                        tuple(CORE + OS_WIN + BARBICAN),
                        frozenset({'nova'})),
    'vtpm_hyperv.barbican': Room(('vtpm_core',), tuple(CORE + BARBICAN),
                                 frozenset({'nova', 'os-win'})),
    # what a nova compute driver composes
    'vtpm_hyperv.nova': Room(('vtpm_core', 'vtpm_hyperv',
                              'vtpm_hyperv.barbican'),
                             tuple(CORE + NOVA + OS_WIN + BARBICAN)),
    # the compute-hyperv port: compute-hyperv and what it imports
    'vtpm_hyperv.nova.compute_hyperv': Room(
        ('vtpm_core', 'vtpm_hyperv', 'vtpm_hyperv.barbican',
         'vtpm_hyperv.nova'), tuple(CORE + NOVA + OS_WIN + BARBICAN + [
             'compute_hyperv.nova.conf', 'nova.api.metadata.base',
             'nova.compute.api', 'nova.network.neutron', 'nova.virt.driver',
             'nova.volume.cinder', 'os_brick.initiator.connector', 'os_vif',
             'tooz.coordination'])),
    # the simulator: Microsoft's table, and the fabric ids the backend
    # reports
    'vtpm_hyperv.fake': Room(('vtpm_hyperv',), tuple(CORE + OS_WIN),
                             frozenset({'nova'})),
    # the console scripts; each reader of another service is its own room,
    # which vtpm-check imports only when asked to read it
    'vtpm_cli': Room(('vtpm_core', 'vtpm_cli.novadb'),
                     tuple(CORE + ['keystoneauth1.exceptions', 'openstack']),
                     frozenset({'nova', 'os-win', 'python-barbicanclient'})),
    'vtpm_cli.novadb': Room(('vtpm_core', 'vtpm_cli'), tuple(CORE + NOVA),
                            frozenset({'os-win'})),
    # vtpm-status upgrade check: oslo.upgradecheck, nova's databases
    'vtpm_cli.status': Room(('vtpm_core', 'vtpm_cli', 'vtpm_cli.novadb'),
                            tuple(CORE + NOVA + [
                                'oslo_upgradecheck.upgradecheck']),
                            frozenset({'os-win'})),
    # the openstack command's plugin: osc-lib, and vtpm-check's commands
    'vtpm_cli.osc': Room(('vtpm_core', 'vtpm_cli'),
                         tuple(CORE + ['keystoneauth1.exceptions', 'openstack',
                                       'osc_lib.command.command']),
                         frozenset({'nova', 'os-win',
                                    'python-barbicanclient'})),
    'vtpm_cli.hyperv_check': Room(
        ('vtpm_core', 'vtpm_hyperv', 'vtpm_hyperv.barbican',
         'vtpm_hyperv.nova'), tuple(CORE + NOVA + OS_WIN + BARBICAN)),
}


def room_of(module: str) -> str:
    return max((r for r in ROOMS if module == r or module.startswith(r + '.')),
               key=len)


def modules():
    """Every module of ours: name -> path."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob('*.py')):
            parts = path.relative_to(ROOT).with_suffix('').parts
            if parts[-1] == '__init__':
                parts = parts[:-1]
            found['.'.join(parts)] = path
    return found


def our_imports(module, path, tree):
    """(line, module) for each module of ours that ``module`` imports,
    anywhere in it: ``from a import b`` imports ``a.b`` when that is a
    module, else ``a``."""
    package = module if path.name == '__init__.py' else \
        module.rpartition('.')[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parts = parts[:len(parts) - node.level + 1]
                base = '.'.join(parts + [base]).strip('.')
            names = ['%s.%s' % (base, a.name)
                     if '%s.%s' % (base, a.name) in tree else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name in tree:
                yield node.lineno, name


def forbidden_imports(tree):
    """(module, line, imported, its room) for each import of ours that the
    module's room does not allow."""
    found = []
    for module, path in tree.items():
        room = room_of(module)
        may = {room} | set(ROOMS[room].imports)
        for line, name in our_imports(module, path, tree):
            target = room_of(name)
            if target not in may:
                found.append((module, line, name, target))
    return found


def test_every_module_is_in_a_room_and_imports_only_what_it_may():
    tree = modules()
    assert len(tree) > 40
    assert forbidden_imports(tree) == []


@pytest.mark.parametrize('module, line, room', [
    # product code importing the simulator
    ('vtpm_hyperv.backend', 'from vtpm_hyperv import fake',
     'vtpm_hyperv.fake'),
    # the core importing the compute side
    ('vtpm_core.policy', 'from vtpm_hyperv import material', 'vtpm_hyperv'),
    # the backend importing nova's glue
    ('vtpm_hyperv.material', 'from vtpm_hyperv.nova import compute',
     'vtpm_hyperv.nova'),
    # the scheduler filter importing the compute side, in a function
    ('vtpm_filters.vtpm_filter',
     'def f():\n    import vtpm_hyperv.backend', 'vtpm_hyperv'),
], ids=['backend->fake', 'core->hyperv', 'backend->nova',
        'filters->hyperv-in-a-function'])
def test_a_forbidden_import_added_to_a_module_is_found(tmp_path, module,
                                                       line, room):
    tree = modules()
    path = tmp_path / 'module.py'
    path.write_text(tree[module].read_text() + '\n\n' + line + '\n')
    tree[module] = path
    assert [(m, target) for m, _, _, target in forbidden_imports(tree)] == [
        (module, room)]


PROBE = r'''
import importlib, importlib.metadata, json, logging, os, sys
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


allowed, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in allowed:
    importlib.import_module(name)
allowance, before = distributions(), state()
for name in modules:
    importlib.import_module(name)
after = state()
print(json.dumps({
    'allowance': sorted(allowance),
    'added': sorted(distributions() - allowance),
    'changed': {k: [before[k], after[k]] for k in before
                if before[k] != after[k]},
}))
'''


@pytest.fixture(scope='module', params=sorted(ROOMS))
def imported(request):
    room = request.param
    members = sorted(m for m in modules() if room_of(m) == room)
    result = subprocess.run(
        [sys.executable, '-c', PROBE, json.dumps(ROOMS[room].allowed),
         json.dumps(members)],
        capture_output=True, text=True, check=True, cwd=ROOT)
    return room, members, json.loads(result.stdout)


def test_a_room_loads_only_what_its_dependencies_load(imported):
    room, members, found = imported
    assert members
    assert found['added'] == [], (
        '%s loads %s, which none of its dependencies %s loads'
        % (room, ', '.join(found['added']), ROOMS[room].allowed))


def test_its_dependencies_load_nothing_it_must_not(imported):
    room, _, found = imported
    assert ROOMS[room].forbidden & set(found['allowance']) == set()


def test_importing_a_room_changes_no_process_state(imported):
    _, _, found = imported
    assert found['changed'] == {}
