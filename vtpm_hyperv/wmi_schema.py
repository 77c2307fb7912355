# SPDX-License-Identifier: Apache-2.0
"""The WMI surface this project uses, as Microsoft documents it.

One table, as data, to hold against Microsoft's pages line by line: every
class, method, parameter (name, direction, CIM type, position on the page,
required) and property type that the backend, os-win's code it calls, and
the simulator (``vtpm_hyperv.fake``) rely on. ``source`` is the page in
``MicrosoftDocs/win32`` (``desktop-src/...``) or, for the ``root/msps``
classes, whose pages are only on learn.microsoft.com, its path there.

The simulator offers exactly this and validates every call against it; the
Windows-host check (``vtpm_cli.hyperv_check``) compares a live host's
classes with it. Nothing here imports the simulator, os-win or PyMI.

How PyMI binds arguments (``wmi/__init__.py`` of cloudbase/PyMI,
``_Connection.invoke_method``): a keyword argument by name (an unknown name
raises ``x_wmi``); the i-th positional argument to the i-th element of the
method's in-parameter instance, which ``Application::NewMethodParamsInstance``
(``MI/MI++.cpp``) fills from ``MethodInfo::m_parameters``, a
``std::map<std::wstring, ...>``: in-parameters in code-unit order of their
names, not in the order of the MOF or of the page. So os-win's
``SetKeyProtector(key_protector, settings)`` binds ``KeyProtector`` first,
as it means to, although the page lists ``SecuritySettingData`` first.
Out parameters come back as a tuple sorted by name (``ReturnValue`` sorts
before ``cmdletOutput``); arrays come back as tuples (``uint8[]`` as a
tuple of ints).

How PyMI converts values (``_unwrap_element`` in ``wmi/__init__.py``, then
``Py2MI`` in ``PyMI/Utils.cpp``): a string to a boolean is true when it is
'true', 'yes' or '1' (any case) and false otherwise; an int to a boolean is
``!= 0``; a numeric string to an unsigned integer through
``PyLong_FromString(s, NULL, 10)``; an int to a string through ``str()``;
any object but a bool, an int, a list or a tuple to a string through
``str()`` (so bytes become "b'...'"); any iterable to an array, item by
item. PyMI does not check that an input is given: an unset input reaches
the provider as NULL.

What "required" means here: the page describes the input as what the
method acts on (a name, a path, an embedded instance, the bytes). Inputs the
page introduces with "When specified" (PowerShell switches) and certificate
passwords (a PFX may have none) are optional. The pages mark no input
``optional`` explicitly. PyMI does not enforce it; a call without one is
not one Microsoft documents, and the simulator counts it so.

Return values: each ``Msvm_*`` method's page lists its own (most list
Hyper-V's 32768 and up, ``ModifySecuritySettings`` the DMTF's 1 to 6);
the HGS client's pages list none: its provider reports a failure as an MI
error, which PyMI raises as ``x_wmi``.
"""

from __future__ import annotations

import dataclasses

HGS = 'Root/Microsoft/Windows/Hgs'
VIRT = 'root/virtualization/v2'
MSPS = 'root/msps'

_HGS_DOCS = 'desktop-src/HgsClientWmi/'
_VIRT_DOCS = 'desktop-src/HyperV_v2/'
_MSPS_DOCS = ('learn.microsoft.com/previous-versions/windows/desktop/'
              'mspsprov/')

# CIM types as the pages spell them: boolean, string, datetime, uint8 to
# uint64. An embedded instance is the class name; an array ends in '[]'; a
# reference is 'REF <class>'; a string that holds an embedded instance as
# text (the Msvm_SecurityService methods) is 'string'.


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    cim_type: str
    direction: str  # 'in' or 'out'
    required: bool = False

    @property
    def is_array(self) -> bool:
        return self.cim_type.endswith('[]')

    @property
    def item_type(self) -> str:
        return self.cim_type[:-2] if self.is_array else self.cim_type


