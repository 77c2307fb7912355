# SPDX-License-Identifier: Apache-2.0
"""The interface a hypervisor backend implements, and how one is loaded.

A compute driver loads a backend by its short name (``hyperv``) and calls
it; the backend owns everything hypervisor- and key-manager-specific.
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


class VTPMBackend(abc.ABC):
    """A hypervisor's vTPM implementation."""

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def get_capabilities(self) -> objects.HostCapabilities:
        """Return this host's report, measured now.

        Never raises for an unguarded or unconfigured host: it reports so.
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
        :raises vtpm_core.exception.VTPMError: a backend's own subclass when
            this host cannot run the request, when the VM cannot have a
            vTPM, or when the hypervisor refused a step (everything before
            it rolled back); its message says which.
        """

    @abc.abstractmethod
    def detach(self, instance_uuid: str, vm_name: str | None) -> None:
        """Remove what ``attach`` added for the instance; idempotent.

        ``vm_name`` is None when the VM is already gone.
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
