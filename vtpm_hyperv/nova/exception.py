# SPDX-License-Identifier: Apache-2.0
"""What the compute side raises to nova: nova's own exception classes.

nova's compute manager acts on its own classes (a ``BuildAbortException``
aborts a build without rescheduling; ``VTPMOperationRefused`` carries a
409 to the instance fault), so these derive from them; the message is
always our ``vtpm_core.exception.VTPMError``'s.
"""

from nova import exception as nova_exception


class VTPMBuildAborted(nova_exception.BuildAbortException):
    """A build that another host cannot fix; the fault is our message."""

    msg_fmt = '%(reason)s'
    code = 400


class VTPMOperationRefused(nova_exception.NovaException):
    """A refused lifecycle operation; the fault is our message."""

    msg_fmt = '%(reason)s'
    code = 409
