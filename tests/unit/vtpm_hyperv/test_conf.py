# SPDX-License-Identifier: Apache-2.0
"""Options: registered on the conf given, listed for the generator."""


from oslo_config import cfg
from oslo_config import generator

from tests.fixtures import paths
from vtpm_hyperv import conf as hv_conf

SAMPLE = paths.ROOT / 'etc' / 'hyperv-vtpm.conf.sample'
COMMAND = ('.venv/bin/oslo-config-generator --namespace vtpm_hyperv '
           '--namespace vtpm_filters '
           '--output-file etc/hyperv-vtpm.conf.sample')


def test_registered_on_the_conf_given_only():
    mine, other = cfg.ConfigOpts(), cfg.ConfigOpts()
    hv_conf.register_opts(mine)
    hv_conf.register_opts(mine)  # idempotent
    mine([])
    assert mine.hyperv_vtpm.allow_untrusted_root is False
    assert mine.hyperv_vtpm.guardian_name_prefix == 'openstack-vtpm-'
    assert 'hyperv_vtpm' not in other


def test_list_opts_has_our_group_and_the_key_manager_group():
    groups = {group.name: opts for group, opts in hv_conf.list_opts()}
    assert {o.name for o in groups['hyperv_vtpm']} >= {
        'fabric_guardian_name', 'guardian_name_prefix', 'local_guardian_name',
        'allow_untrusted_root', 'allow_expired'}
    assert 'vtpm_key_manager' in groups
    # Deep copies: changing the listed options changes nothing registered.
    groups['hyperv_vtpm'][0].default = 'changed'
    assert hv_conf.list_opts()[0][1][0].default is None


def test_sample_is_current(tmp_path):
    out = tmp_path / 'sample.conf'
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    conf(['--namespace', 'vtpm_hyperv', '--namespace', 'vtpm_filters',
          '--output-file', str(out)])
    generator.generate(conf)
    assert out.read_text() == SAMPLE.read_text(), (
        'etc/hyperv-vtpm.conf.sample is stale; run: ' + COMMAND)


def test_the_sample_explains_our_groups():
    """The sample prints each group's help above its options."""
    text = SAMPLE.read_text()
    for group, phrase in (('hyperv_vtpm', 'Options of the hyperv backend'),
                          ('vtpm_key_manager',
                           'How the Hyper-V vTPM backend reads')):
        section = text.split('[%s]\n' % group, 1)[1]
        assert section.startswith('# ' + phrase), group
