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
from oslo_versionedobjects import fields as ovo_fields

from vtpm_core import constants
from vtpm_core import objects

STATS_KEY = 'vtpm:capabilities'

# Placement traits. The standard trait says "can give a guest a TPM 2.0";
# the custom ones let placement prefilter guarded hosts and fabrics.
TRAIT_TPM = 'COMPUTE_SECURITY_TPM_2_0'
TRAIT_GUARDED = 'CUSTOM_HGS_GUARDED'
TRAIT_ATTESTED = 'CUSTOM_HGS_ATTESTATION_PASSED'
TRAIT_FABRIC_PREFIX = 'CUSTOM_HGS_FABRIC_'


def to_stats(caps: objects.HostCapabilities,
             target_version: str | None = None) -> dict[str, str]:
    """Return the stats entry that carries ``caps``.

    :param target_version: backport to this version, for a cloud whose
        schedulers have not been upgraded yet.
    """
    primitive = caps.obj_to_primitive(target_version=target_version)
    # Which fields were set is no news to a reader, and its set order would
    # change the string (and so force a re-parse) for an unchanged report.
    primitive.pop('vtpm_object.changes', None)
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
        return _from_primitive(json.loads(raw))
    except Exception:  # noqa: BLE001 - any malformed report means "unknown"
        return None


_OUR_MAJOR, _OUR_MINOR = versionutils.convert_version_to_tuple(
    objects.HostCapabilities.VERSION)


def _from_primitive(primitive):
    if (not isinstance(primitive, dict)
            or primitive.get('vtpm_object.name') != 'HostCapabilities'
            or primitive.get('vtpm_object.namespace') != 'vtpm'):
        return None
    data = primitive.get('vtpm_object.data')
    major, _, minor = primitive.get('vtpm_object.version').partition('.')
    if not isinstance(data, dict) or int(major) != _OUR_MAJOR:
        return None
    minor = int(minor)
    values = {}
    for name, value in data.items():
        kind = _FIELD_KINDS.get(name)
        if kind is None:
            if minor > _OUR_MINOR:
                continue  # a newer compute's field: not ours to read
            return None
        value = _read_value(kind, value)
        if value is _INVALID:
            return None
        values[name] = value
    if not _REQUIRED_FIELDS.issubset(values):
        return None
    return objects.HostCapabilities.from_validated(**values)


# What each field's primitive must be: (type, nullable). The stats entry is
# parsed for every changed report of every host, so the types are checked
# here, without oslo's per-field coercion.
_FIELD_KINDS = {
    name: ({ovo_fields.BooleanField: bool, ovo_fields.StringField: str,
            ovo_fields.DateTimeField: datetime.datetime}[type(field)],
           field.nullable)
    for name, field in objects.HostCapabilities.fields.items()}
_REQUIRED_FIELDS = frozenset(
    name for name, field in objects.HostCapabilities.fields.items()
    if field.default is ovo_fields.UnspecifiedDefault)
_INVALID = object()


def _read_value(kind, value):
    kind, nullable = kind
    if value is None:
        return None if nullable else _INVALID
    if kind is datetime.datetime:
        if not isinstance(value, str):
            return _INVALID
        value = datetime.datetime.fromisoformat(value)
        if value.utcoffset() is None:
            return _INVALID  # measured_at must say which time zone
        return value.astimezone(datetime.timezone.utc)
    return value if type(value) is kind else _INVALID


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
              max_clock_skew: float = 0,
              now: datetime.datetime | None = None,
              allowed_fabrics: frozenset[str] | None = None) -> Verdict:
    """Decide whether a host with report ``caps`` can run ``request``.

    :param request: the merged request; None or disabled means no vTPM.
    :param max_report_age: seconds; a request that needs a KeyProtector
        refuses a host whose report is older.
    :param max_clock_skew: seconds a report may lie in the future of
        ``now`` and still be fresh; such a request refuses a host whose
        report lies further ahead (its clock is wrong, and the report would
        otherwise stay fresh until that date). 0 suits a host checking its
        own report.
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
    if (needs_vtpm and not request.needs_key_protector
            and caps.local_key_protector is False):
        # Hyper-V opens a local key protector only in local mode.
        return Verdict(False, 'host opens no local key protector (its HGS '
                       'client is in HGS mode) and the request has no keys')
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
        if -age > max_clock_skew:
            return Verdict(False, 'capability report is dated %d s in the '
                           'future (max %d s of clock skew)'
                           % (-age, max_clock_skew))
    return _PASS
