# SPDX-License-Identifier: Apache-2.0
"""The vTPM calls a Hyper-V compute driver makes, one per driver hook.

``vtpm_hyperv.nova.driver.VTPMDriverMixin`` makes every call for a driver it is
composed with; a driver that cannot compose it keeps one ``VTPMCompute``
per host and adds a call to each hook it already has::

    spawn (VM created, still off)    if self._vtpm.requested(instance):
                                         self._vtpm.spawn(context, instance,
                                                          name)
    destroy                          self._vtpm.destroy(instance, name,
                                                        context)
    get_available_resource           res['stats'].update(self._vtpm.stats())
    update_provider_tree             self._vtpm.update_traits(tree, nodename)
    migrate_disk_and_power_off       self._vtpm.before_move(instance, flavor,
                                                            same_host)
    check_can_live_migrate_destination
                                     self._vtpm.before_live_migration_here(
                                         instance)
    instance_on_disk (evacuation)    self._vtpm.before_evacuation_here(
                                         instance)
    rebuild                          self._vtpm.before_rebuild(instance)
    power_off                        self._vtpm.before_power_off(instance)
    power_on                         self._vtpm.power_on(context, instance,
                                                         name, start)
    reboot, resume_state_on_host_boot, unrescue, the end of spawn
                                     self._vtpm.before_start(context,
                                                             instance, name)
    init_host                        self._vtpm.reconcile_host()
    process_instances_at_startup     self._vtpm.reconcile_instances(
                                         context, instances, name_of)
    get_available_resource           self._vtpm.reconcile_host() (periodic)

Each raises the nova exception that makes nova's compute manager do the
right thing (nova's own, or ``vtpm_hyperv.nova.exception``'s subclasses of
them): abort a build without rescheduling for what another host cannot fix
(a bad request, a missing or forbidden secret), reschedule for what another
host may not have (a failed WMI job, an unsuitable host), and roll the
instance back to its state for a refused lifecycle operation
(``vtpm_hyperv.nova.lifecycle``). The fault always carries our message. The
backend's failures are told apart by the ``vtpm_core.exception`` classes
its contract names (``vtpm_core.backend.VTPMBackend``), and its methods are
the only ones called.

``spawn`` and ``stats`` also send the vTPM's versioned notifications
(``vtpm_hyperv.nova.notifications``): the attach's end or error, and a host's
attestation crossing ``Passed``.
"""

from __future__ import annotations

import socket

from nova.compute import task_states
from nova.compute import vm_states
from nova import exception as nova_exception
from nova import service_auth
import os_traits
from oslo_log import log

from vtpm_core import backend as vtpm_backend
from vtpm_core import capabilities
from vtpm_core import exception
from vtpm_core import policy
from vtpm_core import sysmeta
from vtpm_hyperv.barbican import consumers
from vtpm_hyperv.nova import exception as nova_vtpm_exc
from vtpm_hyperv.nova import lifecycle
from vtpm_hyperv.nova import notifications
from vtpm_hyperv.nova import reauthorize
from vtpm_hyperv.nova import startcheck

LOG = log.getLogger(__name__)

# nova copies every image property into system metadata with this prefix
# (nova.utils.SM_IMAGE_PROP_PREFIX); image_meta keeps only nova's own ones.
IMAGE_PREFIX = 'image_'

# What another host cannot fix: abort the build, do not reschedule.
_ABORT = (exception.InvalidVTPMRequest, exception.KeyNotFound,
          exception.KeyAccessDenied, exception.KeyAuthenticationFailed,
          exception.InvalidKeyMaterial,
          exception.InvalidKeySet, exception.OwnerKeysRefused,
          exception.UnsupportedVM)

# nova's vm_states in which destroy() ends the instance (_going_away)
_GOING_AWAY = (vm_states.BUILDING, vm_states.SOFT_DELETED, vm_states.DELETED)

# What nova sends other services for a request's user: nova 33 named it
# get_service_user_token_auth_plugin; nova 27 to 32 call the same function,
# with the same arguments, get_auth_plugin.
service_user_token_auth = getattr(
    service_auth, 'get_service_user_token_auth_plugin',
    None) or service_auth.get_auth_plugin

# The host measured its report seconds ago; a destination checks itself.
_FRESH = 24 * 3600


