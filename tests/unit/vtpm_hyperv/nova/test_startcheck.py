# SPDX-License-Identifier: Apache-2.0
"""VTPMCompute.before_start and reconcile_instances: a VM never starts
without the vTPM its request asks for.

The backend is a recording stand-in whose VM reads are scripted; every
path over the real backend and a dying process is in test_crash.py.
"""

import types

import pytest

from tests.unit.vtpm_hyperv.nova import test_compute as support
from vtpm_core import backend
from vtpm_core import constants
from vtpm_core import sysmeta
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception as nova_vtpm_exc

NOTHING = backend.VMSecurity()  # off, its TPM never enabled
HAS_IT = backend.VMSecurity(tpm=True, encrypted=True, key_protector=True,
                            fabrics=('fabric-a', 'dr'))
RUNNING_UNSHIELDED = backend.VMSecurity(
    off=False, tpm=True, encrypted=True, key_protector=True,
    fabrics=('fabric-a',))
SHIELDED_IMAGE = dict(support.KEYED_IMAGE, image_os_shielded_vm='required')
ADMIN = types.SimpleNamespace(auth_token=None, project_id=None)


class Backend(support.RecordingBackend):
    def __init__(self, *reads):
        super().__init__()
        self.reads = list(reads)

    def vm_security(self, instance_uuid, vm_name):
        self.calls.append(('vm_security',))
        return self.reads.pop(0) if len(self.reads) > 1 else self.reads[0]


def _instance(image):
    inst = support.instance(image)
    inst.metadata = {}
    inst.saved = 0
    inst.save = lambda: setattr(inst, 'saved', inst.saved + 1)
    return inst


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    # notifications go to nova's notifier, not this test's subject
    for name in ('attach', 'attach_failed'):
        monkeypatch.setattr(compute.notifications, name,
                            lambda *a, **k: None)


def test_a_keyless_vtpm_whose_attach_did_not_finish_is_completed():
    be, inst = Backend(NOTHING, HAS_IT), _instance(support.LOCAL_IMAGE)
    compute.VTPMCompute(None, backend=be).before_start(ADMIN, inst, 'vm')
    (attach,) = [c for c in be.calls if c[0] == 'attach']
    assert attach[4] is None  # no secrets: no credentials needed
    assert sysmeta.missing(inst.system_metadata) is None


def test_a_keyed_one_waits_for_its_owner_and_says_so():
    be, inst = Backend(NOTHING), _instance(support.KEYED_IMAGE)
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused) as err:
        compute.VTPMCompute(None, backend=be).before_start(
            ADMIN, inst, 'vm')
    message = err.value.format_message()
    assert 'has its TPM off, no key protector' in message
    assert 'the instance owner starts it' in message
    assert [c[0] for c in be.calls] == ['vm_security']
    # marked, so that the audit sees it
    assert 'TPM off' in sysmeta.missing(inst.system_metadata)
    assert inst.saved == 1


def test_its_owner_completes_it_with_the_owners_credentials():
    be, inst = Backend(NOTHING, HAS_IT), _instance(support.KEYED_IMAGE)
    compute.VTPMCompute(None, backend=be, auth_for=lambda ctx: 'owner-auth'
                        ).before_start(support.CONTEXT, inst, 'vm')
    (attach,) = [c for c in be.calls if c[0] == 'attach']
    assert attach[4] == 'owner-auth'
    assert sysmeta.fabrics(inst.system_metadata) == ('fabric-a', 'dr')


def test_a_running_vm_without_its_shielding_is_not_restarted():
    be, inst = Backend(RUNNING_UNSHIELDED), _instance(SHIELDED_IMAGE)
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused,
                       match='shielding off.*stop the server'):
        compute.VTPMCompute(None, backend=be).before_start(
            support.CONTEXT, inst, 'vm')
    assert [c[0] for c in be.calls] == ['vm_security']


def test_the_recorded_fabrics_follow_the_key_protector():
    be, inst = Backend(HAS_IT), _instance(support.KEYED_IMAGE)
    compute.VTPMCompute(None, backend=be).before_start(ADMIN, inst, 'vm')
    assert sysmeta.fabrics(inst.system_metadata) == ('fabric-a', 'dr')
    assert inst.saved == 1


def test_a_start_by_another_than_the_owner_keeps_a_pending_request():
    be, inst = Backend(HAS_IT), _instance(support.KEYED_IMAGE)
    inst.metadata[constants.METADATA_KEYPROTECTOR] = \
        '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09'
    started = []
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused,
                       match='only the owner'):
        compute.VTPMCompute(None, backend=be).power_on(
            ADMIN, inst, 'vm', lambda: started.append(True))
    assert (started, be.calls, inst.saved) == ([], [], 0)


def test_start_up_marks_what_lacks_its_vtpm_and_clears_the_mark():
    lacking, whole = _instance(support.KEYED_IMAGE), _instance(
        support.KEYED_IMAGE)
    whole.system_metadata[constants.SYSMETA_MISSING] = 'its TPM off'
    no_vtpm = _instance({'image_os_vtpm': 'optional'})
    be = Backend(NOTHING, HAS_IT)
    compute.VTPMCompute(None, backend=be).reconcile_instances(
        ADMIN, [lacking, whole, no_vtpm], lambda i: i.name)
    assert 'no key protector' in sysmeta.missing(lacking.system_metadata)
    assert sysmeta.missing(whole.system_metadata) is None
    assert sysmeta.fabrics(whole.system_metadata) == ('fabric-a', 'dr')
    assert (lacking.saved, whole.saved, no_vtpm.saved) == (1, 1, 0)
    assert [c[0] for c in be.calls] == ['vm_security', 'vm_security']
