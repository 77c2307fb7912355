# SPDX-License-Identifier: Apache-2.0
"""The audit's findings from plain data, and its cloud client's answers.

The cloud client is tested here against stand-ins for openstacksdk's
connection; tests/functional/test_audit_live.py runs it against real
services.
"""

import collections
import datetime
import json
import sys

import pytest

from tests.fixtures import paths
import vtpm_cli
from vtpm_cli import audit
from vtpm_cli import check
from vtpm_cli import cloud
from vtpm_cli import exception as cli_exception
from vtpm_core import constants
from vtpm_core import objects

K1 = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
K2 = '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2'
GEN2 = {'hw_machine_type': 'hyperv-gen2'}


def images(*props):
    return audit.carriers('image', [('i%d' % n, 'img%d' % n, p)
                                    for n, p in enumerate(props)],
                          constants.IMAGE_KEYS)


def flavors(*specs):
    return audit.carriers('flavor', [('f%d' % n, 'flv%d' % n, s)
                                     for n, s in enumerate(specs)],
                          constants.FLAVOR_KEYS)


def readable(ref):
    return None


def test_only_carriers_are_listed():
    listed = images({'os_distro': 'windows'}, dict(GEN2, os_vtpm='required'))
    assert [r.id for r in listed] == ['i1']
    assert listed[0].properties == dict(GEN2, os_vtpm='required')
    assert flavors({'hw:cpu_policy': 'dedicated'}) == []


def test_a_clean_cloud_has_no_findings():
    found = audit.audit(images(dict(GEN2, os_vtpm='optional')),
                        flavors({'os:vtpm': 'required'}), readable)
    assert found == []


def test_invalid_values_are_reported_per_resource():
    found = audit.audit(
        images(dict(GEN2, os_vtpm='Required'),
               dict(GEN2, os_vtpm='required', os_vtpm_keys='x,' * 7)),
        flavors({'os:vtpm': 'bogus'}), readable)
    assert [(f.kind, f.subject) for f in found] == [
        ('image', 'image img0 (i0)'), ('image', 'image img1 (i1)'),
        ('flavor', 'flavor flv0 (f0)')]
    assert "os_vtpm (image property) is 'Required'" in found[0].problem
    assert 'os_vtpm_keys (image property)' in found[1].problem
    assert "os:vtpm (flavor extra spec) is 'bogus'" in found[2].problem


def test_an_image_valid_with_some_flavor_is_not_invalid():
    # Keys with os_vtpm=optional need a flavor that requires the vTPM.
    found = audit.audit(
        images(dict(GEN2, os_vtpm='optional', os_vtpm_keys=K1)), [], readable)
    assert found == []


