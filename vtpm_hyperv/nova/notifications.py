# SPDX-License-Identifier: Apache-2.0
"""Versioned notifications of the vTPM, sent the way nova sends its own.

What an operator would otherwise learn only from a compute's log, each a
versioned notification on nova's notifier (``nova.rpc``, oslo.messaging),
so nova's ``[notifications]`` options apply to them as to nova's own
(``notification_format``: sent when it is ``versioned`` or ``both``;
``versioned_notifications_topics``) and nova's ``NotificationFixture``
captures them in tests:

========================== ======== =========================================
``event_type``             priority when
========================== ======== =========================================
``vtpm.attach.end``        INFO     a spawn applied the VM's KeyProtector and
                                    enabled its vTPM (before power-on)
``vtpm.attach.error``      ERROR    the vTPM attach of a spawn failed; nova
                                    aborts or reschedules the build
``vtpm.reauthorize.end``   INFO     a running instance's KeyProtector was
                                    replaced: its fabrics changed
``vtpm.reauthorize.error`` ERROR    a re-authorization was refused or
                                    undone; the KeyProtector is as it was
``hgs_attestation.update`` WARN     a host's HGS attestation left ``Passed``
                                    (or could no longer be read)
``hgs_attestation.update`` INFO     ... and came back to ``Passed``
========================== ======== =========================================

The names follow nova's ``<object>.<action>[.<phase>]``: the object is
what the event is about (``vtpm``, an instance's vTPM; ``hgs_attestation``,
a host's attestation), the action a verb, the phase nova's ``end`` or
``error`` (nova's ``.error`` events are ERROR, and so are ours). There is no
``.start``: nova's own ``instance.create.start`` precedes an attach. The
publisher is the compute, as nova names it: ``nova-compute:<host>``.

Payloads name things, never hold them: an instance's UUID, a host, fabric
identities (SHA-256 of a guardian's signing certificate), a Barbican
secret's reference, an error's class and message (our messages name the
secret and never quote key material). No key material, no token, no
traceback (a traceback's chained causes are other libraries' text).

Why not nova's own classes: nova's ``EventType.action`` is an enum of
nova's actions (``NotificationActionField``), which has no ``attach`` or
``reauthorize``, and ``NovaObjectRegistry.register_notification`` would put
our payloads in nova's namespace, where nova's object hash table does not
know them. So the pattern is nova's (``NotificationBase`` with
``priority``, ``event_type``, ``publisher`` and a ``payload``;
``NotificationPayloadBase``'s "reset changes after creation"; nova's
``emit``), the objects are ours, registered in our one registry
(``vtpm_core.objects.VTPMObjectRegistry``) in the namespace
``vtpm_notification``: consumer-facing, they version apart from the RPC
objects of ``vtpm_core.objects``, and each table of pinned fingerprints
(``tests/unit/vtpm_hyperv/nova/test_notifications.py``,
``tests/unit/vtpm_core/test_objects.py``) pins its own. The publisher is
nova's ``NotificationPublisher`` itself. Payloads go on the wire as
``obj_to_primitive()``: ``vtpm_object.name``, ``.namespace``, ``.version``,
``.data``.
"""

from __future__ import annotations

from collections.abc import Sequence

from nova import context as nova_context
from nova.notifications.objects import base as nova_notification
from nova.objects import fields as nova_fields
from nova import rpc
from oslo_log import log
from oslo_versionedobjects import base
from oslo_versionedobjects import fields

from vtpm_core import constants
from vtpm_core import fields as vtpm_fields
from vtpm_core import objects as vtpm_objects

LOG = log.getLogger(__name__)


# --- the objects -------------------------------------------------------------

class VTPMNotificationObject(base.VersionedObject):
    OBJ_PROJECT_NAMESPACE = 'vtpm_notification'
    OBJ_SERIAL_NAMESPACE = 'vtpm_object'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Made on the fly to be sent: every field would show as changed,
        # which tells a consumer nothing (nova's NotificationObject).
        self.obj_reset_changes(recursive=False)


class Priority(vtpm_fields.BaseVTPMEnum):
    # the oslo.messaging notifier methods nova calls, by nova's names
    INFO = 'info'
    WARN = 'warn'
    ERROR = 'error'
    ALL = (INFO, WARN, ERROR)


class EventObject(vtpm_fields.BaseVTPMEnum):
    VTPM = 'vtpm'
    HGS_ATTESTATION = 'hgs_attestation'
    ALL = (VTPM, HGS_ATTESTATION)


class Action(vtpm_fields.BaseVTPMEnum):
    ATTACH = 'attach'
    REAUTHORIZE = 'reauthorize'
    UPDATE = 'update'
    ALL = (ATTACH, REAUTHORIZE, UPDATE)


class Phase(vtpm_fields.BaseVTPMEnum):
    # nova's words (nova.objects.fields.NotificationPhase), those we send
    END = 'end'
    ERROR = 'error'
    ALL = (END, ERROR)


