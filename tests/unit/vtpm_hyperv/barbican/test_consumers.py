# SPDX-License-Identifier: Apache-2.0
"""Secret consumers: the key source's requests (against the local stub,
which answers as Barbican's API reference says), the policy of
``vtpm_hyperv.barbican.consumers``, and where the compute side calls it.

The real Barbican's answers (its 400 for a delete of a secret in use, its
policy) are in tests/functional/barbican/test_consumers_real.py.
"""

import logging
import types

from nova.compute import task_states
from nova.compute import vm_states
import pytest

from tests.fixtures import barbican_stub as stub_server
from tests.unit.vtpm_hyperv.barbican import test_key_source as reads
from tests.unit.vtpm_hyperv.nova import test_compute as support
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import sysmeta
from vtpm_hyperv.barbican import conf as barbican_conf
from vtpm_hyperv.barbican import consumers
from vtpm_hyperv.barbican import exception as barbican_exception
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import exception as nova_vtpm_exc

INSTANCE = '0b7a1c2e-5d4f-4e8a-9c3b-2f1e0d9c8b7a'
NOVA = {'service': 'nova', 'resource_type': 'instance',
        'resource_id': INSTANCE}


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warnings afresh."""
    monkeypatch.setattr(consumers, '_warned', set())


# --- the key source's requests -----------------------------------------------

def test_register_posts_the_instance_to_each_secret_at_microversion_1_2(
        source, stub):
    refs = reads._refs(3)

    source.register_consumer(refs, INSTANCE, auth=reads._auth())

    assert {r: stub.consumers[r] for r in refs} == {r: [NOVA] for r in refs}
    posts = [(m, r) for m, r, _ in stub.consumer_calls]
    assert posts == [('POST', r) for r in refs]
    sent = [h for path, h in stub.hits if path.endswith('/consumers/')
            or path.endswith('/consumers')]
    assert {h['X-Auth-Token'] for h in sent} == {reads.TOKEN}
    assert {h['OpenStack-API-Version'] for h in sent} == {
        'key-manager 1.2'}


def test_register_twice_keeps_one_registration(source, stub):
    ref, = reads._refs(1)
    source.register_consumer([ref], INSTANCE, auth=reads._auth())
    source.register_consumer([ref], INSTANCE, auth=reads._auth())
    assert stub.consumers[ref] == [NOVA]


def test_a_refusal_names_the_secret_and_undoes_what_was_registered(
        source, stub):
    refs = reads._refs(3)
    stub.consumer_script[refs[1]] = [403]

    with pytest.raises(barbican_exception.ConsumerRefused) as e:
        source.register_consumer(refs, INSTANCE, auth=reads._auth())

    # a refusal: the compute side aborts the build for it
    assert isinstance(e.value, exception.KeyAccessDenied)
    assert refs[1] in str(e.value) and INSTANCE in str(e.value)
    assert 'HTTP 403' in str(e.value)
    assert all(stub.consumers[r] == [] for r in refs)
    assert [(m, r) for m, r, _ in stub.consumer_calls] == [
        ('POST', refs[0]), ('POST', refs[1]), ('DELETE', refs[0])]


def test_a_barbican_that_stays_down_is_unavailable_after_retries(
        conf, source, stub):
    conf.set_override('status_code_retries', 1, barbican_conf.GROUP)
    refs = reads._refs(2)
    stub.consumer_script[refs[1]] = [503]

    with pytest.raises(barbican_exception.ConsumerFailed) as e:
        source.register_consumer(refs, INSTANCE, auth=reads._auth())

    # another host may find Barbican: nova may reschedule
    assert isinstance(e.value, exception.KeyManagerUnavailable)
    assert 'HTTP 503 after 1 retries' in str(e.value)
    assert stub.consumers[refs[0]] == []
    assert [m for m, r, _ in stub.consumer_calls if r == refs[1]] == [
        'POST', 'POST']


def test_a_secret_deleted_before_its_registration_is_not_found(
        source, stub):
    ref, = reads._refs(1)
    stub.consumer_script[ref] = [404]
    with pytest.raises(exception.KeyNotFound) as e:
        source.register_consumer([ref], INSTANCE, auth=reads._auth())
    assert ref in str(e.value)


def test_an_older_barbican_is_told_apart_before_any_request(source, stub):
    stub.versions = stub_server.OLD_VERSIONS
    ref, = reads._refs(1)

    with pytest.raises(barbican_exception.ConsumersUnsupported) as e:
        source.register_consumer([ref], INSTANCE, auth=reads._auth())

    assert 'microversion 1.0' in str(e.value)
    assert 'needs microversion 1.2' in str(e.value)
    assert stub.consumer_calls == []


def test_a_barbican_with_consumers_but_no_delete_refusal_is_told_apart(
        source, stub):
    # Barbican at 1.1 has the consumer API, but deletes a secret in use
    stub.versions = {'versions': [dict(stub_server.VERSIONS['versions'][0],
                                       max_version='1.1')]}
    ref, = reads._refs(1)

    with pytest.raises(barbican_exception.ConsumersUnsupported) as e:
        source.register_consumer([ref], INSTANCE, auth=reads._auth())

    assert 'microversion 1.1;' in str(e.value)
    assert stub.consumer_calls == []


def test_remove_counts_a_registration_already_gone_as_removed(source, stub):
    refs = reads._refs(2)
    source.register_consumer(refs[:1], INSTANCE, auth=reads._auth())

    source.remove_consumer(refs, INSTANCE, auth=reads._auth())

    assert stub.consumers[refs[0]] == []
    assert [(m, r) for m, r, _ in stub.consumer_calls][1:] == [
        ('DELETE', refs[0]), ('DELETE', refs[1])]


def test_remove_goes_past_a_refusal_and_raises_it_after(source, stub):
    refs = reads._refs(2)
    source.register_consumer(refs, INSTANCE, auth=reads._auth())
    stub.consumer_script[refs[0]] = [403]

    with pytest.raises(barbican_exception.ConsumerRefused) as e:
        source.remove_consumer(refs, INSTANCE, auth=reads._auth())

    assert 'remove' in str(e.value) and refs[0] in str(e.value)
    assert stub.consumers == {refs[0]: [NOVA], refs[1]: []}


def test_no_credentials_no_request(source, stub):
    with pytest.raises(exception.KeySourceNotConfigured):
        source.register_consumer(reads._refs(1), INSTANCE)
    assert stub.hits == []


def test_the_token_never_reaches_a_log(source, stub, caplog):
    caplog.set_level(logging.DEBUG)
    refs = reads._refs(2)
    stub.consumer_script[refs[1]] = [403]
    with pytest.raises(barbican_exception.ConsumerRefused):
        source.register_consumer(refs, INSTANCE, auth=reads._auth())
    del stub.consumer_script[refs[1]]
    source.remove_consumer(refs, INSTANCE, auth=reads._auth())
    assert caplog.records
    assert reads.TOKEN not in caplog.text


# --- the policy --------------------------------------------------------------

class Recorder:
    """A key source collaborator: the consumer calls, failures on request."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail or {}

    def register_consumer(self, refs, instance_uuid, auth=None):
        self._call('register', refs, instance_uuid, auth)

    def remove_consumer(self, refs, instance_uuid, auth=None):
        self._call('remove', refs, instance_uuid, auth)

    def _call(self, action, refs, instance_uuid, auth):
        self.calls.append((action, tuple(refs), instance_uuid, auth))
        if action in self.fail:
            raise self.fail[action]


