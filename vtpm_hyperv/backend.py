# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend: vTPMs sealed by HGS KeyProtectors on Hyper-V Gen2 VMs.

``attach`` follows the PowerShell sequence (New-HgsGuardian,
New-HgsKeyProtector, Set-VMKeyProtector, Set-VMSecurityPolicy,
Enable-VMTPM) through the WMI calls ``vtpm_hyperv.wmi_schema`` documents:

1. the VM is one that can have the vTPM asked for (its
   Msvm_VirtualSystemSettingData): Generation 2, of configuration version
   7.0 or later ("Virtual Trusted Platform Module (vTPM) 7.0", Microsoft's
   "Upgrade virtual machine version" page), and for a shielded VM with
   Secure Boot on and the "Microsoft Windows" or "Open Source Shielded VM"
   template (shielding "selected and enforced" Secure Boot; the Linux
   shielded VM template);
2. the host, measured now, passes the scheduler's own rule
   (``vtpm_core.capabilities``): Windows Server 2016 or later with a
   usable HGS client; with keys or shielding, guarded, in HGS mode,
   attested, with a fabric guardian; without keys, either in local mode
   (a local key protector, which Hyper-V opens in local mode only: in HGS
   mode "the host must get the key from HGS", Microsoft's "Shielded VM
   local mode and HGS mode", 2018) or guarded and attested as for keys (a
   key protector of the host's local guardian and the fabric's guardian,
   which HGS opens on any attested host of the fabric);
