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
from vtpm_hyperv.fake import wmi

VIRT = 'root/virtualization/v2'
MSPS = 'root/msps'
HGS = 'Root/Microsoft/Windows/Hgs'
CIMV2 = 'root/cimv2'

VM_ENABLED = 2
VM_DISABLED = 3

NO_KP_MESSAGE = ("The selected security settings of virtual machine '%s' "
                 "cannot be changed without a valid key protector "
                 "configured.")
UNWRAP_MESSAGE = ("The key protector for the virtual machine '%s' could not "
                  "be unwrapped. %s")

# Msvm_SecuritySettingData booleans a client may change.
SECURITY_FLAGS = ('TpmEnabled', 'KsdEnabled', 'ShieldingRequested',
                  'DataProtectionRequested',
                  'EncryptStateAndVmMigrationTraffic',
                  'VirtualizationBasedSecurityOptOut')

LOCAL_GUARDIAN = 'UntrustedGuardian'

# The transport keys of KeyProtectors this process's simulated HGS made,
# by KeyProtector id (HGS generated them, so it can re-wrap on Grant).
_TRANSPORT_KEYS: dict[str, bytes] = {}


class VMRecord:
    def __init__(self, name, generation, instance_uuid):
        self.name = name
        self.vm_id = str(uuid.uuid4()).upper()
        self.generation = generation
        self.instance_uuid = instance_uuid
        self.state = VM_DISABLED
        self.flags = dict.fromkeys(SECURITY_FLAGS, False)
        self.key_protector = b''
        self.lkg_key_protector = b''
        self.policy = b''


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


def _bool(value):
    if isinstance(value, str):
        return value.upper() == 'TRUE'
    return bool(value)


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
                      lambda job: {'Errors': [job.ErrorDescription]})
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
                     'VirtualSystemType': 'Microsoft:Hyper-V:System:Realized',
                     'VirtualSystemSubType':
                         'Microsoft:Hyper-V:SubType:%d' % vm.generation,
                     'Notes': [vm.instance_uuid]} for vm in vms]
        if class_name == 'Msvm_SecuritySettingData':
            return [dict(vm.flags, InstanceID='Microsoft:%s' % vm.vm_id,
                         ElementName=vm.name) for vm in vms]
        if class_name == 'Msvm_TPMSettingData':
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
    def _check_off(vm):
        # Windows: security settings change only while the VM is off
        # (guarded-fabric-create-vm-move-to-guarded-fabric.md: Stop-VM first).
        if vm.state != VM_DISABLED:
            raise wmi.MethodError(
                wmi.INVALID_STATE, "The virtual machine '%s' must be turned "
                "off to change its security settings." % vm.name)

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
        return {'KeyProtector': bytes(vm.key_protector)}

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
        self._check_off(vm)
        new = dict(vm.flags)
        for name in SECURITY_FLAGS:
            if name in props and props[name] is not None:
                new[name] = _bool(props[name])
        if new['TpmEnabled'] and vm.generation != 2:
            raise wmi.MethodError(wmi.NOT_SUPPORTED, (
                "Virtual machine '%s' is generation %d; a virtual TPM needs "
                "generation 2.") % (vm.name, vm.generation))
        # Windows: no vTPM enable without a key protector (vagrant#11978).
        if (new['TpmEnabled'] or new['ShieldingRequested']) and \
                not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name,
                                  as_job=True)
        vm.flags = new
        return {}

    def _restore_lkg(self, _instance, SecuritySettingData):
        vm, _ = self._vm_of(SecuritySettingData)
        self._check_off(vm)
        # Windows: the last known good key protector is the one that
        # opened the TPM at the last boot (msvm-tpmsettingdata.md).
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
        if RequestedState == VM_ENABLED:
            self.host.start_vm(vm.name)
        elif RequestedState == VM_DISABLED:
            self.host.stop_vm(vm.name)
        else:
            raise wmi.MethodError(wmi.NOT_SUPPORTED,
                                  'state %s' % RequestedState)
        return {}


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
        # (msft-hgsguardian.md, HasPrivateSigningKey).
        if not owner.has_private:
            raise wmi.MethodError(wmi.ACCESS_DENIED, (
                'The owner guardian %s has no private signing key.')
                % owner.guardian.name)
        transport_key = transport_key or crypto.os.urandom(
            crypto.TRANSPORT_KEY_BYTES)
        raw = crypto.build_key_protector(
            owner.guardian, [g.guardian for g in guardians],
            transport_key=transport_key, kp_id=kp_id)
        parsed = crypto.parse_key_protector(raw)
        _TRANSPORT_KEYS[parsed.kp_id] = transport_key
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
        parsed = crypto.parse_key_protector(bytes(key_protector.RawData))
        # Windows: Grant and Revoke need "the owner signing private key"
        # (grant-msft-hgskeyprotector.md, revoke-msft-hgskeyprotector.md).
        owner = next((s for s in self.host.store.values()
                      if s.guardian.signing_der == parsed.owner.signing_der
                      and s.has_private), None)
        if owner is None:
            raise wmi.MethodError(wmi.ACCESS_DENIED, (
                'Granting or revoking access needs the private signing key '
                'of the owner guardian %s.') % parsed.owner.name)
        tk = _TRANSPORT_KEYS.get(parsed.kp_id)
        if tk is None:
            raise wmi.MethodError(wmi.NOT_SUPPORTED, 'unknown transport key')
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