NOVA = {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'}


def test_novas_words_for_what_no_hyperv_host_gives_are_findings():
    found = audit.audit(
        images(dict(GEN2, os_vtpm='optional', hw_tpm_version='1.2'),
               # a version alone: nova assumes TIS, whatever the flavor
               # says of os:vtpm; a flavor can name the model, so valid
               dict(GEN2, os_vtpm='optional', hw_tpm_version='2.0')),
        flavors({'hw:tpm_model': 'tpm-tis'},
                {'hw:tpm_version': '2.0'},
                {'hw:tpm_secret_security': 'deployment'},
                dict(NOVA), dict(NOVA, **{'hw:tpm_secret_security': 'host'}),
                {'hw:tpm_model': 'tpm-crb'}),
        readable)
    kinds = [(f.kind, f.subject) for f in found]
    assert kinds[:5] == [
        ('image', 'image img0 (i0)'), ('flavor', 'flavor flv0 (f0)'),
        ('flavor', 'flavor flv1 (f1)'), ('flavor', 'flavor flv2 (f2)'),
        # a model alone gives no TPM, whatever the image
        ('flavor', 'flavor flv5 (f5)')]
    assert "Hyper-V's virtual TPM is a TPM 2.0" in found[0].problem
    assert 'not TIS' in found[1].problem
    assert 'which nova reads as tpm-tis' in found[2].problem
    assert "nova's service user" in found[3].problem
    assert 'the vTPM is off' in found[4].problem
    # the valid image under the valid flavors: 'user' without keys is the
    # one pair refused
    assert [(f.subject, f.problem.split(' but ')[0]) for f in found[5:]] == [
        ('image img1 (i1) with flavor flv3 (f3)',
         "hw:tpm_secret_security (flavor extra spec) is absent (nova's "
         "default: user)")]


def test_with_the_hosts_reports_a_pair_no_host_serves_is_a_finding():
    keyed = dict(GEN2, os_vtpm='required', os_vtpm_keys=K1)
    plain = dict(GEN2, os_vtpm='required')
    local_only = [objects.HostCapabilities(
        vtpm_supported=True, guarded=False, attestation_status='Unknown',
        local_key_protector=True, measured_at=datetime.datetime(
            2020, 1, 1, tzinfo=datetime.timezone.utc))]
    found = audit.audit(images(keyed, plain), flavors({'os:vtpm': 'optional'}),
                        readable, local_only)
    assert [(f.kind, f.subject) for f in found] == [
        ('pair', 'image img0 (i0) with flavor flv0 (f0)')]
    assert found[0].problem == (
        'no host can serve it: host is not a guarded host in HGS mode, '
        'which an HGS KeyProtector needs')
    # without reports, nothing is known of the hosts
    assert audit.audit(images(keyed, plain), flavors({'os:vtpm': 'optional'}),
                       readable) == []


def test_keys_not_read_as_given_are_warnings():
    warned = audit.key_warnings('image', [
        ('i0', 'win', {'OS_VTPM': 'required', 'os_distro': 'windows'}),
        ('i1', 'ok', {'os_vtpm': 'required'})]) + audit.key_warnings(
        'flavor', [('f0', 'm1', {'OS:VTPM': 'required',
                                 'hw:cpu_policy': 'dedicated'})])
    assert [(w.kind, w.subject, w.problem) for w in warned] == [
        ('key', 'image win (i0)', 'OS_VTPM (image property) is not a key '
         'hyperv-vtpm reads: keys are matched exactly, in lowercase with '
         'their own separator; did you mean os_vtpm?'),
        ('key', 'flavor m1 (f0)', 'OS:VTPM (flavor extra spec) is not a key '
         'hyperv-vtpm reads: keys are matched exactly, in lowercase with '
         'their own separator; did you mean os:vtpm?')]
    text = audit.render([], [], [], 'human', warnings=warned)
    assert text.splitlines()[1:4] == [
        '2 warning(s):',
        '  [key] image win (i0): OS_VTPM (image property) is not a key '
        'hyperv-vtpm reads: keys are matched exactly, in lowercase with '
        'their own separator; did you mean os_vtpm?',
        '  [key] flavor m1 (f0): OS:VTPM (flavor extra spec) is not a key '
        'hyperv-vtpm reads: keys are matched exactly, in lowercase with '
        'their own separator; did you mean os:vtpm?']
    assert json.loads(audit.render([], [], [], 'json', warnings=warned))[
        'warnings'][0]['kind'] == 'key'


class _MistypedCloud:
    """An image whose only vTPM key is in capitals."""

    class image:
        @staticmethod
        def images():
            return [type('Image', (), {
                'id': 'i0', 'name': 'win',
                'properties': {'OS_VTPM': 'required'}})()]

    class compute:
        @staticmethod
        def flavors(get_extra_specs):
            return []


@pytest.mark.parametrize('strict,status', [(False, 0), (True, 1)])
def test_the_audit_warns_of_a_key_in_capitals_and_strict_fails(
        monkeypatch, capsys, strict, status):
    monkeypatch.setattr(cloud.openstack, 'connect',
                        lambda cloud: _MistypedCloud())
    argv = ['--audit'] + (['--strict'] if strict else [])
    assert check.main(argv) == status
    out = capsys.readouterr().out
    assert '[key] image win (i0): OS_VTPM (image property)' in out
    assert 'no problems found' in out


def test_unreadable_secrets_are_named():
    problems = {K2: 'the caller may not read it'}
    found = audit.audit(
        images(dict(GEN2, os_vtpm='required', os_vtpm_keys='%s,%s' % (
            K1, K2.upper()))), [], problems.get)
    assert len(found) == 1
    assert found[0].kind == 'secret'
    assert K2 in found[0].problem and 'may not read' in found[0].problem


def test_conflicting_pairs_are_reported():
    found = audit.audit(
        images(dict(GEN2, os_vtpm='required'), dict(GEN2, os_vtpm='disabled')),
        flavors({'os:vtpm': 'disabled'}, {'os:vtpm': 'required'}), readable)
    pairs = sorted(f.subject for f in found if f.kind == 'pair')
    assert pairs == ['image img0 (i0) with flavor flv0 (f0)',
                     'image img1 (i1) with flavor flv1 (f1)']


OLD_FABRIC = '5a' * 32  # the fabric guardian's before the renewal
NEW_FABRIC = 'c3' * 32  # the new primary one's
NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)