class PriorityField(fields.BaseEnumField):
    AUTO_TYPE = Priority()


class EventObjectField(fields.BaseEnumField):
    AUTO_TYPE = EventObject()


class ActionField(fields.BaseEnumField):
    AUTO_TYPE = Action()


class PhaseField(fields.BaseEnumField):
    AUTO_TYPE = Phase()


@vtpm_objects.VTPMObjectRegistry.register
class VTPMEventType(VTPMNotificationObject):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'object': EventObjectField(),
        'action': ActionField(),
        'phase': PhaseField(nullable=True),
    }

    def to_notification_event_type_field(self) -> str:
        """The wire format: ``object.action[.phase]`` (nova's)."""
        parts = [self.object, self.action] + ([self.phase] if self.phase
                                              else [])
        return '.'.join(parts)


@vtpm_objects.VTPMObjectRegistry.register
class VTPMFaultPayload(VTPMNotificationObject):
    """What went wrong: the error's class and message, no traceback."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'exception': fields.StringField(),
        'exception_module': fields.StringField(),
        'exception_message': fields.StringField(),
    }

    @classmethod
    def from_exception(cls, error: BaseException) -> VTPMFaultPayload:
        return cls(exception=type(error).__name__,
                   exception_module=type(error).__module__,
                   exception_message=str(error))


@vtpm_objects.VTPMObjectRegistry.register
class VTPMAttachPayload(VTPMNotificationObject):
    """A spawn's vTPM: applied (``fabrics``) or failed (``fault``)."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'instance_uuid': fields.UUIDField(),
        'host': fields.StringField(),
        # os_shielded_vm=required: Hyper-V runs it as a shielded VM
        'shielded': fields.BooleanField(),
        # The fabrics whose guardians the KeyProtector names; empty for a
        # local key protector, and when the attach failed.
        'fabrics': fields.ListOfStringsField(),
        # The secret the error names (os_vtpm_keys), None when it names none.
        'secret_ref': fields.StringField(nullable=True),
        'fault': fields.ObjectField('VTPMFaultPayload', nullable=True),
    }


@vtpm_objects.VTPMObjectRegistry.register
class VTPMReauthorizationPayload(VTPMNotificationObject):
    """A running instance's request for other fabrics: applied or not."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'instance_uuid': fields.UUIDField(),
        'host': fields.StringField(),
        'applied': fields.BooleanField(),
        # why it was refused (or what was applied), for the operator
        'reason': fields.StringField(nullable=True),
        # the secret with the new KeyProtector the request named
        'secret_ref': fields.StringField(nullable=True),
        'old_fabrics': fields.ListOfStringsField(),
        # what the request asked for; the instance's fabrics if applied
        'new_fabrics': fields.ListOfStringsField(),
        'fault': fields.ObjectField('VTPMFaultPayload', nullable=True),
    }


@vtpm_objects.VTPMObjectRegistry.register
class HGSAttestationPayload(VTPMNotificationObject):
    """A host's HGS attestation crossed ``Passed``, one way or the other."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'host': fields.StringField(),
        # the fabric's guardian identity HGS uses for this host, if known
        'fabric_id': fields.StringField(nullable=True),
        # HGS's words (Passed, Expired, ...); None: the host could not be
        # measured (it then reports no capabilities: fail closed)
        'previous_status': fields.StringField(nullable=True),
        'status': fields.StringField(nullable=True),
        # status == Passed: the host may take keyed and shielded VMs again
        'passed': fields.BooleanField(),
    }


class VTPMNotificationBase(VTPMNotificationObject):
    """nova's ``NotificationBase``: each subclass adds a ``payload``."""

    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = {
        'priority': PriorityField(),
        'event_type': fields.ObjectField('VTPMEventType'),
        # nova's publisher: 'nova-compute:<host>' on the wire
        'publisher': fields.ObjectField('NotificationPublisher'),
    }

    @rpc.if_notifications_enabled
    def emit(self, context):
        """Send it on nova's versioned notifier (nova's ``emit``)."""
        self.payload.obj_reset_changes(recursive=True)
        publisher_id = '%s:%s' % (self.publisher.source, self.publisher.host)
        notifier = rpc.get_versioned_notifier(publisher_id)
        getattr(notifier, self.priority)(
            context,
            event_type=self.event_type.to_notification_event_type_field(),
            payload=self.payload.obj_to_primitive())


@vtpm_objects.VTPMObjectRegistry.register
class VTPMAttachNotification(VTPMNotificationBase):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = dict(VTPMNotificationBase.fields,
                  payload=fields.ObjectField('VTPMAttachPayload'))


@vtpm_objects.VTPMObjectRegistry.register
class VTPMReauthorizationNotification(VTPMNotificationBase):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = dict(VTPMNotificationBase.fields,
                  payload=fields.ObjectField('VTPMReauthorizationPayload'))


