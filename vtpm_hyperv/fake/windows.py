# SPDX-License-Identifier: Apache-2.0
"""What differs between the Windows Server releases the simulator models.

Each release, as Microsoft documents it:

* the VM configuration versions its Hyper-V runs ("Supported VM
  configuration versions for long-term servicing hosts", in "Upgrade virtual
  machine version in Hyper-V on Windows or Windows Server",
  WindowsServerDocs/virtualization/hyper-v/deploy/
  Upgrade-virtual-machine-version-in-Hyper-V-on-Windows-or-Windows-Server
  .md): "You can only import a virtual machine if the Hyper-V host supports
  that configuration version";
* whether it has ``Msvm_TPMSettingData`` (its page: "End of server support:
  Windows Server 2016", msvm-tpmsettingdata.md);
* whether it has the "Open Source Shielded VM" Secure Boot template, which
  "is leveraged to secure boot for Linux-based shielded VMs"
  (Generation-2-virtual-machine-security-settings-for-Hyper-V.md), which
  need "Windows Server, version 1709 or later"
  (guarded-fabric-create-a-linux-shielded-vm-template.md): so Windows Server
  2019 and later of the long-term releases.

The project supports Windows Server 2016, 2019, 2022 and 2025 (the install
guide); 2012 R2 is here only to be refused (no Generation 2 vTPM).
"""

from __future__ import annotations

import dataclasses

# The minimum VM configuration version of a feature the backend uses
# ("The following table shows the minimum virtual machine configuration
# version required to use some Hyper-V features": "Virtual Trusted Platform
# Module (vTPM) 7.0", "Key storage drive 8.0").
VTPM_MIN_VERSION = '7.0'
KSD_MIN_VERSION = '8.0'

_ALL = ('5.0', '6.2', '7.0', '7.1', '8.0', '8.1', '8.2', '8.3', '9.0', '9.1',
        '9.2', '9.3', '10.0', '11.0', '12.0')


def _versions(low, high):
    return _ALL[_ALL.index(low):_ALL.index(high) + 1]


@dataclasses.dataclass(frozen=True)
class WindowsServer:
    name: str
    build: str  # the start of Win32_OperatingSystem.Version
    config_versions: tuple[str, ...]
    tpm_setting_data: bool
    linux_shielded_template: bool

    @property
    def default_version(self) -> str:
        """The configuration version a new VM gets.

        An inference: the page says a VM "is created with the default
        configuration version" (Get-VMHostSupportedVersion -Default) without
        naming it per release; the simulator takes the newest it runs.
        """
        return self.config_versions[-1]

    def runs(self, version: str) -> bool:
        return version in self.config_versions


RELEASES = (
    WindowsServer('Windows Server 2012 R2', '6.3.9600', ('5.0',), False,
                  False),
    WindowsServer('Windows Server 2016', '10.0.14393',
                  _versions('5.0', '8.0'), True, False),
    WindowsServer('Windows Server 2019', '10.0.17763',
                  _versions('5.0', '9.0'), False, True),
    WindowsServer('Windows Server 2022', '10.0.20348',
                  _versions('8.0', '10.0'), False, True),
    WindowsServer('Windows Server 2025', '10.0.26100',
                  _versions('8.0', '12.0'), False, True),
)


def _build(version):
    return tuple(int(p) for p in version.split('.')[:3])


def release(os_version: str) -> WindowsServer:
    """The release a host of ``os_version`` (``10.0.20348``) runs: the
    newest one whose build is not above it."""
    found = [r for r in RELEASES if _build(r.build) <= _build(os_version)]
    if not found:
        raise ValueError('the simulator models no Windows older than %s'
                         % RELEASES[0].name)
    return found[-1]


def version_tuple(version: str) -> tuple[int, ...]:
    """'9.0' -> (9, 0), to compare configuration versions."""
    return tuple(int(p) for p in version.split('.'))
