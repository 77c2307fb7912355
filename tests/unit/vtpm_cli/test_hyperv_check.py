# SPDX-License-Identifier: Apache-2.0
"""vtpm-hyperv-check: its comparison, and the report a host publishes.

The sample (tests/data/wmi-signatures-sample.json) is in the format the
live read writes; it is synthetic (see its ``_about``), with three
deliberate deviations. The session summary prints what the comparison
found, as an operator would see it.
"""

import copy
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

SAMPLE = paths.DATA / 'wmi-signatures-sample.json'
HGS = 'Root/Microsoft/Windows/Hgs'


@pytest.fixture
def sample():
    return json.loads(SAMPLE.read_text())


def test_the_recorded_sample_shows_its_three_deviations(sample):
    found = hyperv_check.compare(sample)
    hyperv.HOST_CHECK[:] = found
    assert len(found) == 3, found
    assert any('AttestationSubstatus: property is uint32 on the host, '
               'uint64 in the table' in line for line in found)
    assert any('Remove: parameter Force ([in] boolean) is not in the table'
               in line for line in found)
    assert any('RestoreLastKnownGoodKeyProtector: method missing' in line
               for line in found)


def _method(live, where, name):
    return {p['name']: p for p in live[where]['methods'][name]}


@pytest.mark.parametrize('mutate, words', [
    # a parameter renamed on the host: the table's is missing, the host's
    # is unknown
    (lambda live: _method(live, HGS + ':MSFT_HgsKeyProtector',
                          'NewByGuardians')['Guardian'].update(
                              name='Guardians'),
     ['parameter Guardian missing', 'parameter Guardians']),
    # another CIM type
    (lambda live: _method(live, HGS + ':MSFT_HgsKeyProtector',
                          'ConvertToByRawBytes')['Bytes'].update(
                              type='String'),
     ['parameter Bytes is [in] string on the host, [in] uint8[]']),
    # another direction
    (lambda live: _method(live, HGS + ':MSFT_HgsGuardian', 'Import')[
        'Path']['qualifiers'].__setitem__(0, {'name': 'Out',
                                              'value': 'True'}),
     ['parameter Path is [out] string']),
    # a class the host lacks (a Windows feature not installed)
    (lambda live: live.pop('root/msps:Msps_ProvisioningFileProcessor'),
     ['Msps_ProvisioningFileProcessor: class missing']),
], ids=['renamed', 'type', 'direction', 'class'])
def test_each_kind_of_difference_is_reported(sample, mutate, words):
    live = copy.deepcopy(sample)
    mutate(live)
    found = '\n'.join(hyperv_check.compare(live))
    for w in words:
        assert w in found


def test_cim_types_read_as_the_table_spells_them():
    assert hyperv_check.cim_type({'type': 'UInt8Array'}) == 'uint8[]'
    assert hyperv_check.cim_type({'type': 'InstanceArray', 'qualifiers': [
        {'name': 'EmbeddedInstance', 'value': 'MSFT_HgsGuardian'}]}) == \
        'MSFT_HgsGuardian[]'
    assert hyperv_check.cim_type({'type': 'Reference',
                                  'referenceClassName': 'CIM_ConcreteJob'}) \
        == 'REF CIM_ConcreteJob'


def test_the_console_script_prints_and_fails_on_differences(tmp_path,
                                                            sample):
    lines = []
    assert hyperv_check.main(['--compare', str(SAMPLE)], out=lines.append) == 1
    assert lines[0].startswith('3 difference(s)')
    for where, cls in sample.items():
        if where.startswith('_'):
            continue
        if 'MSFT_HgsClientConfiguration' in where:
            cls['properties']['AttestationSubstatus']['type'] = 'UInt64'
        if 'MSFT_HgsGuardian' in where:
            cls['methods']['Remove'] = cls['methods']['Remove'][:1]
    method = [m for m in hyperv_check.wmi_schema.METHODS
              if m.name == 'RestoreLastKnownGoodKeyProtector'][0]
    live = json.loads(json.dumps(sample))
    live['root/virtualization/v2:Msvm_SecurityService']['methods'][
        method.name] = copy.deepcopy(live[
            'root/virtualization/v2:Msvm_SecurityService']['methods'][
                'ModifySecuritySettings'])
    clean = tmp_path / 'clean.json'
    clean.write_text(json.dumps(live))
    lines.clear()
    assert hyperv_check.main(['--compare', str(clean)], out=lines.append) == 0
    assert lines == ['0 difference(s) between this host and '
                     'vtpm_hyperv.wmi_schema']


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
        'COMPUTE_SECURITY_TPM_SECRET_SECURITY_USER', 'CUSTOM_HGS_GUARDED',
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
