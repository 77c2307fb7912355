# SPDX-License-Identifier: Apache-2.0
"""Capability reports: the stats entry, traits, and what a host must offer."""

import datetime
import json

from oslo_versionedobjects import base
import pytest

from vtpm_core import capabilities
from vtpm_core import objects

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.timezone.utc)


def caps(**overrides):
    values = dict(vtpm_supported=True, guarded=True,
                  attestation_status='Passed', attestation_mode='TpmTrusted',
                  fabric_id='fabric-a', measured_at=NOW)
    values.update(overrides)
    return objects.HostCapabilities(**values)


def req(enabled=True, keys=(), shielded=False):
    return objects.VTPMRequest(
        enabled=enabled, key_refs=list(keys), shielded=shielded,
        machine_type='hyperv-gen2', image_policy='required',
        flavor_policy=None)


def test_stats_round_trip():
    report = caps(os_version='10.0.20348')
    stats = capabilities.to_stats(report)
    assert list(stats) == ['vtpm:capabilities', 'vtpm:facts']
    assert all(isinstance(v, str) for v in stats.values())
    assert capabilities.from_stats(stats) == report


def test_the_facts_string():
    stats = capabilities.to_stats(caps(
        os_version='10.0.20348', local_key_protector=False,
        fabric_ids=['fabric-a', 'fabric-a-old']))
    # the admin guide shows this string
    assert stats['vtpm:facts'] == (
        '1.3|2026-11-26T12:00:00Z|110|Passed|TpmTrusted|fabric-a|10.0.20348'
        '|fabric-a,fabric-a-old')
    assert capabilities.read_facts(stats['vtpm:facts']) == \
        capabilities.view(capabilities.from_stats(stats))
    # None: '-' in the flags, '' in the texts
    facts = capabilities.to_stats(caps(fabric_id=None,
                                       attestation_mode=None))['vtpm:facts']
    assert facts == '1.3|2026-11-26T12:00:00Z|11-|Passed||||'
    read = capabilities.read_facts(facts)
    assert read.fabric_id is None and read.local_key_protector is None
    assert read.fabric_ids is None


def test_a_view_has_every_field():
    # a rule in compile_check may read any field, from either entry: a new
    # field (a new version) goes into the facts too
    assert sorted(capabilities.View._fields) == \
        sorted(objects.HostCapabilities.fields)


@pytest.mark.parametrize('report', [
    caps(fabric_id='a|b'), caps(fabric_id=''), caps(os_version=''),
    caps(measured_at=NOW.astimezone(
        datetime.timezone(datetime.timedelta(hours=2)))),
    caps(fabric_ids=[]), caps(fabric_ids=['a', '']),
    caps(fabric_ids=['a,b']), caps(fabric_ids=['a|b']),
], ids=['separator-in-a-value', 'empty-fabric', 'empty-os-version',
        'not-utc', 'no-fabric-ids', 'an-empty-fabric-id',
        'list-separator-in-a-fabric-id', 'separator-in-a-fabric-id'])
def test_no_facts_where_a_value_has_no_one_flat_form(report):
    stats = capabilities.to_stats(report)
    assert list(stats) == ['vtpm:capabilities']


def test_no_facts_for_an_older_version():
    assert list(capabilities.to_stats(caps(), target_version='1.1')) == [
        'vtpm:capabilities']


_FACTS = ('1.3|2026-11-26T12:00:00Z|110|Passed|TpmTrusted|fabric-a|10.0'
          '|fabric-a')


def test_the_facts_of_a_1_3_report_hold_its_fabric_ids():
    read = capabilities.read_facts(_FACTS.rsplit('|', 1)[0] + '|a,b')
    assert read.fabric_ids == ['a', 'b']
    assert capabilities.fabric_identities(read) == ('fabric-a', 'a', 'b')


