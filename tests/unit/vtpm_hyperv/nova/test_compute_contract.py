# SPDX-License-Identifier: Apache-2.0
"""The compute side holds to the backend contract, ``VTPMBackend``.

The rule: every method the nova room (``vtpm_hyperv/nova``) calls on its
backend is an abstract method of ``vtpm_core.backend.VTPMBackend``, called
with the parameters it declares, and what it catches of a backend's
failures are ``vtpm_core.exception`` classes. Checked two ways: read from
the source (every call on ``self.backend`` or ``self._backend``, in every
module of the room), and by driving every path of ``VTPMCompute`` with a
backend that has the contract's methods and nothing else, raising the
core's classes only.
"""

import ast
import datetime
import inspect
import pathlib
import types

from nova.compute import task_states
from nova import exception as nova_exception
import pytest

from vtpm_core import backend
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception as nova_vtpm_exc

ROOM = pathlib.Path(compute.__file__).parent
CONTRACT = backend.VTPMBackend.__abstractmethods__
# how the room names its backend
RECEIVERS = ('backend', '_backend')

KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
REF = '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09'
KEYED = {'image_os_vtpm': 'required', 'image_os_vtpm_keys': KEY,
         'image_hw_machine_type': 'hyperv-gen2'}
LOCAL = {'image_os_vtpm': 'required', 'image_hw_machine_type': 'hyperv-gen2'}


# --- read from the source ---------------------------------------------------

