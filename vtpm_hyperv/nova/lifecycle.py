# SPDX-License-Identifier: Apache-2.0
"""What each nova operation may do to a vTPM instance, and the early refusal.

Hyper-V keeps a VM's vTPM state and its KeyProtector in the VM's
configuration. Three facts follow, and the table below is built on them:

- whatever carries the configuration (resize, cold and live migration)
  carries the vTPM and the KeyProtector with it;
- a destination can run the VM only if it can unwrap the KeyProtector: a
  guarded, attested host of a fabric the KeyProtector names (keys,
  shielding, or no keys on a guarded host, whose KeyProtector names the
  fabric); a local key protector (no keys, on a host in local mode) opens
  on its own host only;
- whatever recreates the VM from a disk or an image (evacuate, rebuild,
  unshelve after an offload) starts an empty vTPM: the secrets the guest
  sealed to the old one (BitLocker's keys, for example) are lost.

``RULES`` is the table: ``check`` applies it and raises ``OperationRefused``
before the operation changes anything, and the admin guide
(``doc/source/admin/lifecycle.rst``) renders it. This module does no I/O:
``vtpm_hyperv.nova.compute`` gathers the facts at the first driver call nova
makes for each operation.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects

# Operations, as nova's API names them.
SNAPSHOT = 'snapshot'
RESIZE = 'resize'
MIGRATE = 'cold migration'
LIVE_MIGRATE = 'live migration'
EVACUATE = 'evacuation'
REBUILD = 'rebuild'
SHELVE = 'shelve'
SHELVE_OFFLOAD = 'shelve offload'
UNSHELVE = 'unshelve'
RESCUE = 'rescue'

# What an instance has, for the table's columns.
NONE = 'no vTPM'
LOCAL = 'vTPM, local key protector (no keys, host in local mode)'
KEYED = ('vTPM, HGS KeyProtector (keys, shielded, or no keys on a guarded '
         'host)')

# Decisions, as the documentation prints them; check() gives each its
# meaning.
ALLOWED = 'allowed'
REFUSED = 'refused'
SAME_HOST = 'allowed on the same host only'
IN_FABRICS = 'allowed to a guarded, attested host of its fabrics'
NEW_VTPM = 'allowed; starts an empty vTPM'
NOT_OFFLOADED = ('refused, unless [DEFAULT] shelved_offload_time = -1 keeps '
                 'it on its host')

# Why a move of a local key protector is refused.
_LOCAL_ONLY = ('its vTPM has a local key protector that only host %%(host)s '
               'can open (%s is absent); keep it there, or use an image '
               'with %s' % (
                   exception.named(constants.IMAGE_VTPM_KEYS,
                                   constants.IMAGE),
                   constants.IMAGE_VTPM_KEYS))
# Why a shelve that offloads is refused.
_SHELVE_REFUSAL = ('the offload would destroy the vTPM state (unshelve starts '
                   'an empty vTPM); stop the server instead, or set [DEFAULT] '
                   'shelved_offload_time = -1 to keep shelved VMs on their '
                   'host')
# Why a destination that is not IN_FABRICS is refused.
_CANNOT_UNWRAP = ('destination %(destination)s cannot unwrap its '
                  'KeyProtector: %(reason)s')


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row of the decision table (the admin guide renders ``RULES``)."""

    operation: str
    local: str
    keyed: str
    # Hyper-V's reality behind the decision (reStructuredText, for the
    # admin guide).
    why: str
    # What a refusal says first, %(host)s being the instance's host; what
    # to do comes before the details, since nova keeps 255 characters.
    refusal: str | None = None
    # The new flavor must keep the vTPM on, or off, and make a valid
    # request with the instance's image.
    keeps_the_decision: bool = False


RULES = (
    Rule(SNAPSHOT, ALLOWED, ALLOWED,
         'The image holds the disks only, never the vTPM state or the '
         'KeyProtector. It keeps the ``os_vtpm*`` properties, so a server '
         'booted from it gets a new vTPM with the same guardians.'),
    Rule(RESIZE, SAME_HOST, IN_FABRICS,
         'The configuration moves with the VM. A resize to a flavor that '
         'would turn the vTPM on or off, or that conflicts with the image, '
         'is refused for every instance: a vTPM cannot be added to or taken '
         'out of an existing VM without losing its state.',
         refusal=_LOCAL_ONLY, keeps_the_decision=True),
    Rule(MIGRATE, SAME_HOST, IN_FABRICS, 'As resize.',
         refusal=_LOCAL_ONLY, keeps_the_decision=True),
    Rule(LIVE_MIGRATE, REFUSED, IN_FABRICS,
         'HGS releases the keys for a live migration only to a guarded, '
         'attested host the KeyProtector names.',
         refusal=_LOCAL_ONLY),
    Rule(EVACUATE, REFUSED, REFUSED,
         'The configuration stays on the failed host; the VM recreated from '
         'its disk would start with an empty vTPM, and the guest could not '
         'unseal its secrets. Bring the host back instead.',
         refusal='a VM recreated from its disk would start with an empty '
                 'vTPM (its vTPM state and KeyProtector stay on host '
                 '%(host)s); bring host %(host)s back, or delete the server '
                 'and boot a new one'),
    Rule(REBUILD, REFUSED, REFUSED,
         'A rebuild recreates the VM from an image with an empty vTPM; '
         'volumes the guest sealed to the old one could not be opened. '
         'Delete the server and boot a new one to start afresh.',
         refusal='a rebuild would start an empty vTPM and lose what the '
                 'guest sealed to the current one; to start afresh, delete '
                 'the server and boot a new one'),
    Rule(SHELVE, NOT_OFFLOADED, NOT_OFFLOADED,
         'The offload destroys the configuration, and unshelve would '
         'recreate the VM with an empty vTPM. With ``[DEFAULT] '
         'shelved_offload_time = -1`` shelved VMs stay on their host.',
         refusal=_SHELVE_REFUSAL),
    Rule(SHELVE_OFFLOAD, REFUSED, REFUSED, 'As shelve.',
         refusal=_SHELVE_REFUSAL),
    Rule(UNSHELVE, NEW_VTPM, NEW_VTPM,
         'Only an instance shelved before these rules applied can be '
         'offloaded; it is recreated like a new boot, its keys fetched with '
         "the owner's credentials."),
    Rule(RESCUE, ALLOWED, ALLOWED,
         'The rescue image boots in the same VM with the same vTPM; what the '
         'guest sealed to its own boot measurements stays sealed. (nova sets '
         'every server whose rescue fails to ERROR, so a refusal would '
         'itself change the server.)'),
)

