# SPDX-License-Identifier: Apache-2.0
"""The simulated host's WMI namespaces: classes, methods and Hyper-V's rules.

See ``vtpm_hyperv.fake.host`` for the rules; each handler receives the
instance it is called on (None for static methods) and the caller's
arguments, and returns its out parameters or raises ``wmi.MethodError``.
"""

from __future__ import annotations

import uuid

from cryptography import x509
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
        self.register(sec, 'SetKeyProtector', self._set_kp,
                      out=('Job', 'ReturnValue'), job=True)
        self.register(sec, 'GetKeyProtector', self._get_kp,
                      out=('KeyProtector', 'ReturnValue'))
        self.register(sec, 'SetSecurityPolicy', self._set_policy,
                      out=('Job', 'ReturnValue'), job=True)
        self.register(sec, 'ModifySecuritySettings', self._modify,
                      out=('Job', 'ReturnValue'), job=True)
        self.register(sec, 'RestoreLastKnownGoodKeyProtector',
                      self._restore_lkg, out=('Job', 'ReturnValue'), job=True)
        self.register('Msvm_ConcreteJob', 'GetErrorEx',
                      lambda job: {'Errors': [job.ErrorDescription]},
                      out=('Errors', 'ReturnValue'))
        self.register('Msvm_ComputerSystem', 'RequestStateChange',
                      self._request_state, out=('Job', 'ReturnValue'),
                      job=True)

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
    def _settings_arg(args, kwargs):
        """The SecuritySettingData argument, by name or first position."""
        return kwargs.get('SecuritySettingData') or (args[0] if args else None)

    @staticmethod
    def _split(args, kwargs, blob_name):
        """os-win passes (blob, settings) positionally, the MOF lists
        (settings, blob): accept both, and names."""
        ssd = kwargs.get('SecuritySettingData')
        blob = kwargs.get(blob_name)
        for arg in args:
            if isinstance(arg, str):
                ssd = arg
            else:
                blob = arg
        if ssd is None:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'SecuritySettingData is missing')
        return ssd, bytes(blob or b'')

    @staticmethod
    def _check_off(vm):
        if vm.state != VM_DISABLED:
            raise wmi.MethodError(
                wmi.INVALID_STATE, "The virtual machine '%s' must be turned "
                "off to change its security settings." % vm.name)

    # -- methods -------------------------------------------------------------
    def _set_kp(self, _instance, *args, **kwargs):
        ssd, kp = self._split(args, kwargs, 'KeyProtector')
        vm, _ = self._vm_of(ssd)
        self._check_off(vm)
        if not kp:
            if vm.flags['TpmEnabled'] or vm.flags['ShieldingRequested']:
                raise wmi.MethodError(wmi.INVALID_STATE, (
                    "The key protector of virtual machine '%s' cannot be "
                    "removed while its TPM is enabled.") % vm.name)
        else:
            try:
                parsed = crypto.parse_key_protector(kp)
            except crypto.KeyProtectorError as e:
                raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                      'The key protector is invalid: %s' % e,
                                      as_job=True) from e
            if vm.key_protector and (vm.flags['TpmEnabled']
                                     or vm.flags['ShieldingRequested']):
                old = crypto.parse_key_protector(vm.key_protector)
                if old.owner.signing_der != parsed.owner.signing_der:
                    raise wmi.MethodError(wmi.ACCESS_DENIED, (
                        "The owner of the key protector of virtual machine "
                        "'%s' cannot change.") % vm.name, as_job=True)
        vm.key_protector = kp
        return {}

    def _get_kp(self, _instance, *args, **kwargs):
        ssd = self._settings_arg(args, kwargs)
        vm, _ = self._vm_of(ssd)
        return {'KeyProtector': bytes(vm.key_protector)}

    def _set_policy(self, _instance, *args, **kwargs):
        ssd, policy = self._split(args, kwargs, 'SecurityPolicy')
        vm, _ = self._vm_of(ssd)
        self._check_off(vm)
        if not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name,
                                  as_job=True)
        vm.policy = policy
        return {}

    def _modify(self, _instance, *args, **kwargs):
        ssd = self._settings_arg(args, kwargs)
        vm, props = self._vm_of(ssd)
        self._check_off(vm)
        new = dict(vm.flags)
        for name in SECURITY_FLAGS:
            if name in props and props[name] is not None:
                new[name] = _bool(props[name])
        if new['TpmEnabled'] and vm.generation != 2:
            raise wmi.MethodError(wmi.NOT_SUPPORTED, (
                "Virtual machine '%s' is generation %d; a virtual TPM needs "
                "generation 2.") % (vm.name, vm.generation))
        if (new['TpmEnabled'] or new['ShieldingRequested']) and \
                not vm.key_protector:
            raise wmi.MethodError(wmi.FAILED, NO_KP_MESSAGE % vm.name,
                                  as_job=True)
        vm.flags = new
        return {}

    def _restore_lkg(self, _instance, *args, **kwargs):
        ssd = self._settings_arg(args, kwargs)
        vm, _ = self._vm_of(ssd)
        self._check_off(vm)
        if not vm.lkg_key_protector:
            raise wmi.MethodError(wmi.INVALID_STATE, (
                "Virtual machine '%s' has no last known good key "
                "protector.") % vm.name)
        vm.key_protector = vm.lkg_key_protector
        return {}

    def _request_state(self, instance, RequestedState=None, *args, **kwargs):
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