def instances(*rows):
    return audit.carriers('instance', [
        (uuid, name, {'vtpm_fabrics': fabrics, 'image_os_vtpm': 'required'})
        for uuid, name, fabrics in rows], ('vtpm_fabrics',))


def renewing_host(*previous):
    previous = previous or (OLD_FABRIC,)
    return objects.HostCapabilities(
        vtpm_supported=True, guarded=True, attestation_status='Passed',
        fabric_id=NEW_FABRIC, fabric_ids=[NEW_FABRIC, *previous],
        measured_at=NOW)


def renewed_host():
    return objects.HostCapabilities(
        vtpm_supported=True, guarded=True, attestation_status='Passed',
        fabric_id=NEW_FABRIC, fabric_ids=[NEW_FABRIC], measured_at=NOW)


# (id, the instance's fabrics, the hosts' reports, what the finding says)
FABRIC_FINDINGS = [
    ('the new guardian: nothing', NEW_FABRIC, [renewing_host()], None),
    ('both: nothing', '%s,%s' % (OLD_FABRIC, NEW_FABRIC), [renewed_host()],
     None),
    ('the old only, during the renewal', OLD_FABRIC, [renewing_host()],
     'answer for only while HGS renews its certificates'),
    ('the old only, after it', OLD_FABRIC, [renewed_host(), None],
     'none of which a host answers for'),
    ('the old and a DR site outside the cloud', 'dd' * 32 + ',' + OLD_FABRIC,
     [renewing_host()], 'only fabrics %s, %s' % (OLD_FABRIC, 'dd' * 32)),
    ('a 1.2 report of the new primary', NEW_FABRIC,
     [objects.HostCapabilities.obj_from_primitive(
         renewed_host().obj_to_primitive(target_version='1.2'))], None),
    ('no host reports at all', NEW_FABRIC, [None],
     'none of which a host answers for'),
]


@pytest.mark.parametrize('fabrics,reports,words',
                         [row[1:] for row in FABRIC_FINDINGS],
                         ids=[row[0] for row in FABRIC_FINDINGS])
def test_instances_that_name_no_primary_fabric(fabrics, reports, words):
    insts = instances(('u1', 'web', fabrics))
    found = audit.fabric_findings(insts, reports)
    if words is None:
        assert found == []
        return
    [finding] = found
    assert (finding.kind, finding.subject) == ('instance', 'instance web (u1)')
    assert words in finding.problem
    assert 'Grant-HgsKeyProtectorAccess' in finding.problem


def test_only_instances_with_fabrics_are_listed():
    listed = audit.carriers('instance', [
        ('u1', 'local', {'image_os_vtpm': 'required'}),
        ('u2', 'keyed', {'vtpm_fabrics': NEW_FABRIC})], ('vtpm_fabrics',))
    assert [r.id for r in listed] == ['u2']


def test_json_report_is_machine_readable():
    imgs = images(dict(GEN2, os_vtpm='Required'))
    found = audit.audit(imgs, [], readable)
    report = json.loads(audit.render(imgs, [], found, 'json'))
    assert report['images'][0]['id'] == 'i0'
    assert report['findings'][0]['kind'] == 'image'


# The JSON report the audit guide shows (doc/source/admin/audit.rst).
SAMPLE = paths.DATA / 'audit-report.json'