def image_properties(instance) -> dict[str, str]:
    """Return the image properties nova recorded for ``instance``."""
    n = len(IMAGE_PREFIX)
    return {key[n:]: value for key, value in instance.system_metadata.items()
            if key.startswith(IMAGE_PREFIX) and value is not None}


def request_for(instance, flavor=None):
    """Return the vTPM request of ``instance`` (with ``flavor`` if given).

    :raises vtpm_core.exception.InvalidVTPMRequest:
    """
    flavor = flavor if flavor is not None else instance.flavor
    return policy.build_request(image_properties(instance),
                                flavor.extra_specs or {})


def subject(instance) -> lifecycle.Subject:
    """Return what the lifecycle check needs to know about ``instance``."""
    try:
        request = request_for(instance)
    except exception.InvalidVTPMRequest as e:
        # Its build was aborted, or it predates this library: no vTPM.
        LOG.debug('Instance %(uuid)s has no valid vTPM request: %(error)s',
                  {'uuid': instance.uuid, 'error': e})
        request = None
    return lifecycle.Subject(uuid=instance.uuid, request=request,
                             fabrics=sysmeta.fabrics(
                                 instance.system_metadata),
                             host=instance.host)


def _going_away(instance) -> bool:
    """Whether nova destroys the VM because the instance ends: a delete
    (also of a soft-deleted or already deleted one), or a build that
    failed on this host (a rescheduled build registers again). Not a
    rebuild, an evacuation's or a resize's cleanup: the instance lives on.
    """
    return bool(instance.deleted
                or instance.task_state == task_states.DELETING
                or instance.vm_state in _GOING_AWAY)


def set_traits(provider_tree, nodename, caps) -> None:
    """Give ``nodename`` the traits of ``caps``; drop the stale ones we own.

    Other traits on the node are not ours and stay as they are. Standard
    traits this release's os-traits does not define are left out: placement
    creates only those, refuses any other non-custom name, and the node's
    whole report would fail (2023.1's os-traits 2.10.0 has neither TPM_CRB
    nor the secret securities).
    """
    wanted = {t for t in capabilities.traits(caps)
              if os_traits.is_custom(t) or hasattr(os_traits, t)}
    current = provider_tree.data(nodename).traits
    stale = capabilities.managed_traits(current) - wanted
    if stale:
        provider_tree.remove_traits(nodename, *sorted(stale))
    if wanted - set(current):
        provider_tree.add_traits(nodename, *sorted(wanted))