def backend_calls(paths):
    """(file, line, method) for each call on ``self.backend`` or
    ``self._backend`` in ``paths``."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)):
                continue
            receiver = node.func.value
            if (isinstance(receiver, ast.Attribute)
                    and receiver.attr in RECEIVERS
                    and isinstance(receiver.value, ast.Name)
                    and receiver.value.id == 'self'):
                found.append((path.name, node.lineno, node.func.attr))
    return found


def undeclared(calls):
    return [call for call in calls if call[2] not in CONTRACT]


def test_the_room_calls_only_what_the_contract_declares():
    calls = backend_calls(sorted(ROOM.glob('*.py')))
    # the room's calls: attach, detach, get_capabilities, reauthorize and
    # restore_last_known_good, each in compute.py
    assert {method for _, _, method in calls} == CONTRACT
    assert undeclared(calls) == []


@pytest.mark.parametrize('line', [
    'self.backend.refresh_host()',
    'self._backend.reauthorize_all(instance)',
], ids=['through-the-property', 'through-the-attribute'])
def test_an_undeclared_call_added_to_the_room_is_found(tmp_path, line):
    source = (ROOM / 'compute.py').read_text()
    path = tmp_path / 'compute.py'
    path.write_text(source + '\n\ndef f(self, instance):\n    %s\n' % line)
    method = line.split('.')[2].split('(')[0]
    assert method in [name for _, _, name in undeclared(backend_calls([path]))]


# --- driven: a backend with the contract's methods and nothing else ---------

class ContractOnly:
    """A backend that is ``VTPMBackend``'s abstract methods and no more.

    Each call is bound to the method's declared signature (a parameter the
    contract does not declare fails) and answered from ``answers``: a value,
    or a ``vtpm_core.exception`` error to raise. Any other attribute is an
    AttributeError, as on a backend that implements the contract alone.
    """

    def __init__(self, **answers):
        # a VM that has its vTPM, a host with nothing to reconcile
        self._answers = dict({'vm_security': HAS_VTPM,
                              'reconcile': backend.Reconciled()}, **answers)
        self.calls = []

    def __getattr__(self, name):
        if name.startswith('__') or name not in CONTRACT:
            raise AttributeError('%s is not a method of VTPMBackend' % name)
        declared = inspect.signature(getattr(backend.VTPMBackend, name))

        def method(*args, **kwargs):
            declared.bind(self, *args, **kwargs)
            self.calls.append(name)
            answer = self._answers.get(name)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return method


def caps():
    """A guarded, attested host of fabric-a, measured now."""
    return objects.HostCapabilities(
        vtpm_supported=True, guarded=True, attestation_status='Passed',
        fabric_id='fabric-a',
        measured_at=datetime.datetime.now(datetime.timezone.utc))


def instance(sysmeta, metadata=None, task_state=None):
    inst = types.SimpleNamespace(
        uuid='0b7a1c2e-5d4f-4e8a-9c3b-2f1e0d9c8b7a', name='instance-0001',
        host='hv1', task_state=task_state, project_id='p1',
        flavor=types.SimpleNamespace(flavorid='f1', extra_specs={}),
        system_metadata=dict(sysmeta), metadata=dict(metadata or {}))
    inst.save = lambda: None
    return inst


def vtpm(be):
    return compute.VTPMCompute(
        types.SimpleNamespace(host='hv1', shelved_offload_time=0),
        backend=be, auth_for=lambda context: None)


# the owner's request: a token of the instance's project
CONTEXT = types.SimpleNamespace(auth_token='t', project_id='p1')
HAS_VTPM = backend.VMSecurity(tpm=True, encrypted=True, key_protector=True,
                              fabrics=('fabric-a',))
UNFINISHED = backend.VMSecurity()
ATTACHED = backend.AttachResult(fabrics=('fabric-a',))
FAILED = exception.BackendOperationFailed(
    operation='SetKeyProtector', vm='vm', description='Invalid state')
REAUTHORIZE = {constants.METADATA_KEYPROTECTOR: REF}


def _spawn(be, sysmeta=KEYED):
    return vtpm(be).spawn(CONTEXT, instance(sysmeta), 'vm')


def _start_fails():
    raise RuntimeError('the VM did not start')


def _power_on(be, start=lambda: None):
    return vtpm(be).power_on(CONTEXT, instance(
        dict(KEYED, vtpm_fabrics='fabric-a'), REAUTHORIZE), 'vm', start)


# (id, backend answers, what the compute side does, what it raises)
PATHS = [
    ('spawn', {'attach': ATTACHED}, _spawn, None),
    ('spawn, the VM cannot have a vTPM: abort',
     {'attach': exception.UnsupportedVM(vm='vm', reason='Generation 1')},
     _spawn, nova_vtpm_exc.VTPMBuildAborted),
    ('spawn, the host cannot: reschedule',
     {'attach': exception.HostNotSuitable(host='hv1', reason='no fabric')},
     _spawn, exception.HostNotSuitable),
    ('spawn, a step failed: reschedule', {'attach': FAILED}, _spawn,
     exception.BackendOperationFailed),
    ('destroy', {}, lambda be: vtpm(be).destroy(instance(KEYED), 'vm'),
     None),
    ('destroy, a secret is gone',
     {'detach': exception.KeyNotFound(ref=KEY)},
     lambda be: vtpm(be).destroy(instance(KEYED), 'vm'), None),
    ('stats and traits', {'get_capabilities': caps()},
     lambda be: vtpm(be).update_traits(
         types.SimpleNamespace(
             data=lambda node: types.SimpleNamespace(traits=set()),
             add_traits=lambda *a: None, remove_traits=lambda *a: None),
         'hv1'), None),
    ('stats, the host cannot be measured', {'get_capabilities': FAILED},
     lambda be: vtpm(be).stats(), None),
    ('cold migration of a local key protector', {},
     lambda be: vtpm(be).before_move(instance(dict(LOCAL, vtpm_fabrics='')),
                                     None),
     nova_exception.InstanceFaultRollback),
    ('live migration here', {'get_capabilities': caps()},
     lambda be: vtpm(be).before_live_migration_here(
         instance(dict(KEYED, vtpm_fabrics='fabric-a')), host='hv2'), None),
    ('evacuation here', {},
     lambda be: vtpm(be).before_evacuation_here(instance(KEYED)),
     nova_exception.InstanceFaultRollback),
    ('rebuild', {}, lambda be: vtpm(be).before_rebuild(instance(KEYED)),
     nova_exception.InstanceFaultRollback),
    ('shelve', {}, lambda be: vtpm(be).before_power_off(
        instance(KEYED, task_state=task_states.SHELVING)),
     nova_vtpm_exc.VTPMOperationRefused),
    ('start-up: the host', {}, lambda be: vtpm(be).reconcile_host(), None),
    ('start-up: the host cannot be read', {'reconcile': FAILED},
     lambda be: vtpm(be).reconcile_host(), None),
    ('start-up: a VM without its vTPM', {'vm_security': UNFINISHED},
     lambda be: vtpm(be).reconcile_instances(
         CONTEXT, [instance(KEYED)], lambda i: 'vm'), None),
    ('start of a VM whose attach did not finish',
     {'vm_security': UNFINISHED, 'attach': ATTACHED},
     lambda be: vtpm(be).before_start(CONTEXT, instance(KEYED), 'vm'),
     nova_vtpm_exc.VTPMOperationRefused),
    ('power on, nothing pending', {},
     lambda be: vtpm(be).power_on(CONTEXT, instance(KEYED), 'vm',
                                  lambda: None), None),
    ('power on, re-authorized',
     {'reauthorize': (('fabric-a',), ('fabric-a', 'fabric-b'))}, _power_on,
     None),
    ('power on, re-authorization refused',
     {'reauthorize': exception.ReauthorizationNotOff(
         instance='i', ref=REF, reason='the VM is running')}, _power_on,
     nova_vtpm_exc.VTPMOperationRefused),
    ('power on, setting the KeyProtector failed', {'reauthorize': FAILED},
     _power_on, nova_vtpm_exc.VTPMOperationRefused),
    ('power on, the VM did not start: the last known good is back',
     {'reauthorize': (('fabric-a',), ('fabric-b',)),
      'restore_last_known_good': ('fabric-a',)},
     lambda be: _power_on(be, _start_fails),
     nova_vtpm_exc.VTPMOperationRefused),
]


@pytest.mark.parametrize('answers,path,raises', [p[1:] for p in PATHS],
                         ids=[p[0] for p in PATHS])
def test_every_path_runs_on_the_contract_alone(monkeypatch, answers, path,
                                               raises):
    # notifications go to nova's notifier, which is not this test's subject
    for name in ('attach', 'attach_failed', 'reauthorization'):
        monkeypatch.setattr(compute.notifications, name,
                            lambda *a, **k: None)
    be = ContractOnly(**answers)
    if raises is None:
        path(be)
    else:
        with pytest.raises(raises):
            path(be)
    assert set(be.calls) <= CONTRACT


def test_the_paths_call_every_method_of_the_contract(monkeypatch):
    for name in ('attach', 'attach_failed', 'reauthorization'):
        monkeypatch.setattr(compute.notifications, name,
                            lambda *a, **k: None)
    called = set()
    for _, answers, path, _ in PATHS:
        be = ContractOnly(**answers)
        try:
            path(be)
        except (exception.VTPMError, nova_exception.NovaException):
            pass
        called.update(be.calls)
    assert called == CONTRACT


def test_a_compute_side_that_steps_outside_the_contract_fails():
    class Drifted(compute.VTPMCompute):
        def stats(self):
            self.backend.refresh_host()  # no method of VTPMBackend
            return super().stats()

        def destroy(self, instance, vm_name):
            self.backend.detach(instance.uuid, vm_name, force=True)

    be = ContractOnly(get_capabilities=caps())
    with pytest.raises(AttributeError, match='not a method of VTPMBackend'):
        Drifted(None, backend=be).stats()
    with pytest.raises(TypeError, match='force'):
        Drifted(None, backend=be).destroy(instance(KEYED), 'vm')