3. the secrets are fetched (instance owner's credentials) and checked as a
   set (``material``); an owner bundle is refused for a shielded VM, and
   everywhere when ``[hyperv_vtpm] allow_owner_bundles`` is off; a raw
   KeyProtector or a shielding data file is read by Hyper-V and must name
   this host's fabric;
4. a VM that already has this vTPM is left alone (idempotent);
5. for an owner bundle, the guardians are imported under names tied to the
   instance (the owner from two password-protected PFX files, the others
   from their guardian files), the KeyProtector is made (owner + this
   fabric + the other guardians), and the imported guardians are removed at
   once: the KeyProtector is self-contained and the owner's private keys
   must not stay on the host; without keys, a KeyProtector owned by the
   host's local guardian, for nobody else in local mode, for the fabric's
   guardian in HGS mode (Microsoft's "encryption supported" VM:
   ``New-HgsKeyProtector -Owner $Owner -Guardian $Guardian``, the owner
   made by ``New-HgsGuardian -GenerateCertificates``,
   guarded-fabric-create-vm-move-to-guarded-fabric.md);
6. the KeyProtector is set (and a shielding data file's security policy),
   then the TPM, shielding and encryption are switched on in one call.

A failure at any step undoes the steps before it with documented calls: the
security settings as they were, the previous key protector set again (no
documented call removes one, so a VM that had none keeps the new one, with
its TPM off), no instance guardian left; payloads are wiped and the private
files removed when the call ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import threading
import typing

from oslo_log import log

from vtpm_core import backend
from vtpm_core import capabilities
from vtpm_core import constants
from vtpm_core import exception
from vtpm_core import objects
from vtpm_hyperv.barbican import key_source
from vtpm_hyperv import conf as hv_conf
from vtpm_hyperv import exception as hv_exception
from vtpm_hyperv import keyprotector
from vtpm_hyperv import material
from vtpm_hyperv import oswin
from vtpm_hyperv import reconcile
from vtpm_hyperv import wmi_schema

LOG = log.getLogger(__name__)

# A Gen2 vTPM needs Windows Server 2016 (10.0) or later.
MIN_VERSION = (10, 0)
# A vTPM needs VM configuration version 7.0: "Virtual Trusted Platform
# Module (vTPM) | 7.0" (Upgrade-virtual-machine-version-in-Hyper-V-on-
# Windows-or-Windows-Server.md).
VTPM_CONFIG_VERSION = (7, 0)
# The Secure Boot templates a shielded VM boots with: "Microsoft Windows",
# or "Open Source Shielded VM", "leveraged to secure boot for Linux-based
# shielded VMs" (Generation-2-virtual-machine-security-settings-for-
# Hyper-V.md).
SHIELDED_TEMPLATES = ('Microsoft Windows', 'Open Source Shielded VM')
# Removing an instance guardian is retried: the owner's private signing key
# must not stay on the host because of one transient WMI failure.
REMOVE_ATTEMPTS = 3

# Attaches without keys share the host's local guardian: on each host they
# run one at a time (in this process, which is the host's one nova-compute),
# so that two cannot both create it, and one that created it and fails can
# remove it before another uses it.
_LOCAL_LOCKS: dict[str, threading.Lock] = {}
_LOCAL_LOCKS_GUARD = threading.Lock()


def _local_lock(host):
    with _LOCAL_LOCKS_GUARD:
        return _LOCAL_LOCKS.setdefault(host, threading.Lock())


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

    :param key_source: an object with ``fetch(key_refs, auth=None)`` that
        returns ``vtpm_hyperv.barbican.key_source.SecretPayload`` items;
        default
        ``vtpm_hyperv.barbican.key_source.BarbicanKeySource(conf)``.
    :param vmutils: os-win's ``VMUtils10``; default: os-win's
        utilsfactory for this Windows host, made on first use (so the
        backend loads anywhere, and runs on Windows).
    :param hostutils: os-win's ``HostUtils10``; same default.
    :param host_name: the name errors give this host; default nova's
        ``[DEFAULT] host`` when registered, else the hostname.
    """

    def __init__(self, conf, *, key_source=None, vmutils=None,
                 hostutils=None, host_name=None):
        super().__init__(conf)
        hv_conf.register_opts(conf)
        self._os_win = oswin.OsWin(vmutils=vmutils, hostutils=hostutils)
        self._key_source = key_source
        self._host = (host_name or getattr(conf, 'host', None)
                      or socket.gethostname())
        # the attestation status and substatus last logged
        self._attestation_seen = None
        self._security_settings = None

    # -- collaborators, built when first needed -------------------------------
    @property
    def _opts(self):
        return self.conf[hv_conf.GROUP]

    @property
    def key_source(self):
        if self._key_source is None:
            self._key_source = key_source.BarbicanKeySource(self.conf)
        return self._key_source

    @property
    def _hgs(self):
        # os-win opens the namespace when first read, and raises on a host
        # without the HGS client: read inside the calls, where it is
        # translated (keyprotector.Hgs).
        return keyprotector.Hgs(lambda: self._os_win.hgs)

    @property
    def _security(self):
        # One for the backend's life: it keeps the host's
        # Msvm_SecurityService, a singleton of the host (os-win's VMUtils
        # keeps its Msvm_VirtualSystemManagementService the same way), and
        # the Secure Boot templates' names.
        if self._security_settings is None:
            self._security_settings = keyprotector.SecuritySettings(
                lambda: self._os_win.virt, self._os_win.jobutils)
        return self._security_settings

    # -- what this host offers ------------------------------------------------
    def get_capabilities(self) -> objects.HostCapabilities:
        return self._measure(self._hgs).caps

    def _measure(self, hgs, key_protector=True) -> _Measurement:
        """What this host offers, read now: the one reading of the host.

        The report is published from it, and every attach and
        re-authorization asks ``vtpm_core.capabilities``' rule about it.
        ``key_protector=False`` (a vTPM without keys) reads whether the host
        is guarded, and its fabric, only when its HGS client is in HGS mode.

        What it reads, each time: the HGS client configuration, once (its
        mode, attestation and guarded state change at runtime:
        Set-HgsClientConfiguration, attestation every few minutes), and the
        guardian store, once (the fabric's guardian, the previous ones of a
        renewal and, for an owner bundle, an interrupted call's leftovers:
        operators import guardians at runtime). The Windows version, which
        changes only with an upgrade and its reboot, is read once per
        process: os-win's ``get_windows_version`` keeps it.
        """
        now = datetime.datetime.now(datetime.timezone.utc)
        version, refusal = None, None
        try:
            version = self._windows_version()
            if _version_tuple(version) < MIN_VERSION:
                refusal = ('Windows %s; a Generation 2 vTPM needs Windows '
                           'Server 2016 (10.0) or later' % version)
        except (hv_exception.HyperVOperationFailed, ValueError,
                AttributeError, IndexError) as e:
            LOG.warning('Cannot read the Windows version: %s', e)
            refusal = 'its Windows version cannot be read: %s' % e
        guarded, status, mode, local = False, 'Unknown', None, None
        guardian, fabrics, substatus, store = None, None, None, None
        try:
            config = hgs.client_configuration()
            status = wmi_schema.attestation_word(config.AttestationStatus)
            substatus = config.AttestationSubstatus
            mode = wmi_schema.ATTESTATION_MODES.get(
                config.AttestationOperationMode)
            local = config.Mode == wmi_schema.MODE_LOCAL
            if key_protector or not local:
                # the same Get os-win's is_host_guarded makes
                guarded = bool(config.IsHostGuarded)
                store = tuple(hgs.guardians())
                guardian = self._fabric_guardian(store)
                if guardian is not None:
                    fabrics = list(self._fabric_identities(store, guardian))
        except exception.VTPMError as e:
            # Without the HGS client no KeyProtector can be made at all.
            LOG.warning('The Host Guardian Service client is not usable, '
                        'so this host offers no vTPM: %s', e)
            refusal = refusal or 'the HGS client cannot be read: %s' % e
        caps = objects.HostCapabilities(
            vtpm_supported=refusal is None, guarded=guarded,
            attestation_status=status, attestation_mode=mode,
            fabric_id=fabrics[0] if fabrics else None, fabric_ids=fabrics,
            measured_at=now, os_version=version, local_key_protector=local)
        self._note_attestation(caps, substatus)
        return _Measurement(caps, guardian, refusal,
                            attestation_cause(caps, substatus), store)

    def _note_attestation(self, caps, substatus):
        """Log why a guarded host is not attested, once per change."""
        seen = (caps.attestation_status, substatus)
        if seen == self._attestation_seen:
            return
        self._attestation_seen = seen
        cause = attestation_cause(caps, substatus)
        if cause:
            LOG.warning('Host %s cannot open HGS KeyProtectors: attestation '
                        'status %s: %s', self._host, caps.attestation_status,
                        cause)

    def _check_host(self, hgs, request) -> _Measurement:
        """This host's measurement, if the core's rule lets it run
        ``request``.

        :raises vtpm_core.exception.HostNotSuitable: it does not; the
            message gives the rule's reason.
        """
        measured = self._measure(hgs, request.needs_key_protector)
        reason = measured.refusal
        if reason is None:
            # measured this instant: fresh by any age
            verdict = capabilities.satisfies(
                request, measured.caps, max_report_age=0,
                now=measured.caps.measured_at)
            reason = None if verdict else verdict.reason
            if verdict is capabilities.NO_FABRIC:
                reason += ' ([%s] fabric_guardian_name is %r)' % (
                    hv_conf.GROUP, self._opts.fabric_guardian_name)
            elif not verdict and measured.cause:
                reason += ': %s' % measured.cause
        if reason is not None:
            raise exception.HostNotSuitable(host=self._host, reason=reason)
        return measured

    def _windows_version(self):
        with hv_exception.translated('get_windows_version', 'n/a'):
            return self._os_win.hostutils.get_windows_version()

    def _fabric_guardian(self, store):
        name = self._opts.fabric_guardian_name
        if name:
            return _named(store, name)
        candidates = [
            g for g in store
            if not g.HasPrivateSigningKey
            and not g.Name.startswith(self._opts.guardian_name_prefix)
            and g.Name != self._opts.local_guardian_name]
        return candidates[0] if len(candidates) == 1 else None

    def _fabric_identities(self, store, fabric_guardian) -> tuple[str, ...]:
        """The identities of this host's fabric: the fabric guardian's, then
        those of the previous guardians HGS still holds during a renewal
        (``previous_fabric_guardian_names``)."""
        result = [keyprotector.fabric_id(fabric_guardian.SigningCertificate)]
        for name in self._opts.previous_fabric_guardian_names:
            previous = _named(store, name)
            if previous is None:
                LOG.warning('[%s] previous_fabric_guardian_names names %s, '
                            'which is not in the guardian store: it is not '
                            'reported', hv_conf.GROUP, name)
                continue
            result.append(keyprotector.fabric_id(previous.SigningCertificate))
        return tuple(dict.fromkeys(result))

    # -- attach ---------------------------------------------------------------
    def attach(self, instance_uuid, vm_name, request, auth=None):
        if not request.enabled:
            return backend.AttachResult()
        hgs, security = self._hgs, self._security
        measured = self._check_host(hgs, request)
        vm = self._check_vm(security, vm_name, request)
        items = self.key_source.fetch(request.key_refs, auth=auth) \
            if request.key_refs else []
        serial = contextlib.nullcontext() if request.needs_key_protector \
            else _local_lock(self._host)
        # registered, so that a reconciliation leaves its guardians alone
        with serial, reconcile.attaching(self._host, instance_uuid):
            return self._attach_and_undo(instance_uuid, vm_name, request,
                                         items, hgs, security, measured, vm)

    def _attach_and_undo(self, instance_uuid, vm_name, request, items, hgs,
                         security, measured, vm):
        undo = _Undo()
        try:
            keys = material.check_set(
                [material.parse(i.ref, i.payload) for i in items]) \
                if items else None
            self._check_owner_allowed(keys, request)
            with reconcile.private_files(self._opts.private_dir) as files:
                return self._attach(instance_uuid, vm_name, request, keys,
                                    hgs, security, measured, files, undo,
                                    vm.vm_id)
        except BaseException:
            failed = undo.run(vm_name)
            if failed:
                LOG.error('VM %s: could not undo %s; its security settings '
                          'may differ from before', vm_name,
                          ', '.join(failed))
            raise
        finally:
            key_source.wipe_all(items)

    def _check_vm(self, security, vm_name, request):
        """The VM's settings, if it can have the vTPM ``request`` asks for.

        :raises vtpm_core.exception.UnsupportedVM: no such VM, not
            Generation 2, a configuration version below 7.0, or, for a
            shielded VM, Secure Boot off or another template.
        """
        vm = security.vm_settings(vm_name)

        def refuse(reason):
            return exception.UnsupportedVM(vm=vm_name, reason=reason)
        if vm.generation != 2:
            raise refuse('it is Generation %s; a vTPM needs Generation 2 '
                         '(%s=%s)' % (vm.generation, exception.named(
                             constants.IMAGE_MACHINE_TYPE, constants.IMAGE),
                             constants.MACHINE_TYPE_GEN2))
        try:
            version = _version_tuple(vm.version)
        except (AttributeError, ValueError, IndexError):
            version = None
        if version is None or version < VTPM_CONFIG_VERSION:
            raise refuse(
                'its configuration version is %s and a vTPM needs %d.%d or '
                'later (Microsoft: "Virtual Trusted Platform Module (vTPM) '
                '7.0"); upgrade it with Update-VMVersion while it is off, '
                'or boot a new server' % ((vm.version,)
                                          + VTPM_CONFIG_VERSION))
        if request.shielded:
            self._check_secure_boot(security, vm_name, vm, refuse)
        return vm

    def _check_secure_boot(self, security, vm_name, vm, refuse):
        """A shielded VM boots with Secure Boot and a template for it:
        shielding "selected and enforced" Secure Boot (Microsoft's
        Generation 2 security settings page)."""
        if vm.secure_boot and security.template_name(
                vm.template_id) in SHIELDED_TEMPLATES:
            return
        raise refuse(
            'a shielded VM needs Secure Boot with the %s template, and it '
            'has %s (an image with os_secure_boot=required gets Secure '
            'Boot; a Linux guest needs the Open Source Shielded VM template, '
            'on Windows Server 2019 or later)' % (
                ' or '.join(SHIELDED_TEMPLATES),
                'Secure Boot off' if not vm.secure_boot
                else 'another template'))

    def _check_owner_allowed(self, keys, request):
        """Refuse an owner bundle where its private keys must not go."""
        if keys is None or keys.owner is None:
            return
        if request.shielded:
            raise exception.OwnerKeysRefused(ref=keys.owner.ref, why=(
                '%s=%s asks for a shielded VM, whose owner keys stay with '
                'the tenant' % (constants.IMAGE_SHIELDED, constants.REQUIRED)))
        if not self._opts.allow_owner_bundles:
            raise exception.OwnerKeysRefused(ref=keys.owner.ref, why=(
                'this cloud sets [%s] allow_owner_bundles = False'
                % hv_conf.GROUP))

    def _attach(self, instance_uuid, vm_name, request, keys, hgs, security,
                measured, files, undo, vm_id):
        fabric_guardian = measured.guardian
        artifact = None
        if keys is not None and keys.artifact is not None:
            artifact = self._read_artifact(hgs, vm_name, files, keys.artifact)
            host_fabrics = measured.caps.fabric_ids
            if set(host_fabrics).isdisjoint(artifact.info.fabric_ids):
                raise exception.HostNotSuitable(host=self._host, reason=(
                    'the %s in secret %s does not name this host\'s fabric '
                    '%s') % (artifact.kind, keys.artifact.ref,
                             ', '.join(host_fabrics)))

        ssd = security.read(vm_name, vm_id)
        before = {f: bool(getattr(ssd, f)) for f in
                  keyprotector.SECURITY_FLAGS}
        before_kp = security.key_protector(vm_name, ssd)
        target = {'TpmEnabled': True, 'ShieldingRequested': request.shielded,
                  'EncryptStateAndVmMigrationTraffic': True}

        if before['TpmEnabled'] and before_kp:
            fabrics = self._check_same_vtpm(hgs, vm_name, before_kp, keys,
                                            artifact, fabric_guardian)
            if before != target:
                undo.push('restore the security settings',
                          lambda: security.modify(vm_name, ssd, 'rollback',
                                                  **before))
                self._apply(security, vm_name, vm_id, ssd,
                            'set the security settings', target)
            LOG.info('VM %s already has its vTPM', vm_name)
            return backend.AttachResult(fabrics=fabrics)

        if artifact is not None:
            kp, fabrics = artifact.key_protector, artifact.info.fabric_ids
        else:
            kp, fabrics = self._key_protector(instance_uuid, vm_name, hgs,
                                              keys, measured, files, undo)
        if before_kp:
            undo.push('restore the key protector',
                      lambda: security.set_key_protector(vm_name, ssd,
                                                         before_kp))
        security.set_key_protector(vm_name, ssd, kp)
        if artifact is not None and artifact.policy:
            security.set_policy(vm_name, ssd, artifact.policy)
        undo.push('restore the security settings',
                  lambda: security.modify(vm_name, ssd, 'rollback', **before))
        self._apply(security, vm_name, vm_id, ssd, 'enable the TPM', target)
        fabrics = tuple(dict.fromkeys(fabrics))
        LOG.info('VM %s (instance %s) has a vTPM; KeyProtector: %s, '
                 'shielded: %s, fabrics: %s', vm_name, instance_uuid,
                 artifact.kind if artifact else (
                     'owner bundle' if keys else 'local'),
                 request.shielded, ', '.join(fabrics) or 'none (local)')
        return backend.AttachResult(fabrics=fabrics)

    def _apply(self, security, vm_name, vm_id, ssd, purpose, target):
        """Apply the attach's security settings, its last step.

        A call can take effect and then report a failure. If the VM has the
        settings asked for, the attach reached its end state and stands:
        undoing it is not always possible (Windows changes a shielded VM's
        settings only in local mode with the owner's guardian key), nor
        needed.
        """
        try:
            security.modify(vm_name, ssd, purpose, **target)
        except hv_exception.HyperVOperationFailed as e:
            now = security.read(vm_name, vm_id)
            if any(bool(getattr(now, f)) != v for f, v in target.items()):
                raise
            LOG.warning('VM %s has the security settings asked for although '
                        'Hyper-V reported a failure: %s', vm_name, e)

    def _vm_id(self, vm_name):
        with hv_exception.translated('get_vm_id', vm_name):
            return self._os_win.vmutils.get_vm_id(vm_name)

    def _read_artifact(self, hgs, vm_name, files, item):
        """What Hyper-V reads in a tenant artifact: a raw KeyProtector, or
        else a shielding data file."""
        try:
            info = hgs.describe(vm_name, item.payload)
            return _Artifact('raw KeyProtector', bytes(item.payload), b'',
                             info)
        except hv_exception.HyperVOperationFailed as raw_error:
            try:
                kp, policy = keyprotector.read_shielding_data(
                    self._os_win.msps, vm_name, files, item.payload)
                return _Artifact('shielding data file', kp, policy,
                                 hgs.describe(vm_name, kp))
            except hv_exception.HyperVOperationFailed as e:
                raise exception.InvalidKeyMaterial(ref=item.ref, reason=(
                    'Hyper-V reads it neither as a raw KeyProtector (%s) nor '
                    'as a shielding data file (%s)') % (
                        raw_error.description, e.description)) from e

    def _check_same_vtpm(self, hgs, vm_name, current, keys, artifact,
                         fabric_guardian):
        """The fabrics of the VM's vTPM, when it is the one asked for.

        Guardian files are read by Windows only, so for an owner bundle the
        check is: the same owner, this fabric, and as many other guardians.
        """
        info = hgs.describe(vm_name, current)
        if artifact is not None:
            same = _same_parties(info, artifact.info)
        elif keys is None:
            # the host's local guardian owns it; in HGS mode for the fabric
            local = hgs.guardian(self._opts.local_guardian_name)
            expected = {bytes(fabric_guardian.SigningCertificate)} \
                if fabric_guardian is not None else set()
            same = local is not None and set(info.guardians) == expected \
                and info.owner == bytes(local.SigningCertificate)
        else:
            fabric = bytes(fabric_guardian.SigningCertificate)
            same = (info.owner == keys.owner.signing_der
                    and fabric in info.guardians
                    and len(set(info.guardians)) == 1 + len(keys.guardians))
        if not same:
            raise exception.UnsupportedVM(vm=vm_name, reason=(
                'it already has a vTPM whose KeyProtector names other '
                'guardians; replacing it would make the vTPM\'s '
                'contents unreadable'))
        return tuple(dict.fromkeys(info.fabric_ids))

    def _key_protector(self, instance_uuid, vm_name, hgs, keys, measured,
                       files, undo):
        """A new KeyProtector and the fabrics it names."""
        opts = self._opts
        fabric_guardian = measured.guardian
        if keys is None:
            owner = self._local_guardian(vm_name, hgs, undo)
            # In HGS mode, for the fabric's guardian: "encryption supported"
            # (New-HgsKeyProtector -Owner $Owner -Guardian $Guardian); HGS
            # opens it on any attested host of the fabric. In local mode for
            # nobody else: only this host opens it.
            guardians = [fabric_guardian] if fabric_guardian is not None \
                else []
            # The host's own, self-signed guardian: Hyper-V trusts it.
            return hgs.new_key_protector(
                vm_name, owner, guardians, allow_expired=opts.allow_expired,
                allow_untrusted_root=True), tuple(
                    keyprotector.fabric_id(g.SigningCertificate)
                    for g in guardians)
        prefix = '%s%s' % (opts.guardian_name_prefix, instance_uuid)
        # the store as the measurement read it: nothing else makes this
        # instance's guardians (nova runs one operation per instance)
        self._sweep(hgs, vm_name, prefix, measured.store)
        # Every name a call may have created, whether or not the call said
        # so: a call can take effect and then report a failure.
        names = []
        try:
            flags = {'allow_expired': opts.allow_expired,
                     'allow_untrusted_root': opts.allow_untrusted_root}
            names.append('%s-%s' % (prefix, keys.owner.ref))
            owner = hgs.accept_certificates(
                vm_name, names[-1], files, keys.owner.signing,
                keys.owner.encryption, **flags)
            guardians = [fabric_guardian]
            for g in keys.guardians:
                names.append('%s-%s' % (prefix, g.ref))
                guardians.append(hgs.import_file(
                    vm_name, names[-1], files, g.payload, **flags))
            kp = hgs.new_key_protector(vm_name, owner, guardians, **flags)
            return kp, tuple(keyprotector.fabric_id(g.SigningCertificate)
                             for g in guardians)
        finally:
            self._remove(hgs, vm_name, names)

    def _local_guardian(self, vm_name, hgs, undo):
        """The host's local guardian, created when missing.

        The local guardian owns every local key protector on this host: the
        first attach without keys that needs it creates it, and it stays for
        the host's life, because removing it would make those vTPMs
        unreadable. An attach that created it and then fails removes it
        again, so a failure leaves no guardian behind.
        """
        name = self._opts.local_guardian_name
        guardian = hgs.guardian(name)
        if guardian is not None:
            return guardian
        # Registered before the call: it may create the guardian and still
        # report a failure.
        undo.push('remove the local guardian %s' % name,
                  lambda: self._remove(hgs, vm_name, [name]))
        return hgs.generate_guardian(vm_name, name)

    def _in_store(self, hgs, name):
        try:
            return hgs.guardian(name) is not None
        except hv_exception.HyperVOperationFailed:
            return True  # unknown: not proven gone

    def _remove(self, hgs, vm_name, names):
        """Remove guardians: one call each when it succeeds.

        Remove "removes a guardian from the guardian store"
        (remove-msft-hgsguardian.md), so a success needs no look-up. After
        a failure the store decides: a removal may take effect and report a
        failure, or fail on a guardian a failed call never created. Each is
        tried up to REMOVE_ATTEMPTS times.
        """
        left = []
        for name in names:
            for attempt in range(1, REMOVE_ATTEMPTS + 1):
                try:
                    hgs.remove_guardian(vm_name, name)
                    break
                except hv_exception.HyperVOperationFailed as e:
                    if not self._in_store(hgs, name):
                        break
                    LOG.warning('Removing guardian %s failed (attempt %d of '
                                '%d): %s', name, attempt, REMOVE_ATTEMPTS, e)
            else:
                left.append(name)
        if left:
            raise hv_exception.HyperVOperationFailed(
                operation='MSFT_HgsGuardian.Remove', vm=vm_name, code='n/a',
                description=(
                    'guardians %s are still in the host\'s guardian store; '
                    'the next attach or detach of the instance removes '
                    'them' % ', '.join(left)))

    def _sweep(self, hgs, vm_name, prefix, store=None):
        """Remove guardians an earlier, interrupted call left behind, from
        ``store`` (the guardian store as read; None: read it now)."""
        names = [g.Name for g in (hgs.guardians() if store is None else store)
                 if g.Name.startswith(prefix)]
        self._remove(hgs, vm_name, names)

    # -- detach ---------------------------------------------------------------
    def detach(self, instance_uuid, vm_name):
        hgs = self._hgs
        self._sweep(hgs, vm_name or instance_uuid, '%s%s' % (
            self._opts.guardian_name_prefix, instance_uuid))
        if vm_name is None:
            return
        with hv_exception.translated('vm_exists', vm_name):
            if not self._os_win.vmutils.vm_exists(vm_name):
                return
        security = self._security
        ssd = security.read(vm_name, self._vm_id(vm_name))
        if not any(getattr(ssd, f) for f in keyprotector.SECURITY_FLAGS):
            return
        state = security.vm_state(vm_name)
        if state != wmi_schema.DISABLED:
            # Windows changes security settings only while the VM is off
            # (ModifySecuritySettings answers "Invalid State (5)").
            LOG.warning('VM %s (instance %s) is %s: Hyper-V changes its '
                        'security settings only while it is off, so its '
                        'vTPM stays until the VM is deleted', vm_name,
                        instance_uuid, keyprotector.state_word(state))
            return
        shielded = bool(ssd.ShieldingRequested)
        try:
            # No documented call removes a key protector: with the TPM,
            # shielding and encryption off, Hyper-V uses it for nothing.
            security.modify(vm_name, ssd, 'disable the TPM',
                            **dict.fromkeys(keyprotector.SECURITY_FLAGS,
                                            False))
        except hv_exception.HyperVOperationFailed as e:
            if not shielded:
                raise
            # Windows: a shielded VM's settings change only "if you haven't
            # set up the Host Guardian Service or are running it in local
            # mode on the Hyper-V host and the host has the virtual machine
            # owner's guardian key" (Microsoft's Generation 2 security
            # settings page). Its vTPM goes with the VM when nova deletes
            # it; nothing the instance added stays on the host.
            LOG.warning('VM %s (instance %s) is shielded and Hyper-V keeps '
                        'its vTPM and shielding until the VM is deleted: %s',
                        vm_name, instance_uuid, e)
            return
        LOG.info('VM %s (instance %s) has no vTPM any more', vm_name,
                 instance_uuid)

    # -- what a restarted compute checks (vtpm_hyperv.reconcile) --------------
    def vm_security(self, instance_uuid, vm_name):
        """What the VM has of a vTPM now; nothing changes.

        :raises vtpm_hyperv.exception.HyperVOperationFailed:
        """
        security = self._security
        with hv_exception.translated('vm_exists', vm_name):
            if not self._os_win.vmutils.vm_exists(vm_name):
                return backend.VMSecurity(exists=False)
        state = security.vm_state(vm_name)
        ssd = security.read(vm_name, self._vm_id(vm_name))
        current = security.key_protector(vm_name, ssd)
        fabrics = ()
        if current:
            fabrics = tuple(dict.fromkeys(
                self._hgs.describe(vm_name, current).fabric_ids))
        return backend.VMSecurity(
            off=state == wmi_schema.DISABLED, tpm=bool(ssd.TpmEnabled),
            shielded=bool(ssd.ShieldingRequested),
            encrypted=bool(ssd.EncryptStateAndVmMigrationTraffic),
            key_protector=bool(current), fabrics=fabrics)

    def reconcile(self):
        """Remove the instance guardians no attach of this process runs for
        (the owner's, with its private signing key, first) and the private
        directories of calls whose process died (``vtpm_hyperv.reconcile``).

        :raises vtpm_hyperv.exception.HyperVOperationFailed: a guardian or
            a directory stays; the next reconciliation tries again.
        """
        hgs = self._hgs
        names, paths = reconcile.sweep(
            hgs, self._host, self._opts.guardian_name_prefix,
            self._opts.private_dir,
            lambda found: self._remove(hgs, 'n/a', found))
        left = reconcile.remove_directories(paths)
        if names or paths:
            LOG.warning('Host %s: removed what interrupted vTPM calls left: '
                        'guardians %s; private directories %s', self._host,
                        ', '.join(names) or 'none',
                        ', '.join(paths) or 'none')
        if left:
            raise hv_exception.HyperVOperationFailed(
                operation='remove private directories', vm='n/a', code='n/a',
                description='%s stay' % ', '.join(left))
        return backend.Reconciled(guardians=tuple(names), files=tuple(paths))

    # -- re-authorization (vtpm_hyperv.nova.reauthorize) ----------------------
    def reauthorize(self, instance_uuid, vm_name, ref, auth=None):
        """Give the VM the tenant's new KeyProtector from secret ``ref``.

        The tenant made it with Microsoft's tools from the VM's current one
        (Grant-HgsKeyProtectorAccess, Revoke-HgsKeyProtectorAccess) or anew
        (New-ShieldingDataFile): a raw KeyProtector or a shielding data
        file, read with the owner's credentials (``auth``). Checked before
        anything changes: the VM is off, has a KeyProtector, this host can
        open KeyProtectors (guarded, attested), the new one has the same
        owner and names this host's fabric. Only the KeyProtector is set: a
        shielding data file's security policy stays as it was at boot.
        Hyper-V keeps the KeyProtector that encrypted the vTPM's state at
        the last start as the last known good (``restore_last_known_good``):
        a KeyProtector made from one saved before that start no longer opens
        the vTPM, so the tenant grants from the VM's current one.

        A VM that has it already (the same owner and guardians: the process
        died after setting it, or after the start, before the outcome was
        recorded) is left as it is, running or not.

        :returns: ``(fabrics before, fabrics after)``; before is None when
            the VM had it already.
        :raises vtpm_core.exception.ReauthorizationRefused: a subclass
            per rule; nothing was changed.
        :raises vtpm_hyperv.exception.HyperVOperationFailed: setting it
            failed; the VM keeps its KeyProtector.
        """
        def refuse(cls, reason):
            return cls(instance=instance_uuid, ref=ref, reason=reason)

        security, hgs = self._security, self._hgs
        # A VM sealed by a tenant's KeyProtector needs of this host what a
        # request with keys needs.
        keyed = objects.VTPMRequest(enabled=True, key_refs=[ref],
                                    image_policy=constants.REQUIRED,
                                    machine_type=constants.MACHINE_TYPE_GEN2)
        try:
            measured = self._check_host(hgs, keyed)
        except exception.HostNotSuitable as e:
            raise refuse(exception.ReauthorizationRefused, str(e)) from e
        # Windows: security settings change only while the VM is off
        # (Set-VMKeyProtector; guarded-fabric-create-vm-move-to-guarded-
        # fabric.md: Stop-VM first).
        state = security.vm_state(vm_name)
        if state != wmi_schema.DISABLED:
            applied = self._applied_already(hgs, security, instance_uuid,
                                            vm_name, ref, auth, refuse)
            if applied is not None:
                return None, applied
            # Saved or paused is not off either: the saved state holds the
            # vTPM's, which a new KeyProtector would not open.
            raise refuse(exception.ReauthorizationNotOff, (
                'VM %s is not off (%s, EnabledState %s) and Hyper-V changes '
                'a KeyProtector only while the VM is off: stop the server, '
                'set the metadata, start it') % (
                    vm_name, keyprotector.state_word(state), state))
        ssd = security.read(vm_name, self._vm_id(vm_name))
        current = security.key_protector(vm_name, ssd)
        info = hgs.describe(vm_name, current) if current else None
        if not ssd.TpmEnabled or info is None or not info.guardians:
            raise refuse(exception.ReauthorizationNotKeyed, (
                'VM %s has no vTPM sealed by a KeyProtector of the '
                'tenant\'s, so there is nothing to re-authorize') % vm_name)
        artifact = self._reauthorization_artifact(hgs, vm_name, ref, auth,
                                                  refuse)
        if _same_parties(info, artifact.info):
            LOG.info('VM %s (instance %s) has the KeyProtector of secret %s '
                     'already', vm_name, instance_uuid, ref)
            return None, tuple(dict.fromkeys(artifact.info.fabric_ids))
        if artifact.info.owner != info.owner:
            raise refuse(exception.ReauthorizationOwnerChanged, (
                'a KeyProtector\'s owner never changes (New-HgsKeyProtector) '
                'and this one\'s (signing certificate SHA-256 %s) is not the '
                'VM\'s (%s), so the vTPM would not open; make it from the '
                'VM\'s KeyProtector with Grant-HgsKeyProtectorAccess and '
                'Revoke-HgsKeyProtectorAccess') % (
                    keyprotector.fabric_id(artifact.info.owner),
                    keyprotector.fabric_id(info.owner)))
        host_fabric = measured.caps.fabric_id
        if host_fabric not in artifact.info.fabric_ids:
            raise refuse(exception.ReauthorizationDropsFabric, (
                'it does not name fabric %s, where the VM is (host %s), so '
                'the VM could not start here; keep this fabric\'s guardian '
                'and revoke it once the server has moved') % (
                    host_fabric, self._host))
        try:
            security.set_key_protector(vm_name, ssd, artifact.key_protector)
        except hv_exception.HyperVOperationFailed:
            # It may have taken effect and then reported the failure.
            if security.key_protector(vm_name, ssd) != current:
                security.set_key_protector(vm_name, ssd, current)
            raise
        before = tuple(dict.fromkeys(info.fabric_ids))
        after = tuple(dict.fromkeys(artifact.info.fabric_ids))
        LOG.info('VM %s (instance %s) has the KeyProtector of secret %s; '
                 'fabrics: %s (before: %s)', vm_name, instance_uuid, ref,
                 ', '.join(after), ', '.join(before))
        return before, after

    def _applied_already(self, hgs, security, instance_uuid, vm_name, ref,
                         auth, refuse):
        """The fabrics of secret ``ref``'s KeyProtector if the VM, which is
        not off, has it already (it started with it, and the process died
        before the outcome was recorded); else None."""
        current = security.key_protector(
            vm_name, security.read(vm_name, self._vm_id(vm_name)))
        if not current:
            return None
        try:
            artifact = self._reauthorization_artifact(hgs, vm_name, ref,
                                                      auth, refuse)
        except exception.ReauthorizationRefused:
            return None
        if not _same_parties(hgs.describe(vm_name, current), artifact.info):
            return None
        LOG.info('VM %s (instance %s) runs with the KeyProtector of secret '
                 '%s already', vm_name, instance_uuid, ref)
        return tuple(dict.fromkeys(artifact.info.fabric_ids))

    def _reauthorization_artifact(self, hgs, vm_name, ref, auth, refuse):
        """The raw KeyProtector or PDK in secret ``ref``, as Hyper-V reads
        it; any other secret, or one the owner cannot read, is refused."""
        unusable = exception.ReauthorizationSecretUnusable
        try:
            items = self.key_source.fetch([ref], auth=auth)
        except exception.KeyMaterialError as e:
            raise refuse(unusable, _secret_refusal(e)) from e
        try:
            keys = material.check_set(
                [material.parse(i.ref, i.payload) for i in items])
            if keys.artifact is None:
                raise refuse(unusable, (
                    'it is an owner PKCS#12 bundle or a guardian file; '
                    'allowed: a raw KeyProtector or a shielding data file '
                    '(PDK) that the tenant made, with the owner of the '
                    'VM\'s KeyProtector'))
            with reconcile.private_files(self._opts.private_dir) as files:
                return self._read_artifact(hgs, vm_name, files, keys.artifact)
        except (exception.InvalidKeyMaterial, exception.InvalidKeySet) as e:
            raise refuse(unusable, e.reason) from e
        finally:
            key_source.wipe_all(items)

    def restore_last_known_good(self, instance_uuid, vm_name):
        """Put back the KeyProtector of the VM's last start.

        Hyper-V keeps it ("Restores back to the last known good key
        protector", msvm-securityservice-restorelastknowngoodkeyprotector
        .md): the one that "successfully encrypted TPM device state in the
        last VM boot" (Msvm_TPMSettingData.LastKnownGoodKeyProtector), the
        egress key protector that start handed back.

        :returns: the fabrics the restored KeyProtector names.
        :raises vtpm_hyperv.exception.HyperVOperationFailed:
        """
        security = self._security
        ssd = security.read(vm_name, self._vm_id(vm_name))
        security.restore_last_known_good(vm_name, ssd)
        info = self._hgs.describe(vm_name,
                                  security.key_protector(vm_name, ssd))
        LOG.warning('VM %s (instance %s) has its last known good '
                    'KeyProtector again', vm_name, instance_uuid)
        return tuple(dict.fromkeys(info.fabric_ids))


# Why Barbican's refusals refuse a re-authorization, in its words.
_SECRET_REFUSALS = {
    exception.KeyNotFound: 'Barbican has no such secret',
    exception.KeyAccessDenied: ('Barbican refused it to the instance '
                                'owner\'s project (HTTP 403)'),
}


def _secret_refusal(error):
    for cls, reason in _SECRET_REFUSALS.items():
        if isinstance(error, cls):
            return reason
    return 'it cannot be read (%s: %s)' % (type(error).__name__, error)


class _Measurement(typing.NamedTuple):
    """One reading of the host (``HyperVBackend._measure``)."""

    caps: objects.HostCapabilities
    # the fabric's guardian in the store (a KeyProtector names it), or None
    guardian: object
    # why the host offers no vTPM at all, or None
    refusal: str | None
    # why a guarded host cannot open HGS KeyProtectors now, or None
    cause: str | None = None
    # the guardian store as read (MSFT_HgsGuardian instances), or None when
    # it was not read (a vTPM without keys in local mode)
    store: tuple | None = None


def _named(store, name):
    """The guardian of ``store`` named ``name``, or None; case-insensitive,
    as the query by name it replaces (``MSFT_HgsGuardian(Name=...)``)."""
    return next((g for g in store if g.Name.lower() == name.lower()), None)


def _same_parties(info, other):
    """Whether two KeyProtectors name the same owner and guardians (each by
    its signing and encryption certificates): a start rolls a
    KeyProtector's transport key, never its parties (MS-KPS's egress key
    protector), so the bytes differ after one."""
    def parties(i):
        return i.owner, set(zip(i.guardians, i.encryption or i.guardians))
    return parties(info) == parties(other)


def attestation_cause(caps, substatus) -> str | None:
    """Why a guarded host in HGS mode is not attested, in Microsoft's words
    ("Troubleshooting Guarded Hosts"), with the substatus bits its page
    documents; None for a host that passed or is not in HGS mode."""
    status = caps.attestation_status
    if caps.local_key_protector is not False or \
            status == constants.ATTESTATION_PASSED:
        return None
    cause = wmi_schema.ATTESTATION_CAUSES.get(
        status, 'see Get-HgsClientConfiguration')
    words = wmi_schema.substatus_words(substatus)
    if words:
        cause += ' (AttestationSubstatus %s: %s)' % (
            substatus, '; '.join(words))
    return cause


class _Artifact(typing.NamedTuple):
    """What Hyper-V read in a tenant's raw KeyProtector or PDK."""

    kind: str
    key_protector: bytes
    policy: bytes
    info: keyprotector.KeyProtectorInfo
