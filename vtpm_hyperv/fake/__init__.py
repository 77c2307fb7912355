# SPDX-License-Identifier: Apache-2.0
"""A simulated Hyper-V host that os-win's own code runs against.

For the demo and the tests; nothing here runs on a real compute host.

Importing it changes nothing; ``installed()`` wires os-win to the simulated
hosts for the length of a ``with`` block, and puts back what it changed.
Typical use::

    from vtpm_hyperv import fake

    fabric = fake.Fabric('contoso-hgs')               # its HGS guardian
    owner = fake.make_guardian('tenant-owner')
    dr = fake.make_guardian('dr-site')
    secrets = [fake.export_owner_pkcs12(owner),     # or, for shielded VMs:
               fake.export_guardian_file(dr)]       # a raw KeyProtector
    raw_kp = fake.build_key_protector(owner, [fabric.guardian.public()])
    pdk = fake.make_shielding_data_file(owner, [fabric.guardian.public()])
    fake.unwrap_key_protector(raw_kp, dr.encryption_key)  # -> transport key

    with fake.installed():
        host = fake.FakeHyperVHost('hv1', fabric=fabric)  # guarded, Passed
        host.add_vm('instance-00000001', generation=2)
        vmutils, hostutils = host.os_win_utils()    # os-win's own utils
        vmutils.get_vm_generation('instance-00000001')  # -> 2, os-win's code
        hostutils.is_host_guarded()                 # -> True
        host.fail('Msvm_SecurityService.ModifySecuritySettings',
                  job_error=32768, at=2)            # fault injection
        host.vm_security('instance-00000001')       # -> flags + KeyProtector
        backend = vtpm_hyperv.backend.HyperVBackend(
            conf, vmutils=vmutils, hostutils=hostutils, key_source=...)

What is modelled (``host`` lists the rules, ``namespaces`` implements the
WMI methods of ``vtpm_hyperv.wmi_schema``, the documented table every call
is validated against as PyMI converts it, ``windows`` the differences
between Windows Server releases, and ``crypto`` the KeyProtector and tenant
file formats): the WMI classes os-win and the backend touch, in
``root/virtualization/v2``, ``root/msps``, ``Root/Microsoft/Windows/Hgs``
and ``root/cimv2``; each method's return values as its page lists them
(4096 with an asynchronous ``Msvm_ConcreteJob``; the HGS client's failures
as MI errors); VM states (off, running, saved, paused), configuration
versions and Secure Boot templates; the vTPM's state, encrypted with the
transport key of its last start; guardian stores; KeyProtectors made with
real RSA-OAEP wrapping and RSA-PSS signatures; HGS attestation, its
substatus and reachability (``FakeHyperVHost.attest``,
``set_hgs_reachable``); fault injection by method and call number.

A fabric's identity (``Fabric.fabric_id``, and what
``HyperVBackend.get_capabilities().fabric_id`` reports) is the SHA-256 of
its HGS guardian's signing certificate (DER), lowercase hex. HGS renews its
certificates as Microsoft documents (``Fabric.add_certificates``,
``set_primary``, ``disable``, ``remove``): it unwraps with every enabled
pair, and its guardian metadata gives the primary one::

    new = fabric.add_certificates('contoso-hgs-2027')
    fabric.set_primary(new)                         # metadata: the new pair
    host.import_guardian(fabric.guardian_metadata(), 'contoso-hgs-2027')
    fabric.disable(old); fabric.remove(old)         # after tenants re-grant
"""

from vtpm_hyperv.fake import crypto
from vtpm_hyperv.fake import host
from vtpm_hyperv.fake import provisioning
from vtpm_hyperv.fake import wmi

Guardian = crypto.Guardian
CertificateAuthority = crypto.CertificateAuthority
make_ca = crypto.make_ca
make_guardian = crypto.make_guardian
export_owner_pkcs12 = crypto.export_owner_pkcs12
export_guardian_certificates = crypto.export_guardian_certificates
export_guardian_file = crypto.export_guardian_file
make_shielding_data_file = crypto.make_shielding_data_file
shielding_data_file = provisioning.shielding_data_file
open_provisioning_files = crypto.open_provisioning_files
build_key_protector = crypto.build_key_protector
parse_key_protector = crypto.parse_key_protector
unwrap_key_protector = crypto.unwrap_key_protector
UnwrapError = crypto.UnwrapError
KeyProtectorError = crypto.KeyProtectorError

Fabric = host.Fabric
FakeHyperVHost = host.FakeHyperVHost
installed = host.installed
LOCAL_GUARDIAN = host.LOCAL_GUARDIAN
NO_KP_MESSAGE = host.NO_KP_MESSAGE

WmiMethodError = wmi.MethodError
WrongType = wmi.WrongType
x_wmi = wmi.x_wmi
STATS = wmi.STATS

__all__ = [
    'CertificateAuthority', 'Fabric', 'FakeHyperVHost', 'Guardian',
    'KeyProtectorError', 'LOCAL_GUARDIAN', 'NO_KP_MESSAGE', 'UnwrapError',
    'STATS', 'WmiMethodError', 'WrongType', 'build_key_protector',
    'export_guardian_certificates', 'export_guardian_file',
    'export_owner_pkcs12', 'installed', 'make_ca', 'make_guardian',
    'make_shielding_data_file', 'open_provisioning_files',
    'parse_key_protector', 'shielding_data_file',
    'unwrap_key_protector', 'x_wmi',
]
