# SPDX-License-Identifier: Apache-2.0
"""Host capability reports: stats (de)serialisation, traits, host matching.

A compute host publishes its ``HostCapabilities`` as one compute-node stats
entry (``vtpm:capabilities``, a JSON string: ComputeNode.stats holds strings
only) and as placement traits. The scheduler side reads the stats entry and
asks ``satisfies`` whether a host can run a request (DESIGN.md 3).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import datetime
import json

from oslo_utils import versionutils

from vtpm_core import constants
from vtpm_core import objects

STATS_KEY = 'vtpm:capabilities'

# Placement traits. The standard trait says "can give a guest a TPM 2.0";
# the custom ones let placement prefilter guarded hosts and fabrics.
TRAIT_TPM = 'COMPUTE_SECURITY_TPM_2_0'
TRAIT_GUARDED = 'CUSTOM_HGS_GUARDED'
TRAIT_ATTESTED = 'CUSTOM_HGS_ATTESTATION_PASSED'
TRAIT_FABRIC_PREFIX = 'CUSTOM_HGS_FABRIC_'

_PRIMITIVE_KEYS = ('vtpm_object.name', 'vtpm_object.namespace',
                   'vtpm_object.version', 'vtpm_object.data')


def to_stats(caps: objects.HostCapabilities,
             target_version: str | None = None) -> dict[str, str]:
    """Return the stats entry that carries ``caps``.

    :param target_version: backport to this version, for a cloud whose
        schedulers have not been upgraded yet.
    """
    primitive = caps.obj_to_primitive(target_version=target_version)
    return {STATS_KEY: json.dumps(primitive, separators=(',', ':'),
                                  sort_keys=True)}


def from_stats(stats: Mapping[str, str] | None
               ) -> objects.HostCapabilities | None:
    """Return the host's report, or None if it is absent or unreadable.

    Never raises: a scheduler must not fail on one host's bad report, it
    refuses that host instead. A report of a newer minor version is read by
    dropping the fields this version does not know.
    """
    try:
        raw = stats.get(STATS_KEY) if stats else None
        if not isinstance(raw, str):
            return None
        primitive = json.loads(raw)
        return _from_primitive(primitive)
    except Exception:  # noqa: BLE001 - any malformed report means "unknown"
        return None


def _from_primitive(primitive):
    if (not isinstance(primitive, dict)
            or primitive.get('vtpm_object.name') != 'HostCapabilities'
            or primitive.get('vtpm_object.namespace') != 'vtpm'):
        return None
    version = primitive.get('vtpm_object.version')
    data = primitive.get('vtpm_object.data')
    if not isinstance(version, str) or not isinstance(data, dict):
        return None
    ours = objects.HostCapabilities.VERSION
    if versionutils.convert_version_to_tuple(version) > \
            versionutils.convert_version_to_tuple(ours):
        if version.split('.')[0] != ours.split('.')[0]:
            return None
        # A newer compute: keep what we know, as a report of our version.
        known = objects.HostCapabilities.fields
        primitive = dict(primitive, **{
            'vtpm_object.version': ours,
            'vtpm_object.data': {k: v for k, v in data.items() if k in known},
            'vtpm_object.changes': []})
    caps = objects.HostCapabilities.obj_from_primitive(primitive)
    for name in _REQUIRED_FIELDS:
        if not caps.obj_attr_is_set(name):
            return None
    if caps.measured_at.tzinfo is None:
        return None
    return caps


_REQUIRED_FIELDS = ('vtpm_supported', 'guarded', 'attestation_status',
                    'measured_at')


def traits(caps: objects.HostCapabilities | None) -> set[str]:
    """Return the placement traits a host with ``caps`` should carry."""
    if caps is None or not caps.vtpm_supported:
        return set()
    result = {TRAIT_TPM}
    if caps.guarded:
        result.add(TRAIT_GUARDED)
        if caps.attestation_status == constants.ATTESTATION_PASSED:
            result.add(TRAIT_ATTESTED)
        if caps.fabric_id:
            result.add(fabric_trait(caps.fabric_id))
    return result


def managed_traits(all_traits) -> set[str]:
    """Return those of ``all_traits`` that this library manages."""
    return {t for t in all_traits
            if t in (TRAIT_TPM, TRAIT_GUARDED, TRAIT_ATTESTED)
            or t.startswith(TRAIT_FABRIC_PREFIX)}


def fabric_trait(fabric_id: str) -> str:
    """Return the custom trait name for a fabric (placement's alphabet)."""
    name = ''.join(ch if ch.isascii() and ch.isalnum() else '_'
                   for ch in fabric_id.upper())
    return (TRAIT_FABRIC_PREFIX + name)[:255]


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a host passes, and why (the reason is logged on refusal)."""

    passes: bool
    reason: str

    def __bool__(self):
        return self.passes


_PASS = Verdict(True, 'host satisfies the vTPM request')


def satisfies(request: objects.VTPMRequest | None,
              caps: objects.HostCapabilities | None, *,
              max_report_age: float,
              now: datetime.datetime | None = None,
              allowed_fabrics: frozenset[str] | None = None) -> Verdict:
    """Decide whether a host with report ``caps`` can run ``request``.

    :param request: the merged request; None or disabled means no vTPM.
    :param max_report_age: seconds; a request that needs a KeyProtector
        refuses a host whose report is older.
    :param now: the time to compare ``measured_at`` with (UTC).
    :param allowed_fabrics: on a move of an instance that has a KeyProtector,
        the fabrics it names; other hosts are refused.
    """
    needs_vtpm = request is not None and request.enabled
    if not needs_vtpm and not allowed_fabrics:
        return _PASS
    if caps is None:
        return Verdict(False, 'no readable vTPM capability report (%s)'
                       % STATS_KEY)
    if allowed_fabrics and caps.fabric_id not in allowed_fabrics:
        return Verdict(False, 'fabric %s is not one the instance\'s '
                       'KeyProtector names (%s)' % (
                           caps.fabric_id, ', '.join(sorted(allowed_fabrics))))
    if needs_vtpm and not caps.vtpm_supported:
        return Verdict(False, 'host does not support vTPM on Generation 2 VMs')
    if (needs_vtpm and request.needs_key_protector) or allowed_fabrics:
        if not caps.guarded:
            return Verdict(False, 'host is not guarded (HGS) and the request '
                           'has keys or is shielded')
        if caps.attestation_status != constants.ATTESTATION_PASSED:
            return Verdict(False, 'HGS attestation status is %s, not %s' % (
                caps.attestation_status, constants.ATTESTATION_PASSED))
        if not caps.fabric_id:
            # The KeyProtector must name this host's fabric guardian.
            return Verdict(False, 'host reports no fabric guardian')
        now = now or datetime.datetime.now(datetime.timezone.utc)
        age = (now - caps.measured_at).total_seconds()
        if age > max_report_age:
            return Verdict(False, 'capability report is %d s old (max %d s)'
                           % (age, max_report_age))
    return _PASS
