# SPDX-License-Identifier: Apache-2.0
"""Hypothesis strategies shared by the property tests."""

import datetime
import uuid

from hypothesis import strategies as st

from vtpm_core import objects

POLICIES = ('disabled', 'optional', 'required')
# None stands for "absent".
image_policies = st.sampled_from((None,) + POLICIES)
flavor_policies = st.sampled_from((None,) + POLICIES)

uuids = st.uuids().map(str)
# A UUID as a tenant may type it: any case, whitespace around it.
typed_uuids = st.tuples(
    st.uuids(), st.booleans(), st.sampled_from(('', ' ', '\t', '  '))
).map(lambda t: '%s%s%s' % (t[2], str(t[0]).upper() if t[1] else t[0], t[2]))

# Text that looks like what reaches us: near-misses of the allowed values,
# UUID-ish fragments and commas, and arbitrary unicode.
near_misses = st.sampled_from(
    POLICIES + ('Required', 'REQUIRED', ' required', 'true', '', 'hyperv-gen2',
                'hyperv-gen1', ',', ',,'))
any_text = st.one_of(near_misses, st.text(max_size=300),
                     st.lists(st.one_of(typed_uuids, st.text(max_size=5)),
                              max_size=8).map(','.join))
maybe = lambda strategy: st.one_of(st.none(), strategy)  # noqa: E731

# nova cuts an image property it copies to system metadata at 255 bytes of
# UTF-8 (constants.NOVA_SYSTEM_METADATA_BYTES); these values straddle it.
CUT = 255
# Whitespace that str.strip() removes, 1 to 3 bytes in UTF-8 (the ASCII ones
# are what build_request allows around keys).
WHITESPACE = (' ', '\t', '\n', '\u00a0', '\u2003', '\u3000')
# Characters of 1 to 4 bytes in UTF-8, and a lone surrogate (not encodable).
WIDTHS = ('a', '-', '\u00e9', '\u4e2d', '\U0001f512', '\ud800')


@st.composite
def key_lists_near_the_cut(draw):
    """1 to 7 typed UUIDs, padded after one of them with whitespace of one
    kind to a UTF-8 length from some 30 characters below nova's cut to a
    few above it."""
    items = draw(st.lists(typed_uuids, min_size=1, max_size=7))
    pad = draw(st.sampled_from(WHITESPACE))
    width = len(pad.encode())
    room = (CUT - len(','.join(items).encode())) // width
    count = max(0, room + draw(st.integers(-30, 6)))
    where = draw(st.integers(0, len(items) - 1))
    items[where] += pad * count
    return ','.join(items)


@st.composite
def text_near_the_cut(draw):
    """Text of characters of one UTF-8 width, within a few characters of
    nova's cut, with an ASCII head (hw_machine_type, say, when the vTPM is
    off)."""
    char = draw(st.sampled_from(WIDTHS))
    head = draw(st.sampled_from(('', 'hyperv-gen2', 'x')))
    width = len(char.encode('utf-8', 'surrogatepass'))
    count = max(0, (CUT - len(head)) // width + draw(st.integers(-6, 3)))
    return head + char * count


# What a caller other than Glance may pass: not strings.
non_strings = st.one_of(st.none(), st.integers(), st.booleans(),
                        st.lists(st.sampled_from(POLICIES + ('hyperv-gen2',)),
                                 max_size=2),
                        st.dictionaries(st.sampled_from(('os_vtpm',)),
                                        st.sampled_from(POLICIES)))

timestamps = st.datetimes(
    min_value=datetime.datetime(2000, 1, 1),
    max_value=datetime.datetime(2100, 1, 1),
    timezones=st.just(datetime.timezone.utc)
).map(lambda d: d.replace(microsecond=0))

host_capabilities = st.builds(
    objects.HostCapabilities,
    vtpm_supported=st.booleans(), guarded=st.booleans(),
    attestation_status=st.sampled_from(
        ('Passed', 'Expired', 'NotConfigured', 'InsecureHostConfiguration')),
    attestation_mode=maybe(st.sampled_from(
        ('TpmTrusted', 'HostGuardianActiveDirectory'))),
    fabric_id=maybe(st.text(min_size=1, max_size=40)),
    fabric_ids=maybe(st.lists(st.text(min_size=1, max_size=40), max_size=3)),
    measured_at=timestamps,
    os_version=maybe(st.sampled_from(('10.0.14393', '10.0.20348'))),
    local_key_protector=maybe(st.booleans()))


def _attested_in(report, fabric, previous):
    report.guarded = True
    report.attestation_status = 'Passed'
    report.fabric_id = fabric
    report.fabric_ids = None if previous is None else [fabric, previous]
    return report


# Random reports, and attested ones in a fabric that a move may name
# (random ones rarely get that far), some during an HGS certificate renewal.
reports_for_moves = st.one_of(
    host_capabilities,
    st.builds(_attested_in, host_capabilities,
              st.sampled_from(('fabric-a', 'fabric-b')),
              maybe(st.sampled_from(('fabric-a-old', 'fabric-b')))))


def scheduler_clock(data, report, max_age, max_skew):
    """Draw the scheduler's "now" for ``report`` (None: any time): at the
    age limit or the skew limit to the microsecond, or anywhere around them,
    including reports from far in the future."""
    if report is None:
        return data.draw(timestamps)
    seconds = data.draw(st.one_of(
        st.just(max_age), st.just(-max_skew),
        st.integers(-2 * max_age - 2 * max_skew, 2 * max_age)))
    return report.measured_at + datetime.timedelta(
        seconds=seconds, microseconds=data.draw(st.integers(-2, 2)))


vtpm_requests = st.builds(
    objects.VTPMRequest,
    enabled=st.booleans(), key_refs=st.lists(uuids, max_size=6, unique=True),
    shielded=st.booleans(), machine_type=maybe(st.just('hyperv-gen2')),
    image_policy=st.sampled_from(POLICIES),
    flavor_policy=maybe(st.sampled_from(POLICIES)),
    reasons=st.lists(st.text(max_size=20), max_size=3))


def a_uuid():
    return str(uuid.uuid4())