def sample_report():
    """A project with a keyed image whose second secret is gone, a flavor
    that turns the vTPM on, and one that disables it; read with nova's
    databases during an HGS certificate renewal, with two instances built
    from that image (whose records name the secret that is gone): one whose
    KeyProtector names only the previous certificate, and one re-granted."""
    imgs = audit.carriers('image', [
        ('5b1f0c1e-2f57-4e1a-9a43-7d2c1f6e8a10', 'win2022-keyed',
         dict(GEN2, os_vtpm='required', os_vtpm_keys='%s,%s' % (K1, K2),
              os_distro='windows')),
        ('c0a8e3b2-4d6f-4b8e-8f1a-2e9d7c5b3a41', 'ubuntu', {})],
        ('os_vtpm', 'os_vtpm_keys', 'hw_machine_type', 'os_shielded_vm'))
    flvs = audit.carriers('flavor', [
        ('f-vtpm', 'm1.vtpm', {'os:vtpm': 'required'}),
        ('f-plain', 'm1.no-vtpm', {'os:vtpm': 'disabled'})], ('os:vtpm',))
    gone = audit.once_per_secret({K2: 'does not exist'}.get)
    found = audit.audit(imgs, flvs, gone)
    insts = [audit.Instance(uuid, name, 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
                            'hv-%02d' % n, imgs[0].id, {
                                'vtpm_fabrics': fabrics,
                                'vtpm_keys': '%s,%s' % (K1, K2)})
             for n, (uuid, name, fabrics) in enumerate([
                 ('0b7c3a8e-1f52-4f7e-b1a2-3c4d5e6f7a80', 'web-1',
                  OLD_FABRIC),
                 ('6e2f9d41-8c3b-4a7e-9f15-d2c8b7a6e590', 'web-2',
                  '%s,%s' % (OLD_FABRIC, NEW_FABRIC))], 1)]
    found += audit.secret_findings(insts, gone)
    found += audit.fabric_findings(insts, [renewing_host()])
    return audit.render(imgs, flvs, found, 'json', insts) + '\n'


def test_the_documented_json_report_is_what_the_audit_renders():
    assert SAMPLE.read_text() == sample_report(), (
        '%s is stale; write this into it:\n%s' % (SAMPLE, sample_report()))
    report = json.loads(SAMPLE.read_text())
    assert [(f['kind'], f['count']) for f in report['findings']] == [
        ('secret', 1), ('pair', 1), ('secret', 2), ('instance', 1)]


def test_human_report_says_when_all_is_well():
    text = audit.render([], [], [], 'human')
    assert text.splitlines() == [
        '0 image(s) and 0 flavor(s) carry vTPM properties',
        'no problems found']


class _Response:
    def __init__(self, status_code):
        self.status_code = status_code


class _KeyManager:
    """conn.key_manager: answers with a status, or raises."""

    def __init__(self, answer):
        self.answer = answer
        self.calls = []

    def get(self, url, **kwargs):
        self.calls.append((url, kwargs))
        if isinstance(self.answer, Exception):
            raise self.answer
        return _Response(self.answer)


class _Conn:
    def __init__(self, answer):
        self.key_manager = _KeyManager(answer)


def test_secret_checker_reads_metadata_as_json_only():
    conn = _Conn(200)
    assert cloud.secret_checker(conn)(K1) is None
    # any other Accept gets the payload from Barbican
    assert conn.key_manager.calls == [(
        '/secrets/%s' % K1,
        {'raise_exc': False, 'headers': {'Accept': 'application/json'}})]


def test_secret_checker_names_each_refusal():
    problems = {status: cloud.secret_checker(_Conn(status))(K1)
                for status in (403, 404, 500)}
    assert problems == {403: 'the caller may not read it',
                        404: 'does not exist',
                        500: 'Barbican answered HTTP 500'}


def test_an_unreachable_barbican_is_a_finding_not_a_crash():
    from keystoneauth1 import exceptions as ks_exceptions

    check = cloud.secret_checker(_Conn(
        ks_exceptions.ConnectFailure('Unable to establish connection')))
    found = audit.audit(images(dict(GEN2, os_vtpm='required',
                                    os_vtpm_keys=K1)), [], check)
    assert [(f.kind, f.problem) for f in found] == [(
        'secret', 'Barbican secret %s named by os_vtpm_keys (image '
        'property): could not be checked: ConnectFailure: Unable to '
        'establish connection' % K1)]


