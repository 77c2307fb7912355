# SPDX-License-Identifier: Apache-2.0
"""Guardians, KeyProtectors and VM security settings over WMI.

os-win has no calls for HGS guardians and KeyProtectors, nor a way to set a
KeyProtector from bytes (its ``add_vtpm`` reads a shielding data file), so
this module talks WMI through the connections os-win opened
(``Root/Microsoft/Windows/Hgs``, ``root/virtualization/v2``, ``root/msps``)
and waits on Hyper-V jobs with os-win's own ``JobUtils.check_ret_val``.
Every call is one that ``vtpm_hyperv.wmi_schema`` lists, by keyword, with
the documented types. Every failure becomes a ``HyperVOperationFailed``
that names the operation, the VM, the return code and Hyper-V's
description.

Where Windows takes a file (PFX files, a guardian file, a shielding data
file), ``PrivateFiles`` writes it in a directory private to the service
and removes it before the call returns, whatever happens; PFX files are
protected with a random password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import shutil
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from oslo_log import log

from vtpm_core import exception as core_exception
from vtpm_hyperv import exception
from vtpm_hyperv import wmi_schema

LOG = log.getLogger(__name__)

SECURITY_FLAGS = ('TpmEnabled', 'ShieldingRequested',
                  'EncryptStateAndVmMigrationTraffic')
# "Method Parameters Checked - Job Started" (every Msvm_SecurityService
# page; GetKeyProtector's calls it a success, with no job).
JOB_STARTED = 4096


def fabric_id(signing_cert_der) -> str:
    """A fabric's identity: SHA-256 of its guardian's signing certificate.

    Lowercase hex. It is what ``HostCapabilities.fabric_id`` carries, what
    ``AttachResult.fabrics`` lists and what the scheduler filter compares.
    """
    return hashlib.sha256(bytes(signing_cert_der)).hexdigest()


@dataclasses.dataclass(frozen=True)
class KeyProtectorInfo:
    """Who a KeyProtector names, by signing certificate (DER); and each
    guardian's encryption certificate (DER), in the same order, which its
    transport key is wrapped for."""

    owner: bytes
    guardians: tuple[bytes, ...]
    encryption: tuple[bytes, ...] = ()

    @property
    def fabric_ids(self) -> tuple[str, ...]:
        return tuple(fabric_id(g) for g in self.guardians)


def _failed(operation, vm, code, method=None):
    """A method that answered a failure code, in its page's words."""
    description = (method.describe(code) if method is not None
                   else wmi_schema.RETURN_CODES.get(code, 'unknown error'))
    return exception.HyperVOperationFailed(
        operation=operation, vm=vm, code=code, description=description)


def _connect(connect, namespace):
    """The connection ``connect()`` gives; os-win opens it on first use and
    raises when the host lacks the namespace (a Windows feature not
    installed), which becomes a ``HyperVOperationFailed``."""
    if not callable(connect):
        return connect
    with exception.translated('%s connection' % namespace, 'n/a'):
        return connect()