@vtpm_objects.VTPMObjectRegistry.register
class HGSAttestationNotification(VTPMNotificationBase):
    # Version 1.0: Initial version
    VERSION = '1.0'

    fields = dict(VTPMNotificationBase.fields,
                  payload=fields.ObjectField('HGSAttestationPayload'))


# --- sending -----------------------------------------------------------------

def _send(context, cls, priority, host, obj, action, phase, payload):
    if rpc.NOTIFIER is None:
        # not inside a nova service (nova.rpc.init not called): no notifier
        LOG.debug('No nova notifier: %(type)s.%(action)s not sent',
                  {'type': obj, 'action': action})
        return
    cls(priority=priority,
        event_type=VTPMEventType(object=obj, action=action, phase=phase),
        publisher=nova_notification.NotificationPublisher(
            host=host, source=nova_fields.NotificationSource.COMPUTE),
        payload=payload).emit(context)


def _fault(error):
    return VTPMFaultPayload.from_exception(error) if error is not None \
        else None


def attach(context, instance, host: str, *, shielded: bool,
           fabrics: Sequence[str]) -> None:
    """``vtpm.attach.end``: the VM of ``instance`` has its KeyProtector."""
    _send(context, VTPMAttachNotification, Priority.INFO, host,
          EventObject.VTPM, Action.ATTACH, Phase.END,
          VTPMAttachPayload(instance_uuid=instance.uuid, host=host,
                            shielded=shielded, fabrics=list(fabrics),
                            secret_ref=None, fault=None))


def attach_failed(context, instance, host: str, *, shielded: bool,
                  error: Exception) -> None:
    """``vtpm.attach.error``: the vTPM attach of a spawn raised ``error``.

    The secret named is the one the error carries (``.ref``, as
    ``vtpm_core.exception.KeyMaterialError`` does), if any.
    """
    _send(context, VTPMAttachNotification, Priority.ERROR, host,
          EventObject.VTPM, Action.ATTACH, Phase.ERROR,
          VTPMAttachPayload(instance_uuid=instance.uuid, host=host,
                            shielded=shielded, fabrics=[],
                            secret_ref=getattr(error, 'ref', None),
                            fault=_fault(error)))


def reauthorization(context, instance, host: str, *, applied: bool,
                    reason: str | None, error: Exception | None,
                    secret_ref: str | None, old_fabrics: Sequence[str],
                    new_fabrics: Sequence[str]) -> None:
    """``vtpm.reauthorize.end`` (``applied``) or ``.error`` (not).

    :param reason: why it was refused or undone (or what was applied).
    :param error: the exception that refused or undid it, if any; its class
        and message become the payload's ``fault``.
    :param secret_ref: the Barbican secret the request named.
    :param old_fabrics: the instance's recorded fabrics before.
    :param new_fabrics: the fabrics the request asked for.
    """
    _send(context, VTPMReauthorizationNotification,
          Priority.INFO if applied else Priority.ERROR, host,
          EventObject.VTPM, Action.REAUTHORIZE,
          Phase.END if applied else Phase.ERROR,
          VTPMReauthorizationPayload(
              instance_uuid=instance.uuid, host=host, applied=applied,
              reason=reason, secret_ref=secret_ref,
              old_fabrics=list(old_fabrics), new_fabrics=list(new_fabrics),
              fault=_fault(error)))


def attestation_update(context, host: str, *, previous_status: str | None,
                       status: str | None, fabric_id: str | None) -> None:
    """``hgs_attestation.update``: WARN when it left Passed, INFO back."""
    passed = status == constants.ATTESTATION_PASSED
    _send(context, HGSAttestationNotification,
          Priority.INFO if passed else Priority.WARN, host,
          EventObject.HGS_ATTESTATION, Action.UPDATE, None,
          HGSAttestationPayload(host=host, fabric_id=fabric_id,
                                previous_status=previous_status,
                                status=status, passed=passed))


class AttestationWatch:
    """Tells each crossing of ``Passed`` by one host's reports, once.

    Fed every capability report the host publishes (None: it could not
    measure). The first report sets what the next ones are compared with:
    a compute that starts unattested sends nothing (its report and the
    scheduler say so), one that loses attestation later sends WARN, and
    INFO when it is back. A change between two other statuses (Expired to
    UnauthorizedHost) is not a crossing.
    """

    def __init__(self, host: str):
        self.host = host
        self._seen = False
        self._status = None
        self._fabric_id = None

    def observe(self, caps) -> None:
        """Take the report ``caps`` (None: not measured) as published."""
        status = caps.attestation_status if caps is not None else None
        fabric_id = caps.fabric_id if caps is not None else None
        previous = self._status
        was_seen, self._seen, self._status = self._seen, True, status
        self._fabric_id = fabric_id or self._fabric_id
        passed = constants.ATTESTATION_PASSED
        if was_seen and (previous == passed) != (status == passed):
            attestation_update(nova_context.get_admin_context(), self.host,
                               previous_status=previous, status=status,
                               fabric_id=self._fabric_id)