@pytest.mark.parametrize('raw', [
    None, 42, b'1.2|110', '', '1.2|', _FACTS + '|', _FACTS.rsplit('|', 1)[0],
    _FACTS.replace('1.3|', '1.4|'), _FACTS.replace('1.3|', '2.0|'),
    _FACTS.replace('1.3|', '1.2|'),
    _FACTS.replace('|110|', '|11|'), _FACTS.replace('|110|', '|-10|'),
    _FACTS.replace('|110|', '|1x0|'),
    _FACTS.replace('12:00:00Z', '12:00:00'),
    _FACTS.replace('12:00:00Z', '12:00:00+00:00'),
    _FACTS.replace('T12', ' 12'), _FACTS.replace('2026-11-26', '2026-W48-4'),
    _FACTS.replace('12:00:00Z', '24:00:00Z'),
    _FACTS.replace('2026', '２０２６'), _FACTS.replace('Z|', 'Z+'),
    _FACTS.replace('1.3|', '1.30|'),
], ids=['none', 'int', 'bytes', 'empty', 'version-only', 'a-part-more',
        'a-part-less',
        'newer-minor', 'newer-major', 'older-minor', 'short-flags',
        'required-flag-none',
        'bad-flag', 'naive-time', 'offset-time', 'space-separator',
        'week-date', 'hour-24', 'wide-digits', 'no-separator-after-time',
        'version-longer'])
def test_unreadable_facts_are_none(raw):
    assert capabilities.read_facts(raw) is None


def test_a_report_from_the_six_contract_fields_is_valid():
    stats = capabilities.to_stats(caps())
    read = capabilities.from_stats(stats)
    assert read.fabric_id == 'fabric-a' and read.os_version is None


@pytest.mark.parametrize('stats', [
    None, {}, {'vtpm:capabilities': None}, {'vtpm:capabilities': ''},
    {'vtpm:capabilities': 'not json'}, {'vtpm:capabilities': '[]'},
    {'vtpm:capabilities': '{"vtpm_object.name": "HostCapabilities"}'},
    {'vtpm:capabilities': json.dumps({
        'vtpm_object.name': 'VTPMRequest', 'vtpm_object.namespace': 'vtpm',
        'vtpm_object.version': '1.0', 'vtpm_object.data': {}})},
], ids=['none', 'empty', 'null entry', 'empty string', 'not json', 'a list',
        'no version', 'another object'])
def test_absent_or_unreadable_reports_are_none(stats):
    assert capabilities.from_stats(stats) is None


def _primitive(**changes):
    primitive = json.loads(capabilities.to_stats(caps())['vtpm:capabilities'])
    primitive.update(changes)
    return {'vtpm:capabilities': json.dumps(primitive)}


def test_an_older_report_is_read():
    stats = capabilities.to_stats(caps(os_version='10.0'),
                                  target_version='1.0')
    read = capabilities.from_stats(stats)
    assert read.guarded is True and not read.obj_attr_is_set('os_version')


def test_a_1_1_report_is_read_without_local_key_protector():
    stats = capabilities.to_stats(caps(local_key_protector=False),
                                  target_version='1.1')
    read = capabilities.from_stats(stats)
    assert read.local_key_protector is None  # not reported: "may"
    assert capabilities.satisfies(req(), read, max_report_age=AGE,
                                  now=NOW)


ROTATING = dict(fabric_id='fabric-a-2027',
                fabric_ids=['fabric-a-2027', 'fabric-a'])


def test_a_1_2_report_is_read_as_its_fabric_id_alone():
    """A new scheduler reading a compute that is not upgraded yet."""
    stats = capabilities.to_stats(caps(**ROTATING), target_version='1.2')
    read = capabilities.from_stats(stats)
    assert read.fabric_ids is None
    assert capabilities.fabric_identities(read) == ('fabric-a-2027',)
    kwargs = dict(max_report_age=AGE, now=NOW)
    assert capabilities.satisfies(
        req(keys=['k']), read,
        allowed_fabrics=frozenset({'fabric-a-2027'}), **kwargs)
    assert not capabilities.satisfies(
        req(keys=['k']), read, allowed_fabrics=frozenset({'fabric-a'}),
        **kwargs)


