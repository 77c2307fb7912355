# SPDX-License-Identifier: Apache-2.0
"""VTPMCompute.power_on: when a re-authorization runs, and what it records.

The backend is a stand-in that records its calls (the real one over the
simulator: tests/unit/vtpm_hyperv/test_backend_reauthorize.py; end to end:
tests/functional/test_reauthorize.py).
"""

import types

import pytest

from tests.unit.vtpm_hyperv.nova import test_compute as support
from vtpm_core import constants
from vtpm_core import exception
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception as nova_vtpm_exc
from vtpm_hyperv.nova import reauthorize

KEY = constants.METADATA_KEYPROTECTOR
STATUS = constants.METADATA_KEYPROTECTOR_STATUS
REF = '3f1b0c55-7d6a-4c8e-9b2a-5e4d3c2b1a09'
INSTANCE = support.instance(support.KEYED_IMAGE).uuid


class Backend:
    def __init__(self, refuse=None):
        self.refuse = refuse
        self.calls = []

    def reauthorize(self, instance_uuid, vm_name, ref, auth=None):
        self.calls.append(('reauthorize', ref, auth))
        if self.refuse:
            raise self.refuse
        return ('fabric-a',), ('fabric-a', 'fabric-b')

    def restore_last_known_good(self, instance_uuid, vm_name):
        self.calls.append(('restore',))
        return ('fabric-a',)

    def vm_security(self, instance_uuid, vm_name):
        # the VM has its vTPM: the start check lets it start
        return support.backend.VMSecurity(
            tpm=True, encrypted=True, key_protector=True,
            fabrics=('fabric-a',))


def instance(metadata=None, handled=None):
    inst = support.instance(dict(support.KEYED_IMAGE, **{
        constants.SYSMETA_FABRICS: 'fabric-a'}))
    inst.metadata = dict(metadata or {})
    if handled:
        inst.system_metadata[constants.SYSMETA_HANDLED_KEYPROTECTOR] = handled
    inst.saved = 0
    inst.save = lambda: setattr(inst, 'saved', inst.saved + 1)
    return inst


def power_on(inst, be, start=None):
    started = []
    vtpm = compute.VTPMCompute(None, backend=be,
                               auth_for=lambda ctx: support.OWNER)
    outcome = vtpm.power_on(support.CONTEXT, inst, 'vm',
                            start or (lambda: started.append(True)))
    return outcome, started


@pytest.mark.parametrize('metadata,handled', [
    ({}, None),                                    # nothing asked
    ({KEY: REF}, REF),        # asked and handled
], ids=['no request', 'handled before'])
def test_without_a_pending_request_it_only_starts(metadata, handled):
    be, inst = Backend(), instance(metadata, handled)
    outcome, started = power_on(inst, be)
    assert (outcome, started, be.calls, inst.saved) == (None, [True], [], 0)


def test_applied_records_the_new_fabrics_and_starts():
    be, inst = Backend(), instance({KEY: REF})
    outcome, started = power_on(inst, be)
    assert be.calls == [('reauthorize', REF, support.OWNER)]
    assert started == [True]
    assert outcome == reauthorize.Outcome(INSTANCE, REF, reauthorize.APPLIED,
                                          ('fabric-a',),
                                          ('fabric-a', 'fabric-b'))
    assert inst.metadata[STATUS] == 'applied %s' % REF
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == \
        'fabric-a,fabric-b'
    assert inst.system_metadata[constants.SYSMETA_HANDLED_KEYPROTECTOR] == REF


@pytest.mark.parametrize('value', [
    'not-a-uuid',                                  # a name
    'https://barbican.example/v1/secrets/' + REF,  # a URL: any endpoint
    REF + ' ',                                     # not exactly a UUID
], ids=['name', 'url', 'padded'])
def test_a_value_that_is_no_secret_uuid_is_refused_unstarted(value):
    be, inst = Backend(), instance({KEY: value})
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused,
                       match='allowed: one Barbican secret UUID'):
        power_on(inst, be)
    assert be.calls == [] and inst.saved == 1
    assert inst.metadata[STATUS].startswith('refused ')
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == 'fabric-a'


def test_a_refusal_keeps_the_fabrics_and_does_not_start():
    error = exception.ReauthorizationDropsFabric(
        instance=INSTANCE, ref=REF, reason='it does not name fabric a')
    be, inst = Backend(refuse=error), instance({KEY: REF})
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused) as err:
        power_on(inst, be, start=pytest.fail)
    assert str(err.value) == str(error)
    assert inst.metadata[STATUS] == \
        'refused %s: it does not name fabric a' % REF
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == 'fabric-a'
    assert inst.system_metadata[constants.SYSMETA_HANDLED_KEYPROTECTOR] == REF


def test_a_failed_start_restores_the_last_known_good():
    be, inst = Backend(), instance({KEY: REF})

    def start():
        raise RuntimeError('could not be unwrapped')
    with pytest.raises(nova_vtpm_exc.VTPMOperationRefused,
                       match='last known good KeyProtector restored: '
                             'could not be unwrapped'):
        power_on(inst, be, start=start)
    assert [c[0] for c in be.calls] == ['reauthorize', 'restore']
    assert inst.system_metadata[constants.SYSMETA_FABRICS] == 'fabric-a'
    assert inst.metadata[STATUS] == \
        'restored %s: could not be unwrapped' % REF


def test_the_status_fits_novas_metadata_limit():
    outcome = reauthorize.Outcome(INSTANCE, REF, reauthorize.REFUSED,
                                  reason='x' * 1000)
    assert len(outcome.status) == reauthorize.MAX_STATUS
    assert outcome.status.endswith('...')


def test_a_failed_outcome_names_the_error_class_and_its_reason():
    error = exception.ReauthorizationOwnerChanged(
        instance=INSTANCE, ref=REF, reason='owner')
    outcome = reauthorize.Outcome.failed(
        types.SimpleNamespace(uuid=INSTANCE), REF, reauthorize.REFUSED,
        error)
    assert outcome.error_class == 'ReauthorizationOwnerChanged'
    assert outcome.message == str(error) and outcome.reason == 'owner'
    assert outcome.error is error