def test_a_cloud_that_cannot_be_read_exits_2_with_the_error_on_stderr(
        monkeypatch, capsys):
    from openstack import exceptions as sdk_exceptions

    def connect(cloud):
        raise sdk_exceptions.ConfigException('Cloud %s was not found.'
                                             % cloud)

    monkeypatch.setattr(cloud.openstack, 'connect', connect)
    for fmt in ('human', 'json'):
        assert check.main(['--audit', '--os-cloud', 'nowhere', '--format',
                           fmt]) == cloud.UNREADABLE
        captured = capsys.readouterr()
        assert (captured.out, captured.err) == ('', (
            'error: could not read images and flavors from the cloud '
            'nowhere: ConfigException: Cloud nowhere was not found.\n'))


def test_audit_without_openstacksdk_names_the_extra_and_exits_3(
        monkeypatch, capsys):
    # as after 'pip install hyperv-vtpm': no openstacksdk
    monkeypatch.setitem(sys.modules, 'openstack', None)
    monkeypatch.delitem(sys.modules, 'vtpm_cli.cloud')
    monkeypatch.delattr(vtpm_cli, 'cloud')
    status = check.main(['--audit'])
    assert status == check.MISSING_EXTRA == 3
    assert status != cloud.FINDINGS
    err = capsys.readouterr().err
    assert "install the audit extra: pip install 'hyperv-vtpm[audit]'" in err


class _EmptyCloud:
    """openstacksdk's connection to a cloud with no images nor flavors."""

    class image:
        @staticmethod
        def images():
            return []

    class compute:
        @staticmethod
        def flavors(get_extra_specs):
            return []


def test_nova_config_adds_the_instances_to_the_audit(monkeypatch, capsys):
    from vtpm_cli import novadb

    read = []
    monkeypatch.setattr(cloud.openstack, 'connect',
                        lambda cloud: _EmptyCloud())
    monkeypatch.setattr(novadb, 'read', lambda files: read.append(files) or (
        instances(('u1', 'web', OLD_FABRIC)), [renewing_host()]))
    status = check.main(['--audit', '--format', 'json', '--nova-config',
                         '/etc/nova/nova.conf', '--nova-config', 'cell.conf'])
    assert read == [['/etc/nova/nova.conf', 'cell.conf']]
    report = json.loads(capsys.readouterr().out)
    assert [r['id'] for r in report['instances']] == ['u1']
    assert [f['kind'] for f in report['findings']] == ['instance']
    assert status == cloud.FINDINGS


def test_an_unreadable_cell_exits_2(monkeypatch, capsys):
    from vtpm_cli import novadb

    def read(files):
        raise cli_exception.NovaUnreadable(cell='c1',
                                           reason='it did not answer')

    monkeypatch.setattr(cloud.openstack, 'connect',
                        lambda cloud: _EmptyCloud())
    monkeypatch.setattr(novadb, 'read', read)
    assert check.main(['--audit', '--nova-config', 'n.conf']) == \
        cloud.UNREADABLE
    assert capsys.readouterr().err == (
        "error: could not read nova's database of cell c1: it did not "
        "answer\n")


# --- at cloud scale: each distinct thing evaluated once, findings grouped --

def test_each_distinct_pair_is_evaluated_once(monkeypatch):
    """No two evaluations of the policy have the same image properties and
    flavor extra specs: images (and flavors) that carry the same
    properties are one case, whatever their number."""
    calls = []
    real = audit.policy.build_request

    def counted(image, flavor):
        calls.append((repr(sorted(image.items())),
                      repr(sorted(flavor.items()))))
        return real(image, flavor)

    monkeypatch.setattr(audit.policy, 'build_request', counted)
    imgs = images(*[dict(GEN2, os_vtpm='required', os_vtpm_keys=K1)] * 30,
                  *[dict(GEN2, os_vtpm='optional')] * 20)
    flvs = flavors(*[{'os:vtpm': 'required'}] * 7,
                   *[{'os:vtpm': 'disabled'}] * 3)
    found = audit.audit(imgs, flvs, readable)
    assert max(collections.Counter(calls).values()) == 1
    pairs = [(i, f) for i, f in calls
             if f in (repr([('os:vtpm', 'required')]),
                      repr([('os:vtpm', 'disabled')]))]
    assert len(pairs) == 2 * 2
    # the 30 keyed images under the 3 disabling flavors: one problem
    [conflict] = found
    assert (conflict.kind, conflict.count) == ('pair', 90)
    assert conflict.subjects == tuple(
        'image img%d (i%d) with flavor flv%d (f%d)' % (i, i, f, f)
        for i, f in [(0, 7), (0, 8), (0, 9), (1, 7), (1, 8)])


