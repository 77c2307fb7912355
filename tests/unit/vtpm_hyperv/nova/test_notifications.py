# SPDX-License-Identifier: Apache-2.0
"""The vTPM's versioned notifications: objects, what each call sends, and
when the compute side sends them.

Each notification goes through nova's own versioned notifier path
(``nova.rpc``: ``if_notifications_enabled``, ``get_versioned_notifier``)
into nova's ``FakeVersionedNotifier`` with nova's serializer; the
re-authorization's are checked against their documented samples here, the
others in tests/functional/test_notifications.py.
"""

import datetime

import nova.conf
from nova import context as nova_context
from nova import rpc
from nova.tests.fixtures import notifications as nova_notifications
from oslo_versionedobjects import base
from oslo_versionedobjects import fixture
import pytest

from tests import notification_samples as samples
from tests.unit.vtpm_hyperv.nova import test_compute as support
from tests.unit.vtpm_hyperv.nova import test_driver
from vtpm_core import exception
from vtpm_core import objects
from vtpm_hyperv.nova import compute
from vtpm_hyperv.nova import driver
from vtpm_hyperv.nova import exception as nova_vtpm_exc
from vtpm_hyperv.nova import notifications

CONF = nova.conf.CONF
INSTANCE = support.instance(support.KEYED_IMAGE)
SECRET = support.KEY

# Changing a field of one of these objects changes its fingerprint. When this
# test fails, bump the object's VERSION, add a '# Version' line (and an
# obj_make_compatible step), regenerate the samples and update the hash here.
# (oslo's fingerprint of an ObjectField does not name the object, so the
# three notifications hash alike; their payloads do not.)
EXPECTED_FINGERPRINTS = {
    'HGSAttestationNotification': '1.0-24df59fea112c625fe55d84a04b57ce3',
    'HGSAttestationPayload': '1.0-49001bb9746490e19cda99e992ff50f2',
    'VTPMAttachNotification': '1.0-24df59fea112c625fe55d84a04b57ce3',
    'VTPMAttachPayload': '1.0-c2b6eb186fc11262a58d5de1718e157a',
    'VTPMEventType': '1.0-d0ff1d4f5e86cf4faac753acaf69a814',
    'VTPMFaultPayload': '1.0-08ccdb9ff130b0011f6b8bb62b3c0995',
    'VTPMReauthorizationNotification': '1.0-24df59fea112c625fe55d84a04b57ce3',
    'VTPMReauthorizationPayload': '1.0-6742c82221edc08c4b78e8c88d8d18af',
}


def _our_classes():
    return {name: classes for name, classes in
            base.VersionedObjectRegistry.obj_classes().items()
            if classes[0].OBJ_PROJECT_NAMESPACE == 'vtpm_notification'}


def test_fingerprints_are_pinned():
    checker = fixture.ObjectVersionChecker(_our_classes())
    expected, actual = checker.test_hashes(EXPECTED_FINGERPRINTS)
    assert expected == actual, (
        'a vtpm notification object changed without a version bump: %s'
        % actual)


def test_names_do_not_collide_with_novas():
    """The class table is process-wide: a name nova uses (EventType,
    ExceptionPayload ...) would share nova's list of versions."""
    for name in _our_classes():
        namespaces = {c.OBJ_PROJECT_NAMESPACE for c in
                      base.VersionedObjectRegistry.obj_classes()[name]}
        assert namespaces == {'vtpm_notification'}, name


# --- sending -----------------------------------------------------------------

@pytest.fixture
def notifier(monkeypatch):
    """nova's fake versioned notifier behind nova.rpc, with nova's
    serializer, and [notifications] notification_format = versioned."""
    fake = nova_notifications.FakeVersionedNotifier(
        None, 'nova-compute',
        serializer=rpc.RequestContextSerializer(rpc.JsonPayloadSerializer()),
        test_case_id='vtpm')
    # nova 27's fake takes a notification from a greenlet that carries the
    # test's id only (nova 34's checks no id in its threading mode)
    green = getattr(nova_notifications, 'eventlet', None)
    if green is not None:
        monkeypatch.setattr(green.getcurrent(), 'test_case_id', 'vtpm',
                            raising=False)
    monkeypatch.setattr(rpc, 'NOTIFIER', fake)
    CONF.set_override('notification_format', 'versioned',
                      group='notifications')
    yield fake
    CONF.clear_override('notification_format', group='notifications')