@pytest.fixture
def release_1_2(monkeypatch):
    """This process as a 1.2 scheduler: HostCapabilities without
    'fabric_ids', alone in oslo's registry, and the reader built for it."""
    fields = dict(objects.HostCapabilities.fields)
    del fields['fabric_ids']
    old = type('HostCapabilities', (objects.HostCapabilities,),
               {'VERSION': '1.2', 'fields': fields})
    table = dict(base.VersionedObjectRegistry.obj_classes(),
                 HostCapabilities=[old])
    monkeypatch.setattr(base.VersionedObjectRegistry, 'obj_classes',
                        classmethod(lambda cls: table))
    monkeypatch.setattr(capabilities.objects, 'HostCapabilities', old)
    monkeypatch.setattr(capabilities, '_OUR_VERSION', '1.2')
    monkeypatch.setattr(capabilities, '_OUR_MINOR', 2)
    return old


@pytest.fixture
def report_1_3():
    """A 1.3 compute's stats entry during a certificate renewal."""
    return capabilities.to_stats(caps(**ROTATING))


def test_a_1_3_report_is_read_by_a_1_2_scheduler(report_1_3, release_1_2):
    """An old scheduler reads a new compute's report, and its fabric_id
    means what it meant: the primary identity."""
    assert json.loads(report_1_3['vtpm:capabilities'])[
        'vtpm_object.version'] == '1.3'
    read = capabilities.from_stats(report_1_3)
    assert type(read) is release_1_2
    assert read.fabric_id == 'fabric-a-2027'
    assert read.attestation_status == 'Passed'
    assert 'fabric_ids' not in read.obj_to_primitive()['vtpm_object.data']


def test_a_newer_minor_report_is_read_without_its_new_fields():
    primitive = json.loads(capabilities.to_stats(caps())['vtpm:capabilities'])
    primitive['vtpm_object.version'] = '1.7'
    primitive['vtpm_object.data']['future_field'] = 'x'
    read = capabilities.from_stats(
        {'vtpm:capabilities': json.dumps(primitive)})
    assert read.attestation_status == 'Passed'
    assert read.VERSION == objects.HostCapabilities.VERSION


def test_a_newer_major_report_is_unreadable():
    assert capabilities.from_stats(
        _primitive(**{'vtpm_object.version': '2.0'})) is None


def test_a_report_missing_a_required_field_is_unreadable():
    primitive = json.loads(capabilities.to_stats(caps())['vtpm:capabilities'])
    del primitive['vtpm_object.data']['guarded']
    assert capabilities.from_stats(
        {'vtpm:capabilities': json.dumps(primitive)}) is None


TPM = {'COMPUTE_SECURITY_TPM_2_0', 'COMPUTE_SECURITY_TPM_CRB'}
USER = 'COMPUTE_SECURITY_TPM_SECRET_SECURITY_USER'
HOST = 'COMPUTE_SECURITY_TPM_SECRET_SECURITY_HOST'


