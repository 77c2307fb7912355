# SPDX-License-Identifier: Apache-2.0
"""The simulated host's WMI namespaces: classes, methods and Hyper-V's rules.

See ``vtpm_hyperv.fake.host`` for the rules; each handler receives the
instance it is called on (None for static methods) and the caller's
arguments, and returns its out parameters or raises ``wmi.MethodError``.
"""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives.serialization import pkcs12

from vtpm_hyperv.fake import crypto
from vtpm_hyperv.fake import windows
from vtpm_hyperv.fake import wmi
from vtpm_hyperv import wmi_schema

VIRT = 'root/virtualization/v2'
MSPS = 'root/msps'
HGS = 'Root/Microsoft/Windows/Hgs'
CIMV2 = 'root/cimv2'

# Msvm_ComputerSystem.EnabledState of a VM (msvm-computersystem.md): 2
# running, 3 off, 6 "Enabled but Offline" (saved), 9 "Quiesce" (paused);
# os-win maps 6 and 9 so (vmutils._vm_power_states_map).
VM_ENABLED = 2
VM_DISABLED = 3
VM_SAVED = 6
VM_PAUSED = 9
# Msvm_ComputerSystem.RequestStateChange's RequestedState values the
# simulator carries out (requeststatechange-msvm-computersystem.md):
# Enabled (2), Disabled (3), Offline (6: save), Quiesce (9: pause), Reboot
# (10: "State transition from Off or Saved to Running"), Reset (11).
REQUEST_REBOOT = 10
REQUEST_RESET = 11

NO_KP_MESSAGE = ("The selected security settings of virtual machine '%s' "
                 "cannot be changed without a valid key protector "
                 "configured.")
UNWRAP_MESSAGE = ("The key protector for the virtual machine '%s' could not "
                  "be unwrapped. %s")
# Windows: "the Host Guardian Service Client failed to unwrap a Key
# Protector on behalf of a calling process" when the host cannot talk to
# HGS's Key Protection Service (guarded-fabric-troubleshoot-hosts.md,
# Modern TLS).
KPS_MESSAGE = ("the Host Guardian Service Client failed to unwrap a Key "
               "Protector on behalf of a calling process")

# Msvm_SecuritySettingData booleans a client may change.
SECURITY_FLAGS = ('TpmEnabled', 'KsdEnabled', 'ShieldingRequested',
                  'DataProtectionRequested',
                  'EncryptStateAndVmMigrationTraffic',
                  'VirtualizationBasedSecurityOptOut')
# What "Enable Shielding" selects and enforces: "If you select this option,
# Secure Boot, Enable Trusted Platform Module, and Encrypt State and VM
# migration traffic options are selected and enforced"
# (Generation-2-virtual-machine-security-settings-for-Hyper-V.md).
SHIELDING_ENFORCES = ('TpmEnabled', 'EncryptStateAndVmMigrationTraffic')

LOCAL_GUARDIAN = 'UntrustedGuardian'

# Secure Boot templates (the same page's table): a Windows guest, a Linux
# one, a Linux shielded VM.
WINDOWS_TEMPLATE = 'Microsoft Windows'
UEFI_CA_TEMPLATE = 'Microsoft UEFI Certificate Authority'
SHIELDED_LINUX_TEMPLATE = 'Open Source Shielded VM'
# The templates a shielded VM boots with: Windows, or "leveraged to secure
# boot for Linux-based shielded VMs". An inference where the pages are
# silent: shielding with another template is refused.
SHIELDED_TEMPLATES = (WINDOWS_TEMPLATE, SHIELDED_LINUX_TEMPLATE)


