# SPDX-License-Identifier: Apache-2.0
"""What each nova operation may do to a vTPM instance, and the early refusal.

Hyper-V keeps a VM's vTPM state and its KeyProtector in the VM's
configuration. Three facts follow, and the table below is built on them:

- whatever carries the configuration (resize, cold and live migration)
  carries the vTPM and the KeyProtector with it;
- a destination can run the VM only if it can unwrap the KeyProtector: a
  guarded, attested host of a fabric the KeyProtector names; a local key
  protector (no keys) opens on its own host only;
- whatever recreates the VM from a disk or an image (evacuate, rebuild,
  unshelve after an offload) starts an empty vTPM: the secrets the guest
  sealed to the old one (BitLocker's keys, for example) are lost.

``RULES`` is the table (``doc/source/admin/lifecycle.rst`` shows it and
says why); ``check`` applies it and raises ``OperationRefused`` before the
operation changes anything. This module does no I/O: ``vtpm_hyperv.compute``
gathers the facts at the first driver call nova makes for each operation.
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
LOCAL = 'vTPM, local key protector (no keys)'
KEYED = 'vTPM, HGS KeyProtector (keys or shielded)'

# Decisions, as the documentation prints them.
ALLOWED = 'allowed'
REFUSED = 'refused'
SAME_HOST = 'allowed on the same host only'
IN_FABRICS = 'allowed to a guarded, attested host of its fabrics'
NEW_VTPM = 'allowed; starts an empty vTPM'


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row of the decision table."""

    operation: str
    local: str
    keyed: str
    # Hyper-V's reality behind the decision.
    why: str
    # The earliest point our code runs for the operation.
    where: str


RULES = (
    Rule(SNAPSHOT, ALLOWED, ALLOWED,
         'the image holds the disks only, never the vTPM state or the '
         'KeyProtector; it keeps the os_vtpm* properties, so a server booted '
         'from it gets a new vTPM with the same guardians',
         '-'),
    Rule(RESIZE, SAME_HOST, IN_FABRICS,
         'the configuration, with the vTPM and the KeyProtector, moves with '
         'the VM; a resize that would turn the vTPM on or off (or conflict '
         'with the image) is refused for every instance: the state cannot be '
         'added to or taken out of a running VM without losing it',
         'scheduler (fabrics); source compute, migrate_disk_and_power_off, '
         'before the power-off'),
    Rule(MIGRATE, SAME_HOST, IN_FABRICS,
         'as resize; a local key protector opens on its own host only',
         'scheduler (fabrics); source compute, migrate_disk_and_power_off'),
    Rule(LIVE_MIGRATE, REFUSED, IN_FABRICS,
         'HGS releases the keys for a live migration only to a guarded, '
         'attested host the KeyProtector names',
         'scheduler (fabrics); destination compute, '
         'check_can_live_migrate_destination'),
    Rule(EVACUATE, REFUSED, REFUSED,
         'the configuration stays on the failed host; the VM recreated from '
         'its disk would start with an empty vTPM and the guest could not '
         'unseal its secrets',
         'destination compute, the first driver call of the evacuation '
         '(instance_on_disk)'),
    Rule(REBUILD, REFUSED, REFUSED,
         'a rebuild recreates the VM from an image with an empty vTPM; '
         'volumes the guest sealed to the old one could not be opened',
         'compute, rebuild, before the VM is destroyed'),
    Rule(SHELVE, REFUSED, REFUSED,
         'the offload destroys the configuration, and unshelve recreates the '
         'VM with an empty vTPM; allowed when [DEFAULT] shelved_offload_time '
         'is -1 (never offload)',
         'compute, power_off, before the guest stops'),
    Rule(SHELVE_OFFLOAD, REFUSED, REFUSED,
         'as shelve', 'compute, power_off, before the guest stops'),
    Rule(UNSHELVE, NEW_VTPM, NEW_VTPM,
         'only an instance shelved before these rules applied can be '
         'offloaded; it is recreated like a new boot, keys fetched with the '
         "owner's credentials", 'compute, spawn'),
    Rule(RESCUE, ALLOWED, ALLOWED,
         'the rescue image boots in the same VM; what the guest sealed to '
         'its own boot measurements stays sealed; nova sets ERROR for every '
         'rescue failure, so a refusal would change the server\'s state',
         '-'),
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
        if self.request.needs_key_protector:
            return KEYED
        return LOCAL


def rule(operation: str) -> Rule:
    """Return the table's row for ``operation``."""
    return _BY_OPERATION[operation]


def check(operation: str, subject: Subject, *,
          new_request: objects.VTPMRequest | None = None,
          new_request_error: exception.InvalidVTPMRequest | None = None,
          same_host: bool = False,
          destination: capabilities.Verdict | None = None,
          destination_host: str | None = None,
          offload: bool = True) -> None:
    """Refuse ``operation`` on ``subject`` if the table says so.

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
    kind = subject.kind

    def refuse(reason, details=None):
        # nova keeps 255 characters of a fault: what to do comes first,
        # the request and fabric details last
        if details:
            reason = '%s [%s]' % (reason, details)
        raise exception.OperationRefused(
            operation=operation, instance=subject.uuid, reason=reason)

    if operation in (RESIZE, MIGRATE):
        _check_flavor_change(subject, new_request, new_request_error, refuse)
    if kind == NONE:
        return

    vtpm = _describe(subject)
    if operation in (RESIZE, MIGRATE, LIVE_MIGRATE) and kind == LOCAL:
        if same_host and operation != LIVE_MIGRATE:
            return
        refuse('its vTPM has a local key protector that only host %s can '
               'open (%s (image property) is absent); keep it there, or use '
               'an image with %s' % (subject.host, constants.IMAGE_VTPM_KEYS,
                                     constants.IMAGE_VTPM_KEYS), vtpm)
    if operation == LIVE_MIGRATE and destination is not None \
            and not destination:
        refuse('destination %s cannot unwrap its KeyProtector: %s' % (
            destination_host, destination.reason), vtpm)
    if operation == EVACUATE:
        refuse('a VM recreated from its disk would start with an empty vTPM '
               '(its vTPM state and KeyProtector stay on host %s); bring '
               'host %s back, or delete the server and boot a new one' % (
                   subject.host, subject.host), vtpm)
    if operation == REBUILD:
        refuse('a rebuild would start an empty vTPM and lose what the guest '
               'sealed to the current one; to start afresh, delete the '
               'server and boot a new one', vtpm)
    if operation in (SHELVE, SHELVE_OFFLOAD) and offload:
        refuse('the offload would destroy the vTPM state (unshelve starts an '
               'empty vTPM); stop the server instead, or set [DEFAULT] '
               'shelved_offload_time = -1 to keep shelved VMs on their host',
               vtpm)


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
               'state; choose a flavor whose os:vtpm (flavor extra spec) is '
               'absent, optional or required' % new_request.reasons[0])
    refuse('the new flavor turns a vTPM on (%s), but a resize cannot add a '
           'vTPM to an existing VM; boot a new server with that flavor, or '
           'choose a flavor without os:vtpm=required' % new_request.reasons[0])


def _describe(subject):
    request = subject.request
    what = request.reasons[0] if request.reasons else 'vTPM on'
    if subject.fabrics:
        what += '; KeyProtector fabrics: %s' % ', '.join(subject.fabrics)
    return what
