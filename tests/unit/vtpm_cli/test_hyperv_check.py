# SPDX-License-Identifier: Apache-2.0
"""vtpm-hyperv-check: its reader and comparison, and the report a host
publishes.

The recorded reads (tests/data/wmi-signatures-*.json; each says in its
``_about`` where it comes from): the sample, a read of a Windows Server 2022
host written from Microsoft's pages (never from vtpm_hyperv.wmi_schema) in
exactly the shape the check's PowerShell writes; the same read in the
shapes ConvertTo-Json writes for a collection of one, of none, and Windows
PowerShell 5.1's wrapped array; and the same host without the HGS client.
The session summary prints what the comparison found in the sample.
"""

import copy
import dataclasses
import json
import sys

import pytest

from tests.fixtures import hyperv
from tests.fixtures import paths
from vtpm_cli import hyperv_check
from vtpm_core import capabilities
from vtpm_core import exception
from vtpm_hyperv import backend
from vtpm_hyperv import fake
from vtpm_hyperv import wmi_schema

SAMPLE = paths.DATA / 'wmi-signatures-sample.json'
UNROLLED = paths.DATA / 'wmi-signatures-unrolled.json'
NO_HGS = paths.DATA / 'wmi-signatures-no-hgs-client.json'
HGS = 'Root/Microsoft/Windows/Hgs'


@pytest.fixture
def sample():
    return json.loads(SAMPLE.read_text())


def _run(path):
    lines = []
    return hyperv_check.main(['--compare', str(path)], out=lines.append), \
        lines


def test_the_table_matches_microsofts_pages(sample):
    """The sample is Microsoft's pages: no difference, one note (the class
    its page says Windows Server 2022 no longer has)."""
    code, lines = _run(SAMPLE)
    hyperv.HOST_CHECK[:] = lines
    assert code == 0
    assert lines == [
        '0 difference(s) between this host and vtpm_hyperv.wmi_schema',
        'note: root/virtualization/v2:Msvm_TPMSettingData: absent, as its '
        'page says ("End of server support: Windows Server 2016"; this host '
        'runs 10.0.20348)']


def test_every_shape_powershell_writes_reads_as_the_sample():
    """One qualifier or parameter unrolled into an object, none as null or
    left out, an array wrapped in {"value", "Count"}, methods recorded as
    their parameters alone: the same host, the same comparison (and a note
    for what that read cannot show)."""
    code, lines = _run(UNROLLED)
    assert code == 0
    assert lines[0].startswith('0 difference(s)')
    unrolled = json.loads(UNROLLED.read_text())
    shapes = json.dumps(unrolled)
    assert '"qualifiers": null' in shapes and '"Count": 3' in shapes
    assert isinstance(unrolled[HGS + ':MSFT_HgsClientConfiguration'][
        'methods']['Get'], dict)  # one parameter, unrolled
    assert any('static or not not checked' in line for line in lines)


def test_a_class_the_host_lacks_is_a_difference_and_the_read_goes_on():
    code, lines = _run(NO_HGS)
    assert code == 1
    assert lines[0] == ('3 difference(s) between this host and '
                        'vtpm_hyperv.wmi_schema')
    assert lines[1] == ('  Root/Microsoft/Windows/Hgs:'
                        'MSFT_HgsClientConfiguration: class missing on the '
                        'host (Invalid namespace )')
    # the classes after them were read and compared
    assert not any('virtualization' in line for line in lines[1:4])


def test_nothing_to_compare_exits_2(tmp_path):
    broken = tmp_path / 'broken.json'
    broken.write_text('[1, 2]')
    code, lines = _run(broken)
    assert code == 2 and lines[0].startswith('nothing to compare')
    code, _ = _run(tmp_path / 'absent.json')
    assert code == 2


@pytest.mark.parametrize('value, expected', [
    (None, []),                                  # none: null
    ({'name': 'In', 'value': 'True'},            # one, unrolled
     [{'name': 'In', 'value': 'True'}]),
    ([{'name': 'ID'}, {'name': 'In'}],           # many
     [{'name': 'ID'}, {'name': 'In'}]),
    ({'value': [{'name': 'ID'}], 'Count': 1},    # PS 5.1's wrapped array
     [{'name': 'ID'}]),
], ids=['none', 'one', 'many', 'wrapped'])
def test_items_reads_each_shape_of_a_collection(value, expected):
    assert hyperv_check.items(value) == expected