class PrivateFiles:
    """Files Windows' API reads by path, private to this service.

    A new directory (mode 0700; on Windows it inherits the ACL of the
    service account's temporary directory) under ``base`` (None: the
    system's), removed with everything in it when the ``with`` block ends.
    Its name, ``vtpm-<process id>-<random>``, tells a restarted service
    (``vtpm_hyperv.reconcile``) the directories of a process that died.
    """

    def __init__(self, base=None):
        self._base = base
        self._dir = None

    def __enter__(self):
        self._dir = tempfile.mkdtemp(prefix='vtpm-%d-' % os.getpid(),
                                     dir=self._base)
        return self

    @property
    def path(self) -> str:
        return self._dir

    def __exit__(self, *exc):
        shutil.rmtree(self._dir, ignore_errors=True)
        if os.path.exists(self._dir):
            LOG.error('Could not remove the private directory %s', self._dir)

    def write(self, name, data) -> str:
        path = os.path.join(self._dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
        return path

    def write_pfx(self, name, key, cert) -> tuple[str, str]:
        """A PFX of ``key`` and ``cert`` under a new random password."""
        password = secrets.token_urlsafe(32)
        data = pkcs12.serialize_key_and_certificates(
            None, key, cert, None,
            serialization.BestAvailableEncryption(password.encode()))
        return self.write(name, data), password


class Hgs:
    """The host's HGS client: configuration, guardian store, KeyProtectors.

    :param conn: the ``Root/Microsoft/Windows/Hgs`` connection, or a
        callable that returns it (os-win's, which raises on a host without
        the HGS client).
    """

    def __init__(self, conn):
        self._connect = conn

    @property
    def _conn(self):
        return _connect(self._connect, wmi_schema.HGS)

    def _call(self, operation, vm, method, **kwargs):
        """Call ``method`` ('Class.Method') with ``kwargs``; its failures,
        reaching the class included, are a ``HyperVOperationFailed``.

        The HGS client's pages list no return values: a failure is an MI
        error (``x_wmi``); a non-zero value is refused all the same.
        """
        class_name, name = method.split('.')
        conn = self._conn
        with exception.translated(operation, vm):
            result = getattr(getattr(conn, class_name), name)(**kwargs)
        code = result[0]  # ReturnValue sorts before cmdletOutput (PyMI)
        if code:
            raise _failed(operation, vm, code)
        return result[1] if len(result) > 1 else None

    def client_configuration(self):
        return self._call('MSFT_HgsClientConfiguration.Get', 'n/a',
                          'MSFT_HgsClientConfiguration.Get')

    def guardians(self, name=None):
        """The guardian store, or the guardians named ``name``."""
        conn = self._conn
        with exception.translated('MSFT_HgsGuardian enumeration', 'n/a'):
            if name is None:
                return conn.MSFT_HgsGuardian()
            return conn.MSFT_HgsGuardian(Name=name)

    def guardian(self, name):
        found = self.guardians(name)
        return found[0] if found else None

    def accept_certificates(self, vm, name, files, signing, encryption, *,
                            allow_expired, allow_untrusted_root):
        """Import a guardian with private keys (New-HgsGuardian
        -AcceptCertificates): ``signing`` and ``encryption`` are
        ``(private key, certificate)``; each becomes a PFX file."""
        sign_path, sign_pw = files.write_pfx('signing.pfx', *signing)
        enc_path, enc_pw = files.write_pfx('encryption.pfx', *encryption)
        LOG.debug('Importing guardian %s for VM %s', name, vm)
        return self._call(
            'MSFT_HgsGuardian.NewByAcceptCertificates(%s)' % name, vm,
            'MSFT_HgsGuardian.NewByAcceptCertificates',
            Name=name, SigningCertificate=sign_path,
            SigningCertificatePassword=sign_pw,
            EncryptionCertificate=enc_path,
            EncryptionCertificatePassword=enc_pw,
            AllowExpired=allow_expired,
            AllowUntrustedRoot=allow_untrusted_root)

    def import_file(self, vm, name, files, guardian_file, *, allow_expired,
                    allow_untrusted_root):
        """Import a public guardian from the file Export-HgsGuardian wrote."""
        path = files.write('guardian-%s.xml' % name, bytes(guardian_file))
        LOG.debug('Importing guardian %s for VM %s', name, vm)
        return self._call(
            'MSFT_HgsGuardian.Import(%s)' % name, vm,
            'MSFT_HgsGuardian.Import', Path=path, Name=name,
            AllowExpired=allow_expired,
            AllowUntrustedRoot=allow_untrusted_root)

    def generate_guardian(self, vm, name):
        LOG.info('Creating the local guardian %s', name)
        return self._call(
            'MSFT_HgsGuardian.NewByGenerateCertificates(%s)' % name, vm,
            'MSFT_HgsGuardian.NewByGenerateCertificates', Name=name,
            GenerateCertificates=True)

    def remove_guardian(self, vm, name):
        LOG.debug('Removing guardian %s (VM %s)', name, vm)
        self._call('MSFT_HgsGuardian.Remove(%s)' % name, vm,
                   'MSFT_HgsGuardian.Remove', Name=name)

    def new_key_protector(self, vm, owner, guardians, *, allow_expired,
                          allow_untrusted_root) -> bytes:
        kp = self._call(
            'MSFT_HgsKeyProtector.NewByGuardians', vm,
            'MSFT_HgsKeyProtector.NewByGuardians', Owner=owner,
            Guardian=list(guardians), AllowExpired=allow_expired,
            AllowUntrustedRoot=allow_untrusted_root)
        return bytes(kp.RawData)

    def describe(self, vm, raw) -> KeyProtectorInfo:
        """Who a raw KeyProtector names, as Hyper-V reads it."""
        kp = self._call('MSFT_HgsKeyProtector.ConvertToByRawBytes', vm,
                        'MSFT_HgsKeyProtector.ConvertToByRawBytes',
                        Bytes=bytes(raw))
        guardians = kp.Guardians or ()
        return KeyProtectorInfo(
            bytes(kp.Owner.SigningCertificate),
            tuple(bytes(g.SigningCertificate) for g in guardians),
            tuple(bytes(g.EncryptionCertificate or b'') for g in guardians))


def read_shielding_data(msps_conn, vm, files, pdk) -> tuple[bytes, bytes]:
    """(KeyProtector, PolicyData) of a shielding data file, as Hyper-V's
    provisioning provider reads it (the path os-win's ``add_vtpm`` takes).

    :param msps_conn: ``root/msps``, or a callable that returns it.
    """
    msps_conn = _connect(msps_conn, wmi_schema.MSPS)
    path = files.write('shielding.pdk', bytes(pdk))
    operation = 'Msps_ProvisioningFileProcessor.PopulateFromFile'
    with exception.translated(operation, vm):
        found, code = msps_conn.Msps_ProvisioningFileProcessor\
            .PopulateFromFile(FilePath=path)
    if code:
        raise _failed(operation, vm, code)
    return bytes(found.KeyProtector), bytes(found.PolicyData or ())


def _security_method(name):
    return wmi_schema.method(wmi_schema.VIRT, 'Msvm_SecurityService', name)


@dataclasses.dataclass(frozen=True)
class VMSettings:
    """What the backend reads of a VM's Msvm_VirtualSystemSettingData."""

    vm_id: str
    generation: int | None
    # "The version of the virtual machine in a format of "major.minor""
    version: str | None
    secure_boot: bool
    template_id: str | None


class SecuritySettings:
    """A VM's settings: Msvm_VirtualSystemSettingData, its
    Msvm_SecuritySettingData and key protector, its state.

    :param conn: ``root/virtualization/v2``, or a callable that returns it.
    """

    def __init__(self, conn, jobutils):
        self._connect = conn
        self._jobutils = jobutils
        self._service = None
        self._templates = {}

    @property
    def _conn(self):
        return _connect(self._connect, wmi_schema.VIRT)

    @property
    def service(self):
        """The host's Msvm_SecurityService ("the security service",
        msvm-securityservice.md), read once for this object's life, as
        os-win keeps its Msvm_VirtualSystemManagementService
        (``BaseUtilsVirt._vs_man_svc``: with PyMI it "can safely cache
        it")."""
        if self._service is None:
            conn = self._conn
            with exception.translated('Msvm_SecurityService enumeration',
                                      'n/a'):
                self._service = conn.Msvm_SecurityService()[0]
        return self._service

    def _job(self, operation, vm, name, **kwargs):
        """Call Msvm_SecurityService method ``name``; wait for its job.

        Only the values its page calls success pass; 4096 is a job, which
        os-win's ``JobUtils`` waits for. Any other value is the page's,
        not os-win's (which would take ModifySecuritySettings's "Invalid
        Parameter (4)" for a running job).
        """
        method = _security_method(name)
        conn_method = getattr(self.service, name)
        with exception.translated(operation, vm):
            job_path, code = conn_method(**kwargs)
            if code == JOB_STARTED:
                self._jobutils.check_ret_val(code, job_path)
        if code not in (0, JOB_STARTED):
            raise _failed(operation, vm, code, method)

    def vm_settings(self, vm) -> VMSettings:
        """The VM's settings (its realized Msvm_VirtualSystemSettingData).

        :raises vtpm_core.exception.UnsupportedVM: no such VM.
        """
        conn = self._conn
        with exception.translated('Msvm_VirtualSystemSettingData query', vm):
            found = [s for s in conn.Msvm_VirtualSystemSettingData(
                ElementName=vm) if s.VirtualSystemType == wmi_schema.REALIZED]
        if not found:
            raise core_exception.UnsupportedVM(
                vm=vm, reason='no such VM on this host')
        vssd = found[0]
        # "A Generation 1 VM is subtype 1. A Generation 2 VM is subtype 2."
        subtype = str(vssd.VirtualSystemSubType or '')
        generation = int(subtype[-1]) if subtype[-1:].isdigit() else None
        return VMSettings(vssd.VirtualSystemIdentifier, generation,
                          vssd.Version, bool(vssd.SecureBootEnabled),
                          vssd.SecureBootTemplateId)

    def template_name(self, template_id) -> str | None:
        """The name of the Secure Boot template ``template_id``: a template
        is a setting that is no VM's, named by its ElementName (os-win's
        ``VMUtils10._set_secure_boot`` finds one by name).

        A name found is kept for this object's life: the id identifies the
        template, and Hyper-V's templates come with Windows (no documented
        call makes, renames or removes one), so a template's name changes
        only with Windows itself. An id not found is asked again."""
        if not template_id:
            return None
        if template_id in self._templates:
            return self._templates[template_id]
        conn = self._conn
        with exception.translated('Secure Boot template query', 'n/a'):
            found = conn.Msvm_VirtualSystemSettingData(
                SecureBootTemplateId=template_id)
        name = next((s.ElementName for s in found
                     if s.VirtualSystemType != wmi_schema.REALIZED), None)
        if name is not None:
            self._templates[template_id] = name
        return name

    def read(self, vm, vm_id):
        """The VM's security settings instance (a copy to edit and apply)."""
        conn = self._conn
        with exception.translated('Msvm_SecuritySettingData query', vm):
            found = conn.query(
                "SELECT * FROM Msvm_SecuritySettingData WHERE InstanceID "
                "LIKE 'Microsoft:%s%%'" % vm_id)
        if not found:
            raise core_exception.UnsupportedVM(
                vm=vm, reason='Hyper-V reports no security settings for it')
        return found[0]

    def key_protector(self, vm, ssd) -> bytes:
        """The key protector in use. GetKeyProtector: "On success, returns
        a 0 or 4096" (no job: the key protector comes back either way)."""
        operation = 'Msvm_SecurityService.GetKeyProtector'
        method = _security_method('GetKeyProtector')
        with exception.translated(operation, vm):
            kp, code = self.service.GetKeyProtector(
                SecuritySettingData=ssd.GetText_(1))
        if code not in method.success:
            raise _failed(operation, vm, code, method)
        return bytes(kp or b'')

    def set_key_protector(self, vm, ssd, raw):
        self._job('Msvm_SecurityService.SetKeyProtector', vm,
                  'SetKeyProtector', SecuritySettingData=ssd.GetText_(1),
                  KeyProtector=raw)

    def restore_last_known_good(self, vm, ssd):
        """Put back the KeyProtector that encrypted the vTPM's state at the
        VM's last start (Msvm_TPMSettingData.LastKnownGoodKeyProtector)."""
        self._job('Msvm_SecurityService.RestoreLastKnownGoodKeyProtector', vm,
                  'RestoreLastKnownGoodKeyProtector',
                  SecuritySettingData=ssd.GetText_(1))

    def vm_state(self, vm):
        """The VM's Msvm_ComputerSystem.EnabledState (2 running, 3 off, 6
        saved, 9 paused)."""
        conn = self._conn
        with exception.translated('Msvm_ComputerSystem query', vm):
            found = conn.Msvm_ComputerSystem(ElementName=vm)
        if not found:
            raise core_exception.UnsupportedVM(
                vm=vm, reason='no such VM on this host')
        return found[0].EnabledState

    def set_policy(self, vm, ssd, policy):
        self._job('Msvm_SecurityService.SetSecurityPolicy', vm,
                  'SetSecurityPolicy', SecuritySettingData=ssd.GetText_(1),
                  SecurityPolicy=policy)

    def modify(self, vm, ssd, purpose, **flags):
        """Apply ``flags`` to the VM's security settings; ``purpose`` is
        for the error message."""
        for name, value in flags.items():
            setattr(ssd, name, value)
        self._job('Msvm_SecurityService.ModifySecuritySettings (%s)'
                  % purpose, vm, 'ModifySecuritySettings',
                  SecuritySettingData=ssd.GetText_(1))


def state_word(state) -> str:
    """A VM's EnabledState in Get-VM's words ('Saved', 'Paused', ...)."""
    return wmi_schema.VM_STATES.get(state, 'EnabledState %s' % state)