def In(name, cim_type, required=False):  # noqa: N802 - reads as the MOF
    return Param(name, cim_type, 'in', required)


def Out(name, cim_type):  # noqa: N802 - reads as the MOF
    return Param(name, cim_type, 'out')


@dataclasses.dataclass(frozen=True)
class Method:
    namespace: str
    class_name: str
    name: str
    # In the page's order, which is the MOF's: the order of the parameters'
    # ``ID`` qualifiers on a live host (mofcomp numbers them as declared).
    params: tuple[Param, ...]
    source: str
    static: bool = True  # called on the class, not on an instance
    return_type: str = 'uint32'
    # The return values the page lists, in its words; empty where it lists
    # none (the HGS client's pages: a failure is an MI error, which PyMI
    # raises as x_wmi).
    return_codes: dict = dataclasses.field(default_factory=dict, hash=False,
                                           compare=False)
    # The values the page calls success ("On success, returns a 0 or
    # 4096"); 4096 means a job started only where a Job is an output.
    success: tuple[int, ...] = (0,)

    @property
    def target(self) -> str:
        return '%s.%s' % (self.class_name, self.name)

    @property
    def inputs(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.direction == 'in')

    @property
    def outputs(self) -> tuple[Param, ...]:
        return tuple(p for p in self.params if p.direction == 'out')

    @property
    def positional_order(self) -> tuple[Param, ...]:
        """The in-parameters in the order PyMI binds positional arguments."""
        return tuple(sorted(self.inputs, key=lambda p: p.name))

    @property
    def job(self) -> bool:
        """Whether the method hands back a job (``REF CIM_ConcreteJob``)."""
        return any(p.cim_type == JOB for p in self.outputs)

    def describe(self, code) -> str:
        """A return value in the page's words."""
        return self.return_codes.get(code) or 'return value %s (%s gives it ' \
            'no description)' % (code, self.source.rsplit('/', 1)[-1])

    @property
    def result_order(self) -> tuple[str, ...]:
        """The out tuple PyMI returns: out parameters and ReturnValue."""
        return tuple(sorted([p.name for p in self.outputs] + ['ReturnValue']))


@dataclasses.dataclass(frozen=True)
class WmiClass:
    namespace: str
    name: str
    properties: dict[str, str]
    source: str
    # The last Windows Server release the page says supports the class
    # ("End of server support"), as the build that starts its version
    # string; None: every release since its first.
    last_server: str | None = None


# Msvm_* return values, as every Msvm_SecurityService page but
# ModifySecuritySettings's lists them (and GetErrorEx's, and, where it names
# them, RequestStateChange's).
RETURN_CODES = {
    0: 'Completed with No Error', 4096: 'Method Parameters Checked - Job '
    'Started', 32768: 'Failed', 32769: 'Access Denied',
    32770: 'Not Supported', 32771: 'Status is unknown', 32772: 'Timeout',
    32773: 'Invalid parameter', 32774: 'System is in use',
    32775: 'Invalid state for this operation',
    32776: 'Incorrect data type', 32777: 'System is not available',
    32778: 'Out of memory',
}
# ModifySecuritySettings's page lists other values (the DMTF's).
MODIFY_SECURITY_CODES = {
    0: 'Completed with No Error', 1: 'Not Supported', 2: 'Failed',
    3: 'Timeout', 4: 'Invalid Parameter', 5: 'Invalid State',
    6: 'Incompatible Parameters',
    4096: 'Method Parameters Checked - Job Started',
}
# RequestStateChange's page names four of its values.
REQUEST_STATE_CODES = {
    0: 'Completed with No Error',
    4096: 'Method Parameters Checked - Transition Started',
    32769: 'Access Denied',
    32775: 'Invalid state for this operation (the value specified in the '
           'RequestedState parameter is not supported)',
}


def _hgs(class_name, name, params, page):
    # Static: the HGS client's methods make or read objects, not an
    # instance's state (HgsClientWmi.mof; Get-CimClass shows the Static
    # qualifier, which vtpm-hyperv-check compares).
    return Method(HGS, class_name, name, tuple(params), _HGS_DOCS + page)


