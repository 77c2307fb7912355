# SPDX-License-Identifier: Apache-2.0
"""vtpm-check: the operator's dry run of the merge rules."""

import pytest

from vtpm_cli import check


def test_prints_the_decision_and_why(capsys):
    status = check.main(['-i', 'os_vtpm=optional', '-i',
                         'hw_machine_type=hyperv-gen2', '-e',
                         'os:vtpm=required'])
    out = capsys.readouterr().out
    assert status == 0
    assert out.splitlines()[0] == 'vTPM: on'
    assert 'keys: none' in out
    assert ('why: vTPM on: os_vtpm (image property) is optional, os:vtpm '
            '(flavor extra spec) is required') in out


def test_keyed_shielded_request_names_what_the_host_needs(capsys):
    key = '8F14E45F-CEEA-467A-9575-7A6C8C2B3A11'
    status = check.main(['-i', 'os_vtpm=required', '-i',
                         'hw_machine_type=hyperv-gen2', '-i',
                         'os_shielded_vm=required', '-i',
                         'os_vtpm_keys=' + key])
    out = capsys.readouterr().out
    assert status == 0
    assert 'keys: %s' % key.lower() in out
    assert 'shielded: yes' in out
    assert 'HGS guarded, attestation Passed' in out


def test_error_exits_non_zero_with_the_message(capsys):
    status = check.main(['-i', 'os_vtpm=disabled', '-e', 'os:vtpm=required'])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ''
    assert captured.err.startswith(
        "error: os:vtpm (flavor extra spec) is 'required' but os_vtpm "
        "(image property) is 'disabled'")


def test_a_value_may_contain_equals_signs(capsys):
    assert check.main(['-i', 'os_vtpm=required=yes']) == 2
    assert "'required=yes'" in capsys.readouterr().err


def test_malformed_argument_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        check.main(['-i', 'os_vtpm'])
    assert e.value.code == 2
    assert 'expected KEY=VALUE' in capsys.readouterr().err
