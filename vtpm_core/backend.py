# SPDX-License-Identifier: Apache-2.0
"""The interface a hypervisor backend implements, and how one is loaded.

A compute driver loads a backend by its short name (``hyperv``) and calls
it; the backend owns everything hypervisor- and key-manager-specific.
``VTPMBackend`` is the whole contract, as castellan's ``KeyManager`` is:
the compute side (``vtpm_hyperv.nova``) calls these methods and no other,
and tells failures apart by the ``vtpm_core.exception`` classes each names
(a test holds the compute side to it).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
import dataclasses

from stevedore import driver
from stevedore import exception as stevedore_exc

from vtpm_core import exception
from vtpm_core import objects

NAMESPACE = 'vtpm.backends'


@dataclasses.dataclass(frozen=True)
class AttachResult:
    """What the compute side records with the instance after an attach."""

    # The fabrics whose guardians the VM's KeyProtector names; empty for a
    # local key protector (no keys), which only this host can open.
    fabrics: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class VMSecurity:
    """What a VM has of a vTPM, read now (``VTPMBackend.vm_security``)."""

    # False: no such VM on this host (the other fields are then False)
    exists: bool = True
    # the VM is off (a start would start it)
    off: bool = True
    tpm: bool = False
    shielded: bool = False
    encrypted: bool = False
    # it has a key protector
    key_protector: bool = False
    # the fabrics whose guardians its key protector names, in order
    fabrics: Sequence[str] = ()


@dataclasses.dataclass(frozen=True)
class Reconciled:
    """What ``VTPMBackend.reconcile`` removed from the host."""

    # instance guardians no attach was running for (names)
    guardians: Sequence[str] = ()
    # private files and directories a dead call left (paths)
    files: Sequence[str] = ()


class VTPMBackend(abc.ABC):
    """A hypervisor's vTPM implementation.

    Every method may also raise another ``vtpm_core.exception.VTPMError``
    (a backend's own subclass of one named here, for example); the compute
    side treats any such error as one another host may not have.
    """

    #: Where the compute side registers an instance as a consumer of the
    #: secrets it was sealed from (``vtpm_hyperv.barbican.consumers``): an
    #: object with ``register_consumer(key_refs, instance_uuid, auth)`` and
    #: ``remove_consumer(...)``, as ``BarbicanKeySource``; None for a
    #: backend whose key manager has none.
    key_source = None

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def get_capabilities(self) -> objects.HostCapabilities:
        """Return this host's report, measured now.

        Never raises for an unguarded or unconfigured host: it reports so.

        :raises vtpm_core.exception.VTPMError: the host cannot be measured
            at all (the compute side then publishes no report, and the
            scheduler refuses the host every vTPM instance).
        """

    @abc.abstractmethod
    def attach(self, instance_uuid: str, vm_name: str,
               request: objects.VTPMRequest, auth=None) -> AttachResult:
        """Give the VM a vTPM as ``request`` says.

        All or nothing: on failure the VM's security settings are as before
        and nothing the call added stays on the host. Calling it again after
        a failure or a success converges on the same end state.

        :param auth: a keystoneauth1 plugin acting for the instance owner;
            None uses the backend's service credentials.
        :raises vtpm_core.exception.KeyMaterialError: a secret is missing,
            forbidden, unreachable or not guardian material.
        :raises vtpm_core.exception.InvalidKeySet: the secrets do not form
            a valid set.
        :raises vtpm_core.exception.OwnerKeysRefused: an owner bundle where
            the owner's private keys must not go.
        :raises vtpm_core.exception.UnsupportedVM: the VM cannot have a
            vTPM, on any host (no such VM, not Generation 2, or it has
            another vTPM already).
        :raises vtpm_core.exception.HostNotSuitable: this host cannot run
            the request; another host may.
        :raises vtpm_core.exception.BackendOperationFailed: the hypervisor
            refused a step; everything before it was rolled back.
        """

    @abc.abstractmethod
    def detach(self, instance_uuid: str, vm_name: str | None) -> None:
        """Remove what ``attach`` added for the instance; idempotent.

        ``vm_name`` is None when the VM is already gone.

        :raises vtpm_core.exception.KeyMaterialError: a secret was needed
            and could not be read (the caller may go on with the delete).
        :raises vtpm_core.exception.BackendOperationFailed: the hypervisor
            refused a step.
        """

    @abc.abstractmethod
    def reauthorize(self, instance_uuid: str, vm_name: str, ref: str,
                    auth=None) -> tuple[Sequence[str], Sequence[str]]:
        """Give the VM, which is off, the tenant's new KeyProtector.

        Secret ``ref`` holds a KeyProtector (or a shielding data file) the
        instance owner made from the VM's current one: the same owner,
        guardians granted or revoked. Checked before anything changes.

        :param auth: as ``attach``'s.
        :returns: ``(fabrics before, fabrics after)``: the fabrics the old
            and the new KeyProtector name.

        A VM that has this KeyProtector already (the process died after
        setting it, before its outcome was recorded) is not changed, and
        ``fabrics before`` is None.

        :raises vtpm_core.exception.ReauthorizationRefused: a subclass per
            rule (the VM is not off, has no tenant KeyProtector, the secret
            is unusable, the owner changed, this host's fabric is dropped,
            or this host cannot open KeyProtectors); nothing was changed.
        :raises vtpm_core.exception.BackendOperationFailed: setting it
            failed; the VM keeps its KeyProtector.
        """

    @abc.abstractmethod
    def restore_last_known_good(self, instance_uuid: str,
                                vm_name: str) -> Sequence[str]:
        """Put back the KeyProtector that opened at the VM's last start.

        For a VM that did not start with the KeyProtector ``reauthorize``
        gave it.

        :returns: the fabrics the restored KeyProtector names.
        :raises vtpm_core.exception.BackendOperationFailed: the hypervisor
            refused it.
        """

    @abc.abstractmethod
    def vm_security(self, instance_uuid: str, vm_name: str) -> VMSecurity:
        """Read what the VM has of a vTPM now (nothing changes).

        :raises vtpm_core.exception.BackendOperationFailed: the hypervisor
            could not be read.
        """

    @abc.abstractmethod
    def reconcile(self) -> Reconciled:
        """Remove what calls that died with their process left on the host.

        Idempotent, cheap when there is nothing to remove, and safe while
        other calls run: what a running call holds is left alone.

        :raises vtpm_core.exception.BackendOperationFailed: something
            could not be removed (the next call tries again).
        """


def load_backend(name: str, conf) -> VTPMBackend:
    """Load the backend registered as ``name`` in ``vtpm.backends``."""
    try:
        manager = driver.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                       invoke_args=(conf,))
    except stevedore_exc.NoMatches:
        from stevedore import extension
        installed = sorted(extension.ExtensionManager(NAMESPACE).names())
        raise exception.BackendNotFound(
            name=name, installed=', '.join(installed) or 'none')
    return manager.driver