def _virt(class_name, name, params, page, static=False, codes=RETURN_CODES,
          success=(0,)):
    return Method(VIRT, class_name, name, tuple(params), _VIRT_DOCS + page,
                  static=static, return_codes=codes, success=success)


_GUARDIAN = 'MSFT_HgsGuardian'
_KP = 'MSFT_HgsKeyProtector'
_CONFIG = 'MSFT_HgsClientConfiguration'
JOB = 'REF CIM_ConcreteJob'
_JOB = JOB

METHODS = (
    # --- Root/Microsoft/Windows/Hgs (HgsClientWmi.mof) ---------------------
    _hgs(_CONFIG, 'Get', [Out('cmdletOutput', _CONFIG)],
         'get-msft-hgsclientconfiguration.md'),
    _hgs(_CONFIG, 'SetByChangeToLocalMode', [
        In('EnableLocalMode', 'boolean'), Out('cmdletOutput', _CONFIG)],
        'msft-hgsclientconfiguration-setbychangetolocalmode.md'),
    _hgs(_CONFIG, 'SetBySecureHostingServiceMode', [
        In('KeyProtectionServerUrl', 'string', True),
        In('AttestationServerUrl', 'string', True),
        Out('cmdletOutput', _CONFIG)],
        'msft-hgsclientconfiguration-setbysecurehostingservicemode.md'),
    _hgs(_GUARDIAN, 'Export', [
        In('Path', 'string', True), In('InputObject', _GUARDIAN, True)],
        'export-msft-hgsguardian.md'),
    _hgs(_GUARDIAN, 'Import', [
        In('Path', 'string', True), In('Name', 'string', True),
        In('AllowExpired', 'boolean'), In('AllowUntrustedRoot', 'boolean'),
        Out('cmdletOutput', _GUARDIAN)],
        'import-msft-hgsguardian.md'),
    _hgs(_GUARDIAN, 'NewByAcceptCertificates', [
        In('Name', 'string', True),
        In('EncryptionCertificate', 'string', True),
        In('SigningCertificate', 'string', True),
        In('SigningCertificatePassword', 'string'),
        In('EncryptionCertificatePassword', 'string'),
        In('AllowExpired', 'boolean'), In('AllowUntrustedRoot', 'boolean'),
        Out('cmdletOutput', _GUARDIAN)],
        'msft-hgsguardian-newbyacceptcertificates.md'),
    _hgs(_GUARDIAN, 'NewByCertificateThumbprints', [
        In('Name', 'string', True),
        In('SigningCertificateThumbprint', 'string', True),
        In('EncryptionCertificateThumbprint', 'string', True),
        In('AllowExpired', 'boolean'), In('AllowUntrustedRoot', 'boolean'),
        Out('cmdletOutput', _GUARDIAN)],
        'msft-hgsguardian-newbycertificatethumbprints.md'),
    _hgs(_GUARDIAN, 'NewByGenerateCertificates', [
        In('Name', 'string', True), In('GenerateCertificates', 'boolean'),
        Out('cmdletOutput', _GUARDIAN)],
        'msft-hgsguardian-newbygeneratecertificates.md'),
    _hgs(_GUARDIAN, 'Remove', [In('Name', 'string', True)],
         'remove-msft-hgsguardian.md'),
    _hgs(_KP, 'ConvertToByRawBytes', [
        In('Bytes', 'uint8[]', True), Out('cmdletOutput', _KP)],
        'msft-hgskeyprotector-converttobyrawbytes.md'),
    _hgs(_KP, 'Grant', [
        In('KeyProtector', _KP, True), In('Guardian', _GUARDIAN, True),
        In('AllowExpired', 'boolean'), In('AllowUntrustedRoot', 'boolean'),
        Out('cmdletOutput', _KP)],
        'grant-msft-hgskeyprotector.md'),
    _hgs(_KP, 'NewByGuardians', [
        In('AllowUntrustedRoot', 'boolean'), In('AllowExpired', 'boolean'),
        In('Owner', _GUARDIAN, True), In('Guardian', _GUARDIAN + '[]'),
        Out('cmdletOutput', _KP)],
        'msft-hgskeyprotector-newbyguardians.md'),
    _hgs(_KP, 'Revoke', [
        In('KeyProtector', _KP, True), In('Guardian', _GUARDIAN, True),
        Out('cmdletOutput', _KP)],
        'revoke-msft-hgskeyprotector.md'),
    # --- root/virtualization/v2 (WindowsVirtualization.V2.mof) ------------
    # "On success, returns a 0 or 4096" (no job: the key protector comes
    # back in the out parameter either way).
    _virt('Msvm_SecurityService', 'GetKeyProtector', [
        In('SecuritySettingData', 'string', True),
        Out('KeyProtector', 'uint8[]')],
        'msvm-securityservice-getkeyprotector.md', success=(0, 4096)),
    _virt('Msvm_SecurityService', 'ModifySecuritySettings', [
        In('SecuritySettingData', 'string', True), Out('Job', _JOB)],
        'msvm-securityservice-modifysecuritysettings.md',
        codes=MODIFY_SECURITY_CODES),
    _virt('Msvm_SecurityService', 'RestoreLastKnownGoodKeyProtector', [
        In('SecuritySettingData', 'string', True), Out('Job', _JOB)],
        'msvm-securityservice-restorelastknowngoodkeyprotector.md'),
    _virt('Msvm_SecurityService', 'SetKeyProtector', [
        In('SecuritySettingData', 'string', True),
        In('KeyProtector', 'uint8[]', True), Out('Job', _JOB)],
        'msvm-securityservice-setkeyprotector.md'),
    _virt('Msvm_SecurityService', 'SetSecurityPolicy', [
        In('SecuritySettingData', 'string', True),
        In('SecurityPolicy', 'uint8[]', True), Out('Job', _JOB)],
        'msvm-securityservice-setsecuritypolicy.md'),
    # os-win powers VMs on and off (vmutils.set_vm_state). "TimeoutPeriod:
    # This parameter is not used."
    _virt('Msvm_ComputerSystem', 'RequestStateChange', [
        In('RequestedState', 'uint16', True), Out('Job', _JOB),
        In('TimeoutPeriod', 'datetime')],
        'requeststatechange-msvm-computersystem.md',
        codes=REQUEST_STATE_CODES),
    # os-win reads a failed job's errors (jobutils._get_job_error_details).
    _virt('Msvm_ConcreteJob', 'GetErrorEx', [Out('Errors', 'string[]')],
          'geterrorex-msvm-concretejob.md'),
    # --- root/msps (the shielded VM provisioning provider) ----------------
    Method(MSPS, 'Msps_ProvisioningFileProcessor', 'PopulateFromFile', (
        In('FilePath', 'string', True),
        Out('ProvisioningFile', 'Msps_ProvisioningFile')),
        _MSPS_DOCS + 'populatefromfile-msps-provisioningfileprocessor'),
)

