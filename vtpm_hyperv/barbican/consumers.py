# SPDX-License-Identifier: Apache-2.0
"""An instance as a Barbican consumer of the secrets it was sealed from.

So that a tenant cannot lose a vTPM by deleting a secret still in use: the
compute side calls one function at each point of an instance's life (the
key source, ``BarbicanKeySource``, makes the requests):

``registered``  at spawn, after the attach: the secrets are recorded on the
                instance (``vtpm_core.sysmeta.set_keys``, read by the audit)
                and the instance is registered with each, with the owner's
                credentials. A failure fails the build: the registrations
                made are removed, nova destroys the VM and reschedules or
                aborts the build as the error says (a refusal aborts it).
``reauthorized`` at an applied re-authorization: the new secret is
                recorded and registered, then the instance is removed from
                the secrets it was sealed from before. The VM already runs
                with the new KeyProtector, so a failure here is a warning,
                and the old registrations stay.
``removed``     at delete: the instance is removed from the recorded
                secrets with the credentials nova's delete carries. Those
                are not always the owner's (an admin of another project, the
                periodic cleanup of a deleted instance): Barbican then
                refuses (401, 403) and the registration stays, logged; the
                tenant removes it (``doc/source/user/index.rst``).

A Barbican older than key-manager API microversion 1.2 cannot refuse a
delete: the build goes on with a warning, logged once per process. No
message carries a token or key material: secrets are named by UUID.
"""

from __future__ import annotations

from collections.abc import Sequence
import logging
import threading

from oslo_log import log

from vtpm_core import exception
from vtpm_core import sysmeta
from vtpm_hyperv.barbican import exception as barbican_exception

LOG = log.getLogger(__name__)

_warned = set()
_warned_lock = threading.Lock()


def _warn_once(what, message, *args):
    """Log ``message`` at warning level the first time ``what`` happens in
    this process, at debug level afterwards."""
    with _warned_lock:
        first = what not in _warned
        _warned.add(what)
    LOG.log(logging.WARNING if first else logging.DEBUG, message, *args)


def _usable(key_source, refs, auth, instance, when) -> bool:
    if not refs:
        return False
    if key_source is None:
        _warn_once('no-key-source', 'The vTPM backend has no key source '
                   'with secret consumers: instances are not registered as '
                   'consumers of their Barbican secrets')
        return False
    if auth is None:
        # only the owner's project may register or remove one
        LOG.warning('No instance owner credentials to %(when)s instance '
                    '%(uuid)s as a consumer of Barbican secrets %(refs)s '
                    "(only the owner's project may): not done", {
                        'when': when, 'uuid': instance.uuid,
                        'refs': ', '.join(refs)})
        return False
    return True


def _unsupported(error):
    _warn_once('unsupported', 'Barbican cannot refuse to delete a secret '
               'an instance was sealed from, instances are not registered '
               'as consumers (logged once): %s', error)


def registered(key_source, instance, key_refs: Sequence[str], auth) -> None:
    """At spawn: record ``key_refs`` on ``instance`` and register it as a
    consumer of each (the caller saves the instance).

    :raises vtpm_core.exception.VTPMError: the registration failed
        (``ConsumerRefused`` and ``KeyNotFound`` are refusals another host
        cannot fix, ``ConsumerFailed`` is a Barbican that did not answer);
        none is left registered.
    """
    refs = tuple(key_refs)
    sysmeta.set_keys(instance.system_metadata, refs)
    if not _usable(key_source, refs, auth, instance, 'register'):
        return
    try:
        key_source.register_consumer(refs, instance.uuid, auth=auth)
    except barbican_exception.ConsumersUnsupported as e:
        _unsupported(e)


def reauthorized(key_source, instance, ref: str, auth) -> None:
    """At an applied re-authorization with secret ``ref``: the instance is
    sealed from ``ref`` alone now. Never raises a VTPMError: the VM runs
    with its new KeyProtector already."""
    old = sysmeta.keys(instance.system_metadata)
    sysmeta.set_keys(instance.system_metadata, (ref,))
    if not _usable(key_source, (ref,), auth, instance, 'register'):
        return
    try:
        key_source.register_consumer((ref,), instance.uuid, auth=auth)
    except barbican_exception.ConsumersUnsupported as e:
        _unsupported(e)
        return
    except exception.VTPMError as e:
        LOG.warning('Re-authorized instance %(uuid)s is not registered as a '
                    'consumer of Barbican secret %(ref)s, and stays one of '
                    '%(old)s: %(error)s', {
                        'uuid': instance.uuid, 'ref': ref,
                        'old': ', '.join(old) or 'none', 'error': e})
        return
    stale = [r for r in old if r != ref]
    if stale:
        _remove(key_source, instance, stale, auth)


def removed(key_source, instance, auth) -> None:
    """At delete: remove ``instance`` as a consumer of its recorded secrets,
    as far as ``auth`` may. Never raises a VTPMError: the delete goes on."""
    refs = sysmeta.keys(instance.system_metadata)
    if _usable(key_source, refs, auth, instance, 'remove'):
        _remove(key_source, instance, refs, auth)


def _remove(key_source, instance, refs, auth):
    try:
        key_source.remove_consumer(refs, instance.uuid, auth=auth)
    except barbican_exception.ConsumersUnsupported:
        pass  # nothing was registered there
    except exception.VTPMError as e:
        LOG.warning('Instance %(uuid)s stays registered as a consumer of '
                    'Barbican secrets %(refs)s, which their owner cannot '
                    'delete until it removes the registration (openstack '
                    'secret consumer delete): %(error)s', {
                        'uuid': instance.uuid, 'refs': ', '.join(refs),
                        'error': e})