def test_each_distinct_secret_is_read_once_for_images_and_instances(
        monkeypatch):
    """A secret named by many images and recorded by many instances is
    read once in an audit."""
    asked = []

    class KeyManager(_KeyManager):
        def get(self, url, **kwargs):
            asked.append(url)
            return _Response(404 if K2 in url else 200)

    class Cloud(_EmptyCloud):
        key_manager = KeyManager(None)

        class image:
            @staticmethod
            def images():
                keys = ['%s,%s' % (K1, K2), K1]
                return [type('Image', (), {
                    'id': 'i%d' % n, 'name': 'img%d' % n,
                    'properties': dict(GEN2, os_vtpm='required',
                                       os_vtpm_keys=keys[n % 2 == 0])})()
                        for n in range(10)]

    insts = [recorded('u%d' % n, K2 if n % 3 else '%s,%s' % (K1, K2))
             for n in range(12)]
    report, status = cloud.run(None, 'json', lambda: (insts, []),
                               conn=Cloud())
    assert sorted(asked) == sorted(['/secrets/%s' % K1, '/secrets/%s' % K2])
    secret = [f for f in json.loads(report)['findings']
              if f['kind'] == 'secret']
    assert [(f['count'], len(f['subjects'])) for f in secret] == [
        (5, 5), (12, audit.EXAMPLES)]
    assert status == cloud.FINDINGS


def recorded(uuid, keys, image='0c7a0a35-5b6f-4ab0-9d0e-9b8f6e1c0d11'):
    """An instance as nova's database records it."""
    return audit.Instance(uuid, 'vm-' + uuid, 'p1', 'hv1', image, {
        'vtpm_fabrics': NEW_FABRIC, 'vtpm_keys': keys})


def test_findings_are_grouped_with_a_count_and_bounded_examples():
    imgs = images(*[dict(GEN2, os_vtpm='Required')] * 7,
                  dict(GEN2, os_vtpm='bogus'))
    found = audit.audit(imgs, [], readable)
    assert [(f.kind, f.count, len(f.subjects)) for f in found] == [
        ('image', 7, audit.EXAMPLES), ('image', 1, 1)]
    assert found[0].subjects[0] == 'image img0 (i0)'
    lines = audit.render(imgs, [], found, 'human').splitlines()
    at = lines.index('2 problem(s):')
    assert lines[at + 1].startswith(
        '  [image] 7, e.g. image img0 (i0); image img1 (i1); image img2 '
        '(i2); image img3 (i3); image img4 (i4); and 2 more: os_vtpm '
        "(image property) is 'Required'")
    assert lines[at + 2].startswith("  [image] image img7 (i7): os_vtpm "
                                    "(image property) is 'bogus'")
    report = json.loads(audit.render(imgs, [], found, 'json'))
    assert report['findings'][0]['count'] == 7
    assert len(report['findings'][0]['subjects']) == audit.EXAMPLES


def test_grouping_merges_the_same_problem_found_apart():
    one = audit.fabric_findings([recorded('u1', K1)], [renewed_host()])
    assert one == []
    moved = [renewing_host()]
    old = [audit.Instance('u%d' % n, 'vm', 'p', 'h', None,
                          {'vtpm_fabrics': OLD_FABRIC}) for n in range(3)]
    apart = (audit.fabric_findings(old[:1], moved)
             + audit.fabric_findings(old[1:], moved))
    [merged] = audit.group(apart)
    assert (merged.count, merged.subjects) == (3, (
        'instance vm (u0)', 'instance vm (u1)', 'instance vm (u2)'))