CLASSES = (
    WmiClass(HGS, _CONFIG, {
        'Mode': 'uint16', 'IsHostGuarded': 'boolean',
        'KeyProtectionServerUrl': 'string', 'AttestationServerUrl': 'string',
        'AttestationOperationMode': 'uint16', 'AttestationStatus': 'uint16',
        'AttestationSubstatus': 'uint64'},
        _HGS_DOCS + 'msft-hgsclientconfiguration.md'),
    WmiClass(HGS, _GUARDIAN, {
        'Name': 'string', 'SigningCertificate': 'uint8[]',
        'EncryptionCertificate': 'uint8[]',
        'EncryptionCertificateSignature': 'string',
        'EncryptionCertificateSignatureAlgorithm': 'string',
        'HasPrivateSigningKey': 'boolean'},
        _HGS_DOCS + 'msft-hgsguardian.md'),
    WmiClass(HGS, _KP, {
        'Owner': _GUARDIAN, 'Guardians': _GUARDIAN + '[]',
        'RawData': 'uint8[]'},
        _HGS_DOCS + 'msft-hgskeyprotector.md'),
    # InstanceID and ElementName are CIM_SettingData's (cim-settingdata.md).
    WmiClass(VIRT, 'Msvm_SecuritySettingData', {
        'InstanceID': 'string', 'ElementName': 'string',
        'TpmEnabled': 'boolean', 'KsdEnabled': 'boolean',
        'ShieldingRequested': 'boolean', 'DataProtectionRequested': 'boolean',
        'EncryptStateAndVmMigrationTraffic': 'boolean',
        'VirtualizationBasedSecurityOptOut': 'boolean'},
        _VIRT_DOCS + 'msvm-securitysettingdata.md'),
    # "End of server support: Windows Server 2016".
    WmiClass(VIRT, 'Msvm_TPMSettingData', {
        'InstanceID': 'string', 'Shielded': 'boolean',
        'DataProtected': 'boolean', 'EnabledState': 'uint16',
        'KeyProtector': 'uint8[]', 'LastKnownGoodKeyProtector': 'uint8[]'},
        _VIRT_DOCS + 'msvm-tpmsettingdata.md', last_server='10.0.14393'),
    # What os-win and the backend read of a VM's settings (of the page's
    # 61 properties): its identity, generation, configuration version and
    # Secure Boot. Secure Boot templates are instances of it too, named by
    # ElementName (os-win's VMUtils10._set_secure_boot).
    WmiClass(VIRT, 'Msvm_VirtualSystemSettingData', {
        'InstanceID': 'string', 'ElementName': 'string',
        'VirtualSystemIdentifier': 'string', 'VirtualSystemType': 'string',
        'Notes': 'string[]', 'ConfigurationID': 'string',
        'Version': 'string', 'VirtualSystemSubType': 'string',
        'SecureBootEnabled': 'boolean', 'SecureBootTemplateId': 'string'},
        _VIRT_DOCS + 'msvm-virtualsystemsettingdata.md'),
    WmiClass(VIRT, 'Msvm_ComputerSystem', {
        'InstanceID': 'string', 'ElementName': 'string', 'Name': 'string',
        'EnabledState': 'uint16'},
        _VIRT_DOCS + 'msvm-computersystem.md'),
    # What os-win's JobUtils reads of a job (_wait_for_job,
    # _get_job_details).
    WmiClass(VIRT, 'Msvm_ConcreteJob', {
        'InstanceID': 'string', 'Description': 'string',
        'ElementName': 'string', 'JobStatus': 'string',
        'ElapsedTime': 'datetime', 'Cancellable': 'boolean',
        'JobType': 'uint16', 'Owner': 'string', 'PercentComplete': 'uint16',
        'JobState': 'uint16', 'StatusDescriptions': 'string[]',
        'OperationalStatus': 'uint16[]', 'TimeSubmitted': 'datetime',
        'UntilTime': 'datetime', 'TimeOfLastStateChange': 'datetime',
        'DetailedStatus': 'uint16', 'LocalOrUtcTime': 'uint16',
        'ErrorCode': 'uint16', 'ErrorDescription': 'string',
        'ErrorSummaryDescription': 'string'},
        _VIRT_DOCS + 'msvm-concretejob.md'),
    WmiClass(MSPS, 'Msps_PDK', {
        'RawData': 'uint8[]', 'KeyProtector': 'uint8[]',
        'VolumeIDFilters': 'Msps_VolumeIDFilter[]', 'PolicyData': 'uint8[]'},
        _MSPS_DOCS + 'msps-pdk'),
)