def _instance(keys=(), **states):
    inst = types.SimpleNamespace(
        uuid=INSTANCE, system_metadata={}, deleted=False, task_state=None,
        vm_state=vm_states.ACTIVE)
    if keys:
        sysmeta.set_keys(inst.system_metadata, keys)
    for name, value in states.items():
        setattr(inst, name, value)
    return inst


UNSUPPORTED = barbican_exception.ConsumersUnsupported(
    endpoint='http://barbican', version='1.0', needed='1.2',
    instance=INSTANCE, ref='r')
REFUSED = barbican_exception.ConsumerRefused(
    action='register', instance=INSTANCE, ref='r', status=403,
    credentials="the instance owner's token")


def test_registered_records_the_secrets_and_registers_them():
    source, inst, refs = Recorder(), _instance(), reads._refs(2)
    consumers.registered(source, inst, refs, support.OWNER)
    assert sysmeta.keys(inst.system_metadata) == tuple(refs)
    assert source.calls == [('register', tuple(refs), INSTANCE,
                             support.OWNER)]


def test_an_older_barbican_is_a_warning_once_and_the_build_goes_on(caplog):
    caplog.set_level(logging.DEBUG, logger=consumers.__name__)
    source = Recorder({'register': UNSUPPORTED})
    for _ in range(3):
        inst = _instance()
        consumers.registered(source, inst, reads._refs(1), support.OWNER)
        assert sysmeta.keys(inst.system_metadata)
    levels = [r.levelno for r in caplog.records if 'microversion' in
              r.getMessage()]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]


