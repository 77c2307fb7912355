# SPDX-License-Identifier: Apache-2.0
"""Re-authorization of a vTPM instance for other fabrics, by its owner.

The owner of a stopped server names, in its server metadata, a Barbican
secret holding a new KeyProtector it made with Microsoft's tools from the
VM's current one (same owner, guardians granted or revoked)::

    openstack server stop web1
    openstack server set --property os_vtpm_keyprotector=<secret UUID> web1
    openstack server start web1

nova 34 tells no compute host that server metadata changed
(``nova.compute.api.API.update_instance_metadata`` saves it, nothing more;
the ``change_instance_metadata`` RPC call and driver method are gone), so
the request is applied where the VM is off and the starting user's
credentials are at hand: the driver's ``power_on`` (``openstack server
start``, and the restore of a soft-deleted server). There the host
(``HyperVBackend.reauthorize``) checks it before anything changes and sets
it; then the VM starts. A refused request fails the start: the server stays
stopped with its KeyProtector, and the instance fault says why. If the VM
does not start with the new KeyProtector, Hyper-V's last known good one is
put back (``HyperVBackend.restore_last_known_good``), with the recorded
fabrics, and the start fails likewise.

Every outcome is one ``Outcome``: its ``status`` goes to the server
metadata key ``os_vtpm_keyprotector_status`` (the tenant reads it with
``openstack server show``), the secret handled to system metadata
``vtpm_keyprotector`` (so one secret is tried once: Barbican secrets cannot
change, so a corrected KeyProtector is always a new secret), and the
KeyProtector's fabrics to ``vtpm_fabrics``, which the scheduler filter
reads on a move. ``VTPMCompute.reauthorized`` is where an outcome goes.
"""

from __future__ import annotations

import dataclasses

from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import policy
from vtpm_core import sysmeta

# The server metadata the owner sets (constants.METADATA_KEYPROTECTOR) names
# the Barbican secret with the new KeyProtector by its UUID, not a URL:
# secrets are read from this cloud's Barbican only, as os_vtpm_keys' are.
# The compute host answers in constants.METADATA_KEYPROTECTOR_STATUS.

APPLIED = 'applied'    # set; the VM started with it
REFUSED = 'refused'    # not set: a rule, the secret, or Hyper-V refused it
RESTORED = 'restored'  # set, did not open; the last known good is back

# nova refuses server metadata values over 255 characters
# (nova.api.validation.parameter_types.metadata).
MAX_STATUS = 255


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one re-authorization request.

    ``error_class`` names the ``VTPMError`` subclass of a refusal or a
    restore (None when applied), ``message`` is its message (the instance
    fault) and ``reason`` the rule or cause in it; ``error`` is the
    exception itself (for a notification's fault payload). Never holds key
    material: the secret is named by ``ref`` only.
    """

    instance_uuid: str
    ref: str
    result: str  # APPLIED, REFUSED or RESTORED
    old_fabrics: tuple[str, ...] = ()
    new_fabrics: tuple[str, ...] = ()
    reason: str = ''
    message: str = ''
    error_class: str | None = None
    error: Exception | None = dataclasses.field(default=None, compare=False,
                                                repr=False)

    @classmethod
    def failed(cls, instance, ref, result, error, old_fabrics=(),
               new_fabrics=()) -> Outcome:
        return cls(instance.uuid, ref, result, tuple(old_fabrics),
                   tuple(new_fabrics),
                   str(getattr(error, 'reason', None) or error), str(error),
                   type(error).__name__, error)

    @property
    def status(self) -> str:
        """The server metadata value: ``<result> <ref>[: <reason>]``."""
        text = '%s %s' % (self.result, self.ref)
        if self.reason:
            text += ': ' + self.reason
        if len(text) > MAX_STATUS:
            text = text[:MAX_STATUS - 3] + '...'
        return text


def pending(instance) -> str | None:
    """The value ``instance``'s owner set, if not handled yet."""
    value = (instance.metadata or {}).get(constants.METADATA_KEYPROTECTOR)
    if not value or value == sysmeta.handled_keyprotector(
            instance.system_metadata):
        return None
    return value


def check_ref(instance, value) -> None:
    """:raises vtpm_core.exception.InvalidReauthorization: ``value`` is no
    secret UUID."""
    if policy.secret_uuid(value) is None:
        raise exception.InvalidReauthorization(instance=instance.uuid,
                                               value=value)


def record(instance, outcome: Outcome, fabrics) -> None:
    """Write ``outcome`` and the fabrics the VM's KeyProtector now names
    on ``instance`` (the caller saves it)."""
    instance.metadata = dict(instance.metadata or {}, **{
        constants.METADATA_KEYPROTECTOR_STATUS: outcome.status})
    sysmeta.set_handled_keyprotector(instance.system_metadata, outcome.ref)
    sysmeta.set_fabrics(instance.system_metadata, fabrics)