def template_id(name):
    """A template's SecureBootTemplateId on a simulated host: the
    simulator's own GUID (the backend and os-win read ids from the host,
    by the template's ElementName, as os-win's VMUtils10._set_secure_boot
    does)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, 'simulated-template:' + name))


class VMRecord:
    def __init__(self, name, generation, instance_uuid, version,
                 secure_boot=True, template=WINDOWS_TEMPLATE):
        self.name = name
        self.vm_id = str(uuid.uuid4()).upper()
        self.generation = generation
        self.instance_uuid = instance_uuid
        # Msvm_VirtualSystemSettingData.Version, "major.minor".
        self.version = version
        # "Secure Boot is enabled by default" (the Generation 2 security
        # settings page); a Generation 1 VM has none.
        self.secure_boot = secure_boot and generation == 2
        self.template = template
        self.state = VM_DISABLED
        self.flags = dict.fromkeys(SECURITY_FLAGS, False)
        self.key_protector = b''
        self.lkg_key_protector = b''
        self.policy = b''
        # The transport key the vTPM's state is encrypted with; None until
        # the vTPM first starts and has a state.
        self.tpm_state_key = None


class StoredGuardian:
    def __init__(self, guardian, has_private):
        self.guardian = guardian
        self.has_private = has_private

    def props(self):
        return {'Name': self.guardian.name,
                'SigningCertificate': self.guardian.signing_der,
                'EncryptionCertificate': self.guardian.encryption_der,
                'HasPrivateSigningKey': self.has_private}


class Cimv2(wmi.Namespace):
    def _instances(self, class_name):
        if class_name.lower() == 'win32_operatingsystem':
            return [{'InstanceID': '0', 'Version': self.host.os_version,
                     'Caption': 'Microsoft Windows Server (simulated)'}]
        return []


class Virtualization(wmi.Namespace):
    def __init__(self, host, name):
        super().__init__(host, name)
        sec = 'Msvm_SecurityService'
        self.register(sec, 'SetKeyProtector', self._set_kp)
        self.register(sec, 'GetKeyProtector', self._get_kp)
        self.register(sec, 'SetSecurityPolicy', self._set_policy)
        self.register(sec, 'ModifySecuritySettings', self._modify)
        self.register(sec, 'RestoreLastKnownGoodKeyProtector',
                      self._restore_lkg)
        self.register('Msvm_ConcreteJob', 'GetErrorEx',
                      lambda job: {'Errors': self.host.job_errors(
                          job.InstanceID)})
        self.register('Msvm_ComputerSystem', 'RequestStateChange',
                      self._request_state)

    def key_of(self, class_name):
        return 'Name' if class_name == 'Msvm_ComputerSystem' else 'InstanceID'

    def _instances(self, class_name):
        vms = list(self.host.vms.values())
        if class_name == 'Msvm_SecurityService':
            return [{'InstanceID': 'Microsoft:SecurityService',
                     'Name': 'Microsoft:SecurityService'}]
        if class_name == 'Msvm_VirtualSystemManagementService':
            return [{'InstanceID': 'Microsoft:VSMS', 'Name': 'vmms'}]
        if class_name == 'Msvm_ComputerSystem':
            return [{'Name': vm.vm_id, 'ElementName': vm.name,
                     'EnabledState': vm.state,
                     'InstanceID': 'Microsoft:%s' % vm.vm_id} for vm in vms]
        if class_name == 'Msvm_VirtualSystemSettingData':
            return [{'InstanceID': 'Microsoft:%s' % vm.vm_id,
                     'ElementName': vm.name, 'ConfigurationID': vm.vm_id,
                     'VirtualSystemIdentifier': vm.vm_id,
                     'VirtualSystemType': wmi_schema.REALIZED,
                     'VirtualSystemSubType':
                         'Microsoft:Hyper-V:SubType:%d' % vm.generation,
                     'Version': vm.version,
                     'SecureBootEnabled': vm.secure_boot,
                     'SecureBootTemplateId': (template_id(vm.template)
                                              if vm.generation == 2
                                              else None),
                     'Notes': [vm.instance_uuid]} for vm in vms] + [
                # The Secure Boot templates, found by name as os-win finds
                # them (VMUtils10._set_secure_boot); not VMs.
                {'InstanceID': 'Microsoft:Template:%s' % template_id(name),
                 'ElementName': name, 'SecureBootTemplateId':
                     template_id(name)}
                for name in self.host.secure_boot_templates()]
        if class_name == 'Msvm_SecuritySettingData':
            return [dict(vm.flags, InstanceID='Microsoft:%s' % vm.vm_id,
                         ElementName=vm.name) for vm in vms]
        if class_name == 'Msvm_TPMSettingData':
            # Windows: "End of server support: Windows Server 2016"
            # (msvm-tpmsettingdata.md).
            if not self.host.release.tpm_setting_data:
                return []
            return [{'InstanceID': 'Microsoft:%s\\TPM' % vm.vm_id,
                     'EnabledState': (VM_ENABLED if vm.flags['TpmEnabled']
                                      else VM_DISABLED),
                     'Shielded': vm.flags['ShieldingRequested'],
                     'DataProtected': vm.flags['DataProtectionRequested'],
                     'KeyProtector': bytes(vm.key_protector),
                     'LastKnownGoodKeyProtector': bytes(vm.lkg_key_protector)}
                    for vm in vms if vm.generation == 2]
        return []

    # -- helpers --------------------------------------------------------------
    def _vm_of(self, ssd_text):
        class_name, props = wmi.from_cim_xml(ssd_text)
        if class_name != 'Msvm_SecuritySettingData':
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'SecuritySettingData is a %s' % class_name)
        vm_id = str(props.get('InstanceID', '')).split(':', 1)[-1]
        vm_id = vm_id.split('\\')[0]
        for vm in self.host.vms.values():
            if vm.vm_id.lower() == vm_id.lower():
                return vm, props
        raise wmi.MethodError(wmi.NOT_AVAILABLE, 'no VM %s' % vm_id)

    @staticmethod
    def _check_off(vm, code=wmi.INVALID_STATE):
        # Windows: security settings change only while the VM is off
        # (guarded-fabric-create-vm-move-to-guarded-fabric.md: Stop-VM
        # first); a saved or paused VM is not off. The Msvm_SecurityService
        # pages list "Invalid state for this operation (32775)",
        # ModifySecuritySettings's "Invalid State (5)".
        if vm.state != VM_DISABLED:
            raise wmi.MethodError(code, (
                "The virtual machine '%s' must be turned off to change its "
                "security settings (it is %s).") % (
                    vm.name, wmi_schema.VM_STATES.get(vm.state, vm.state)))

    # -- methods -------------------------------------------------------------
    def _set_kp(self, _instance, SecuritySettingData, KeyProtector):
        vm, _ = self._vm_of(SecuritySettingData)
        self._check_off(vm)
        if not KeyProtector:
            # Windows: nothing documents an empty key protector (the page
            # says "the key protector to set"); no call removes one.
            raise wmi.MethodError(wmi.INVALID_PARAMETER, (
                "An empty key protector is not a key protector (virtual "
                "machine '%s').") % vm.name)
        try:
            parsed = crypto.parse_key_protector(KeyProtector)
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'The key protector is invalid: %s' % e,
                                  as_job=True) from e
        if vm.key_protector and (vm.flags['TpmEnabled']
                                 or vm.flags['ShieldingRequested']):
            old = crypto.parse_key_protector(vm.key_protector)
            # Windows: "You cannot change the owner" (New-HgsKeyProtector.md).
            if old.owner.signing_der != parsed.owner.signing_der:
                raise wmi.MethodError(wmi.ACCESS_DENIED, (
                    "The owner of the key protector of virtual machine "
                    "'%s' cannot change.") % vm.name, as_job=True)
        vm.key_protector = KeyProtector
        return {}

    def _get_kp(self, _instance, SecuritySettingData):
        vm, _ = self._vm_of(SecuritySettingData)
        # Windows: "On success, returns a 0 or 4096", and KeyProtector
        # "Receives the raw byte array that contains the key protector
        # currently in use" (msvm-securityservice-getkeyprotector.md). When
        # Hyper-V answers which is not documented: the simulator answers
        # 4096 when it runs jobs asynchronously, 0 otherwise.
        return {'KeyProtector': bytes(vm.key_protector),
                'ReturnValue': (wmi.JOB_STARTED if self.host.async_jobs
                                else wmi.OK)}

    def _set_policy(self, _instance, SecuritySettingData, SecurityPolicy):
        vm, _ = self._vm_of(SecuritySettingData)
        self._check_off(vm)
        # Windows: no security change without a key protector (the error
        # Hyper-V gives, hashicorp/vagrant#11978).
        if not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name,
                                  as_job=True)
        vm.policy = SecurityPolicy
        return {}

    def _modify(self, _instance, SecuritySettingData):
        vm, props = self._vm_of(SecuritySettingData)
        # ModifySecuritySettings's page lists DMTF's values: Not Supported
        # (1), Failed (2), Invalid Parameter (4), Invalid State (5),
        # Incompatible Parameters (6).
        self._check_off(vm, code=MODIFY_INVALID_STATE)
        new = dict(vm.flags)
        for name in SECURITY_FLAGS:
            if name in props and props[name] is not None:
                new[name] = _bool(props[name])
        changed = [n for n in SECURITY_FLAGS if new[n] != vm.flags[n]]
        if vm.flags['ShieldingRequested'] and changed:
            self._check_shielded_change(vm, changed)
        if new['TpmEnabled'] and not vm.flags['TpmEnabled']:
            self._check_tpm_supported(vm)
        # Windows: no vTPM enable without a key protector (vagrant#11978).
        if (new['TpmEnabled'] or new['ShieldingRequested']) and \
                not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name,
                                  as_job=True)
        if new['ShieldingRequested']:
            self._check_shielding(vm, new)
        vm.flags = new
        return {}

    def _check_tpm_supported(self, vm):
        if vm.generation != 2:
            raise wmi.MethodError(MODIFY_NOT_SUPPORTED, (
                "Virtual machine '%s' is generation %d; a virtual TPM needs "
                "generation 2.") % (vm.name, vm.generation))
        # Windows: "Virtual Trusted Platform Module (vTPM)" needs
        # configuration version 7.0 (Upgrade-virtual-machine-version-in-
        # Hyper-V-on-Windows-or-Windows-Server.md). The answer (Not
        # Supported) is an inference.
        if windows.version_tuple(vm.version) < windows.version_tuple(
                windows.VTPM_MIN_VERSION):
            raise wmi.MethodError(MODIFY_NOT_SUPPORTED, (
                "Virtual machine '%s' has configuration version %s; a "
                "virtual TPM needs %s or later (Update-VMVersion).") % (
                    vm.name, vm.version, windows.VTPM_MIN_VERSION))

    def _check_shielding(self, vm, new):
        # Windows: shielding selects and enforces the TPM and encrypted
        # state (SHIELDING_ENFORCES) and Secure Boot. Whether WMI selects
        # them itself or refuses is not documented; the simulator refuses
        # (Incompatible Parameters, an inference).
        off = [n for n in SHIELDING_ENFORCES if not new[n]]
        if off:
            raise wmi.MethodError(MODIFY_INCOMPATIBLE, (
                "Shielding virtual machine '%s' needs %s too.") % (
                    vm.name, ' and '.join(off)))
        if not vm.secure_boot or vm.template not in SHIELDED_TEMPLATES:
            raise wmi.MethodError(MODIFY_INCOMPATIBLE, (
                "Shielding virtual machine '%s' needs Secure Boot with the "
                "%s template (it has %s).") % (
                    vm.name, ' or '.join(SHIELDED_TEMPLATES),
                    'the %s template' % vm.template if vm.secure_boot
                    else 'Secure Boot off'))

    def _check_shielded_change(self, vm, changed):
        # Windows: "If you haven't set up the Host Guardian Service or are
        # running it in local mode on the Hyper-V host and the host has the
        # virtual machine owner's guardian key, you can change the settings
        # described in this topic" (Generation-2-virtual-machine-security-
        # settings-for-Hyper-V.md). The answer (a job failing with Access
        # Denied) is an inference.
        if self.host.mode == wmi_schema.MODE_LOCAL and \
                self.host.holds_owner_key(vm.key_protector):
            return
        raise wmi.MethodError(wmi.ACCESS_DENIED, (
            "The security settings of shielded virtual machine '%s' (%s) "
            "can be changed only on a host in local mode that holds the "
            "owner's guardian key.") % (vm.name, ', '.join(changed)),
            as_job=True)

    def _restore_lkg(self, _instance, SecuritySettingData):
        vm, _ = self._vm_of(SecuritySettingData)
        self._check_off(vm)
        # Windows: the last known good key protector is the one that
        # "successfully encrypted TPM device state in the last VM boot"
        # (msvm-tpmsettingdata.md): none before the first start.
        if not vm.lkg_key_protector:
            raise wmi.MethodError(wmi.INVALID_STATE, (
                "Virtual machine '%s' has no last known good key "
                "protector.") % vm.name)
        vm.key_protector = vm.lkg_key_protector
        return {}

    def _request_state(self, instance, RequestedState, TimeoutPeriod):
        vm = next((v for v in self.host.vms.values()
                   if v.vm_id == instance.Name), None)
        if vm is None:
            raise wmi.MethodError(wmi.NOT_AVAILABLE, 'VM is gone')
        self.host.change_state(vm, RequestedState)
        return {}


# ModifySecuritySettings's return values (its page).
MODIFY_NOT_SUPPORTED = 1
MODIFY_INVALID_STATE = 5
MODIFY_INCOMPATIBLE = 6


def _bool(value):
    if isinstance(value, str):
        return value.upper() == 'TRUE'
    return bool(value)


def _read_file(path):
    """A file the caller named by path, as Windows' providers read it."""
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError as e:
        raise wmi.MethodError(wmi.NOT_AVAILABLE,
                              'The file %s cannot be read: %s'
                              % (path, e.strerror)) from e