def test_a_failed_registration_fails_the_call():
    with pytest.raises(barbican_exception.ConsumerRefused):
        consumers.registered(Recorder({'register': REFUSED}), _instance(),
                             reads._refs(1), support.OWNER)


def test_without_owner_credentials_nothing_is_registered(caplog):
    source = Recorder()
    consumers.registered(source, _instance(), reads._refs(1), None)
    assert source.calls == []
    assert 'No instance owner credentials' in caplog.text


def test_reauthorized_moves_the_instance_onto_the_new_secret():
    old, new = reads._refs(2), reads._refs(1)[0]
    source, inst = Recorder(), _instance(old)
    consumers.reauthorized(source, inst, new, support.OWNER)
    assert sysmeta.keys(inst.system_metadata) == (new,)
    assert source.calls == [
        ('register', (new,), INSTANCE, support.OWNER),
        ('remove', tuple(old), INSTANCE, support.OWNER)]


def test_a_failed_reauthorized_registration_keeps_the_old_ones(caplog):
    old, new = reads._refs(2), reads._refs(1)[0]
    source, inst = Recorder({'register': REFUSED}), _instance(old)
    consumers.reauthorized(source, inst, new, support.OWNER)
    assert [c[0] for c in source.calls] == ['register']
    assert sysmeta.keys(inst.system_metadata) == (new,)
    assert 'stays one of' in caplog.text


def test_removed_leaves_what_barbican_refuses_and_says_how(caplog):
    refs = reads._refs(2)
    source = Recorder({'remove': REFUSED})
    consumers.removed(source, _instance(refs), support.OWNER)
    assert source.calls == [('remove', tuple(refs), INSTANCE, support.OWNER)]
    assert 'openstack secret consumer delete' in caplog.text


# --- where the compute side calls it -----------------------------------------

class Backend(support.RecordingBackend):
    def __init__(self, source, **kwargs):
        super().__init__(**kwargs)
        self.key_source = source


def _compute(source):
    return compute.VTPMCompute(None, backend=Backend(source),
                               auth_for=lambda ctx: support.OWNER)


def test_spawn_registers_the_keys_after_the_attach():
    source = Recorder()
    inst = support.instance(support.KEYED_IMAGE)
    _compute(source).spawn(support.CONTEXT, inst, 'vm')
    assert source.calls == [('register', (support.KEY,), inst.uuid,
                             support.OWNER)]
    assert inst.system_metadata[constants.SYSMETA_KEYS] == support.KEY


@pytest.mark.parametrize('error,raised', [
    (REFUSED, nova_vtpm_exc.VTPMBuildAborted),
    (barbican_exception.ConsumerFailed(action='register', instance=INSTANCE,
                                       ref='r', reason='HTTP 503'),
     barbican_exception.ConsumerFailed),
], ids=['refused-aborts', 'unavailable-reschedules'])
def test_a_failed_registration_fails_the_build(error, raised):
    inst = support.instance(support.KEYED_IMAGE)
    with pytest.raises(raised):
        _compute(Recorder({'register': error})).spawn(support.CONTEXT, inst,
                                                      'vm')


@pytest.mark.parametrize('states,removed', [
    ({'task_state': task_states.DELETING}, True),
    ({'vm_state': vm_states.SOFT_DELETED}, True),     # reclaimed
    ({'deleted': True}, True),                        # reaped
    ({'vm_state': vm_states.BUILDING}, True),         # failed build
    ({}, False),                        # an evacuated instance's cleanup
    ({'vm_state': vm_states.RESIZED}, False),         # a resize reverted
    ({'task_state': task_states.REBUILDING}, False),
], ids=['delete', 'reclaim', 'reap', 'failed-build', 'evacuated',
        'revert-resize', 'rebuild'])
def test_destroy_removes_the_consumer_only_when_the_instance_ends(
        states, removed):
    source, refs = Recorder(), reads._refs(1)
    inst = _instance(refs, **states)
    _compute(source).destroy(inst, 'vm', support.CONTEXT)
    assert source.calls == ([('remove', tuple(refs), INSTANCE,
                              support.OWNER)] if removed else [])
