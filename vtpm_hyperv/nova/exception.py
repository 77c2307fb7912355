# SPDX-License-Identifier: Apache-2.0
"""What the compute side raises to nova: nova's own exception classes.

nova's compute manager acts on its own classes (a ``BuildAbortException``
aborts a build without rescheduling; ``VTPMOperationRefused`` carries a
409 to the instance fault), so these derive from them; the message is
always our ``vtpm_core.exception.VTPMError``'s. ``NovaFilesReplaced`` is
the compute-hyperv port's refusal to start
(``vtpm_hyperv.nova.compute_hyperv``); ``UnsupportedComputeDriver``
the mixin's, at ``init_host``.
"""

from nova import exception as nova_exception

from vtpm_core import exception


class VTPMBuildAborted(nova_exception.BuildAbortException):
    """A build that another host cannot fix; the fault is our message."""

    msg_fmt = '%(reason)s'
    code = 400


class VTPMOperationRefused(nova_exception.NovaException):
    """A refused lifecycle operation; the fault is our message."""

    msg_fmt = '%(reason)s'
    code = 409


class NovaFilesReplaced(exception.VTPMError):
    """compute-hyperv's wheel replaced nova's own package files."""

    msg_fmt = ("nova's own %(files)s were replaced by compute-hyperv's "
               "(they begin %(value)s): with them nova imports eventlet "
               "before it chooses its threading mode. Allowed: nova's own "
               "files. Reinstall nova's (pip install --force-reinstall "
               "--no-deps nova==%(nova_version)s) and install compute-hyperv "
               "as the install guide says (doc/source/install.rst, "
               "'compute-hyperv on nova 34'), which leaves them alone")


class UnsupportedComputeDriver(exception.VTPMError):
    """The mixin is composed with a driver it cannot give a vTPM."""

    msg_fmt = ('compute_driver %(driver)s cannot have a vTPM: %(reason)s')
