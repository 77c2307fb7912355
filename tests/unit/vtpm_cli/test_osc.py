# SPDX-License-Identifier: Apache-2.0
"""``openstack vtpm check`` and ``openstack vtpm audit``: the osc plugin.

python-openstackclient's own shell runs them, found through the
distribution's entry points, as ``openstack`` does; they answer as
``vtpm-check`` does, for every row of the merge table and for warnings.
"""

import contextlib
import importlib.metadata
import io
import json

from openstackclient import shell
import pytest

from tests import merge_table
from vtpm_cli import check
from vtpm_cli import cloud
from vtpm_cli import osc

STATUS = {'on': check.VALID, 'off': check.VALID, 'conflict': check.INVALID}


def run(main, argv):
    """(exit status, standard output, standard error) of one command."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def openstack(*argv):
    return run(shell.main, list(argv))


def vtpm_check(*argv):
    return run(check.main, list(argv))


def arguments(row):
    image, flavor = merge_table.request(row)
    return ([a for k, v in image.items() for a in ('-i', '%s=%s' % (k, v))]
            + [a for k, v in flavor.items()
               for a in ('-e', '%s=%s' % (k, v))])


@pytest.fixture(autouse=True)
def no_cloud(monkeypatch):
    """openstack reads OS_* and clouds.yaml; check needs neither."""
    for name in list(__import__('os').environ):
        if name.startswith('OS_'):
            monkeypatch.delenv(name)


def test_the_plugin_is_found_through_its_entry_points():
    groups = importlib.metadata.entry_points()
    (extension,) = [ep for ep in groups.select(
        group='openstack.cli.extension') if ep.name == 'vtpm']
    assert extension.load() is osc
    commands = {ep.name: ep.load()
                for ep in groups.select(group='openstack.vtpm.v1')}
    assert commands == {'vtpm_check': osc.CheckRequest,
                        'vtpm_audit': osc.AuditCloud}


@pytest.mark.parametrize('row', list(merge_table.rows()), ids=[
    merge_table.row_id(r) for r in merge_table.rows()])
def test_check_answers_as_vtpm_check_for_each_row_of_the_merge_table(row):
    argv = arguments(row)
    ours = openstack('vtpm', 'check', *argv)
    assert ours == vtpm_check(*argv)
    status, out, err = ours
    assert status == STATUS[row.outcome]
    if row.outcome == 'conflict':
        assert out == '' and err.startswith('error: ')
    else:
        assert out.startswith('vTPM: %s\n' % row.outcome) and err == ''


@pytest.mark.parametrize('argv', [
    ['-i', 'OS_VTPM=required'],
    ['--strict', '-i', 'OS:VTPM=required'],
    ['-i', 'os_vtpm_keys=8f14e45f-ceea-467a-9575-7a6c8c2b3a11 '
           '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2', '-i', 'os_vtpm=required'],
], ids=['a warning', 'strict', 'an error'])
def test_check_warns_and_refuses_as_vtpm_check(argv):
    assert openstack('vtpm', 'check', *argv) == vtpm_check(*argv)


class _Cloud:
    """An openstacksdk connection with one image and no flavor."""

    class image:
        @staticmethod
        def images():
            return [type('Image', (), {
                'id': 'i0', 'name': 'win', 'properties': {
                    'os_vtpm': 'Required', 'hw_machine_type': 'hyperv-gen2'}
            })()]

    class compute:
        @staticmethod
        def flavors(get_extra_specs):
            return []


def test_audit_reads_the_cloud_openstack_connected_to(monkeypatch):
    """The command's own connection (clouds.yaml, OS_*), not a second
    one; the report and status are vtpm-check --audit's."""
    monkeypatch.setattr(cloud.openstack, 'connect', lambda cloud: _Cloud())
    expected = vtpm_check('--audit', '--format', 'json')

    class App:
        class client_manager:
            sdk_connection = _Cloud()

    command = osc.AuditCloud(App(), None)
    monkeypatch.setattr(cloud.openstack, 'connect', None)  # not called
    parsed = command.get_parser('openstack vtpm audit').parse_args(
        ['--format', 'json'])
    status, out, err = run(command.take_action, parsed)
    assert (status, out, err) == expected
    assert status == cloud.FINDINGS
    assert json.loads(out)['findings'][0]['subjects'] == ['image win (i0)']