def only(notifier):
    (sent,) = notifier.versioned_notifications
    return sent


def data(sent):
    """The payload's fields, nested objects as their fields too."""
    def unwrap(value):
        if isinstance(value, dict) and 'vtpm_object.data' in value:
            return {k: unwrap(v) for k, v in
                    value['vtpm_object.data'].items()}
        return value
    return unwrap(sent['payload'])


def envelope(sent):
    return sent['event_type'], sent['priority'], sent['publisher_id']


def test_attach_sends_the_fabrics_as_the_compute_host(notifier):
    notifications.attach(nova_context.get_admin_context(), INSTANCE, 'hv1',
                         shielded=True, fabrics=('fabric-a', 'dr'))
    sent = only(notifier)
    assert envelope(sent) == ('vtpm.attach.end', 'INFO', 'nova-compute:hv1')
    assert sent['payload']['vtpm_object.name'] == 'VTPMAttachPayload'
    assert sent['payload']['vtpm_object.namespace'] == 'vtpm_notification'
    # a freshly made payload lists no changed fields (nova's convention)
    assert 'vtpm_object.changes' not in sent['payload']
    assert data(sent) == {'instance_uuid': INSTANCE.uuid, 'host': 'hv1',
                          'shielded': True, 'fabrics': ['fabric-a', 'dr'],
                          'secret_ref': None, 'fault': None}


def test_attach_failed_names_the_secret_and_the_error_class(notifier):
    error = exception.KeyAccessDenied(ref=SECRET)
    notifications.attach_failed(nova_context.get_admin_context(), INSTANCE,
                                'hv1', shielded=False, error=error)
    sent = only(notifier)
    assert envelope(sent) == ('vtpm.attach.error', 'ERROR',
                              'nova-compute:hv1')
    assert data(sent)['secret_ref'] == SECRET
    assert data(sent)['fabrics'] == []
    assert data(sent)['fault'] == {
        'exception': 'KeyAccessDenied',
        'exception_module': 'vtpm_core.exception',
        'exception_message': str(error)}


def test_attach_failed_without_a_secret_names_none(notifier):
    error = exception.InvalidKeySet(reason='no owner')
    notifications.attach_failed(nova_context.get_admin_context(), INSTANCE,
                                'hv1', shielded=False, error=error)
    assert data(only(notifier))['secret_ref'] is None


FABRIC_A, FABRIC_B = samples.fabric_id('fabric-a'), samples.fabric_id(
    'fabric-b')
REFUSAL = ("the new KeyProtector's owner is not the instance's: a "
           "re-authorization keeps the owner")


@pytest.mark.parametrize('applied, event_type, priority, sample', [
    # the KeyProtector was replaced: the instance's fabrics changed
    (True, 'vtpm.reauthorize.end', 'INFO', 'vtpm-reauthorize-end'),
    # refused before anything changed, or undone (last known good)
    (False, 'vtpm.reauthorize.error', 'ERROR', 'vtpm-reauthorize-error'),
], ids=['applied-is-end-info', 'refused-is-error-error'])
def test_reauthorization(notifier, applied, event_type, priority, sample):
    """Direct calls, as the re-authorization hooks make them; each checked
    against its documented sample."""
    error = None if applied else exception.OperationRefused(
        operation='re-authorization', instance=INSTANCE.uuid,
        reason=REFUSAL)
    notifications.reauthorization(
        nova_context.get_admin_context(), INSTANCE, 'hyperv-a1',
        applied=applied, reason=None if applied else REFUSAL, error=error,
        secret_ref=SECRET, old_fabrics=[FABRIC_A],
        new_fabrics=[FABRIC_A, FABRIC_B])
    sent = only(notifier)
    assert envelope(sent) == (event_type, priority,
                              'nova-compute:hyperv-a1')
    payload = data(sent)
    assert payload['applied'] is applied
    assert payload['secret_ref'] == SECRET
    assert (payload['old_fabrics'], payload['new_fabrics']) == (
        [FABRIC_A], [FABRIC_A, FABRIC_B])
    if applied:
        assert payload['fault'] is None and payload['reason'] is None
    else:
        assert payload['reason'] == REFUSAL
        assert payload['fault']['exception'] == 'OperationRefused'
        assert REFUSAL in payload['fault']['exception_message']
    samples.check(sample, sent, {samples.INSTANCE_UUID: INSTANCE.uuid,
                                 samples.SECRET_REF: SECRET})