class Msps(wmi.Namespace):
    def __init__(self, host, name):
        super().__init__(host, name)
        self.register('Msps_ProvisioningFileProcessor', 'PopulateFromFile',
                      self._populate, out=('ProvisioningFile', 'ReturnValue'))
        self.register('Msps_ProvisioningFileProcessor', 'SerializeToFile',
                      lambda *a, **k: {}, out=('ReturnValue',))
        self.register('Msps_ProvisioningService', 'ProvisionMachine',
                      lambda *a, **k: {}, out=('Job', 'ReturnValue'),
                      job=True)

    def _populate(self, _instance, path=None, **kwargs):
        path = path or kwargs.get('FilePath')
        if path not in self.host.pdks:
            raise wmi.MethodError(wmi.NOT_AVAILABLE, 'no file %s' % path)
        kp, policy = self.host.pdks[path]
        return {'ProvisioningFile': wmi.Instance(
            self, 'Msps_PDK', {'InstanceID': path, 'KeyProtector': kp,
                               'PolicyData': policy})}


class Hgs(wmi.Namespace):
    def __init__(self, host, name):
        super().__init__(host, name)
        out = ('ReturnValue', 'cmdletOutput')
        self.register('MSFT_HgsClientConfiguration', 'Get', self._config,
                      out=out)
        g = 'MSFT_HgsGuardian'
        self.register(g, 'NewByAcceptCertificates', self._accept, out=out)
        self.register(g, 'NewByGenerateCertificates', self._generate,
                      out=out)
        self.register(g, 'Remove', self._remove, out=('ReturnValue',))
        kp = 'MSFT_HgsKeyProtector'
        self.register(kp, 'NewByGuardians', self._new_kp, out=out)
        self.register(kp, 'ConvertToByRawBytes', self._convert, out=out)
        self.register(kp, 'Grant', self._grant, out=out)
        self.register(kp, 'Revoke', self._revoke, out=out)

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
                'Mode': 'HostGuardianService' if h.guarded else 'Local',
                'IsHostGuarded': h.guarded,
                'AttestationStatus': h.attestation_status,
                'AttestationSubstatus': [],
                'AttestationOperationMode': h.attestation_mode,
                'KeyProtectionServerUrl': (
                    'http://%s/KeyProtection' % h.fabric.name
                    if h.fabric else None),
                'AttestationServerUrl': (
                    'http://%s/Attestation' % h.fabric.name
                    if h.fabric else None)})}

    # -- guardians ------------------------------------------------------------
    def _accept(self, _instance, Name=None, SigningCertificate=None,
                SigningCertificatePassword=None, EncryptionCertificate=None,
                EncryptionCertificatePassword=None, AllowExpired=False,
                AllowUntrustedRoot=False):
        if not Name:
            raise wmi.MethodError(wmi.INVALID_PARAMETER, 'Name is required')
        if Name in self.host.store:
            raise wmi.MethodError(wmi.IN_USE,
                                  'A guardian named %s exists.' % Name)
        sign_key, sign_cert = _load_cert(SigningCertificate,
                                         SigningCertificatePassword)
        enc_key, enc_cert = _load_cert(EncryptionCertificate,
                                       EncryptionCertificatePassword)
        self.host.check_certificates((sign_cert, enc_cert), AllowExpired,
                                     AllowUntrustedRoot)
        stored = StoredGuardian(
            crypto.Guardian(Name, sign_cert, enc_cert, sign_key, enc_key),
            sign_key is not None)
        self.host.store[Name] = stored
        return {'cmdletOutput': self._guardian_instance(stored)}

    def _generate(self, _instance, Name=None, **kwargs):
        if not Name or Name in self.host.store:
            raise wmi.MethodError(wmi.IN_USE,
                                  'A guardian named %s exists.' % Name)
        # Fresh keys: each host's local guardian is its own.
        g = crypto.make_guardian(Name)
        stored = StoredGuardian(g, True)
        self.host.store[Name] = stored
        return {'cmdletOutput': self._guardian_instance(stored)}

    def _remove(self, _instance, Name=None):
        if Name not in self.host.store:
            raise wmi.MethodError(wmi.NOT_AVAILABLE,
                                  'No guardian named %s.' % Name)
        del self.host.store[Name]
        return {}

    def _stored(self, guardian):
        name = guardian if isinstance(guardian, str) else getattr(
            guardian, 'Name', None)
        stored = self.host.store.get(name)
        if stored is None:
            raise wmi.MethodError(wmi.NOT_AVAILABLE,
                                  'No guardian named %s.' % name)
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

    def _new_kp(self, _instance, Owner=None, Guardians=(), AllowExpired=False,
                AllowUntrustedRoot=False):
        owner = self._stored(Owner)
        guardians = [self._stored(g) for g in (Guardians or ())]
        certs = []
        for s in [owner] + guardians:
            certs += [s.guardian.signing_cert, s.guardian.encryption_cert]
        self.host.check_certificates(certs, AllowExpired, AllowUntrustedRoot)
        return self._make(owner, guardians)

    def _convert(self, _instance, RawData=None):
        try:
            return {'cmdletOutput': self._kp_instance(bytes(RawData or b''))}
        except (crypto.KeyProtectorError, TypeError, ValueError) as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'The key protector is invalid: %s' % e)

    def _regrant(self, raw, change):
        try:
            parsed = crypto.parse_key_protector(bytes(raw or b''))
        except crypto.KeyProtectorError as e:
            raise wmi.MethodError(wmi.INVALID_PARAMETER,
                                  'The key protector is invalid: %s' % e)
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
        # The owner stays the owner: the same guardian signs the new KP.
        return self._make(owner, stored, kp_id=parsed.kp_id, transport_key=tk)

    def _grant(self, _instance, KeyProtector=None, Guardian=None,
               AllowExpired=False, AllowUntrustedRoot=False):
        new = self._stored(Guardian).guardian
        self.host.check_certificates(
            (new.signing_cert, new.encryption_cert), AllowExpired,
            AllowUntrustedRoot)
        return self._regrant(KeyProtector, lambda gs: gs + [new.public()])

    def _revoke(self, _instance, KeyProtector=None, Guardian=None):
        gone = self._stored(Guardian).guardian
        return self._regrant(KeyProtector, lambda gs: [
            g for g in gs if g.signing_der != gone.signing_der])


def _load_cert(data, password):
    """A DER certificate, or a PKCS#12 with (optionally) its private key."""
    data = bytes(data or b'')
    try:
        return None, x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    try:
        key, cert, _ = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None)
    except (ValueError, TypeError) as e:
        raise wmi.MethodError(wmi.INVALID_PARAMETER,
                              'The certificate cannot be read.') from e
    if cert is None:
        raise wmi.MethodError(wmi.INVALID_PARAMETER,
                              'The PFX holds no certificate.')
    return key, cert