# Hyper-V's vTPM is a TPM 2.0 with a CRB interface (constants.TPM_VERSION,
# TPM_MODEL); 'user' where keys can be opened (guarded), 'host' where a
# vTPM without keys can (local mode, or guarded: a key protector of the
# host's guardian for its fabric); never TPM 1.2, TIS, 'deployment'.
@pytest.mark.parametrize('report,expected', [
    (None, set()),
    (caps(vtpm_supported=False), set()),
    (caps(vtpm_supported=False, guarded=False, local_key_protector=True),
     set()),
    (caps(guarded=False), TPM),
    (caps(guarded=False, local_key_protector=True), TPM | {HOST}),
    (caps(attestation_status='Expired'),
     TPM | {USER, HOST, 'CUSTOM_HGS_GUARDED', 'CUSTOM_HGS_FABRIC_FABRIC_A'}),
    (caps(), TPM | {USER, HOST, 'CUSTOM_HGS_GUARDED',
                    'CUSTOM_HGS_ATTESTATION_PASSED',
                    'CUSTOM_HGS_FABRIC_FABRIC_A'}),
    (caps(local_key_protector=False),
     TPM | {USER, HOST, 'CUSTOM_HGS_GUARDED', 'CUSTOM_HGS_ATTESTATION_PASSED',
            'CUSTOM_HGS_FABRIC_FABRIC_A'}),
    (caps(**ROTATING),
     TPM | {USER, HOST, 'CUSTOM_HGS_GUARDED', 'CUSTOM_HGS_ATTESTATION_PASSED',
            'CUSTOM_HGS_FABRIC_FABRIC_A_2027',
            'CUSTOM_HGS_FABRIC_FABRIC_A'}),
], ids=['no report', 'unsupported', 'unsupported in local mode',
        'unguarded, local mode unknown', 'local mode', 'expired',
        'attested', 'attested, HGS mode', 'during a certificate renewal'])
def test_traits(report, expected):
    assert capabilities.traits(report) == expected
    assert not expected & {
        'COMPUTE_SECURITY_TPM_1_2', 'COMPUTE_SECURITY_TPM_TIS',
        'COMPUTE_SECURITY_TPM_SECRET_SECURITY_DEPLOYMENT'}
    assert capabilities.managed_traits(expected | {'HW_CPU_X86_AVX'}) == \
        expected


AGE = 600
SKEW = 60

# (id, request, host report, passes?, words the reason must contain)
MATCHES = [
    ('no vTPM: any host, even without a report',
     req(enabled=False), None, True, ''),
    ('vTPM: no report fails closed', req(), None, False, 'no readable'),
    ('vTPM: unsupported host', req(), caps(vtpm_supported=False), False,
     'does not support'),
    ('vTPM without keys: unguarded host is fine', req(),
     caps(guarded=False, attestation_status='NotConfigured'), True, ''),
    ('vTPM without keys: a stale report is fine', req(),
     caps(measured_at=NOW - datetime.timedelta(days=2)), True, ''),
    ('keys: unguarded host', req(keys=['k']), caps(guarded=False), False,
     'not a guarded host in HGS mode'),
    # in local mode Hyper-V opens no KeyProtector that names a fabric
    ('keys: a guarded host in local mode', req(keys=['k']),
     caps(local_key_protector=True), False, 'not a guarded host in HGS mode'),
    ('keys: attestation expired', req(keys=['k']),
     caps(attestation_status='Expired'), False, 'Expired'),
    ('keys: report too old', req(keys=['k']),
     caps(measured_at=NOW - datetime.timedelta(seconds=AGE + 1)), False,
     'old'),
    ('keys: report just fresh enough', req(keys=['k']),
     caps(measured_at=NOW - datetime.timedelta(seconds=AGE)), True, ''),
    ('keys: report dated in year 9999 (a wrong clock)', req(keys=['k']),
     caps(measured_at=NOW.replace(year=9999)), False, 'in the future'),
    ('keys: report further ahead than the clock skew', req(keys=['k']),
     caps(measured_at=NOW + datetime.timedelta(seconds=SKEW, microseconds=1)),
     False, 'dated 60 s in the future (max 60 s of clock skew)'),
    ('keys: report ahead by the clock skew', req(keys=['k']),
     caps(measured_at=NOW + datetime.timedelta(seconds=SKEW)), True, ''),
    ('vTPM without keys: a report from the future is fine', req(),
     caps(measured_at=NOW.replace(year=9999)), True, ''),
    ('keys: no fabric guardian', req(keys=['k']), caps(fabric_id=None),
     False, 'no fabric'),
    ('no keys: no fabric guardian is fine', req(), caps(fabric_id=None),
     True, ''),
    ('shielded: guarded and attested', req(keys=['k'], shielded=True),
     caps(), True, ''),
    # Without keys, a guarded host gives a key protector for its fabric
    ('no keys: a guarded, attested host in HGS mode', req(),
     caps(local_key_protector=False), True, ''),
    ('no keys: a host in HGS mode that is not attested', req(),
     caps(local_key_protector=False, attestation_status='TransientError'),
     False, 'attestation status is TransientError'),
    ('no keys: a host in HGS mode without a fabric guardian', req(),
     caps(local_key_protector=False, fabric_id=None), False, 'no fabric'),
    ('no keys: a host in HGS mode that is not guarded', req(),
     caps(local_key_protector=False, guarded=False), False,
     'not a guarded host'),
    ('no keys: a host in HGS mode with a stale report', req(),
     caps(local_key_protector=False,
          measured_at=NOW - datetime.timedelta(seconds=AGE + 1)),
     False, 'old'),
    ('no keys: a host in local mode', req(),
     caps(guarded=False, local_key_protector=True), True, ''),
    ('no keys: an older report without the field still passes', req(),
     caps(), True, ''),
    ('keys: HGS mode is what keys need', req(keys=['k']),
     caps(local_key_protector=False), True, ''),
]


