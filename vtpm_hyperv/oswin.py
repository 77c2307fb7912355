# SPDX-License-Identifier: Apache-2.0
"""os-win as the backend uses it: its utils, and the WMI connections in them.

os-win's public calls cover what it knows of a VM and of the host
(``VMUtils10``: a VM's generation, id and existence; ``HostUtils10``: the
Windows version, whether the host is guarded). It has none for the HGS
guardian store and KeyProtectors, for ``Msvm_SecurityService``'s key
protector methods, nor for reading a shielding data file: for those the
backend talks WMI (``vtpm_hyperv.keyprotector``) through the connections
os-win opened, the same PyMI objects, and waits on Hyper-V's jobs with
os-win's own job utils. os-win keeps those in private attributes; this
module is the one place that reads them (os-win 5.9.0's names), so that an
os-win release that renames one breaks here alone.
"""

from __future__ import annotations


class OsWin:
    """os-win's utils for this Hyper-V host.

    :param vmutils: os-win's ``VMUtils10``; default: os-win's utilsfactory
        for this Windows host, made on first use (so the backend loads
        anywhere, and runs on Windows).
    :param hostutils: os-win's ``HostUtils10``; same default.
    """

    def __init__(self, vmutils=None, hostutils=None):
        self._vmutils = vmutils
        self._hostutils = hostutils

    @property
    def vmutils(self):
        if self._vmutils is None:
            from os_win import utilsfactory
            self._vmutils = utilsfactory.get_vmutils()
        return self._vmutils

    @property
    def hostutils(self):
        if self._hostutils is None:
            from os_win import utilsfactory
            self._hostutils = utilsfactory.get_hostutils()
        return self._hostutils

    # -- os-win's private attributes ------------------------------------------
    @property
    def virt(self):
        """``root/virtualization/v2`` (``BaseUtilsVirt._conn``)."""
        return self.vmutils._conn

    @property
    def msps(self):
        """``root/msps`` (``VMUtils10._conn_msps``)."""
        return self.vmutils._conn_msps

    @property
    def hgs(self):
        """``Root/Microsoft/Windows/Hgs`` (``HostUtils10._conn_hgs``)."""
        return self.hostutils._conn_hgs

    @property
    def jobutils(self):
        """os-win's ``JobUtils`` that waits on Hyper-V's jobs
        (``VMUtils._jobutils``)."""
        return self.vmutils._jobutils
