# SPDX-License-Identifier: Apache-2.0
"""A VM never starts without the vTPM its request asks for.

nova starts a VM by many paths (``power_on``, ``reboot``,
``resume_state_on_host_boot``, ``unrescue``, the end of ``spawn``), and a
compute that died in the middle of a build leaves a VM that may lack its
vTPM: nova sets the instance to ``ERROR``, and an admin's ``openstack
server set --state active`` followed by a start or a hard reboot would run
it as it is. So before every start ``VTPMCompute.before_start`` reads the
VM (``VTPMBackend.vm_security``) and holds it against the instance's
request with ``shortfall``:

* nothing missing: it starts; the recorded fabrics (``vtpm_fabrics``)
  follow the VM's KeyProtector, the one truth the scheduler must follow;
* off and its TPM never enabled (the attach did not finish): the attach is
  completed first, as the build would have; with keys only when the
  starting user is the instance's owner, whose credentials read its
  secrets (``is_owner``);
* otherwise the start is refused (``vtpm_core.exception.StartRefused``),
  with what is missing and what to do; the VM stays as it is.

A restarted compute reads every vTPM instance's VM the same way and marks
those that lack their vTPM (``vtpm_missing``, ``vtpm_core.sysmeta``).
"""

from __future__ import annotations

from vtpm_core import constants
from vtpm_core import sysmeta

# What a refused start tells the owner or the admin to do.
OWNER_STARTS = ('its attach did not finish; the instance owner starts it '
                '(openstack server start, or a hard reboot), which '
                'completes the vTPM with the owner\'s secrets first, or '
                'deletes it and boots a new server')
STOP_FIRST = ('Hyper-V changes security settings only while the VM is '
              'off: stop the server (openstack server stop), then start '
              'it as its owner, which completes the vTPM first')
REBUILD = ('the VM cannot get it without losing its vTPM\'s contents: '
           'delete the server and boot a new one')


def shortfall(request, security) -> list[str]:
    """What the VM lacks of the vTPM ``request`` asks for, in words;
    empty when it has it all.

    :param security: ``vtpm_core.backend.VMSecurity`` of the VM.
    """
    missing = []
    if not security.tpm:
        missing.append('its TPM off')
    if not security.key_protector:
        missing.append('no key protector')
    elif request.key_refs and not security.fabrics:
        missing.append('a key protector that names no fabric')
    if request.shielded and not security.shielded:
        missing.append('shielding off')
    if not security.encrypted:
        missing.append('its state and migration traffic unencrypted')
    return missing


def describe(missing) -> str:
    return ', '.join(missing)


def unfinished(security) -> bool:
    """Whether the attach of the build never finished: the VM is off and
    its TPM was never enabled, so it has no vTPM contents to lose."""
    return security.off and not security.tpm


def is_owner(context, instance) -> bool:
    """Whether ``context`` is a request of the instance owner's project
    (nova's context for ``openstack server start``), not nova's own admin
    context, which has no project (a restarted compute's retried start),
    nor another project's admin. Barbican still decides whether its token
    reads the secrets."""
    project = getattr(context, 'project_id', None)
    return project is not None and project == instance.project_id


def record_fabrics(instance, security) -> bool:
    """Make ``vtpm_fabrics`` what the VM's KeyProtector names; returns
    whether it changed."""
    recorded = instance.system_metadata.get(constants.SYSMETA_FABRICS)
    if recorded is not None and sysmeta.fabrics(
            instance.system_metadata) == tuple(security.fabrics):
        return False
    sysmeta.set_fabrics(instance.system_metadata, security.fabrics)
    return True
