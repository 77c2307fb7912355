# SPDX-License-Identifier: Apache-2.0
"""A simulated Hyper-V host: VMs, their security settings, the HGS client.

Namespaces (as os-win names them): ``root/cimv2`` (Win32_OperatingSystem),
``root/virtualization/v2`` (Msvm_ComputerSystem,
Msvm_VirtualSystemSettingData, Msvm_SecuritySettingData,
Msvm_TPMSettingData, Msvm_SecurityService, Msvm_ConcreteJob,
Msvm_VirtualSystemManagementService), ``root/msps``
(Msps_ProvisioningFileProcessor, Msps_ProvisioningService, Msps_FSK) and
``Root/Microsoft/Windows/Hgs`` (MSFT_HgsClientConfiguration,
MSFT_HgsGuardian, MSFT_HgsKeyProtector).

Hyper-V's rules it enforces (each marked ``# Windows:`` with its source
where it is coded):
- security settings change only while the VM is off (32775);
- the TPM cannot be enabled, nor shielding requested, without a key
  protector: the job fails with Hyper-V's message; no call removes a key
  protector (an empty one is refused);
- a KeyProtector's owner never changes; Grant and Revoke need the owner's
  private signing key in the guardian store;
- a guardian or KeyProtector whose certificates chain to no trusted root
  needs AllowUntrustedRoot, an expired one AllowExpired;
- in HGS mode (``Mode`` 2) a key protector opens only through the host's
  fabric (HGS), after a passed attestation; in local mode (``Mode`` 1)
  only with a guardian in the local store that holds its private keys;
- the transport key is rolled on start: a new key protector for the same
  parties comes back, and the one that opened becomes the last known good.

Where Windows takes a file path (PFX files, a guardian file, a shielding
data file), the simulator reads that file, as Windows would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import tempfile
import threading
import uuid

from cryptography.hazmat.primitives.asymmetric import padding
from os_win.utils import baseutils
from os_win.utils.compute import vmutils10
from os_win.utils import hostutils
from os_win.utils import hostutils10

from vtpm_hyperv.fake import crypto
from vtpm_hyperv.fake import namespaces as ns
from vtpm_hyperv.fake import windows
from vtpm_hyperv.fake import wmi
from vtpm_hyperv import keyprotector
from vtpm_hyperv import wmi_schema

VIRT, MSPS, HGS, CIMV2 = ns.VIRT, ns.MSPS, ns.HGS, ns.CIMV2
VM_ENABLED, VM_DISABLED = ns.VM_ENABLED, ns.VM_DISABLED
VM_SAVED, VM_PAUSED = ns.VM_SAVED, ns.VM_PAUSED
NO_KP_MESSAGE, UNWRAP_MESSAGE = ns.NO_KP_MESSAGE, ns.UNWRAP_MESSAGE
KPS_MESSAGE = ns.KPS_MESSAGE
LOCAL_GUARDIAN = ns.LOCAL_GUARDIAN

# The installed simulators, innermost last; hosts register with it.
_INSTALLED: list[wmi.WmiModule] = []
_ABSENT = object()


@contextlib.contextmanager
def installed():
    """Make os-win resolve WMI monikers to simulated hosts, then undo it.

    os-win's job polling (``JobUtils._wait_for_job``) and OS version probe
    call ``baseutils.wmi.WMI(moniker=...)``, a module that os-win imports on
    Windows only. Inside the ``with`` block ``baseutils.wmi`` is a
    ``wmi.WmiModule`` that answers for the hosts made in the block,
    ``BaseUtilsVirt._os_version`` (os-win's per-process cache) is 10.0 if
    it was unset, and ``HostUtils._windows_version`` (the cache of
    ``get_windows_version``) is empty, so that the block's hosts answer it
    (``FakeHyperVHost``: one Windows version per process); all are put
    back as they were when the block ends, even when it raises. Blocks
    nest; yields the module.
    """
    module = wmi.WmiModule()
    utils = baseutils.BaseUtilsVirt
    saved = (baseutils.__dict__.get('wmi', _ABSENT), utils._os_version,
             hostutils.HostUtils._windows_version)
    baseutils.wmi = module
    if not utils._os_version:
        utils._os_version = [10, 0]
    hostutils.HostUtils._windows_version = None
    _INSTALLED.append(module)
    try:
        yield module
    finally:
        _INSTALLED.remove(module)
        (previous_wmi, utils._os_version,
         hostutils.HostUtils._windows_version) = saved
        if previous_wmi is _ABSENT:
            del baseutils.wmi
        else:
            baseutils.wmi = previous_wmi


def _one_windows_version(name, version):
    """Refuse a host whose Windows version differs from the other hosts'
    made while the simulator is installed.

    os-win's ``HostUtils.get_windows_version`` keeps the first version it
    reads for the life of the process (``HostUtils._windows_version``, a
    class attribute; os-win 5.9.0's utils/hostutils.py), which is right on
    Windows: one nova-compute process manages one host. Simulated hosts
    share one process, so they must share that version too (an inference
    from os-win's code, not a Windows rule): a host of another version is
    made in a ``with fake.installed():`` block of its own, which starts
    with the cache empty.
    """
    for module in _INSTALLED:
        if module.windows_version not in (None, version):
            raise RuntimeError(
                'simulated host %s reports Windows %s, but the hosts made '
                'while the simulator is installed report %s: os-win caches '
                'one Windows version per process (HostUtils.'
                'get_windows_version); make it in a "with fake.installed():" '
                'block of its own' % (name, version, module.windows_version))
    _INSTALLED[-1].windows_version = version


# Microsoft's guide to HGS's certificates, which the renewal model follows:
# "Managing the Host Guardian Service", sections "Adding new keys",
# "Identifying and changing the primary certificates" and "Renewing or
# replacing keys" (WindowsServerDocs/security/guarded-fabric-shielded-vm/
# guarded-fabric-manage-hgs.md).
MANAGE_HGS = 'guarded-fabric-manage-hgs.md'


@dataclasses.dataclass
class KeyProtectionCertificates:
    """One signing and encryption pair that HGS holds (with private keys),
    as ``Get-HgsKeyProtectionCertificate`` lists them."""

    guardian: crypto.Guardian
    is_primary: bool = False
    is_enabled: bool = True


class Fabric:
    """A guarded fabric: its HGS and the certificates HGS holds.

    HGS is initialised with one signing and encryption pair, its primary
    one; an HGS administrator may add more and change which is primary, and
    disable and remove the others (``add_certificates``, ``set_primary``,
    ``disable``, ``remove``: the HgsServer cmdlets of ``MANAGE_HGS``).
    ``guardian`` is the primary pair: what the guardian metadata at
    ``https://<hgs>/KeyProtection/service/metadata/2014-07/metadata.xml``
    gives (``guardian_metadata``). Nothing else is offered: Microsoft
    documents no other change, and none to the primary pair but replacing it
    as primary.
    """

    def __init__(self, name, ca=None, reuse_keys=False):
        self.name = name
        self.ca = ca
        self._reuse_keys = reuse_keys
        self.certificates = [KeyProtectionCertificates(
            crypto.make_guardian(name, ca=ca, reuse_keys=reuse_keys),
            is_primary=True)]

    @property
    def guardian(self) -> crypto.Guardian:
        """The primary pair (HGS's private keys included)."""
        return next(c.guardian for c in self.certificates if c.is_primary)

    @property
    def fabric_id(self):
        """The identity the backend reports (signing certificate SHA-256)."""
        return keyprotector.fabric_id(self.guardian.signing_der)

    def guardian_metadata(self) -> crypto.Guardian:
        """The public guardian the metadata URL serves."""
        # Windows: the primary certificates "will be used if someone
        # downloads the guardian metadata for that HGS cluster" (MANAGE_HGS).
        return self.guardian.public()

    def unwrapping_guardians(self) -> list[crypto.Guardian]:
        """The pairs whose keys HGS opens a KeyProtector with."""
        # Windows: after a new primary pair, "existing VMs will continue to
        # work because the older certificates are still there"; old ones are
        # disabled "after ensuring VMs are still able to start" without
        # them, then removed (MANAGE_HGS, Renewing or replacing keys).
        return [c.guardian for c in self.certificates if c.is_enabled]

    def add_certificates(self, name) -> crypto.Guardian:
        """``Add-HgsKeyProtectionCertificate`` of a new signing and a new
        encryption certificate (not primary, enabled); the new pair."""
        # Windows: "you can add more than one encryption and signing key to
        # HGS", to "replace the existing keys for HGS by first adding the
        # new keys and keeping both sets of keys" (MANAGE_HGS).
        guardian = crypto.make_guardian(name, ca=self.ca,
                                        reuse_keys=self._reuse_keys)
        self.certificates.append(KeyProtectionCertificates(guardian))
        return guardian

    def set_primary(self, guardian):
        """``Set-HgsKeyProtectionCertificate -IsPrimary`` (both types)."""
        found = self._find(guardian)
        if not found.is_enabled:
            # Windows: documented only for an enabled pair (MANAGE_HGS).
            raise ValueError('%s is disabled' % guardian.name)
        for c in self.certificates:
            c.is_primary = c is found

    def disable(self, guardian):
        """``Set-HgsKeyProtectionCertificate -IsEnabled $false``."""
        self._not_primary(guardian).is_enabled = False

    def remove(self, guardian):
        """``Remove-HgsKeyProtectionCertificate`` (both types)."""
        self.certificates.remove(self._not_primary(guardian))

    def _find(self, guardian):
        for c in self.certificates:
            if c.guardian.signing_der == guardian.signing_der:
                return c
        raise ValueError('HGS %s holds no certificates of %s'
                         % (self.name, guardian.name))

    def _not_primary(self, guardian):
        found = self._find(guardian)
        if found.is_primary:
            # Windows: the old certificates retired are those of
            # "Get-HgsKeyProtectionCertificate -IsPrimary $false"
            # (MANAGE_HGS); nothing documents retiring the primary.
            raise ValueError('%s is the primary pair of HGS %s; make '
                             'another primary first'
                             % (guardian.name, self.name))
        return found

    def __repr__(self):
        return '<Fabric %s>' % self.name


class FakeHyperVHost:
    """One simulated Windows Server host running Hyper-V.

    :param fabric: the guarded fabric whose HGS attests this host; its
        guardian is imported into the store as ``fabric_guardian_name``
        (default: the fabric's name), as an operator does with
        ``Import-HgsGuardian``. None: a host in local mode.
    :param guarded: defaults to True with a fabric.
    :param attestation_status: the documented ``uint16`` (or HGS's word
        for it); defaults to 100 (Passed) for a guarded host, 0
        (NotConfigured) otherwise. A host with a fabric is in HGS mode
        (``Mode`` 2), one without in local mode (1).
    :param latency: seconds each WMI method call takes before it acts,
        outside the host's lock (to let concurrent callers interleave).
    :param async_jobs: Msvm methods answer 4096 and a job (as Hyper-V
        does) rather than 0.
    :param job_polls: how many reads a job stays running (os-win polls
        every 0.1 s).
    :param os_version: Win32_OperatingSystem.Version; it decides the
        release's differences (``vtpm_hyperv.fake.windows``).
    :param hgs_installed: whether the host has the HGS client
        (``Root/Microsoft/Windows/Hgs``).
    """

    def __init__(self, name, *, fabric=None, guarded=None,
                 attestation_status=None, attestation_mode=1,
                 os_version='10.0.20348', trusted_roots=(),
                 async_jobs=True, job_polls=0, fabric_guardian_name=None,
                 hgs_installed=True, latency=0.0):
        self.name = name
        self.fabric = fabric
        self.release = windows.release(os_version)
        self.guarded = bool(fabric) if guarded is None else guarded
        self.mode = (wmi_schema.MODE_HGS if fabric is not None
                     else wmi_schema.MODE_LOCAL)
        self.attestation_status = _status(attestation_status) if \
            attestation_status is not None else (100 if self.guarded else 0)
        self.attestation_substatus = 0
        # Whether this host reaches its fabric's HGS (network, TLS).
        self.hgs_reachable = True
        self.attestation_mode = attestation_mode if self.guarded else 0
        self.latency = latency
        self.os_version = os_version
        self.trusted_roots = list(trusted_roots)
        self.async_jobs = async_jobs
        self.job_polls = job_polls
        self.hgs_installed = hgs_installed
        self.lock = threading.RLock()
        self.calls: list[str] = []
        # every enumeration, query, method call and job read: on Windows,
        # each is a COM round trip to the WMI service
        self.round_trips: list[str] = []
        self.faults: list[wmi.Fault] = []
        self.vms: dict[str, ns.VMRecord] = {}
        self.store: dict[str, ns.StoredGuardian] = {}
        self._files = None  # a temporary directory, for add_pdk
        self._jobs: dict[str, wmi.Job] = {}
        self._namespaces = {
            CIMV2.lower(): ns.Cimv2(self, CIMV2),
            VIRT.lower(): ns.Virtualization(self, VIRT),
            MSPS.lower(): ns.Msps(self, MSPS),
            HGS.lower(): ns.Hgs(self, HGS),
        }
        if not _INSTALLED:
            raise RuntimeError(
                'a simulated host answers os-win only while the simulator '
                'is installed: make it inside "with fake.installed():"')
        _one_windows_version(name, os_version)
        self._wmi = _INSTALLED[-1]
        if fabric is not None:
            self.import_guardian(fabric.guardian.public(),
                                 fabric_guardian_name or fabric.name)
        self._wmi.register(self)

    def __repr__(self):
        return '<FakeHyperVHost %s>' % self.name

    def close(self):
        """Stop answering os-win's monikers for this host."""
        self._wmi.unregister(self)
        if self._files is not None:
            self._files.cleanup()
            self._files = None

    # -- connections ----------------------------------------------------------
    def namespace(self, name):
        ns = self._namespaces.get(name.strip('/').lower())
        if ns is None or (ns.name == HGS and not self.hgs_installed):
            raise wmi.x_wmi('Invalid namespace %s' % name)
        return ns

    def connection(self, name):
        return wmi.Connection(self.namespace(name))

    @property
    def virt(self):
        return self.connection(VIRT)

    @property
    def hgs(self):
        return self.connection(HGS)

    @property
    def msps(self):
        return self.connection(MSPS)

    @property
    def cimv2(self):
        return self.connection(CIMV2)

    def os_win_utils(self):
        """os-win's own ``VMUtils10`` and ``HostUtils10``, wired to this host.

        Nothing of os-win is replaced: the utils get this host's
        connection objects where, on Windows, they would open WMI ones.
        """
        vmutils = vmutils10.VMUtils10(host=self.name)
        for utils in (vmutils, vmutils._jobutils):
            utils._conn_attr = self.virt
            utils._compat_conn_attr = self.virt
        vmutils._conn_msps_attr = self.msps
        hostutils = hostutils10.HostUtils10(host=self.name)
        hostutils._conn_attr = self.virt
        hostutils._compat_conn_attr = self.virt
        hostutils._conn_cimv2 = self.cimv2
        # Without the HGS client feature, Windows has no such namespace:
        # os-win fails to open it (wmi.MissingNamespace).
        hostutils._conn_hgs_attr = (self.hgs if self.hgs_installed
                                    else wmi.MissingNamespace(HGS, self.name))
        return vmutils, hostutils

    # -- VMs -----------------------------------------------------------------
    def add_vm(self, name, generation=2, instance_uuid=None, version=None,
               secure_boot=True, template=ns.WINDOWS_TEMPLATE):
        """Create (or import) a VM, off; its id.

        :param version: its configuration version; default: the release's
            default. Windows: "You can only import a virtual machine if the
            Hyper-V host supports that configuration version" (Upgrade-
            virtual-machine-version-in-Hyper-V-on-Windows-or-Windows-
            Server.md).
        :param secure_boot: Windows: "Secure Boot is enabled by default"
            (Generation-2-virtual-machine-security-settings-for-Hyper-V.md).
        :param template: its Secure Boot template, by name.
        """
        version = version or self.release.default_version
        if not self.release.runs(version):
            raise ValueError(
                '%s does not run configuration version %s (it runs %s)' % (
                    self.release.name, version,
                    ', '.join(self.release.config_versions)))
        if template not in self.secure_boot_templates():
            raise ValueError('%s has no Secure Boot template %r'
                             % (self.release.name, template))
        with self.lock:
            if name in self.vms:
                raise ValueError('VM %s exists' % name)
            vm = ns.VMRecord(name, generation,
                             instance_uuid or str(uuid.uuid4()), version,
                             secure_boot=secure_boot, template=template)
            self.vms[name] = vm
            return vm.vm_id

    def secure_boot_templates(self):
        """The Secure Boot templates this release has, by name."""
        names = [ns.WINDOWS_TEMPLATE, ns.UEFI_CA_TEMPLATE]
        if self.release.linux_shielded_template:
            names.append(ns.SHIELDED_LINUX_TEMPLATE)
        return names

    def remove_vm(self, name):
        with self.lock:
            self.vms.pop(name, None)

    def vm_security(self, name) -> dict:
        """The VM's security settings and key protector, as a plain dict."""
        with self.lock:
            vm = self.vms[name]
            return dict(vm.flags, KeyProtector=bytes(vm.key_protector),
                        LastKnownGoodKeyProtector=bytes(vm.lkg_key_protector),
                        SecurityPolicy=bytes(vm.policy), EnabledState=vm.state)

    def start_vm(self, name):
        """Power a VM on (from off or saved); fails as Hyper-V does when its
        KP cannot unwrap. A VM that runs already is left as it is (os-win
        takes Hyper-V's 32775 for that as success)."""
        with self.lock:
            vm = self.vms[name]
            if vm.state != VM_ENABLED:
                self.change_state(vm, VM_ENABLED)

    def stop_vm(self, name):
        """Turn a VM off, from any state (a saved state is discarded)."""
        with self.lock:
            vm = self.vms[name]
            if vm.state != VM_DISABLED:
                self.change_state(vm, VM_DISABLED)

    def pause_vm(self, name):
        with self.lock:
            self.change_state(self.vms[name], ns.VM_PAUSED)

    def save_vm(self, name):
        with self.lock:
            self.change_state(self.vms[name], ns.VM_SAVED)

    def change_state(self, vm, requested):
        """Msvm_ComputerSystem.RequestStateChange(RequestedState) of ``vm``.

        Windows (requeststatechange-msvm-computersystem.md): 2 runs an off,
        saved or paused VM ("Resuming ... State transition from Paused to
        Running"); 3 turns it off; 6 saves and 9 pauses a running one (os-
        win's suspend and pause); 10 ("State transition from Off or Saved to
        Running") as 2; 11 resets a running one. Any other request, or one
        the VM's state does not allow, answers "Invalid state for this
        operation (32775)": "The value specified in the RequestedState
        parameter is not supported" (os-win: "typically means that the VM
        is already in the state requested").
        """
        state = vm.state
        if requested in (VM_ENABLED, ns.REQUEST_REBOOT) and state in (
                VM_DISABLED, ns.VM_SAVED) or (
                requested == VM_ENABLED and state == ns.VM_PAUSED):
            if state != ns.VM_PAUSED and (vm.flags['TpmEnabled']
                                          or vm.flags['ShieldingRequested']):
                # Restoring a saved VM needs its vTPM's key as a start
                # does (an inference: the saved state holds the vTPM's
                # state, encrypted).
                self._open_vtpm(vm)
            vm.state = VM_ENABLED
        elif requested == VM_DISABLED and state != VM_DISABLED:
            vm.state = VM_DISABLED
        elif requested in (ns.VM_SAVED, ns.VM_PAUSED) and state == VM_ENABLED:
            vm.state = requested
        elif requested == ns.REQUEST_RESET and state == VM_ENABLED:
            # The VM restarts in the same worker process, which holds the
            # vTPM's key (an inference: no page says a reset unwraps).
            pass
        else:
            raise wmi.MethodError(wmi.INVALID_STATE, (
                "Virtual machine '%s' is %s; RequestedState %s is not "
                "supported from there.") % (
                    vm.name, wmi_schema.VM_STATES.get(state, state),
                    requested))

    def _open_vtpm(self, vm):
        """Unwrap the VM's key protector and roll its transport key."""
        opener, transport_key = self._unwrap_for_start(vm)
        # Windows: the vTPM's state is encrypted with the transport key;
        # each start unwraps the key protector and, in MS-KPS's words,
        # returns "a new egress key and egress key protector" (signed by
        # the guardian that unwrapped). The egress key protector is the
        # one that "successfully encrypted TPM device state in the last VM
        # boot": the last known good (msvm-tpmsettingdata.md).
        if vm.tpm_state_key is not None and transport_key != \
                vm.tpm_state_key:
            # An inference: the message is the simulator's.
            raise wmi.MethodError(wmi.ACCESS_DENIED, UNWRAP_MESSAGE % (
                vm.name, 'It is stale: the last start encrypted the '
                'virtual TPM state with another key.'), as_job=True)
        parsed = crypto.parse_key_protector(vm.key_protector)
        new_key = os.urandom(crypto.TRANSPORT_KEY_BYTES)
        egress = crypto.build_key_protector(
            parsed.owner, parsed.guardians, kp_id=parsed.kp_id,
            signer=opener, transport_key=new_key)
        vm.key_protector = vm.lkg_key_protector = egress
        vm.tpm_state_key = new_key

    def _unwrap_for_start(self, vm):
        """(The guardian with private keys that opens the VM's KP, the
        transport key it holds)."""
        if not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name)
        if self.mode == wmi_schema.MODE_HGS:
            # Windows: in HGS mode the host gets the key from HGS, which
            # releases it only to a host that passed attestation; local
            # guardians are not used ("Shielded VM local mode and HGS
            # mode", Microsoft Datacenter Security blog, 2018-01-05: "If the
            # host is not connected to the network, the shielded VM won't
            # start"; guarded-fabric-troubleshoot-hosts.md).
            word = wmi_schema.attestation_word(self.attestation_status)
            if not self.guarded or word != 'Passed':
                raise wmi.MethodError(wmi.ACCESS_DENIED, UNWRAP_MESSAGE % (
                    vm.name, 'The host failed attestation (%s).' % word),
                    as_job=True)
            if not self.hgs_reachable:
                raise wmi.MethodError(wmi.ACCESS_DENIED, UNWRAP_MESSAGE % (
                    vm.name, KPS_MESSAGE + '.'), as_job=True)
            openers = self.fabric.unwrapping_guardians()
        else:
            # Windows: "In local mode, there is no attestation and the
            # client keeps key material" (Set-HgsClientConfiguration.md):
            # a guardian of the local store with its private keys.
            openers = [s.guardian for s in self.store.values()
                       if s.guardian.encryption_key is not None]
        for guardian in openers:
            try:
                transport_key = crypto.unwrap_key_protector(
                    vm.key_protector, guardian.encryption_key)
            except crypto.UnwrapError:
                continue
            return guardian, transport_key
        raise wmi.MethodError(wmi.ACCESS_DENIED, UNWRAP_MESSAGE % (
            vm.name, 'It names no guardian of this host.'), as_job=True)

    def holds_owner_key(self, raw):
        """Whether the store has the owner guardian of key protector ``raw``
        with its private keys."""
        try:
            owner = crypto.parse_key_protector(raw).owner
        except crypto.KeyProtectorError:
            return False
        return any(s.has_private and s.guardian.signing_der ==
                   owner.signing_der for s in self.store.values())

    # -- attestation ----------------------------------------------------------
    def attest(self, *, substatus=None, authorized=True):
        """Attest again, as the HGS client does at start and periodically.

        Windows ("Troubleshooting Guarded Hosts"): TransientError (300)
        when "The last attestation attempt failed due to a networking,
        service, or other temporary error" (HGS unreachable or refusing
        TLS); UnauthorizedHost (301) when "it was not authorized to run
        shielded VMs"; InsecureHostConfiguration (303), with "one or more
        reasons ... in the AttestationSubStatus field", when "it did not
        comply with the attestation policies configured on HGS" (the
        substatus bits of msft-hgsclientconfiguration.md); otherwise
        Passed (100). A host in local mode does not attest.

        :param substatus: the AttestationSubstatus bits HGS objects to.
        :param authorized: whether HGS trusts this host.
        """
        with self.lock:
            if self.mode != wmi_schema.MODE_HGS:
                return
            self.attestation_substatus = 0
            if not self.hgs_reachable:
                self.attestation_status = 300
            elif not authorized:
                self.attestation_status = 301
            elif substatus:
                self.attestation_status = 303
                self.attestation_substatus = substatus
            else:
                self.attestation_status = 100

    def set_hgs_reachable(self, reachable):
        """The network (or TLS) path to the fabric's HGS works, or not."""
        with self.lock:
            self.hgs_reachable = reachable

    # -- guardians (operator actions, outside WMI) ----------------------------
    def import_guardian(self, guardian, name=None):
        with self.lock:
            g = crypto.Guardian(name or guardian.name, guardian.signing_cert,
                                guardian.encryption_cert,
                                guardian.signing_key, guardian.encryption_key)
            self.store[g.name] = ns.StoredGuardian(
                g, g.signing_key is not None)

    def remove_guardian(self, name):
        """``Remove-HgsGuardian -Name``: the operator's, outside WMI."""
        with self.lock:
            del self.store[name]

    def guardian_names(self):
        with self.lock:
            return sorted(self.store)

    def set_attestation(self, status, guarded=None):
        """``status``: the documented uint16, or HGS's word for it."""
        with self.lock:
            self.attestation_status = _status(status)
            if guarded is not None:
                self.guarded = guarded

    def add_pdk(self, pdk: bytes) -> str:
        """Put a shielding data file on this host's disk; its path."""
        with self.lock:
            if self._files is None:
                self._files = tempfile.TemporaryDirectory(
                    prefix='vtpmsim-%s-' % self.name)
            fd, path = tempfile.mkstemp(suffix='.pdk', dir=self._files.name)
            with os.fdopen(fd, 'wb') as f:
                f.write(bytes(pdk))
            return path

    # -- fault injection ------------------------------------------------------
    def fail(self, target, *, return_code=None, job_error=None,
             description='simulated failure', at=1, times=1, mode=None):
        """Fail ``target`` at its ``at``-th call from now, ``times`` times.

        ``target`` is ``'Class.Method'`` for a method, or ``'Class'`` to make
        enumerating or querying that class raise ``x_wmi``. Give
        ``return_code`` (answered directly) or ``job_error`` (the call
        answers 4096 and its job ends in the Exception state with it);
        ``mode`` (see ``wmi.Fault``) defaults to 'job' or 'return' by which
        one is given; 'raise' raises x_wmi; 'applied' lets the call take
        effect before it reports the failure.
        """
        if mode is None:
            mode = 'job' if job_error is not None else 'return'
        with self.lock:
            fault = wmi.Fault(target, return_code, job_error, description,
                              at, times, mode=mode)
            self.faults.append(fault)
            return fault

    def clear_faults(self):
        with self.lock:
            self.faults.clear()

    def take_fault(self, target):
        for fault in self.faults:
            if fault.target != target or fault.times <= 0:
                continue
            fault.seen += 1
            if fault.seen >= fault.at:
                fault.times -= 1
                return fault
        return None

    def round_trip(self, target):
        with self.lock:
            self.round_trips.append(target)

    def check_fault(self, class_name, query=False):
        with self.lock:
            fault = self.take_fault(class_name)
        if fault is not None:
            raise wmi.x_wmi('%s: %s' % (class_name, fault.description))

    # -- jobs ----------------------------------------------------------------
    def new_job(self, target, code, description):
        job = wmi.Job(self, target, code, description, self.job_polls)
        self._jobs[job.instance_id] = job
        return ('\\\\%s\\root\\virtualization\\v2:Msvm_ConcreteJob.'
                'InstanceID="%s"' % (self.name, job.instance_id))

    def has_job(self, instance_id):
        return instance_id in self._jobs

    def job_errors(self, instance_id):
        """Msvm_ConcreteJob.GetErrorEx's Errors for a job."""
        with self.lock:
            job = self._jobs.get(instance_id)
            return job.errors() if job is not None else None

    def read_job(self, namespace, instance_id):
        self.round_trip('Msvm_ConcreteJob')
        with self.lock:
            job = self._jobs.get(instance_id)
            if job is None:
                raise wmi.x_wmi('job %s not found' % instance_id)
            props = job.props()
            job.remaining -= 1
            job.reads += 1
        inst = wmi.Instance(self.namespace(VIRT), 'Msvm_ConcreteJob', props)
        return inst

    # -- certificate rules ----------------------------------------------------
    def check_certificates(self, certs, allow_expired, allow_untrusted_root):
        # Windows: AllowExpired and AllowUntrustedRoot, "when specified",
        # allow expired and self-signed certificates (the HgsClientWmi
        # method pages).
        now = datetime.datetime.now(datetime.timezone.utc)
        for cert in certs:
            not_before, not_after = crypto.validity(cert)
            if not allow_expired and not not_before <= now <= not_after:
                raise wmi.MethodError(wmi.INVALID_PARAMETER, (
                    'The certificate %s is expired or not yet valid; use '
                    'AllowExpired.') % cert.subject.rfc4514_string())
            if not allow_untrusted_root and not self._trusted(cert):
                raise wmi.MethodError(wmi.INVALID_PARAMETER, (
                    'A certificate chain processed, but terminated in a root '
                    'certificate which is not trusted by the trust provider '
                    '(%s); use AllowUntrustedRoot.')
                    % cert.subject.rfc4514_string())

    def _trusted(self, cert):
        for root in self.trusted_roots:
            if cert.issuer != root.subject:
                continue
            try:
                root.public_key().verify(
                    cert.signature, cert.tbs_certificate_bytes,
                    padding.PKCS1v15(), cert.signature_hash_algorithm)
                return True
            except Exception:  # noqa: BLE001 - any failure: not trusted
                continue
        return False


_WORDS = {word: number for number, word in
          wmi_schema.ATTESTATION_STATUS.items()}


def _status(status):
    """A documented AttestationStatus number from a number or HGS's word."""
    return _WORDS[status] if isinstance(status, str) else int(status)