def test_a_refusal_without_an_exception_has_no_fault(notifier):
    notifications.reauthorization(
        nova_context.get_admin_context(), INSTANCE, 'hv1', applied=False,
        reason='the VM is running; stop it first', error=None,
        secret_ref=None, old_fabrics=[], new_fabrics=[])
    payload = data(only(notifier))
    assert payload['fault'] is None and payload['secret_ref'] is None


@pytest.mark.parametrize('status, priority', [
    ('Expired', 'WARN'),  # left Passed
    ('Passed', 'INFO'),   # back
    (None, 'WARN'),       # could not be measured
], ids=['lost-is-warn', 'back-is-info', 'unmeasured-is-warn'])
def test_attestation_update(notifier, status, priority):
    previous = 'Expired' if status == 'Passed' else 'Passed'
    notifications.attestation_update(
        nova_context.get_admin_context(), 'hv1', previous_status=previous,
        status=status, fabric_id='fabric-a')
    sent = only(notifier)
    assert envelope(sent) == ('hgs_attestation.update', priority,
                              'nova-compute:hv1')
    assert data(sent) == {'host': 'hv1', 'fabric_id': 'fabric-a',
                          'previous_status': previous, 'status': status,
                          'passed': status == 'Passed'}


def test_nothing_is_sent_unless_nova_sends_versioned(notifier):
    """nova's [notifications] notification_format applies to ours."""
    CONF.set_override('notification_format', 'unversioned',
                      group='notifications')
    notifications.attach(nova_context.get_admin_context(), INSTANCE, 'hv1',
                         shielded=False, fabrics=())
    assert notifier.versioned_notifications == []


def test_outside_a_nova_service_nothing_is_sent(monkeypatch):
    # nova.rpc.init() was never called: there is no notifier to send on
    monkeypatch.setattr(rpc, 'NOTIFIER', None)
    notifications.attach(nova_context.get_admin_context(), INSTANCE, 'hv1',
                         shielded=False, fabrics=())


# --- when the compute side sends them ----------------------------------------

def vtpm(backend):
    return compute.VTPMCompute(None, backend=backend, host='hv1')


def test_a_spawn_sends_attach_end_after_the_attach(notifier):
    vtpm(support.RecordingBackend()).spawn(
        support.CONTEXT, support.instance(support.KEYED_IMAGE), 'vm')
    sent = only(notifier)
    assert sent['event_type'] == 'vtpm.attach.end'
    assert data(sent)['fabrics'] == ['fabric-a', 'dr']
    assert data(sent)['shielded'] is False


@pytest.mark.parametrize('error, raised', [
    # another host cannot fix it: the build is aborted
    (exception.KeyNotFound(ref=SECRET), nova_vtpm_exc.VTPMBuildAborted),
    # another host may: nova reschedules
    (exception.KeyManagerUnavailable(ref=SECRET, reason='refused'),
     exception.KeyManagerUnavailable),
], ids=['aborted', 'rescheduled'])
def test_a_failed_attach_sends_attach_error_and_raises_as_before(
        notifier, error, raised):
    with pytest.raises(raised):
        vtpm(support.RecordingBackend(fail=error)).spawn(
            support.CONTEXT, support.instance(support.KEYED_IMAGE), 'vm')
    sent = only(notifier)
    assert sent['event_type'] == 'vtpm.attach.error'
    assert data(sent)['secret_ref'] == SECRET
    assert data(sent)['fault']['exception'] == type(error).__name__


