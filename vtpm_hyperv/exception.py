# SPDX-License-Identifier: Apache-2.0
"""The Hyper-V backend's own error, and the one translation of os-win's.

The backend raises the ``vtpm_core.exception`` classes its contract
(``vtpm_core.backend.VTPMBackend``) names. ``HyperVOperationFailed`` is its
``BackendOperationFailed``, which also gives Hyper-V's return code and
words; ``translated`` is where an os-win or WMI exception becomes one:
every WMI call of the backend runs inside it, so the message always names
the operation, the VM, the return code and what Hyper-V said, and keeps
the cause.
"""

from __future__ import annotations

import contextlib

from vtpm_core import exception
from vtpm_hyperv import oswin

os_win_exc = oswin.load('os_win.exceptions')


class HyperVOperationFailed(exception.BackendOperationFailed):
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
