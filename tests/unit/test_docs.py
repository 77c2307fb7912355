# SPDX-License-Identifier: Apache-2.0
"""What the documentation tells an operator to write stays true.

* every ``enabled_filters`` example keeps nova's default filters (read from
  nova's own option, ``nova.conf.scheduler``) and adds ``VTPMFilter``;
* the install guide's configuration blocks are there, by name, for
  ``tools.simcloud.guide`` (which configures the in-process cloud from them).

The documentation build itself checks that the release notes are headed
with ``setup.cfg``'s version (``doc/source/_ext/release_version.py``).
"""

import pathlib
import re

from nova.conf import scheduler as scheduler_conf
import pytest

from tools.simcloud import guide

ROOT = pathlib.Path(__file__).resolve().parents[2]
# Where an operator may copy an enabled_filters line from.
DOCUMENTS = sorted([ROOT / 'README.md', *(ROOT / 'doc').rglob('*.rst'),
                    *(p for p in (ROOT / 'etc').rglob('*') if p.is_file())])
ENABLED_FILTERS = re.compile(r'^\s*enabled_filters\s*=\s*(\S*)\s*$', re.M)


def nova_default_filters():
    """nova's own default, as nova.conf.scheduler declares it."""
    (opt,) = [o for o in scheduler_conf.filter_scheduler_opts
              if o.name == 'enabled_filters']
    return list(opt.default)


def check_filters(listed):
    """Why ``listed`` is not nova's defaults plus VTPMFilter, or None."""
    wanted = nova_default_filters() + ['VTPMFilter']
    if listed == wanted:
        return None
    dropped = [f for f in nova_default_filters() if f not in listed]
    return ('%s; wanted %s%s' % (','.join(listed), ','.join(wanted),
                                 ' (drops nova\'s %s)' % ', '.join(dropped)
                                 if dropped else ''))


def documented_filter_lists():
    for path in DOCUMENTS:
        text = path.read_text(errors='replace')
        for match in ENABLED_FILTERS.finditer(text):
            line = text.count('\n', 0, match.start()) + 1
            yield ('%s:%d' % (path.relative_to(ROOT), line),
                   match.group(1).split(','))


def test_every_enabled_filters_example_keeps_novas_defaults():
    found = dict(documented_filter_lists())
    # the README, the install guide and the scheduling guide at least
    assert {where.split(':')[0] for where in found} >= {
        'README.md', 'doc/source/install.rst',
        'doc/source/admin/scheduling.rst'}
    wrong = {where: check_filters(listed) for where, listed in found.items()
             if check_filters(listed)}
    assert wrong == {}


@pytest.mark.parametrize('listed', [
    # the examples this test was written against: three of nova's dropped
    ['ComputeFilter', 'ImagePropertiesFilter', 'VTPMFilter'],
    # VTPMFilter alone
    ['VTPMFilter'],
    # nova's defaults without ours
    nova_default_filters(),
], ids=['three-dropped', 'vtpm-alone', 'no-vtpm-filter'])
def test_the_check_refuses_a_list_that_drops_a_filter(listed):
    assert check_filters(listed) is not None


def test_novas_defaults_are_read_from_nova():
    """Not a copy: what nova 34 declares (five filters, ComputeFilter
    first)."""
    defaults = nova_default_filters()
    assert defaults[0] == 'ComputeFilter' and len(defaults) == 5


def test_the_scheduler_block_the_tests_run_is_the_documented_list():
    (enabled,) = [o for o in guide.options(guide.SCHEDULER)
                  if o.name == 'enabled_filters']
    assert check_filters(enabled.values[-1].split(',')) is None


@pytest.mark.parametrize('name,groups', [
    (guide.SCHEDULER, {'filter_scheduler', 'vtpm_filter'}),
    (guide.COMPUTE, {'DEFAULT', 'hyperv_vtpm', 'vtpm_key_manager',
                     'service_user'}),
])
def test_the_guides_blocks_are_found_by_name(name, groups):
    assert {o.group for o in guide.options(name)} == groups


def test_a_missing_block_is_an_error():
    with pytest.raises(guide.GuideError):
        guide.snippet('no-such-block')


def test_a_replacement_the_guide_no_longer_has_is_an_error():
    with pytest.raises(guide.GuideError):
        guide.apply(lambda *a: None, guide.COMPUTE, None,
                    replace={('service_user', 'password'): ('other', 'x')})


def test_lines_read_are_named_as_the_guide_numbers_them():
    applied = guide.options(guide.SCHEDULER)
    first = applied[0].lines[0]
    # two available_filters lines, enabled_filters, then two options
    # after the [vtpm_filter] header and its comments
    assert guide.lines_read(applied).startswith('%d-%d, ' % (first,
                                                             first + 2))
    code, start = guide.snippet(guide.SCHEDULER)
    text = guide.GUIDE.read_text().splitlines()
    for option in applied:
        for number in option.lines:
            assert text[number - 1].strip().startswith(option.name + ' = ')


# --- statements a reader acts on ---------------------------------------------

def _rst(path):
    return (ROOT / 'doc' / 'source' / path).read_text()


def test_the_251_byte_link_lands_on_what_nova_keeps_of_a_value():
    """:ref:`vtpm-copied-values` (the key list's limit) names the section
    that explains it, not the one before it."""
    lines = _rst('user/index.rst').splitlines()
    label = lines.index('.. _vtpm-copied-values:')
    heading = next(line for line in lines[label + 1:] if line.strip())
    assert heading == 'What nova keeps of a value'


def test_the_install_guide_says_what_a_distributions_python_refuses():
    text = _rst('install.rst')
    assert 'externally-managed-environment' in text
    assert '--break-system-packages' in text
    # and the user guide, where a tenant installs vtpm-check
    assert 'externally-managed-environment' in _rst('user/index.rst')


def test_reauthorization_is_said_to_happen_at_power_on_not_while_running():
    """The KeyProtector of a running VM cannot change (Windows: security
    settings change only while the VM is off); the compute applies it as
    nova powers the instance on (vtpm_hyperv.nova.compute.power_on)."""
    text = _rst('admin/notifications.rst')
    assert "a running instance's KeyProtector" not in text
    assert 'as nova powered it on' in text


def test_the_compared_sample_is_said_to_be_written_from_the_pages():
    """Not read on a host, and not generated from the table it checks."""
    text = ' '.join(_rst('admin/hgs.rst').split())
    assert ("a Windows Server 2022 host written from Microsoft's pages, not "
            'from the table') in text


def test_the_hgs_guide_says_which_hosts_serve_a_vtpm_without_keys():
    """The admin guide quotes the scheduler's own words
    (``vtpm_core.capabilities.REQUIREMENTS_KEYLESS``, which vtpm-check
    prints): the documents, the filter and vtpm-check say the same."""
    from vtpm_core import capabilities
    text = ' '.join((ROOT / 'doc/source/admin/hgs.rst').read_text().split())
    assert capabilities.REQUIREMENTS_KEYLESS in text