@pytest.mark.parametrize('req,report,passes,words', [m[1:] for m in MATCHES],
                         ids=[m[0] for m in MATCHES])
def test_satisfies(req, report, passes, words):
    verdict = capabilities.satisfies(req, report, max_report_age=AGE,
                                     max_clock_skew=SKEW, now=NOW)
    assert bool(verdict) is passes
    assert words in verdict.reason


def test_clock_skew_defaults_to_none_allowed():
    # A host checking its own report: the same clock measured it.
    ahead = caps(measured_at=NOW + datetime.timedelta(microseconds=1))
    assert not capabilities.satisfies(req(keys=['k']), ahead,
                                      max_report_age=AGE, now=NOW)
    assert capabilities.satisfies(req(keys=['k']), caps(),
                                  max_report_age=AGE, now=NOW)


def test_a_move_keeps_the_instance_in_its_fabrics():
    keyed = req(keys=['k'])
    allowed = frozenset({'fabric-a', 'fabric-dr'})
    kwargs = dict(max_report_age=AGE, now=NOW, allowed_fabrics=allowed)
    assert capabilities.satisfies(keyed, caps(), **kwargs)
    assert capabilities.satisfies(keyed, caps(fabric_id='fabric-dr'),
                                  **kwargs)
    verdict = capabilities.satisfies(keyed, caps(fabric_id='fabric-b'),
                                     **kwargs)
    assert not verdict and 'fabric-b' in verdict.reason
    # The fabric rule holds even when the request itself is not evaluated.
    assert not capabilities.satisfies(None, caps(fabric_id='fabric-b'),
                                      **kwargs)


@pytest.mark.parametrize('named,passes', [
    # booted before the renewal: HGS still holds the previous certificate
    ({'fabric-a'}, True),
    # booted from the new guardian metadata, or re-granted
    ({'fabric-a-2027'}, True),
    ({'fabric-a', 'fabric-a-2027'}, True),
    ({'fabric-b'}, False),
], ids=['previous only', 'new only', 'both', 'another fabric'])
def test_a_move_during_a_renewal_meets_any_identity(named, passes):
    verdict = capabilities.satisfies(
        req(keys=['k']), caps(**ROTATING), max_report_age=AGE, now=NOW,
        allowed_fabrics=frozenset(named))
    assert bool(verdict) is passes
    if not passes:
        assert 'fabric-a-2027, fabric-a is not one' in verdict.reason


def test_fabric_trait_uses_placement_alphabet():
    assert capabilities.fabric_trait('3f:9a-bc.d') == \
        'CUSTOM_HGS_FABRIC_3F_9A_BC_D'