class Msps(wmi.Namespace):
    def __init__(self, host, name):
        super().__init__(host, name)
        self.register('Msps_ProvisioningFileProcessor', 'PopulateFromFile',
                      self._populate)

    def _populate(self, _instance, FilePath):
        try:
            kp, policy, raw = crypto.read_shielding_data_file(
                _read_file(FilePath))
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER, (
                '%s is not a shielding data file: %s') % (FilePath, e)) from e
        return {'ProvisioningFile': wmi.Instance(
            self, 'Msps_PDK', {'InstanceID': FilePath, 'KeyProtector': kp,
                               'PolicyData': policy, 'RawData': raw,
                               'VolumeIDFilters': []})}


class Hgs(wmi.Namespace):
    # Windows: the HgsClientWmi pages document no return values; the
    # provider reports a failure as an MI error (an inference), which PyMI
    # raises as x_wmi.
    mi_errors = True

    def __init__(self, host, name):
        super().__init__(host, name)
        self.register('MSFT_HgsClientConfiguration', 'Get', self._config)
        g = 'MSFT_HgsGuardian'
        self.register(g, 'Import', self._import)
        self.register(g, 'NewByAcceptCertificates', self._accept)
        self.register(g, 'NewByGenerateCertificates', self._generate)
        self.register(g, 'Remove', self._remove)
        kp = 'MSFT_HgsKeyProtector'
        self.register(kp, 'NewByGuardians', self._new_kp)
        self.register(kp, 'ConvertToByRawBytes', self._convert)
        self.register(kp, 'Grant', self._grant)
        self.register(kp, 'Revoke', self._revoke)

    def key_of(self, class_name):
        return 'Name' if class_name == 'MSFT_HgsGuardian' else 'InstanceID'

    def _instances(self, class_name):
        if class_name == 'MSFT_HgsGuardian':
            return [g.props() for g in self.host.store.values()]
        return []

    def _guardian_instance(self, stored):
        return wmi.Instance(self, 'MSFT_HgsGuardian', stored.props(), 'Name')

    def _config(self, _instance):
        h = self.host
        return {'cmdletOutput': wmi.Instance(
            self, 'MSFT_HgsClientConfiguration', {
                'InstanceID': 'HgsClientConfiguration',
                'Mode': h.mode,
                'IsHostGuarded': h.guarded,
                'AttestationStatus': h.attestation_status,
                'AttestationSubstatus': h.attestation_substatus,
                'AttestationOperationMode': h.attestation_mode,
                'KeyProtectionServerUrl': (
                    'http://%s/KeyProtection' % h.fabric.name
                    if h.fabric else None),
                'AttestationServerUrl': (
                    'http://%s/Attestation' % h.fabric.name
                    if h.fabric else None)})}

    # -- guardians ------------------------------------------------------------
    def _new_name(self, name):
        if name in self.host.store:
            raise wmi.MethodError(wmi.IN_USE,
                                  'A guardian named %s exists.' % name)

    def _store(self, guardian, has_private):
        stored = StoredGuardian(guardian, has_private)
        self.host.store[guardian.name] = stored
        return {'cmdletOutput': self._guardian_instance(stored)}

    def _import(self, _instance, Path, Name, AllowExpired,
                AllowUntrustedRoot):
        self._new_name(Name)
        try:
            g = crypto.read_guardian_file(_read_file(Path))
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER, (
                '%s is not a guardian file: %s') % (Path, e)) from e
        self.host.check_certificates((g.signing_cert, g.encryption_cert),
                                     AllowExpired, AllowUntrustedRoot)
        return self._store(crypto.Guardian(Name, g.signing_cert,
                                           g.encryption_cert), False)

    def _accept(self, _instance, Name, EncryptionCertificate,
                SigningCertificate, SigningCertificatePassword,
                EncryptionCertificatePassword, AllowExpired,
                AllowUntrustedRoot):
        self._new_name(Name)
        # Windows: two password-protected PFX files, each "that contains
        # the public and private keys" (newbyacceptcertificates.md).
        sign_key, sign_cert = _load_pfx(SigningCertificate,
                                        SigningCertificatePassword)
        enc_key, enc_cert = _load_pfx(EncryptionCertificate,
                                      EncryptionCertificatePassword)
        self.host.check_certificates((sign_cert, enc_cert), AllowExpired,
                                     AllowUntrustedRoot)
        return self._store(crypto.Guardian(Name, sign_cert, enc_cert,
                                           sign_key, enc_key), True)

    def _generate(self, _instance, Name, GenerateCertificates):
        self._new_name(Name)
        if not GenerateCertificates:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'GenerateCertificates is not set.')
        # Fresh keys: each host's local guardian is its own.
        return self._store(crypto.make_guardian(Name), True)

    def _remove(self, _instance, Name):
        if Name not in self.host.store:
            raise wmi.MethodError(wmi.NOT_AVAILABLE,
                                  'No guardian named %s.' % Name)
        del self.host.store[Name]
        return {}

    def _stored(self, guardian):
        """The store's guardian an embedded instance names."""
        stored = self.host.store.get(guardian.Name)
        if stored is None or bytes(stored.guardian.signing_der) != bytes(
                guardian.SigningCertificate):
            raise wmi.MethodError(wmi.NOT_AVAILABLE,
                                  'No guardian named %s.' % guardian.Name)
        return stored

    # -- key protectors -------------------------------------------------------
    def _kp_instance(self, raw):
        parsed = crypto.parse_key_protector(raw)

        def inst(g):
            return wmi.Instance(self, 'MSFT_HgsGuardian', {
                'Name': g.name, 'SigningCertificate': g.signing_der,
                'EncryptionCertificate': g.encryption_der,
                'HasPrivateSigningKey': False}, 'Name')
        return wmi.Instance(self, 'MSFT_HgsKeyProtector', {
            'InstanceID': parsed.kp_id, 'RawData': bytes(raw),
            'Owner': inst(parsed.owner),
            'Guardians': [inst(g) for g in parsed.guardians]})

    def _make(self, owner, guardians, kp_id=None, transport_key=None):
        # Windows: the owner signs; it needs its private signing key
        # (msft-hgsguardian.md, HasPrivateSigningKey; MS-KPS: an owner is
        # "An entity that creates and signs a key protector").
        if not owner.has_private:
            raise wmi.MethodError(wmi.ACCESS_DENIED, (
                'The owner guardian %s has no private signing key.')
                % owner.guardian.name)
        raw = crypto.build_key_protector(
            owner.guardian, [g.guardian for g in guardians],
            transport_key=transport_key, kp_id=kp_id)
        return {'cmdletOutput': self._kp_instance(raw)}

    def _new_kp(self, _instance, AllowUntrustedRoot, AllowExpired, Owner,
                Guardian):
        owner = self._stored(Owner)
        guardians = [self._stored(g) for g in (Guardian or ())]
        certs = []
        for s in [owner] + guardians:
            certs += [s.guardian.signing_cert, s.guardian.encryption_cert]
        self.host.check_certificates(certs, AllowExpired, AllowUntrustedRoot)
        return self._make(owner, guardians)

    def _convert(self, _instance, Bytes):
        try:
            return {'cmdletOutput': self._kp_instance(Bytes)}
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'The key protector is invalid: %s' % e)

    def _regrant(self, key_protector, change):
        try:
            parsed = crypto.parse_key_protector(bytes(key_protector.RawData))
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'The key protector is invalid: %s' % e)
        # Windows: Grant and Revoke need "the owner signing private key"
        # (grant-msft-hgskeyprotector.md, revoke-msft-hgskeyprotector.md):
        # the owner guardian, with its private keys, in this store.
        owner = next((s for s in self.host.store.values()
                      if s.guardian.signing_der == parsed.owner.signing_der
                      and s.has_private), None)
        if owner is None:
            raise wmi.MethodError(wmi.ACCESS_DENIED, (
                'Granting or revoking access needs the private signing key '
                'of the owner guardian %s.') % parsed.owner.name)
        # The key protector given is unwrapped with the owner's key (MS-KPS:
        # the owner is one of the wrappings of the transport key), so the
        # new one protects the same transport key, wherever it was made.
        try:
            tk = crypto.unwrap_key_protector(bytes(key_protector.RawData),
                                             owner.guardian.encryption_key)
        except crypto.UnwrapError as e:
            raise wmi.MethodError(wmi.ACCESS_DENIED, (
                'The owner guardian %s cannot unwrap the key protector: %s')
                % (parsed.owner.name, e)) from e
        guardians = change(list(parsed.guardians))
        stored = [StoredGuardian(g, False) for g in guardians]
        # Windows: the owner stays the owner (New-HgsKeyProtector.md).
        return self._make(owner, stored, kp_id=parsed.kp_id, transport_key=tk)

    def _grant(self, _instance, KeyProtector, Guardian, AllowExpired,
               AllowUntrustedRoot):
        new = self._stored(Guardian).guardian
        self.host.check_certificates(
            (new.signing_cert, new.encryption_cert), AllowExpired,
            AllowUntrustedRoot)
        return self._regrant(KeyProtector, lambda gs: gs + [new.public()])

    def _revoke(self, _instance, KeyProtector, Guardian):
        gone = self._stored(Guardian).guardian
        return self._regrant(KeyProtector, lambda gs: [
            g for g in gs if g.signing_der != gone.signing_der])


def _load_pfx(path, password):
    """A PFX file's private key and certificate; both must be there."""
    data = _read_file(path)
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None)
    except (ValueError, TypeError) as e:
        raise wmi.MethodError(wmi.INVALID_PARAMETER, (
            'The PFX file %s cannot be read with the password given.')
            % path) from e
    if cert is None or key is None:
        raise wmi.MethodError(wmi.INVALID_PARAMETER, (
            'The PFX file %s does not hold a certificate with its private '
            'key.') % path)
    return key, cert