_BY_OPERATION = {rule.operation: rule for rule in RULES}


@dataclasses.dataclass(frozen=True)
class Subject:
    """What the check knows about the instance."""

    uuid: str
    # The vTPM request of the instance as it is; None when it has no vTPM.
    request: objects.VTPMRequest | None
    # The fabrics its KeyProtector names (recorded at spawn).
    fabrics: Sequence[str] = ()
    # The host it runs on.
    host: str | None = None

    @property
    def kind(self) -> str:
        if self.request is None or not self.request.enabled:
            return NONE
        # Without keys, the fabrics recorded at spawn tell which kind the
        # host gave it: none for a local key protector, the host's fabric
        # for one HGS opens (vtpm_core.sysmeta).
        if self.request.needs_key_protector or self.fabrics:
            return KEYED
        return LOCAL


def check(operation: str, subject: Subject, *,
          new_request: objects.VTPMRequest | None = None,
          new_request_error: exception.InvalidVTPMRequest | None = None,
          same_host: bool = False,
          destination: capabilities.Verdict | None = None,
          destination_host: str | None = None,
          offload: bool = True) -> None:
    """Refuse ``operation`` on ``subject`` if its row of ``RULES`` says so.

    :param new_request: for a resize or cold migration, the request the
        instance's image makes with the new flavor.
    :param new_request_error: the error building that request raised.
    :param same_host: the move stays on the instance's host.
    :param destination: for a live migration, whether the destination can
        run the instance (``vtpm_core.capabilities.satisfies``).
    :param offload: for a shelve, whether nova will offload the VM.
    :raises vtpm_core.exception.OperationRefused: the message names the
        property or extra spec behind the refusal and what to do instead.
    """
    rule = _BY_OPERATION[operation]

    def refuse(reason, details=None):
        # nova keeps 255 characters of a fault: what to do comes first,
        # the request and fabric details last
        if details:
            reason = '%s [%s]' % (reason, details)
        raise exception.OperationRefused(
            operation=operation, instance=subject.uuid, reason=reason)

    if rule.keeps_the_decision:
        _check_flavor_change(subject, new_request, new_request_error, refuse)
    kind = subject.kind
    if kind == NONE:
        return
    decision = rule.local if kind == LOCAL else rule.keyed
    if (decision in (ALLOWED, NEW_VTPM)
            or (decision == SAME_HOST and same_host)
            or (decision == NOT_OFFLOADED and not offload)
            or (decision == IN_FABRICS and (destination is None
                                            or destination))):
        return
    if decision == IN_FABRICS:
        refuse(_CANNOT_UNWRAP % {'destination': destination_host,
                                 'reason': destination.reason},
               _describe(subject))
    refuse(rule.refusal % {'host': subject.host}, _describe(subject))


def _check_flavor_change(subject, new_request, new_request_error, refuse):
    if new_request_error is not None:
        refuse('the new flavor does not make a valid vTPM request with the '
               "instance's image: %s" % new_request_error)
    if new_request is None:
        return
    was_on = subject.request is not None and subject.request.enabled
    if new_request.enabled == was_on:
        return
    if was_on:
        refuse('the new flavor turns the vTPM off (%s), which would lose its '
               'state; choose a flavor whose %s is absent, %s or %s' % (
                   new_request.reasons[0],
                   exception.named(constants.FLAVOR_VTPM, constants.FLAVOR),
                   constants.OPTIONAL, constants.REQUIRED))
    refuse('the new flavor turns a vTPM on (%s), but a resize cannot add a '
           'vTPM to an existing VM; boot a new server with that flavor, or '
           'choose a flavor without %s=%s' % (
               new_request.reasons[0], constants.FLAVOR_VTPM,
               constants.REQUIRED))


def _describe(subject):
    request = subject.request
    what = request.reasons[0] if request.reasons else 'vTPM on'
    if subject.fabrics:
        what += '; KeyProtector fabrics: %s' % ', '.join(subject.fabrics)
    return what