class VTPMCompute:
    """One host's vTPM side of a compute driver.

    :param conf: nova's configuration (``nova.conf.CONF`` in nova-compute):
        the backend's groups, and ``[DEFAULT] shelved_offload_time`` for
        a shelve.
    :param backend: a ``VTPMBackend``; None loads ``backend_name``.
    :param auth_for: ``context -> keystoneauth1 plugin`` acting for the
        instance owner; by default what nova sends other services:
        ``nova.service_auth.get_service_user_token_auth_plugin(context)``
        (``get_auth_plugin`` before nova 33),
        the owner's token plus a service token when ``[service_user]
        send_service_user_token`` is set (a build then survives the owner's
        token expiring).
    :param host: the nova-compute host its notifications are published
        as (``nova-compute:<host>``, ``vtpm_hyperv.nova.notifications``);
        default ``conf.host`` (nova's, which defaults to this machine's
        name).
    """

    def __init__(self, conf, backend=None, backend_name='hyperv',
                 auth_for=None, host=None):
        self._conf = conf
        self.host = host or getattr(conf, 'host', None) or \
            socket.gethostname()
        self._attestation = notifications.AttestationWatch(self.host)
        self._backend = backend
        self._backend_name = backend_name
        self._auth_for = auth_for or service_user_token_auth
        self._caps = None

    @property
    def backend(self):
        if self._backend is None:
            self._backend = vtpm_backend.load_backend(self._backend_name,
                                                      self._conf)
        return self._backend

    @property
    def _key_source(self):
        # VTPMBackend.key_source, where consumers are registered; a backend
        # that implements the contract's methods alone has none
        return getattr(self.backend, 'key_source', None)

    # --- spawn and destroy --------------------------------------------------

    def requested(self, instance) -> bool:
        """Whether the build of ``instance`` asks for a vTPM.

        :raises VTPMBuildAborted: its image and flavor make an invalid
            request, which another host cannot fix.
        """
        try:
            return request_for(instance).enabled
        except exception.InvalidVTPMRequest as e:
            raise self._abort(instance, e) from e

    def spawn(self, context, instance, vm_name):
        """Give the VM the vTPM its image and flavor ask for, if any.

        Call it after the VM exists and before it is powered on. Records the
        KeyProtector's fabrics and secrets in ``instance.system_metadata``
        (nova's compute manager saves the instance after spawn), and
        registers the instance as a consumer of those secrets
        (``vtpm_hyperv.barbican.consumers``).

        :returns: the backend's ``AttachResult``, or None without a vTPM.
        :raises VTPMBuildAborted: another host cannot fix it.
        :raises vtpm_core.exception.VTPMError: another host may succeed
            (nova reschedules; the message becomes the fault).
        """
        try:
            request = request_for(instance)
        except exception.InvalidVTPMRequest as e:
            raise self._abort(instance, e) from e
        if not request.enabled:
            return None
        auth = self._auth_for(context)
        try:
            result = self.backend.attach(instance.uuid, vm_name, request,
                                         auth=auth)
            # the secrets on the instance, the instance on the secrets
            consumers.registered(self._key_source, instance,
                                 request.key_refs, auth)
        except exception.VTPMError as e:
            notifications.attach_failed(context, instance, self.host,
                                        shielded=request.shielded, error=e)
            if isinstance(e, _ABORT):
                raise self._abort(instance, e) from e
            LOG.warning('vTPM attach for instance %(uuid)s failed on this '
                        'host, nova may reschedule: %(error)s',
                        {'uuid': instance.uuid, 'error': e})
            raise
        sysmeta.set_fabrics(instance.system_metadata, result.fabrics)
        LOG.info('vTPM attached to instance %(uuid)s (fabrics: %(fabrics)s)',
                 {'uuid': instance.uuid,
                  'fabrics': ', '.join(result.fabrics) or 'local'})
        notifications.attach(context, instance, self.host,
                             shielded=request.shielded,
                             fabrics=result.fabrics)
        return result

    def destroy(self, instance, vm_name, context=None):
        """Remove what ``spawn`` added on this host; never needs a secret.

        A secret that is gone or forbidden by now does not block the delete.
        When the instance goes away (deleted, or its build failed here),
        it is removed as a consumer of its secrets with ``context``'s
        credentials, as far as Barbican lets them.
        """
        try:
            self.backend.detach(instance.uuid, vm_name)
        except exception.KeyMaterialError as e:
            LOG.warning('vTPM cleanup for instance %(uuid)s skipped a '
                        'secret: %(error)s',
                        {'uuid': instance.uuid, 'error': e})
        if (context is not None and sysmeta.keys(instance.system_metadata)
                and _going_away(instance)):
            consumers.removed(self._key_source, instance,
                              self._auth_for(context))

    @staticmethod
    def _abort(instance, error):
        LOG.error('vTPM build of instance %(uuid)s aborted: %(error)s',
                  {'uuid': instance.uuid, 'error': error})
        return nova_vtpm_exc.VTPMBuildAborted(instance_uuid=instance.uuid,
                                              reason=str(error))

    # --- capability reporting ------------------------------------------------

    def stats(self) -> dict[str, str]:
        """The stats entry for ``get_available_resource()``; measures now.

        A host that cannot measure reports nothing, so the scheduler refuses
        it vTPM instances (fail closed). A measurement that changes nothing
        but the time republishes the previous report
        (``capabilities.republished``), so that nova writes nothing.
        """
        try:
            measured = self.backend.get_capabilities()
        except exception.VTPMError as e:
            LOG.warning('vTPM capabilities unavailable, reporting none: '
                        '%(error)s', {'error': e})
            measured = None
        # the report as nova publishes it, from here to the scheduler
        self._attestation.observe(measured)
        self._caps = capabilities.republished(self._caps, measured)
        return {} if self._caps is None else capabilities.to_stats(self._caps)

    def update_traits(self, provider_tree, nodename):
        """Set our traits on ``nodename`` from the last ``stats()`` report.

        nova calls ``get_available_resource`` and then
        ``update_provider_tree`` in the same periodic run, so both carry
        the same measurement.
        """
        if self._caps is None:
            self.stats()
        set_traits(provider_tree, nodename, self._caps)

    # --- lifecycle ----------------------------------------------------------

    def before_move(self, instance, flavor, same_host=False):
        """At ``migrate_disk_and_power_off``: resize or cold migration.

        :raises nova.exception.InstanceFaultRollback: the instance keeps its
            state; the fault carries our message.
        """
        op = lifecycle.MIGRATE
        if flavor is not None and flavor.flavorid != \
                instance.flavor.flavorid:
            op = lifecycle.RESIZE
        new_request = new_error = None
        try:
            new_request = request_for(instance, flavor)
        except exception.InvalidVTPMRequest as e:
            new_error = e
        self._check_or_roll_back(op, instance, new_request=new_request,
                                 new_request_error=new_error,
                                 same_host=same_host)

    def before_live_migration_here(self, instance, host=None):
        """At ``check_can_live_migrate_destination``, on the destination.

        :raises nova.exception.MigrationPreCheckError: the conductor tries
            another host, or fails the migration with our message.
        """
        what = subject(instance)
        if what.kind == lifecycle.NONE:
            return
        caps = self.backend.get_capabilities()
        verdict = capabilities.satisfies(
            what.request, caps, max_report_age=_FRESH,
            allowed_fabrics=frozenset(what.fabrics) or None)
        try:
            lifecycle.check(lifecycle.LIVE_MIGRATE, what, destination=verdict,
                            destination_host=host)
        except exception.OperationRefused as e:
            LOG.info('%s', e)
            raise nova_exception.MigrationPreCheckError(reason=str(e)) from e

    def before_evacuation_here(self, instance):
        """At the first driver call of an evacuation, on the destination."""
        self._check_or_roll_back(lifecycle.EVACUATE, instance)

    def before_rebuild(self, instance):
        """At ``rebuild``, before the VM is destroyed."""
        self._check_or_roll_back(lifecycle.REBUILD, instance)

    def before_power_off(self, instance):
        """At ``power_off``: refuses a shelve that would lose the vTPM.

        nova powers the guest off first when it shelves (task state
        ``shelving``) or offloads at once (``shelving_offloading``); any
        other power-off is not ours to refuse.

        :raises VTPMOperationRefused: nova reverts the task state.
        """
        if instance.task_state == task_states.SHELVING_OFFLOADING:
            self.before_shelve(instance, True, lifecycle.SHELVE_OFFLOAD)
        elif instance.task_state == task_states.SHELVING:
            self.before_shelve(instance,
                               self._conf.shelved_offload_time != -1)

    def before_shelve(self, instance, offload,
                      operation=lifecycle.SHELVE):
        """At ``power_off`` while shelving (the guest still runs).

        :param offload: nova will offload the VM (``[DEFAULT]
            shelved_offload_time`` is not -1, or this is the offload).
        :param operation: ``lifecycle.SHELVE`` or ``SHELVE_OFFLOAD``.
        :raises VTPMOperationRefused: nova reverts the task state.
        """
        try:
            lifecycle.check(operation, subject(instance), offload=offload)
        except exception.OperationRefused as e:
            LOG.info('%s', e)
            raise nova_vtpm_exc.VTPMOperationRefused(reason=str(e)) from e

    def _check_or_roll_back(self, operation, instance, **facts):
        try:
            lifecycle.check(operation, subject(instance), **facts)
        except exception.OperationRefused as e:
            LOG.info('%s', e)
            raise nova_exception.InstanceFaultRollback(
                inner_exception=nova_vtpm_exc.VTPMOperationRefused(
                    reason=str(e))) from e

    # --- re-authorization (vtpm_hyperv.nova.reauthorize) ---------------------

    def power_on(self, context, instance, vm_name, start):
        """At ``power_on``: apply the owner's pending re-authorization, if
        any, then ``start()`` (the driver's own power-on).

        :returns: the ``reauthorize.Outcome``, or None without a request.
        :raises VTPMOperationRefused: refused (nothing changed), or the VM
            did not start with the new KeyProtector (the last known good
            one is back); the server stays stopped, the fault says why.
        """
        ref = reauthorize.pending(instance)
        if ref is not None and not startcheck.is_owner(context, instance):
            # only the owner's credentials read the secret: a start by
            # nova itself or an admin would spend the owner's request
            error = exception.StartAwaitsOwner(instance=instance.uuid,
                                               ref=ref)
            LOG.warning('%s', error)
            raise nova_vtpm_exc.VTPMOperationRefused(reason=str(error))
        self.before_start(context, instance, vm_name)
        if ref is None:
            start()
            return None
        before = sysmeta.fabrics(instance.system_metadata)
        try:
            reauthorize.check_ref(instance, ref)
            was, after = self.backend.reauthorize(
                instance.uuid, vm_name, ref, auth=self._auth_for(context))
            # None: the VM has it already (a start the process died after)
            before = before if was is None else was
        except (exception.InvalidReauthorization,
                exception.ReauthorizationRefused,
                exception.BackendOperationFailed) as e:
            outcome = reauthorize.Outcome.failed(
                instance, ref, reauthorize.REFUSED, e, before, before)
            raise self._reauthorized(context, instance, outcome,
                                     before) from e
        try:
            start()
        except Exception as e:  # noqa: BLE001 - any failure to start
            # The new KeyProtector is the one change since the last good
            # start, so whatever failed, the known good one comes back.
            restored = self.backend.restore_last_known_good(instance.uuid,
                                                            vm_name)
            error = exception.KeyProtectorDidNotOpen(
                instance=instance.uuid, ref=ref, reason=e)
            outcome = reauthorize.Outcome.failed(
                instance, ref, reauthorize.RESTORED, error, after, restored)
            raise self._reauthorized(context, instance, outcome,
                                     restored) from e
        outcome = reauthorize.Outcome(instance.uuid, ref,
                                      reauthorize.APPLIED, before, after)
        self._reauthorized(context, instance, outcome, after)
        return outcome

    # --- starts and restarts (vtpm_hyperv.nova.startcheck) -------------------

    def before_start(self, context, instance, vm_name):
        """Before any start: the VM has the vTPM its request asks for, gets
        it now (its build's attach did not finish), or does not start.

        :raises VTPMOperationRefused: the VM lacks its vTPM and cannot get
            it now; it stays as it is, the fault says what is missing and
            what to do.
        """
        request = self._vtpm_request(instance)
        if request is None:
            return
        try:
            security = self.backend.vm_security(instance.uuid, vm_name)
        except exception.VTPMError as e:
            raise self._start_refused(instance, vm_name, (
                'a vTPM that cannot be read (%s)' % e), 'try again') from e
        if not security.exists:
            return  # the driver's own start answers for a missing VM
        missing = startcheck.shortfall(request, security)
        if missing and startcheck.unfinished(security) and (
                not request.key_refs
                or startcheck.is_owner(context, instance)):
            security = self._complete(context, instance, vm_name, request,
                                      missing)
            missing = startcheck.shortfall(request, security)
        changed = sysmeta.set_missing(instance.system_metadata,
                                      startcheck.describe(missing) or None)
        if not missing:
            changed = startcheck.record_fabrics(instance, security) or changed
        if changed:
            instance.save()
        if missing:
            remedy = startcheck.REBUILD
            if not security.off:
                remedy = startcheck.STOP_FIRST
            elif startcheck.unfinished(security):
                remedy = startcheck.OWNER_STARTS
            raise self._start_refused(instance, vm_name,
                                      startcheck.describe(missing), remedy)

    def _complete(self, context, instance, vm_name, request, missing):
        """The attach a build did not finish, then the VM as it is now."""
        LOG.warning('VM %(vm)s of instance %(uuid)s has %(missing)s: its '
                    'attach did not finish; completing it before it starts',
                    {'vm': vm_name, 'uuid': instance.uuid,
                     'missing': startcheck.describe(missing)})
        try:
            result = self.backend.attach(
                instance.uuid, vm_name, request,
                auth=self._auth_for(context) if request.key_refs else None)
        except exception.VTPMError as e:
            notifications.attach_failed(context, instance, self.host,
                                        shielded=request.shielded, error=e)
            raise self._start_refused(
                instance, vm_name, startcheck.describe(missing),
                'completing its vTPM failed: %s' % e) from e
        notifications.attach(context, instance, self.host,
                             shielded=request.shielded,
                             fabrics=result.fabrics)
        return self.backend.vm_security(instance.uuid, vm_name)

    def _start_refused(self, instance, vm_name, missing, remedy):
        error = exception.StartRefused(instance=instance.uuid, vm=vm_name,
                                       missing=missing, remedy=remedy)
        LOG.error('%s', error)
        return nova_vtpm_exc.VTPMOperationRefused(reason=str(error))

    @staticmethod
    def _vtpm_request(instance):
        """The instance's vTPM request, or None without one (or with an
        invalid one, whose build was aborted before any attach)."""
        what = subject(instance)
        if what.request is None or not what.request.enabled:
            return None
        return what.request

    def reconcile_host(self):
        """At start-up and in each periodic run: the backend removes what
        calls that died with their process left on the host (cheap when
        there is nothing)."""
        try:
            return self.backend.reconcile()
        except exception.VTPMError as e:
            LOG.warning('vTPM reconciliation of host %(host)s: %(error)s',
                        {'host': self.host, 'error': e})
            return None

    def reconcile_instances(self, context, instances, vm_name_of):
        """At start-up, before nova initialises them: each vTPM instance
        whose VM lacks its vTPM is logged, notified (``vtpm.attach.error``)
        and marked (``vtpm_missing``); the mark goes once it has it, and
        ``vtpm_fabrics`` follows what its KeyProtector names.

        :param vm_name_of: ``instance -> VM name``.
        """
        for instance in instances:
            request = self._vtpm_request(instance)
            if request is None:
                continue
            vm_name = vm_name_of(instance)
            try:
                security = self.backend.vm_security(instance.uuid, vm_name)
            except exception.VTPMError as e:
                LOG.warning('Cannot read the vTPM of instance %(uuid)s: '
                            '%(error)s', {'uuid': instance.uuid, 'error': e})
                continue
            if not security.exists:
                continue
            missing = startcheck.shortfall(request, security)
            changed = sysmeta.set_missing(
                instance.system_metadata,
                startcheck.describe(missing) or None)
            if not missing:
                # the process may have died before it recorded them
                changed = startcheck.record_fabrics(instance,
                                                    security) or changed
            if changed:
                instance.save()
            if missing:
                error = exception.VTPMIncomplete(
                    instance=instance.uuid, vm=vm_name, host=self.host,
                    missing=startcheck.describe(missing),
                    remedy=startcheck.OWNER_STARTS
                    if startcheck.unfinished(security)
                    else startcheck.REBUILD)
                LOG.error('%s', error)
                notifications.attach_failed(context, instance, self.host,
                                            shielded=request.shielded,
                                            error=error)

    def _reauthorized(self, context, instance, outcome, fabrics):
        """Record ``outcome`` on the instance and report it; for a failure,
        the exception that fails the start."""
        reauthorize.record(instance, outcome, fabrics)
        if outcome.result == reauthorize.APPLIED:
            consumers.reauthorized(self._key_source, instance,
                                   outcome.ref, self._auth_for(context))
        instance.save()
        self.reauthorized(context, instance, outcome)
        if outcome.result == reauthorize.APPLIED:
            return None
        return nova_vtpm_exc.VTPMOperationRefused(reason=outcome.message)

    def reauthorized(self, context, instance, outcome):
        """Where every re-authorization outcome goes (saved by then): the
        log and ``vtpm.reauthorize.end``/``.error``."""
        applied = outcome.result == reauthorize.APPLIED
        if applied:
            LOG.info('Instance %(uuid)s re-authorized with secret %(ref)s: '
                     'fabrics %(new)s (before: %(old)s)',
                     {'uuid': instance.uuid, 'ref': outcome.ref,
                      'new': ', '.join(outcome.new_fabrics),
                      'old': ', '.join(outcome.old_fabrics)})
        else:
            LOG.warning('Re-authorization of instance %(uuid)s %(result)s: '
                        '%(reason)s', {'uuid': instance.uuid,
                                       'result': outcome.result,
                                       'reason': outcome.reason})
        notifications.reauthorization(
            context, instance, self.host, applied=applied,
            reason=None if applied else (outcome.reason or None),
            error=outcome.error, secret_ref=outcome.ref,
            old_fabrics=outcome.old_fabrics, new_fabrics=outcome.new_fabrics)