def test_an_instance_whose_secret_is_gone_is_reported_without_its_image():
    """The image the instance was built from is gone (no image in the
    audit); its own record names the secret, which is gone too."""
    gone = {K2: 'does not exist'}
    found = audit.secret_findings([recorded('u1', '%s,%s' % (K1, K2))],
                                  gone.get)
    assert [(f.kind, f.subjects, f.problem) for f in found] == [(
        'secret', ('instance vm-u1 (u1)',),
        'Barbican secret %s, which vtpm_keys (instance system metadata) '
        'records its KeyProtector was sealed from: does not exist' % K2)]
    # recorded before vtpm_keys: its image's findings stand for it
    assert audit.secret_findings([audit.Instance(
        'u2', 'old', 'p', 'h', None, {'vtpm_fabrics': NEW_FABRIC})],
        gone.get) == []


def test_the_audit_with_nova_reports_the_instance_whose_image_is_gone(
        monkeypatch, capsys):
    from vtpm_cli import novadb

    class Cloud(_EmptyCloud):
        key_manager = _KeyManager(404)

    monkeypatch.setattr(cloud.openstack, 'connect', lambda cloud: Cloud())
    monkeypatch.setattr(novadb, 'read', lambda files: (
        [recorded('u1', K1)], [renewed_host()]))
    status = check.main(['--audit', '--nova-config', 'nova.conf'])
    out = capsys.readouterr().out
    assert status == cloud.FINDINGS
    assert ('  [secret] instance vm-u1 (u1): Barbican secret %s, which '
            'vtpm_keys (instance system metadata) records its KeyProtector '
            'was sealed from: does not exist' % K1) in out.splitlines()


def test_hosts_are_asked_once_per_requirement_over_one_report_per_kind(
        monkeypatch):
    """Whether some host serves a pair is decided once per requirement
    (``capabilities.requirements``) over one report per kind of host
    (their times aside), whatever the number of pairs and hosts."""
    compiled, checked = [], []
    real = audit.capabilities.compile_check

    def counted(request, **kwargs):
        compiled.append(audit.capabilities.requirements(request))
        check = real(request, **kwargs)
        return lambda caps: checked.append(caps) or check(caps)

    monkeypatch.setattr(audit.capabilities, 'compile_check', counted)
    hosts = [renewed_host() if n % 2 else objects.HostCapabilities(
        vtpm_supported=True, guarded=False, attestation_status='Unknown',
        local_key_protector=True, measured_at=NOW + datetime.timedelta(
            seconds=n)) for n in range(1000)]
    found = audit.audit(
        images(*[dict(GEN2, os_vtpm='required', os_vtpm_keys=K1)] * 3,
               dict(GEN2, os_vtpm='required', os_vtpm_keys=K2),
               dict(GEN2, os_vtpm='required')),
        flavors({'os:vtpm': 'required'}, {'os:vtpm': 'optional'}), readable,
        hosts + [None])
    assert sorted(compiled) == sorted([
        audit.capabilities.REQUIREMENTS_KEYED,
        audit.capabilities.REQUIREMENTS_KEYLESS])
    # three kinds of host (guarded, local, no report), each checked once
    # per requirement
    assert len(checked) == 2 * 3
    assert found == []


def test_an_instance_a_restarted_compute_found_without_its_vtpm_is_listed():
    """vtpm_missing (written by a restarted compute, vtpm_hyperv.nova
    .startcheck) is reported with what the VM lacks; instances without
    the mark give nothing."""
    marked = audit.Instance('u1', 'vm-u1', 'p1', 'hv1', None, {
        'vtpm_fabrics': NEW_FABRIC, 'vtpm_missing': 'its TPM off'})
    found = audit.missing_findings([marked, recorded('u2', K1)])
    assert [(f.kind, f.subjects) for f in found] == [
        ('instance', ('instance vm-u1 (u1)',))]
    assert 'vtpm_missing (instance system metadata): its TPM off' \
        in found[0].problem
    assert audit.missing_findings([recorded('u2', K1)]) == []
