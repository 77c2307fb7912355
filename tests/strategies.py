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
    attestation_mode=maybe(st.sampled_from(('TpmTrusted', 'HostGuardianActiveDirectory'))),
    fabric_id=maybe(st.text(min_size=1, max_size=40)),
    measured_at=timestamps,
    os_version=maybe(st.sampled_from(('10.0.14393', '10.0.20348'))),
    local_key_protector=maybe(st.booleans()))

vtpm_requests = st.builds(
    objects.VTPMRequest,
    enabled=st.booleans(), key_refs=st.lists(uuids, max_size=6, unique=True),
    shielded=st.booleans(), machine_type=maybe(st.just('hyperv-gen2')),
    image_policy=st.sampled_from(POLICIES),
    flavor_policy=maybe(st.sampled_from(POLICIES)),
    reasons=st.lists(st.text(max_size=20), max_size=3))


def a_uuid():
    return str(uuid.uuid4())
