# SPDX-License-Identifier: Apache-2.0
"""The Hyper-V backend's errors, and the one translation of os-win's.

Each is a ``vtpm_core.exception.VTPMError``. ``translated`` is where an
os-win or WMI exception becomes a ``HyperVOperationFailed``: every WMI call
of the backend runs inside it, so the message always names the operation,
the VM, the return code and what Hyper-V said, and keeps the cause.
"""

from __future__ import annotations

import contextlib

from os_win import exceptions as os_win_exc

from vtpm_core import exception


class HostNotSuitable(exception.VTPMError):
    """This host cannot run the instance; another host may (reschedule)."""

    msg_fmt = "host %(host)s cannot run this vTPM instance: %(reason)s"


class UnsupportedVM(exception.VTPMError):
    """The VM cannot have a vTPM; no other host can change that (abort)."""

    msg_fmt = "VM %(vm)s cannot have a vTPM: %(reason)s"


class HyperVOperationFailed(exception.VTPMError):
    """Hyper-V refused a step; everything before it was rolled back."""

    msg_fmt = ("Hyper-V %(operation)s failed for VM %(vm)s with return code "
               "%(code)s: %(description)s")


# What os-win and PyMI raise (on Windows os-win's x_wmi is the wmi module's).
OS_WIN_ERRORS = (os_win_exc.OSWinException, os_win_exc.x_wmi)


@contextlib.contextmanager
def translated(operation: str, vm: str):
    """Raise what os-win or WMI raises inside as ``HyperVOperationFailed``.

    A failed Hyper-V job keeps its error code; any other failure has none
    (``n/a``). ``vm`` is the VM's name, or ``n/a`` for a host-wide call.
    """
    try:
        yield
    except OS_WIN_ERRORS as e:
        code = getattr(e, 'error_code', None)
        raise HyperVOperationFailed(
            operation=operation, vm=vm,
            code='n/a' if code is None else code, description=str(e)) from e


# --- re-authorization of an existing vTPM (vtpm_hyperv.nova.reauthorize) ---

class ReauthorizationRefused(exception.VTPMError):
    """A re-authorization refused before anything changed on the VM.

    Carries ``.instance``, ``.ref`` (the secret the server metadata names)
    and ``.reason``; each subclass is one rule.
    """

    quoted = ('ref',)
    msg_fmt = ("re-authorization of instance %(instance)s with "
               "os_vtpm_keyprotector (server metadata) %(ref)s refused: "
               "%(reason)s")


class ReauthorizationNotOff(ReauthorizationRefused):
    """Hyper-V changes a KeyProtector only while the VM is off."""


class ReauthorizationSecretUnusable(ReauthorizationRefused):
    """The secret is missing, forbidden to the owner, or no KeyProtector."""


class ReauthorizationOwnerChanged(ReauthorizationRefused):
    """The new KeyProtector has another owner: the vTPM would not open."""


class ReauthorizationDropsFabric(ReauthorizationRefused):
    """The new KeyProtector no longer names the fabric the VM runs in."""


class ReauthorizationNotKeyed(ReauthorizationRefused):
    """The VM has no KeyProtector of a tenant's to re-authorize."""


class KeyProtectorDidNotOpen(exception.VTPMError):
    """The VM did not start with its new KeyProtector; the last known good
    one is back and the instance's recorded fabrics with it. ``.reason``
    is what the start raised."""

    quoted = ('ref',)
    msg_fmt = ("instance %(instance)s did not start with "
               "os_vtpm_keyprotector (server metadata) %(ref)s; last known "
               "good KeyProtector restored: %(reason)s")