def _method(name):
    return next(m for m in wmi_schema.METHODS if m.target == name)


def _with_method(monkeypatch, target, **changes):
    methods = tuple(dataclasses.replace(m, **changes) if m.target == target
                    else m for m in wmi_schema.METHODS)
    monkeypatch.setattr(wmi_schema, 'METHODS', methods)


def _with_param(monkeypatch, target, param, **changes):
    method = _method(target)
    params = tuple(dataclasses.replace(p, **changes) if p.name == param
                   else p for p in method.params)
    _with_method(monkeypatch, target, params=params)


@pytest.mark.parametrize('break_table, words', [
    # a parameter's name
    (lambda mp: _with_param(mp, 'MSFT_HgsKeyProtector.NewByGuardians',
                            'Guardian', name='Guardians'),
     ['parameter Guardians missing on the host',
      'parameter Guardian ([in] MSFT_HgsGuardian[]) is not in the table']),
    # a parameter's type
    (lambda mp: _with_param(mp, 'MSFT_HgsKeyProtector.ConvertToByRawBytes',
                            'Bytes', cim_type='string'),
     ['parameter Bytes is [in] uint8[] on the host, [in] string in the '
      'table']),
    # a parameter's direction
    (lambda mp: _with_param(mp, 'Msvm_SecurityService.GetKeyProtector',
                            'KeyProtector', direction='in'),
     ['parameter KeyProtector is [out] uint8[] on the host, [in] uint8[] '
      'in the table']),
    # the order of the parameters
    (lambda mp: _with_method(
        mp, 'Msvm_SecurityService.SetKeyProtector',
        params=tuple(reversed(_method(
            'Msvm_SecurityService.SetKeyProtector').params))),
     ['SetKeyProtector: parameters are in the order SecuritySettingData, '
      'KeyProtector, Job on the host (ID qualifiers), Job, KeyProtector, '
      'SecuritySettingData in the table']),
    # static or not
    (lambda mp: _with_method(mp, 'Msvm_ComputerSystem.RequestStateChange',
                             static=True),
     ['RequestStateChange: not static on the host, static in the table']),
    # the return type
    (lambda mp: _with_method(mp, 'MSFT_HgsGuardian.Remove',
                             return_type='uint16'),
     ['Remove: returns uint32 on the host, uint16 in the table']),
    # a method's name
    (lambda mp: _with_method(mp, 'Msvm_SecurityService.GetKeyProtector',
                             name='ReadKeyProtector'),
     ['Msvm_SecurityService.ReadKeyProtector: method missing on the host']),
    # a property's type
    (lambda mp: mp.setattr(wmi_schema, 'CLASSES', tuple(
        dataclasses.replace(c, properties=dict(
            c.properties, AttestationSubstatus='uint32'))
        if c.name == 'MSFT_HgsClientConfiguration' else c
        for c in wmi_schema.CLASSES)),
     ['AttestationSubstatus: property is uint64 on the host, uint32 in the '
      'table']),
], ids=['name', 'type', 'direction', 'order', 'static', 'return-type',
        'method', 'property-type'])
def test_a_wrong_table_is_caught_by_the_sample(monkeypatch, sample,
                                               break_table, words):
    """The sample holds Microsoft's pages: a table that differs from them in
    a name, a type, a direction or an order is caught."""
    break_table(monkeypatch)
    found = '\n'.join(hyperv_check.compare(copy.deepcopy(sample)))
    for w in words:
        assert w in found


def test_cim_types_read_as_the_table_spells_them():
    assert hyperv_check.cim_type({'type': 'UInt8Array'}) == 'uint8[]'
    assert hyperv_check.cim_type({'type': 'InstanceArray', 'qualifiers': [
        {'name': 'EmbeddedInstance', 'value': 'MSFT_HgsGuardian'}]}) == \
        'MSFT_HgsGuardian[]'
    # one qualifier, unrolled
    assert hyperv_check.cim_type({'type': 'Instance', 'qualifiers': {
        'name': 'EmbeddedInstance', 'value': 'MSFT_HgsGuardian'}}) == \
        'MSFT_HgsGuardian'
    assert hyperv_check.cim_type({'type': 'Reference',
                                  'referenceClassName': 'CIM_ConcreteJob'}) \
        == 'REF CIM_ConcreteJob'


