# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend: vTPMs sealed by HGS KeyProtectors on Hyper-V Gen2 VMs.

``attach`` follows the PowerShell sequence (New-HgsGuardian,
New-HgsKeyProtector, Set-VMKeyProtector, Set-VMSecurityPolicy,
Enable-VMTPM) through WMI:

1. the VM is Generation 2 (os-win's ``get_vm_generation``);
2. with keys: the host is guarded, attested, and has a fabric guardian;
   the secrets are fetched (instance owner's credentials) and checked as
   a set (``material``); a raw KeyProtector is read by Hyper-V and must
   name this host's fabric;
3. a VM that already has this vTPM is left alone (idempotent);
4. the guardians are imported under names tied to the instance, the
   KeyProtector is made (owner + this fabric + additional guardians; or a
   local one owned by the host's local guardian when there are no keys),
   and the imported guardians are removed at once: the KeyProtector is
   self-contained and the owner's private key must not stay on the host;
5. the KeyProtector is set, the security policy applied, the TPM enabled.

A failure at any step undoes the steps before it, so the VM's security
settings are as they were and no instance guardian remains; payloads are
wiped when the call ends, whatever happens.
"""

from __future__ import annotations

import datetime
import logging
import socket

from os_win import exceptions as os_win_exc

from vtpm_core import backend
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects
from vtpm_hyperv import conf as hv_conf
from vtpm_hyperv import keyprotector
from vtpm_hyperv import material

LOG = logging.getLogger(__name__)

# A Gen2 vTPM needs Windows Server 2016 (10.0) or later.
MIN_VERSION = (10, 0)
# MSFT_HgsClientConfiguration.AttestationOperationMode.
ATTESTATION_MODES = {1: 'TPM', 2: 'AD', 3: 'HostKey'}
# Removing an instance guardian is retried: the owner's private signing key
# must not stay on the host because of one transient WMI failure.
REMOVE_ATTEMPTS = 3


def _wipe(item):
    """Zero a fetched secret in place (the key source's ``wipe`` if any)."""
    wipe = getattr(item, 'wipe', None)
    if wipe is not None:
        wipe()
    elif isinstance(item.payload, bytearray):
        item.payload[:] = bytes(len(item.payload))


def _version_tuple(version):
    return tuple(int(p) for p in version.split('.')[:2])


class _Undo:
    """Steps to undo, newest first, if a later step fails."""

    def __init__(self):
        self._steps = []

    def push(self, description, func):
        self._steps.append((description, func))

    def run(self, vm):
        failed = []
        while self._steps:
            description, func = self._steps.pop()
            try:
                func()
            except Exception:  # noqa: BLE001 - keep undoing the rest
                LOG.exception('Rolling back the vTPM of VM %s: %s failed',
                              vm, description)
                failed.append(description)
        return failed


class HyperVBackend(backend.VTPMBackend):
    """The ``hyperv`` backend (entry point group ``vtpm.backends``).

    :param key_source: an object with ``fetch(key_refs, auth=None)``;
        default ``vtpm_hyperv.secrets.BarbicanKeySource(conf)``.
    :param vmutils: os-win's ``VMUtils10``; default: os-win's
        utilsfactory for this Windows host, made on first use (so the
        backend loads anywhere, and runs on Windows).
    :param hostutils: os-win's ``HostUtils10``; same default.
    :param conn: an object with ``virt`` and ``hgs`` WMI connections
        (``root/virtualization/v2``, ``Root/Microsoft/Windows/Hgs``);
        default: the ones os-win opened.
    :param host_name: the name errors give this host; default nova's
        ``[DEFAULT] host`` when registered, else the hostname.
    """

    def __init__(self, conf, *, key_source=None, vmutils=None,
                 hostutils=None, conn=None, host_name=None):
        super().__init__(conf)
        hv_conf.register_opts(conf)
        self._vmutils_attr = vmutils
        self._hostutils_attr = hostutils
        self._key_source = key_source
        self._conn = conn
        self._host = (host_name or getattr(conf, 'host', None)
                      or socket.gethostname())

    # -- collaborators, built when first needed -------------------------------
    @property
    def _opts(self):
        return self.conf[hv_conf.GROUP]

    # os-win's utils for this host, made on first use (on Windows).
    @property
    def _vmutils(self):
        if self._vmutils_attr is None:
            from os_win import utilsfactory
            self._vmutils_attr = utilsfactory.get_vmutils()
        return self._vmutils_attr

    @property
    def _hostutils(self):
        if self._hostutils_attr is None:
            from os_win import utilsfactory
            self._hostutils_attr = utilsfactory.get_hostutils()
        return self._hostutils_attr

    @property
    def key_source(self):
        if self._key_source is None:
            from vtpm_hyperv import secrets
            self._key_source = secrets.BarbicanKeySource(self.conf)
        return self._key_source

    @property
    def _hgs(self):
        conn = self._conn.hgs if self._conn else self._hostutils._conn_hgs
        return keyprotector.Hgs(conn)

    @property
    def _security(self):
        conn = self._conn.virt if self._conn else self._vmutils._conn
        return keyprotector.SecuritySettings(conn, self._vmutils._jobutils)

    # -- capabilities ---------------------------------------------------------
    def get_capabilities(self) -> objects.HostCapabilities:
        now = datetime.datetime.now(datetime.timezone.utc)
        version, supported = None, False
        try:
            version = self._windows_version()
            supported = _version_tuple(version) >= MIN_VERSION
        except (os_win_exc.OSWinException, os_win_exc.x_wmi, ValueError,
                AttributeError, IndexError) as e:
            LOG.warning('Cannot read the Windows version: %s', e)
        guarded, status, mode, fabric = False, 'Unknown', None, None
        try:
            hgs = self._hgs
            guarded = bool(self._hostutils.is_host_guarded())
            config = hgs.client_configuration()
            status = config.AttestationStatus or 'Unknown'
            mode = ATTESTATION_MODES.get(config.AttestationOperationMode)
            guardian = self._fabric_guardian(hgs)
            if guardian is not None:
                fabric = keyprotector.fabric_id(guardian.SigningCertificate)
        except (exception.VTPMError, os_win_exc.OSWinException,
                os_win_exc.x_wmi) as e:
            # Without the HGS client no KeyProtector can be made at all.
            LOG.warning('The Host Guardian Service client is not usable, '
                        'so this host offers no vTPM: %s', e)
            supported = False
        return objects.HostCapabilities(
            vtpm_supported=supported, guarded=guarded,
            attestation_status=status, attestation_mode=mode,
            fabric_id=fabric, measured_at=now, os_version=version)

    def _windows_version(self):
        # Not os-win's get_windows_version(): it caches one version per
        # process, and one process may manage several simulated hosts.
        return self._hostutils._conn_cimv2.Win32_OperatingSystem()[0].Version

    def _fabric_guardian(self, hgs):
        name = self._opts.fabric_guardian_name
        if name:
            return hgs.guardian(name)
        candidates = [
            g for g in hgs.guardians()
            if not g.HasPrivateSigningKey
            and not g.Name.startswith(self._opts.guardian_name_prefix)
            and g.Name != self._opts.local_guardian_name]
        return candidates[0] if len(candidates) == 1 else None

    # -- attach ---------------------------------------------------------------
    def attach(self, instance_uuid, vm_name, request, auth=None):
        if not request.enabled:
            return backend.AttachResult()
        self._check_version()
        self._check_generation(vm_name)
        hgs, security = self._hgs, self._security
        fabric_guardian = None
        if request.needs_key_protector:
            fabric_guardian = self._check_host(hgs)
        items = self.key_source.fetch(request.key_refs, auth=auth) \
            if request.key_refs else []
        undo = _Undo()
        try:
            keys = material.check_set(
                [material.parse(i.ref, i.payload) for i in items]) \
                if items else None
            return self._attach(instance_uuid, vm_name, request, keys, hgs,
                                security, fabric_guardian, undo)
        except BaseException as e:
            failed = undo.run(vm_name)
            if failed:
                LOG.error('VM %s: could not undo %s; its security settings '
                          'may differ from before', vm_name,
                          ', '.join(failed))
            if isinstance(e, (os_win_exc.OSWinException, os_win_exc.x_wmi)):
                # Whatever os-win raised that no step translated.
                raise exception.HyperVOperationFailed(
                    operation='vTPM attach', vm=vm_name, code='n/a',
                    description=str(e)) from e
            raise
        finally:
            for item in items:
                _wipe(item)

    def _check_version(self):
        try:
            version = self._windows_version()
            supported = _version_tuple(version) >= MIN_VERSION
        except (os_win_exc.OSWinException, os_win_exc.x_wmi, ValueError,
                IndexError) as e:
            raise exception.HostNotSuitable(host=self._host, reason=(
                'its Windows version cannot be read: %s' % e)) from e
        if not supported:
            raise exception.HostNotSuitable(host=self._host, reason=(
                'Windows %s; a Generation 2 vTPM needs Windows Server 2016 '
                '(10.0) or later' % version))

    def _check_generation(self, vm_name):
        try:
            generation = self._vmutils.get_vm_generation(vm_name)
        except os_win_exc.HyperVVMNotFoundException as e:
            raise exception.UnsupportedVM(
                vm=vm_name, reason='no such VM on this host') from e
        except (os_win_exc.OSWinException, os_win_exc.x_wmi) as e:
            raise exception.HyperVOperationFailed(
                operation='get_vm_generation', vm=vm_name, code='n/a',
                description=str(e)) from e
        if generation != 2:
            raise exception.UnsupportedVM(vm=vm_name, reason=(
                'it is Generation %s; a vTPM needs Generation 2 (image '
                'property %s=%s)') % (generation, constants.IMAGE_MACHINE_TYPE,
                                     constants.MACHINE_TYPE_GEN2))

    def _check_host(self, hgs):
        """The fabric guardian of a host that can run a KeyProtector VM."""
        def refuse(reason):
            return exception.HostNotSuitable(host=self._host, reason=reason)
        try:
            guarded = self._hostutils.is_host_guarded()
            config = hgs.client_configuration()
            guardian = self._fabric_guardian(hgs)
        except (exception.HyperVOperationFailed, os_win_exc.OSWinException,
                os_win_exc.x_wmi) as e:
            raise refuse('the HGS client cannot be read: %s' % e) from e
        if not guarded:
            raise refuse('it is not a guarded host')
        if config.AttestationStatus != constants.ATTESTATION_PASSED:
            raise refuse('HGS attestation status is %s, not %s' % (
                config.AttestationStatus, constants.ATTESTATION_PASSED))
        if guardian is None:
            raise refuse(
                'no fabric guardian in its guardian store ([%s] '
                'fabric_guardian_name is %r)' % (
                    hv_conf.GROUP, self._opts.fabric_guardian_name))
        return guardian

    def _attach(self, instance_uuid, vm_name, request, keys, hgs, security,
                fabric_guardian, undo):
        raw_info = None
        if keys is not None and keys.raw is not None:
            raw_info = self._describe_raw(hgs, vm_name, keys.raw)
            host_fabric = keyprotector.fabric_id(
                fabric_guardian.SigningCertificate)
            if host_fabric not in raw_info.fabric_ids:
                raise exception.HostNotSuitable(host=self._host, reason=(
                    'the raw KeyProtector in secret %s does not name this '
                    'host\'s fabric %s') % (keys.raw.ref, host_fabric))

        vm_id = self._vm_id(vm_name)
        ssd = security.read(vm_name, vm_id)
        before = {f: bool(getattr(ssd, f)) for f in
                  keyprotector.SECURITY_FLAGS}
        before_kp = security.key_protector(vm_name, ssd)
        target = {'TpmEnabled': True, 'ShieldingRequested': request.shielded,
                  'EncryptStateAndVmMigrationTraffic': True}
        wanted = self._wanted(hgs, vm_name, keys, raw_info, fabric_guardian)

        if before['TpmEnabled'] and before_kp:
            current = hgs.describe(vm_name, before_kp)
            if (current.owner, set(current.guardians)) != \
                    (wanted[0], set(wanted[1])):
                raise exception.UnsupportedVM(vm=vm_name, reason=(
                    'it already has a vTPM whose KeyProtector names other '
                    'guardians; replacing it would make the vTPM\'s '
                    'contents unreadable'))
            if before != target:
                undo.push('restore the security policy',
                          lambda: security.modify(vm_name, ssd, 'rollback',
                                                  **before))
                security.modify(vm_name, ssd, 'set the security policy',
                                **target)
            LOG.info('VM %s already has its vTPM', vm_name)
            return backend.AttachResult(fabrics=self._fabrics(wanted))

        kp = self._key_protector(instance_uuid, vm_name, hgs, keys,
                                 fabric_guardian)
        undo.push('restore the key protector',
                  lambda: security.set_key_protector(vm_name, ssd,
                                                     before_kp))
        security.set_key_protector(vm_name, ssd, kp)
        undo.push('restore the security policy',
                  lambda: security.modify(vm_name, ssd, 'rollback', **before))
        security.modify(vm_name, ssd, 'set the security policy',
                        ShieldingRequested=target['ShieldingRequested'],
                        EncryptStateAndVmMigrationTraffic=True)
        security.modify(vm_name, ssd, 'enable the TPM', TpmEnabled=True)
        fabrics = self._fabrics(wanted)
        LOG.info('VM %s (instance %s) has a vTPM; KeyProtector: %s, '
                 'shielded: %s, fabrics: %s', vm_name, instance_uuid,
                 'raw' if raw_info else ('keys' if keys else 'local'),
                 request.shielded, ', '.join(fabrics) or 'none (local)')
        return backend.AttachResult(fabrics=fabrics)

    def _vm_id(self, vm_name):
        try:
            return self._vmutils.get_vm_id(vm_name)
        except (os_win_exc.OSWinException, os_win_exc.x_wmi) as e:
            raise exception.HyperVOperationFailed(
                operation='get_vm_id', vm=vm_name, code='n/a',
                description=str(e)) from e

    @staticmethod
    def _fabrics(wanted):
        seen = []
        for g in wanted[1]:
            fid = keyprotector.fabric_id(g)
            if fid not in seen:
                seen.append(fid)
        return tuple(seen)

    def _describe_raw(self, hgs, vm_name, raw):
        try:
            return hgs.describe(vm_name, raw.payload)
        except exception.HyperVOperationFailed as e:
            raise exception.InvalidKeyMaterial(ref=raw.ref, reason=(
                'it parses as no owner PKCS#12 bundle, no guardian '
                'certificates, and Hyper-V does not read it as a raw '
                'KeyProtector (%s)') % e.description) from e

    def _wanted(self, hgs, vm_name, keys, raw_info, fabric_guardian):
        """(owner, guardians) signing certificates the KeyProtector names."""
        if raw_info is not None:
            return raw_info.owner, raw_info.guardians
        if keys is None:
            local = hgs.guardian(self._opts.local_guardian_name)
            owner = bytes(local.SigningCertificate) if local else None
            return owner, ()
        fabric = bytes(fabric_guardian.SigningCertificate)
        return keys.owner.signing_der, (fabric,) + tuple(
            g.signing_der for g in keys.guardians)

    def _key_protector(self, instance_uuid, vm_name, hgs, keys,
                       fabric_guardian):
        opts = self._opts
        if keys is not None and keys.raw is not None:
            return bytes(keys.raw.payload)
        if keys is None:
            owner = hgs.guardian(opts.local_guardian_name) or \
                hgs.generate_guardian(vm_name, opts.local_guardian_name)
            # The host's own, self-signed guardian: Hyper-V trusts it.
            return hgs.new_key_protector(
                vm_name, owner, [], allow_expired=opts.allow_expired,
                allow_untrusted_root=True)
        prefix = '%s%s' % (opts.guardian_name_prefix, instance_uuid)
        self._sweep(hgs, vm_name, prefix)
        imported = []
        try:
            flags = {'allow_expired': opts.allow_expired,
                     'allow_untrusted_root': opts.allow_untrusted_root}
            owner = hgs.import_guardian(
                vm_name, '%s-%s' % (prefix, keys.owner.ref),
                keys.owner.payload, keys.owner.encryption_der, **flags)
            imported.append(owner.Name)
            guardians = [fabric_guardian]
            for g in keys.guardians:
                guardian = hgs.import_guardian(
                    vm_name, '%s-%s' % (prefix, g.ref), g.signing_der,
                    g.encryption_der, **flags)
                imported.append(guardian.Name)
                guardians.append(guardian)
            return hgs.new_key_protector(vm_name, owner, guardians, **flags)
        finally:
            self._remove(hgs, vm_name, imported)

    def _remove(self, hgs, vm_name, names):
        """Remove guardians, each tried up to REMOVE_ATTEMPTS times."""
        left, last = [], None
        for name in names:
            for attempt in range(1, REMOVE_ATTEMPTS + 1):
                try:
                    hgs.remove_guardian(vm_name, name)
                    break
                except exception.HyperVOperationFailed as e:
                    last = e
                    LOG.warning('Removing guardian %s failed (attempt %d of '
                                '%d): %s', name, attempt, REMOVE_ATTEMPTS, e)
            else:
                left.append(name)
        if left:
            raise exception.HyperVOperationFailed(
                operation='MSFT_HgsGuardian.Remove', vm=vm_name,
                code=last.code, description=(
                    'guardians %s are still in the host\'s guardian store; '
                    'the next attach or detach of the instance removes '
                    'them' % ', '.join(left)))

    def _sweep(self, hgs, vm_name, prefix):
        """Remove guardians an earlier, interrupted call left behind."""
        try:
            names = [g.Name for g in hgs.guardians()
                     if g.Name.startswith(prefix)]
        except os_win_exc.x_wmi as e:
            raise exception.HyperVOperationFailed(
                operation='MSFT_HgsGuardian enumeration', vm=vm_name,
                code='n/a', description=str(e)) from e
        self._remove(hgs, vm_name, names)

    # -- detach ---------------------------------------------------------------
    def detach(self, instance_uuid, vm_name):
        hgs = self._hgs
        self._sweep(hgs, vm_name or instance_uuid, '%s%s' % (
            self._opts.guardian_name_prefix, instance_uuid))
        if vm_name is None or not self._vmutils.vm_exists(vm_name):
            return
        security = self._security
        ssd = security.read(vm_name, self._vm_id(vm_name))
        if any(getattr(ssd, f) for f in keyprotector.SECURITY_FLAGS):
            security.modify(vm_name, ssd, 'disable the TPM',
                            **dict.fromkeys(keyprotector.SECURITY_FLAGS,
                                            False))
        if security.key_protector(vm_name, ssd):
            security.set_key_protector(vm_name, ssd, b'')
        LOG.info('VM %s (instance %s) has no vTPM any more', vm_name,
                 instance_uuid)
