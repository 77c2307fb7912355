# SPDX-License-Identifier: Apache-2.0
"""Host capability reports: stats (de)serialisation, traits, host matching.

A compute host publishes its ``HostCapabilities`` as compute-node stats
(ComputeNode.stats holds strings only) and as placement traits. ``to_stats``
writes two entries from the object's one primitive:

* ``vtpm:capabilities``, the primitive as JSON: the reference, read by
  oslo.versionedobjects (``from_stats``), which negotiates versions;
* ``vtpm:facts``, every field again as one flat string that the scheduler
  reads per host per request without a JSON parse (``read_facts``); written
  only when its version is this one and every value has one exact form, and
  read only in that case, so a reader that cannot read it falls back to the
  reference.

The scheduler side asks ``satisfies`` (``compile_check``) whether a host can
run a request; the check reads a report's fields by name, whichever of the
two it came from.

A compute measures every periodic run but publishes a new report only when
a field other than ``measured_at`` changed, or when the one it published is
``REPUBLISH_INTERVAL`` old (``republished``): nova's resource tracker writes
the compute node only when its stats change, so an idle compute writes
nothing. The scheduler takes a report that is older than its
``max_report_age`` but younger than that plus ``REPUBLISH_INTERVAL`` as
fresh while nova sees its compute up (``compile_check``'s ``while_up``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from collections.abc import Mapping
import datetime
import functools
import itertools
import json

from oslo_utils import versionutils
from oslo_versionedobjects import fields as ovo_fields

from vtpm_core import constants
from vtpm_core import objects

STATS_KEY = 'vtpm:capabilities'
FACTS_KEY = 'vtpm:facts'

# Placement traits. The standard ones say what Hyper-V's virtual TPM is, in
# the words nova's scheduler requires for hw:tpm_version (a TPM 2.0 with a
# CRB interface, constants.TPM_VERSION and TPM_MODEL), and which of nova's
# secret securities a host can give (vtpm_core.nova_tpm): 'user' (sealed
# with the owner's keys) on a guarded host, 'host' (a local key protector)
# on a host that opens one. Never TPM 1.2, TIS or 'deployment': Hyper-V
# gives none of them here. The custom ones let placement prefilter guarded
# hosts and fabrics.
TRAIT_TPM = 'COMPUTE_SECURITY_TPM_2_0'
TRAIT_TPM_CRB = 'COMPUTE_SECURITY_TPM_CRB'
TRAIT_SECRET_USER = 'COMPUTE_SECURITY_TPM_SECRET_SECURITY_USER'
TRAIT_SECRET_HOST = 'COMPUTE_SECURITY_TPM_SECRET_SECURITY_HOST'
STANDARD_TRAITS = (TRAIT_TPM, TRAIT_TPM_CRB, TRAIT_SECRET_USER,
                   TRAIT_SECRET_HOST)
TRAIT_GUARDED = 'CUSTOM_HGS_GUARDED'
TRAIT_ATTESTED = 'CUSTOM_HGS_ATTESTATION_PASSED'
TRAIT_FABRIC_PREFIX = 'CUSTOM_HGS_FABRIC_'

# Seconds: a compute republishes an unchanged report at least this often.
# A live compute's report is then never older than this plus one periodic
# interval; one whose periodic task no longer runs (the process alive, its
# report frozen) is refused this long after max_report_age. Half an hour:
# 1 write in 30 periodic runs of an idle compute, not 30.
REPUBLISH_INTERVAL = 1800


def to_stats(caps: objects.HostCapabilities,
             target_version: str | None = None) -> dict[str, str]:
    """Return the stats entries that carry ``caps``.

    ``vtpm:capabilities`` always; ``vtpm:facts`` too when ``caps`` is
    complete, of this version and every value has its one flat form (see
    ``read_facts``): else readers use the first.

    :param target_version: backport to this version, for a cloud whose
        schedulers have not been upgraded yet (no facts then: a scheduler
        reads facts of its own version only).
    """
    primitive = caps.obj_to_primitive(target_version=target_version)
    # Which fields were set is no news to a reader, and its set order would
    # change the string for an unchanged report.
    primitive.pop('vtpm_object.changes', None)
    stats = {STATS_KEY: json.dumps(primitive, separators=(',', ':'),
                                   sort_keys=True)}
    facts = _facts(primitive)
    if facts is not None:
        stats[FACTS_KEY] = facts
    return stats


def republished(published: objects.HostCapabilities | None,
                measured: objects.HostCapabilities | None
                ) -> objects.HostCapabilities | None:
    """The report a compute publishes: ``published`` again while
    ``measured`` says the same of the host (every field but
    ``measured_at``) and ``published`` is younger than
    ``REPUBLISH_INTERVAL``; else ``measured``.

    Publishing the same object again gives the same stats strings, so
    nova's resource tracker sees no change and writes nothing. A clock that
    went back publishes ``measured``.
    """
    if published is None or measured is None:
        return measured
    age = (measured.measured_at - published.measured_at).total_seconds()
    if not 0 <= age < REPUBLISH_INTERVAL:
        return measured
    return (published if _without_time(published) == _without_time(measured)
            else measured)


def _without_time(caps):
    data = caps.obj_to_primitive()[_DATA]
    data.pop('measured_at', None)
    return data


def from_stats(stats: Mapping[str, str] | None
               ) -> objects.HostCapabilities | None:
    """Return the host's report, or None if it is absent or unreadable.

    Never raises: a scheduler must not fail on one host's bad report, it
    refuses that host instead. The report is read by oslo.versionedobjects'
    own ``obj_from_primitive``, so its values are coerced exactly as oslo
    coerces them; a report of a newer minor version is read as this
    version by dropping the fields this version does not know.
    """
    try:
        raw = stats.get(STATS_KEY) if stats else None
        if not isinstance(raw, str):
            return None
        primitive = _as_our_version(json.loads(raw))
        if primitive is None:
            return None
        caps = objects.HostCapabilities.obj_from_primitive(primitive)
    except Exception:  # noqa: BLE001 - any malformed report means "unknown"
        return None
    return caps if isinstance(caps, objects.HostCapabilities) else None


_OUR_VERSION = objects.HostCapabilities.VERSION
_OUR_MAJOR, _OUR_MINOR = versionutils.convert_version_to_tuple(_OUR_VERSION)
_REQUIRED_FIELDS = frozenset(
    name for name, field in objects.HostCapabilities.fields.items()
    if field.default is ovo_fields.UnspecifiedDefault)
_VERSION = 'vtpm_object.version'
_DATA = 'vtpm_object.data'


def _as_our_version(primitive):
    """``primitive`` as oslo.versionedobjects can read it, or None.

    oslo reads an older or equal minor version, and refuses a newer one (it
    would ask the sender to backport, over RPC, which stats are not): the
    fields a newer minor version adds are not ours to read, so they are
    dropped. A report without one of the fields every version has is
    unreadable (oslo would leave the field unset).
    """
    data = primitive[_DATA]
    if not _REQUIRED_FIELDS.issubset(data):
        return None
    major, _, minor = primitive[_VERSION].partition('.')
    if int(major) != _OUR_MAJOR or int(minor) <= _OUR_MINOR:
        return primitive  # oslo reads it, or refuses another major
    known = objects.HostCapabilities.fields
    return dict(primitive, **{
        _VERSION: _OUR_VERSION,
        _DATA: {k: v for k, v in data.items() if k in known}})


# --- the facts string --------------------------------------------------------
#
#     1.3|2026-11-26T12:00:00Z|110|Passed|TpmTrustedAttestation|fabric-a|
#     10.0.20348|fabric-a,fabric-a-old               (one line, no spaces)
#
# The object's version; measured_at as oslo writes it (UTC, to the second);
# the booleans as one word of flags (1 true, 0 false, - None); the strings
# ('' is None); fabric_ids (1.3) joined by ',' ('' is None; an empty list,
# or an id that is empty or holds ',', has no flat form). The scheduler
# reads it per host per request: one stats entry, split in one call.
#
# Versioning: facts are written and read at the object's exact version
# only. A reader of any other version, older or newer, minor or major,
# reads the versioned entry instead, which oslo negotiates; so no layout
# is ever negotiated here. To add a field: bump HostCapabilities.VERSION,
# append the field's part at the end, in _facts (the one writer) and
# read_facts (the one reader), with one exact flat form (for a list of
# strings, joined by ','; a value without such a form makes _facts write
# no facts). While computes and schedulers differ in version, hosts are
# read from the versioned entry: the same decisions, parsed once per change.
_SEPARATOR = '|'
_FLAG_FIELDS = ('vtpm_supported', 'guarded', 'local_key_protector')
_TEXT_FIELDS = ('attestation_status', 'attestation_mode', 'fabric_id',
                'os_version')
_FLAG_CHARS = {True: '1', False: '0', None: '-'}
# every word of flags -> the booleans it stands for; None only where the
# field is nullable
_FLAGS = {
    ''.join(_FLAG_CHARS[v] for v in values): values
    for values in itertools.product(*(
        (True, False, None) if objects.HostCapabilities.fields[n].nullable
        else (True, False) for n in _FLAG_FIELDS))}
_NULLABLE_TEXTS = tuple(n for n in _TEXT_FIELDS
                        if objects.HostCapabilities.fields[n].nullable)
# oslo's DateTimeField writes 'YYYY-MM-DDTHH:MM:SSZ' for a UTC time: 20
# characters whose separators sit at 4, 7, 10, 13, 16 and 19;
# fromisoformat checks the digits between them.
_TIME_LENGTH = 20
_TIME_SEPARATORS = '--T::Z'

# A report's fields as a named tuple: what the scheduler filter checks per
# host, read from the facts (or, from an older compute, from the versioned
# entry); reading a tuple's field costs a tenth of reading a versioned
# object's.
View = collections.namedtuple(
    'HostCapabilitiesView',
    _FLAG_FIELDS + _TEXT_FIELDS + ('measured_at', 'fabric_ids'))
# read_facts runs once per host per request: its callees, looked up once
_new_view = functools.partial(tuple.__new__, View)
_fromisoformat = datetime.datetime.fromisoformat


def _parse_time(text):
    """The aware UTC time of a checked 'YYYY-MM-DDTHH:MM:SSZ'.

    Python 3.10's fromisoformat refuses the 'Z' that 3.11 reads; '+00:00'
    reads the same on both (tzinfo timezone.utc).
    """
    return _fromisoformat(text[:19] + '+00:00')


def read_facts(raw) -> View | None:
    """Return the ``View`` a facts string holds, or None.

    None when ``raw`` is not a facts string of this version in its one
    exact form (the writer's): the reader then reads the versioned entry,
    so this fast reader can only ever be stricter than oslo, never read a
    value differently. Never raises.
    """
    try:
        (version, measured_at, flags, attestation_status, attestation_mode,
         fabric_id, os_version, fabric_ids) = raw.split(_SEPARATOR)
        if (version != _OUR_VERSION or len(measured_at) != _TIME_LENGTH
                or measured_at[4::3] != _TIME_SEPARATORS):
            return None
        return _new_view(_FLAGS[flags] + (
            attestation_status, attestation_mode or None, fabric_id or None,
            os_version or None, _parse_time(measured_at),
            fabric_ids.split(',') if fabric_ids else None))
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _facts(primitive):
    """The facts string of a primitive, or None where it would be ambiguous.

    None for another version, a missing required field, a string holding
    the separator, an empty string where '' means None, or a time in
    another form: readers then read the versioned entry.
    """
    data = primitive[_DATA]
    if (primitive[_VERSION] != _OUR_VERSION
            or not _REQUIRED_FIELDS.issubset(data)
            or any(data.get(name) == '' for name in _NULLABLE_TEXTS)):
        return None
    fabric_ids = _flat_list(data.get('fabric_ids'))
    if fabric_ids is None:
        return None
    facts = _SEPARATOR.join(
        [_OUR_VERSION, data['measured_at'],
         ''.join(_FLAG_CHARS[data.get(name)] for name in _FLAG_FIELDS)]
        + [data.get(name) or '' for name in _TEXT_FIELDS] + [fabric_ids])
    return facts if read_facts(facts) is not None else None


def _flat_list(values):
    """A list of strings joined by ',' ('' for None), or None where that
    form would read back otherwise (an empty list, an id that is empty or
    holds ',')."""
    if values is None:
        return ''
    if not values or any(not v or ',' in v for v in values):
        return None
    return ','.join(values)


def view(caps: objects.HostCapabilities | None) -> View | None:
    """Return a read-only copy of every field of ``caps`` (None for None)."""
    if caps is None:
        return None
    return View._make(getattr(caps, name) for name in View._fields)


def traits(caps: objects.HostCapabilities | None) -> set[str]:
    """Return the placement traits a host with ``caps`` should carry."""
    if caps is None or not caps.vtpm_supported:
        return set()
    result = {TRAIT_TPM, TRAIT_TPM_CRB}
    # the hosts compile_check lets a vTPM without keys (in local mode, or
    # guarded: a key protector of the host's guardian for its fabric), or
    # with keys, onto (attestation and freshness change by the minute: the
    # filter's job)
    if caps.local_key_protector or caps.guarded:
        result.add(TRAIT_SECRET_HOST)
    if caps.guarded:
        result.add(TRAIT_SECRET_USER)
        result.add(TRAIT_GUARDED)
        if caps.attestation_status == constants.ATTESTATION_PASSED:
            result.add(TRAIT_ATTESTED)
        result.update(fabric_trait(f) for f in fabric_identities(caps))
    return result


def managed_traits(all_traits) -> set[str]:
    """Return those of ``all_traits`` that this library manages."""
    return {t for t in all_traits
            if t in STANDARD_TRAITS or t in (TRAIT_GUARDED, TRAIT_ATTESTED)
            or t.startswith(TRAIT_FABRIC_PREFIX)}


def fabric_trait(fabric_id: str) -> str:
    """Return the custom trait name for a fabric (placement's alphabet)."""
    name = ''.join(ch if ch.isascii() and ch.isalnum() else '_'
                   for ch in fabric_id.upper())
    return (TRAIT_FABRIC_PREFIX + name)[:255]


class Verdict:
    """Whether a host passes, and why (the reason is logged on refusal).

    The reason is formatted when read, so the scheduler's per-host loop
    pays nothing for it unless it logs.
    """

    __slots__ = ('passes', '_why', '_args')

    def __init__(self, passes: bool, why: str, args: tuple = ()):
        self.passes = passes
        self._why = why
        self._args = args

    @property
    def reason(self) -> str:
        return self._why % self._args if self._args else self._why

    def __bool__(self):
        return self.passes

    def __repr__(self):
        return '<Verdict %s: %s>' % (self.passes, self.reason)


_PASS = Verdict(True, 'host satisfies the vTPM request')
_NO_REPORT = Verdict(False, 'no readable vTPM capability report (%s)'
                     % STATS_KEY)
_NO_VTPM = Verdict(False, 'host does not support vTPM on Generation 2 VMs')
# HGS unwraps a KeyProtector for a guarded host in HGS mode; in local mode
# Hyper-V opens only key protectors of guardians it holds private keys of.
_NOT_HGS = Verdict(False, 'host is not a guarded host in HGS mode, which an '
                   'HGS KeyProtector needs')
# The KeyProtector must name this host's fabric guardian. Public: a compute
# host that refuses for it names the option it looked the guardian up by.
NO_FABRIC = Verdict(False, 'host reports no fabric guardian')
# Passes if the host's compute is up: its report is older than
# max_report_age, younger than while_up past it. Public: the caller checks
# the liveness.
WHILE_UP = Verdict(True, 'capability report older than max_report_age, '
                   'fresh while its compute is up')


def _passes(caps):
    return _PASS


# What compile_check asks of a host, in words: vtpm-check prints them and
# the documents quote them.
_ATTESTED = ('a guarded host in HGS mode with a fabric guardian, HGS '
             'attestation Passed, a fresh report')
REQUIREMENTS_KEYED = 'vTPM support, %s' % _ATTESTED
REQUIREMENTS_KEYLESS = (
    'vTPM support, and either HGS local mode (a local key protector, which '
    'only that host opens) or %s (a key protector for its fabric, which HGS '
    'opens on any attested host of the fabric)' % _ATTESTED)


def requirements(request: objects.VTPMRequest | None) -> str | None:
    """What ``compile_check`` asks of a host for ``request``, in words;
    None when it asks nothing (no vTPM)."""
    if request is None or not request.enabled:
        return None
    return (REQUIREMENTS_KEYED if request.needs_key_protector
            else REQUIREMENTS_KEYLESS)


def compile_check(request: objects.VTPMRequest | None, *,
                  max_report_age: float,
                  max_clock_skew: float = 0,
                  while_up: float = 0,
                  now: datetime.datetime | None = None,
                  allowed_fabrics: frozenset[str] | None = None
                  ) -> Callable[[objects.HostCapabilities | None], Verdict]:
    """Return ``check(caps) -> Verdict``: can a host with ``caps`` run it?

    What a request needs of a host is decided here once per
    request; the check then reads a host's report only. ``caps`` is a
    ``HostCapabilities``, None (no readable report), or any object with its
    fields as attributes (the scheduler filter passes a ``view``).

    Which hosts serve which request (the one statement of it; the compute
    side applies it to what it measures, ``vtpm-check`` and the documents
    say it in words):

    * a vTPM with keys or shielding (an HGS KeyProtector that names the
      host's fabric): a guarded host in HGS mode whose attestation
      ``Passed``, with a fabric guardian, reported recently enough;
    * a vTPM without keys: a host in HGS local mode (a local key
      protector, which only that host opens), or, like the above, a
      guarded, attested host of a fabric (a key protector owned by the
      host's local guardian that names the fabric's guardian: HGS opens it
      on any attested host of the fabric);
    * a move of an instance that has a KeyProtector: as the above, on a
      host of one of the fabrics it names.

    :param request: the merged request; None or disabled means no vTPM.
    :param max_report_age: seconds; a host that must unwrap through HGS is
        refused when its report is older.
    :param max_clock_skew: seconds a report may lie in the future of
        ``now`` and still be fresh; such a request refuses a host whose
        report lies further ahead (its clock is wrong, and the report would
        otherwise stay fresh until that date). 0 suits a host checking its
        own report.
    :param while_up: seconds past ``max_report_age`` a report is fresh
        while its compute is up: such a host gets ``WHILE_UP``, which
        passes, and the caller refuses it if nova sees its compute down
        (the scheduler: ``REPUBLISH_INTERVAL``, since computes republish an
        unchanged report that often).
    :param now: the time to compare ``measured_at`` with (UTC).
    :param allowed_fabrics: on a move of an instance that has a KeyProtector,
        the fabrics it names; a host none of whose ``fabric_identities`` is
        one of them is refused.
    """
    return _compile(request, max_report_age, max_clock_skew, while_up, now,
                    allowed_fabrics)[0]


def _compile(request, max_report_age, max_clock_skew, while_up, now,
             allowed_fabrics):
    """compile_check's check, and the times it compares measured_at with:
    (oldest while up, oldest, newest)."""
    needs_vtpm = request is not None and request.enabled
    if not needs_vtpm and not allowed_fabrics:
        return _passes, None
    needs_kp = needs_vtpm and request.needs_key_protector
    # Unwrapping a KeyProtector needs a guarded host of a known fabric that
    # HGS attested recently; so does a move of an instance that has one.
    needs_attested = needs_kp or bool(allowed_fabrics)
    # Without keys: a local key protector in local mode (local_key_protector
    # True, or None from a compute older than report 1.2: "may"), else one
    # for the fabric, as with keys.
    keyless = needs_vtpm and not needs_kp
    now = now or datetime.datetime.now(datetime.timezone.utc)
    oldest = now - datetime.timedelta(seconds=max_report_age)
    oldest_while_up = oldest - datetime.timedelta(seconds=while_up)
    newest = now + datetime.timedelta(seconds=max_clock_skew)

    def check(caps):
        if caps is None:
            return _NO_REPORT
        if allowed_fabrics:
            identities = fabric_identities(caps)
            if allowed_fabrics.isdisjoint(identities):
                return Verdict(False, 'fabric %s is not one the instance\'s '
                               'KeyProtector names (%s)', (
                                   ', '.join(identities) or 'none',
                                   ', '.join(sorted(allowed_fabrics))))
        if needs_vtpm and not caps.vtpm_supported:
            return _NO_VTPM
        if needs_attested or (keyless and caps.local_key_protector is False):
            if not caps.guarded or caps.local_key_protector:
                return _NOT_HGS
            status = caps.attestation_status
            if status != constants.ATTESTATION_PASSED:
                return Verdict(False, 'HGS attestation status is %s, not %s',
                               (status, constants.ATTESTATION_PASSED))
            if not caps.fabric_id:
                return NO_FABRIC
            measured_at = caps.measured_at
            if measured_at < oldest:
                if measured_at >= oldest_while_up:
                    return WHILE_UP
                return Verdict(False, 'capability report is %d s old (max '
                               '%d s)', ((now - measured_at).total_seconds(),
                                         max_report_age + while_up))
            if measured_at > newest:
                return Verdict(False, 'capability report is dated %d s in '
                               'the future (max %d s of clock skew)', (
                                   (measured_at - now).total_seconds(),
                                   max_clock_skew))
        return _PASS
    return check, (oldest_while_up, oldest, newest)


# What compile_facts_check keys a host's verdict by besides its facts' time:
# the parts of the facts string the check reads (the flags, the
# attestation status, whether there is a fabric_id; on a move, the fabric
# identities). A check that reads another field must add its part here.
# (sentinels: no time string equals them)
_FRESH = object()
_WHILE_UP_KEY = object()


def compile_facts_check(request: objects.VTPMRequest | None, *,
                        max_report_age: float,
                        max_clock_skew: float = 0,
                        while_up: float = 0,
                        now: datetime.datetime | None = None,
                        allowed_fabrics: frozenset[str] | None = None
                        ) -> Callable[[str], Verdict | None]:
    """Return ``decide(raw) -> Verdict | None`` for one request.

    ``decide`` gives ``compile_check``'s verdict on ``read_facts(raw)``
    (the parameters are compile_check's), and None where ``read_facts``
    reads nothing (the caller reads the versioned entry). The check runs
    once per distinct combination of what it reads: hosts whose facts
    differ only in what it does not read (the fabric, the time within one
    band of freshness, the mode, the Windows version) share one verdict,
    so a host of a fabric of its own costs a ``split`` and two dictionary
    reads. Each distinct ``measured_at`` is parsed once, as
    ``read_facts`` parses it; a time outside the fresh bands keys a verdict
    of its own, whose reason names it.
    """
    check, bounds = _compile(request, max_report_age, max_clock_skew,
                             while_up, now, allowed_fabrics)
    if bounds is None:  # nothing asked of a host
        return lambda raw: None if read_facts(raw) is None else _PASS
    oldest_while_up, oldest, newest = bounds
    # measured_at -> its part of the key; a verdict per key; both for this
    # request only (its 'now')
    times, decided = {}, {}

    def when(measured_at):
        if (len(measured_at) == _TIME_LENGTH
                and measured_at[4::3] == _TIME_SEPARATORS):
            try:
                time = _parse_time(measured_at)
            except ValueError:
                return measured_at
            if oldest <= time <= newest:
                return _FRESH
            if oldest_while_up <= time < oldest:
                return _WHILE_UP_KEY
        return measured_at

    def decide(raw):
        try:
            (version, measured_at, flags, status, _, fabric_id, _,
             fabric_ids) = raw.split(_SEPARATOR)
        except (AttributeError, TypeError, ValueError):
            return None
        if version != _OUR_VERSION:
            return None
        band = times.get(measured_at)
        if band is None:
            band = times[measured_at] = when(measured_at)
        key = ((band, flags, status, fabric_id, fabric_ids)
               if allowed_fabrics else (band, flags, status, not fabric_id))
        verdict = decided.get(key)
        if verdict is None:
            report = read_facts(raw)
            if report is None:
                return None
            verdict = decided[key] = check(report)
        return verdict
    return decide


def fabric_identities(caps) -> tuple[str, ...]:
    """Every guardian identity a host's fabric answers for, primary first.

    During an HGS certificate renewal HGS unwraps KeyProtectors that name
    its previous certificates as well as its new primary ones, so a host
    reports both (``fabric_ids``); a report older than 1.3 has only
    ``fabric_id``. A move may go to a host when one of these is a fabric
    the instance's KeyProtector names.
    """
    primary = (caps.fabric_id,) if caps.fabric_id else ()
    return tuple(dict.fromkeys(primary + tuple(caps.fabric_ids or ())))


def satisfies(request: objects.VTPMRequest | None,
              caps: objects.HostCapabilities | None, *,
              max_report_age: float,
              max_clock_skew: float = 0,
              while_up: float = 0,
              now: datetime.datetime | None = None,
              allowed_fabrics: frozenset[str] | None = None) -> Verdict:
    """Decide whether a host with report ``caps`` can run ``request``.

    The parameters are ``compile_check``'s, which decides.
    """
    return compile_check(request, max_report_age=max_report_age,
                         max_clock_skew=max_clock_skew, while_up=while_up,
                         now=now, allowed_fabrics=allowed_fabrics)(caps)