# --- --report: what this host publishes --------------------------------------

def _report(tmp_path, nova_conf, hv):
    """vtpm-hyperv-check --report over a simulated host; (code, lines)."""
    conf_file = tmp_path / 'nova.conf'
    conf_file.write_text(nova_conf)
    lines = []

    def simulated(conf):
        # what the compute driver loads by name, on this simulated host
        vmutils, hostutils = hv.os_win_utils()
        return backend.HyperVBackend(conf, vmutils=vmutils,
                                     hostutils=hostutils)

    code = hyperv_check.main(['--report', '--config-file', str(conf_file)],
                             out=lines.append, make_backend=simulated)
    return code, lines


def test_report_prints_what_the_host_publishes_with_novas_options(tmp_path):
    fabric = fake.Fabric('contoso-hgs')
    with fake.installed():
        hv = fake.FakeHyperVHost('hv1', fabric=fabric)
        code, lines = _report(tmp_path, '[DEFAULT]\nhost = hv1.example\n'
                              '[hyperv_vtpm]\nfabric_guardian_name = '
                              'contoso-hgs\n', hv)
        hv.close()
    assert code == 0
    assert lines[0] == 'vTPM capability report of hv1.example, measured now:'
    assert '  guarded: True' in lines
    assert '  attestation_status: Passed' in lines
    assert '  fabric_id: %s' % fabric.fabric_id in lines
    # both entries the compute publishes: the versioned one and the facts
    stats = [line for line in lines if line.startswith('stats entry ')]
    assert [line.split(' (')[0] for line in stats] == [
        'stats entry %s' % key for key in sorted(
            (capabilities.STATS_KEY, capabilities.FACTS_KEY))]
    assert lines[-1] == 'traits: %s' % ', '.join(sorted({
        'COMPUTE_SECURITY_TPM_2_0', 'COMPUTE_SECURITY_TPM_CRB',
        'COMPUTE_SECURITY_TPM_SECRET_SECURITY_USER',
        'COMPUTE_SECURITY_TPM_SECRET_SECURITY_HOST', 'CUSTOM_HGS_GUARDED',
        'CUSTOM_HGS_ATTESTATION_PASSED',
        capabilities.fabric_trait(fabric.fabric_id)}))


def test_report_reads_the_fabric_guardian_from_the_config_file(tmp_path):
    with fake.installed():
        hv = fake.FakeHyperVHost('hv1', fabric=fake.Fabric('contoso-hgs'))
        code, lines = _report(tmp_path, '[hyperv_vtpm]\nfabric_guardian_name'
                              ' = not-imported\n', hv)
        hv.close()
    # the report stands, without a fabric: keyed instances go elsewhere
    assert code == 0
    assert '  fabric_id: None' in lines
    assert not any('CUSTOM_HGS_FABRIC_' in line for line in lines)


def test_report_of_a_host_that_cannot_measure_exits_1(tmp_path):
    class Broken(backend.HyperVBackend):
        def get_capabilities(self):
            raise exception.VTPMError('WMI is not answering')

    lines = []
    code = hyperv_check.main(['--report'], out=lines.append,
                             make_backend=lambda conf: Broken(conf))
    assert code == 1
    assert lines[-1].endswith('publishes no vTPM capability report (see the '
                              'warning logged above): the scheduler refuses '
                              'it every vTPM instance')


@pytest.mark.skipif(sys.platform == 'win32', reason='the live host is this')
@pytest.mark.parametrize('argv', [[], ['--report'], ['--exercise'],
                                  ['--dump', 'x.json']],
                         ids=['compare', 'report', 'exercise', 'dump'])
def test_off_windows_a_live_check_says_so_without_a_traceback(capsys, argv):
    lines = []
    assert hyperv_check.main(argv, out=lines.append) == \
        hyperv_check.NOT_WINDOWS
    err = capsys.readouterr().err
    assert err.startswith('error: vtpm-hyperv-check reads this host\'s '
                          'WMI, through PowerShell and os-win: run it on a '
                          'Windows Server Hyper-V host')
    assert '--compare FILE' in err and 'Traceback' not in err
    assert lines == []
