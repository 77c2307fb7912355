# SPDX-License-Identifier: Apache-2.0
"""What a tenant puts in a shielding data file, at the size Windows allows.

``New-ShieldingDataFile`` (ShieldedVMDataFile/New-ShieldingDataFile.md)
packs, besides the KeyProtector and the policy: the volume ID qualifiers of
the trusted template disks (``New-VolumeIDQualifier`` over a volume
signature catalog, ``Save-VolumeSignatureCatalog``), the specialization
answer file (for Windows "typically the unattend.xml file") and other
files, "limited to 384KB", copied into the provisioned VM. The one size
Microsoft documents is that limit, so the shielding data file the tests and
the demo store in Barbican is one that reaches it
(``shielding_data_file``): an unattend file, the RDP certificate the VM is
given (a PKCS#12 file), and the enterprise root certificates its
provisioning trusts, until the other files hold 384 KB. The answer file
and the other files are encrypted in the PDK (``crypto``), so their
content is what a tenant would give, not filler.
"""

from __future__ import annotations

import datetime
import functools
import hashlib

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography import x509
from cryptography.x509 import oid

from vtpm_hyperv.fake import crypto

# A specialization answer file of a Windows Server VM: computer name, time
# zone, RDP, the administrator password, a first-logon command (the
# placeholders are filled in per VM).
UNATTEND = '''<?xml version="1.0" encoding="utf-8"?>
<unattend xmlns="urn:schemas-microsoft-com:unattend">
  <settings pass="specialize">
    <component name="Microsoft-Windows-Shell-Setup"
        processorArchitecture="amd64"
        publicKeyToken="31bf3856ad364e35" language="neutral"
        versionScope="nonSxS"
        xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
      <ComputerName>@ComputerName@</ComputerName>
      <TimeZone>UTC</TimeZone>
      <RegisteredOrganization>Tenant</RegisteredOrganization>
    </component>
    <component name="Microsoft-Windows-TerminalServices-LocalSessionManager"
        processorArchitecture="amd64"
        publicKeyToken="31bf3856ad364e35" language="neutral"
        versionScope="nonSxS">
      <fDenyTSConnections>false</fDenyTSConnections>
    </component>
    <component
        name="Microsoft-Windows-TerminalServices-RDP-WinStationExtensions"
        processorArchitecture="amd64"
        publicKeyToken="31bf3856ad364e35" language="neutral"
        versionScope="nonSxS">
      <UserAuthentication>1</UserAuthentication>
      <SecurityLayer>2</SecurityLayer>
    </component>
  </settings>
  <settings pass="oobeSystem">
    <component name="Microsoft-Windows-Shell-Setup"
        processorArchitecture="amd64"
        publicKeyToken="31bf3856ad364e35" language="neutral"
        versionScope="nonSxS">
      <UserAccounts>
        <AdministratorPassword>
          <Value>@Password@</Value>
          <PlainText>true</PlainText>
        </AdministratorPassword>
      </UserAccounts>
      <OOBE>
        <HideEULAPage>true</HideEULAPage>
        <NetworkLocation>Work</NetworkLocation>
        <ProtectYourPC>3</ProtectYourPC>
        <SkipMachineOOBE>true</SkipMachineOOBE>
      </OOBE>
      <FirstLogonCommands>
        <SynchronousCommand wcm:action="add"
            xmlns:wcm="http://schemas.microsoft.com/WMIConfig/2002/State">
          <Order>1</Order>
          <CommandLine
            >powershell -File C:\\Windows\\Setup\\configure.ps1</CommandLine>
        </SynchronousCommand>
      </FirstLogonCommands>
    </component>
  </settings>
</unattend>
'''.encode('utf-8')


def _key():
    # EC keys: a root certificate of its own per file, made in a
    # millisecond (the RDP certificate is RSA, as Windows' RDP wants)
    return ec.generate_private_key(ec.SECP384R1())


def _certificate(name, key, issuer_key=None, issuer_name=None):
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(oid.NameOID.COMMON_NAME, name)])
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name or subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=issuer_key is None,
                                                 path_length=None),
                           critical=True)
            .sign(issuer_key or key, hashes.SHA384()))


def rdp_certificate(name='rdp.tenant.example'):
    """The VM's RDP certificate with its private key, as a PKCS#12 file."""
    key = crypto._new_key(2048)
    cert = _certificate(name, key)
    return pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, None, serialization.NoEncryption())


def root_certificates(size):
    """A PEM bundle of distinct root certificates, ``size`` bytes at most
    and within one certificate of it."""
    bundle = bytearray()
    while True:
        key = _key()
        pem = _certificate('Tenant Root CA %d' % (len(bundle) + 1), key) \
            .public_bytes(serialization.Encoding.PEM)
        if len(bundle) + len(pem) > size:
            return bytes(bundle)
        bundle += pem


def volume_id_qualifier(template_disk_signature: bytes, version='1.0.0.0'):
    """What ``New-VolumeIDQualifier -VersionRule Equals`` keeps of a volume
    signature catalog: the disk's signature and the version to match."""
    return {'volume_signature': hashlib.sha256(
        template_disk_signature).hexdigest(),
        'version': version, 'version_rule': 'Equals'}


@functools.lru_cache(maxsize=None)
def provisioning_files():
    """(answer file, other files) of a shielding data file whose other
    files reach New-ShieldingDataFile's limit (made once per process)."""
    rdp = rdp_certificate()
    script = (b'# configure.ps1: joins the domain, trusts the roots\r\n'
              b'Import-Certificate -FilePath C:\\Windows\\Setup\\roots.pem '
              b'-CertStoreLocation Cert:\\LocalMachine\\Root\r\n')
    room = crypto.OTHER_FILES_LIMIT - len(rdp) - len(script)
    return UNATTEND, {'rdp.pfx': rdp, 'configure.ps1': script,
                      'roots.pem': root_certificates(room)}


def shielding_data_file(owner, guardians=(), *, policy='Shielded'):
    """A shielding data file of the size Windows allows a tenant to give:
    the answer file, other files up to ``crypto.OTHER_FILES_LIMIT``, and
    the qualifier of one template disk (``crypto.make_shielding_data_file``
    with ``provisioning_files``)."""
    answer_file, other_files = provisioning_files()
    return crypto.make_shielding_data_file(
        owner, guardians, policy=policy, answer_file=answer_file,
        other_files=other_files, volume_id_qualifiers=[
            volume_id_qualifier(b'Windows Server 2022 template disk')])