# The Windows Server releases the project supports, by the build that starts
# Win32_OperatingSystem.Version.
SERVER_RELEASES = {
    '10.0.14393': 'Windows Server 2016', '10.0.17763': 'Windows Server 2019',
    '10.0.20348': 'Windows Server 2022', '10.0.26100': 'Windows Server 2025',
}

# MSFT_HgsClientConfiguration.AttestationStatus (msft-hgsclientconfiguration
# .md), in the words Get-HgsClientConfiguration prints.
ATTESTATION_STATUS = {
    0: 'NotConfigured', 1: 'Unknown', 100: 'Passed', 200: 'Expired',
    300: 'TransientError', 301: 'UnauthorizedHost', 302: 'TpmError',
    303: 'InsecureHostConfiguration',
}
# What each status means and what to do, in the words of "Troubleshooting
# Guarded Hosts" (guarded-fabric-troubleshoot-hosts.md, "Attestation
# failures").
ATTESTATION_CAUSES = {
    'Expired': 'the host passed attestation previously, but the health '
               'certificate it was issued has expired; ensure the host and '
               'HGS time are in sync',
    'InsecureHostConfiguration': 'the host did not comply with the '
                                 'attestation policies configured on HGS',
    'NotConfigured': 'the host is configured for local mode; give it the '
                     'URLs of the fabric\'s HGS with '
                     'Set-HgsClientConfiguration',
    'TransientError': 'the last attestation attempt failed due to a '
                      'networking, service, or other temporary error '
                      '(HGS unreachable, or refusing TLS)',
    'TpmError': 'the host could not complete its last attestation attempt '
                'due to an error with its TPM',
    'UnauthorizedHost': 'the host is not authorized to run shielded VMs; '
                        'ensure HGS trusts it',
    'Unknown': 'the host has not attempted to attest with HGS yet',
}
# MSFT_HgsClientConfiguration.AttestationSubstatus: "Bitfield that indicates
# the attestation substatus"; the page documents three bits.
ATTESTATION_SUBSTATUS = {
    1: 'one or more secure boot configurations are insecure',
    2: 'one or more debug modes are enabled',
    4: 'code integrity policy is insecure',
}
# MSFT_HgsClientConfiguration.Mode and .AttestationOperationMode.
MODE_UNKNOWN, MODE_LOCAL, MODE_HGS = 0, 1, 2
ATTESTATION_MODES = {1: 'TPM', 2: 'AD'}
# Msvm_TPMSettingData.EnabledState, Msvm_ComputerSystem.RequestedState.
ENABLED, DISABLED = 2, 3
# Msvm_ComputerSystem.EnabledState of a VM (msvm-computersystem.md), in the
# words Get-VM prints for those os-win maps (vmutils._vm_power_states_map:
# 6 is saved, 9 paused).
VM_STATES = {
    0: 'Unknown', 2: 'Running', 3: 'Off', 4: 'Stopping', 6: 'Saved',
    9: 'Paused', 10: 'Starting',
}
# Msvm_VirtualSystemSettingData.VirtualSystemType of a VM.
REALIZED = 'Microsoft:Hyper-V:System:Realized'


def substatus_words(value) -> list[str]:
    """The documented bits of an AttestationSubstatus, in the page's words;
    undocumented bits as one 'undocumented bits 0x..'."""
    if type(value) is not int or value <= 0:
        return []
    words = [w for bit, w in sorted(ATTESTATION_SUBSTATUS.items())
             if value & bit]
    rest = value & ~sum(ATTESTATION_SUBSTATUS)
    if rest:
        words.append('undocumented bits 0x%x' % rest)
    return words


_BY_TARGET = {(m.namespace.lower(), m.target): m for m in METHODS}
_CLASSES = {(c.namespace.lower(), c.name): c for c in CLASSES}


def method(namespace: str, class_name: str, name: str) -> Method | None:
    """The documented method, or None when Microsoft documents none."""
    return _BY_TARGET.get((namespace.lower(), '%s.%s' % (class_name, name)))


def wmi_class(namespace: str, name: str) -> WmiClass | None:
    return _CLASSES.get((namespace.lower(), name))


def attestation_word(value) -> str:
    """HGS's word for an AttestationStatus number; 'Unknown' otherwise."""
    return ATTESTATION_STATUS.get(value, 'Unknown') \
        if type(value) is int else 'Unknown'