def test_the_mixin_publishes_as_the_host_nova_started_it_for():
    class Driver(driver.VTPMDriverMixin, test_driver.RecordingDriver):
        def vtpm_compute(self):
            # the mixin's own, over a backend that needs no Windows host
            # (init_host reconciles the host)
            vtpm = super().vtpm_compute()
            vtpm._backend = support.RecordingBackend()
            return vtpm

    composed = Driver([])
    composed.init_host('hyperv-b7')
    assert composed.vtpm.host == 'hyperv-b7'


def test_a_spawn_without_a_vtpm_sends_nothing(notifier):
    vtpm(support.RecordingBackend()).spawn(
        support.CONTEXT, support.instance({'image_os_vtpm': 'optional'}),
        'vm')
    assert notifier.versioned_notifications == []


def reports(*statuses):
    """Capability reports with these statuses; None: the host cannot
    measure."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return [exception.VTPMError('HGS client unreachable') if s is None else
            objects.HostCapabilities(vtpm_supported=True, guarded=True,
                                     attestation_status=s, fabric_id='fab',
                                     measured_at=now)
            for s in statuses]


@pytest.mark.parametrize('statuses, expected', [
    # the first report sets the baseline, even when it is not Passed
    (['Passed'], []),
    (['Expired', 'Expired'], []),
    # one notification per crossing, however many reports stay there
    (['Passed', 'Expired', 'Expired', 'Passed', 'Passed'],
     [('Passed', 'Expired', 'WARN'), ('Expired', 'Passed', 'INFO')]),
    # between two statuses that are not Passed: no crossing
    (['Passed', 'Expired', 'UnauthorizedHost'],
     [('Passed', 'Expired', 'WARN')]),
    # a host that cannot measure has left Passed too (it reports nothing)
    (['Passed', None, 'Passed'],
     [('Passed', None, 'WARN'), (None, 'Passed', 'INFO')]),
    (['Expired', 'Passed'], [('Expired', 'Passed', 'INFO')]),
], ids=['baseline-passed', 'baseline-not-passed', 'lost-and-back-once',
        'not-passed-to-not-passed', 'unmeasured', 'first-pass'])
def test_a_report_that_crosses_passed_sends_one_update(
        notifier, statuses, expected):
    """Rule: one hgs_attestation.update per report whose status is Passed
    when the previous report's was not, or the other way round."""
    backend = support.RecordingBackend()
    host = vtpm(backend)
    for caps in reports(*statuses):
        backend.caps = caps
        host.stats()
    got = [(d['previous_status'], d['status'], n['priority'])
           for n in notifier.versioned_notifications for d in [data(n)]]
    assert got == expected
    assert all(data(n)['fabric_id'] == 'fab' and data(n)['host'] == 'hv1'
               for n in notifier.versioned_notifications)


# --- the samples -------------------------------------------------------------

def test_a_sample_check_fails_on_any_other_value(notifier, monkeypatch):
    monkeypatch.delenv('VTPM_WRITE_SAMPLES', raising=False)
    notifications.attestation_update(
        nova_context.get_admin_context(), 'hyperv-a1',
        previous_status='Passed', status='Expired', fabric_id='fabric-a')
    sent = only(notifier)
    volatile = {samples.fabric_id('fabric-a'): 'fabric-a'}
    samples.check('hgs_attestation-update-lost', sent, volatile)
    sent['payload']['vtpm_object.data']['status'] = 'TpmError'
    with pytest.raises(AssertionError, match='differs'):
        samples.check('hgs_attestation-update-lost', sent, volatile)
    # a placeholder the sample does not have is a mistake in the test
    with pytest.raises(AssertionError, match='lacks'):
        samples.check('hgs_attestation-update-lost', sent,
                      {'no-such-placeholder': 'x'})


def test_every_sample_is_documented_and_checked():
    documented = (samples.SAMPLES.parent / 'source' / 'admin' /
                  'notifications.rst').read_text()
    tests = ''.join(p.read_text() for p in (
        samples.SAMPLES.parents[1] / 'tests').rglob('test_*.py'))
    names = sorted(p.stem for p in samples.SAMPLES.glob('*.json'))
    assert len(names) == 6
    for name in names:
        assert ('notification_samples/%s.json' % name) in documented, name
        assert ("'%s'" % name) in tests, name
