# SPDX-License-Identifier: Apache-2.0
"""vtpm-check: the operator's dry run of the merge rules."""

import warnings

import pytest

from vtpm_cli import check
from vtpm_core import capabilities


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
    assert 'host needs: vTPM support, a guarded host in HGS mode with a ' \
        'fabric guardian, HGS attestation Passed, a fresh report\n' in out


def test_a_vtpm_without_keys_names_the_hosts_that_serve_it(capsys):
    """What compile_check asks, in its words: local mode, or a guarded,
    attested host of a fabric (vtpm_core.capabilities.requirements)."""
    assert check.main(['-i', 'os_vtpm=optional', '-i',
                       'hw_machine_type=hyperv-gen2', '-e',
                       'os:vtpm=required']) == 0
    out = capsys.readouterr().out
    assert 'host needs: %s\n' % capabilities.REQUIREMENTS_KEYLESS in out
    assert 'either HGS local mode' in out and 'a guarded host in HGS mode' \
        in out


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


# --- warnings: what would not be read as given -------------------------------

GEN2_ON = ['-i', 'os_vtpm=required', '-i', 'hw_machine_type=hyperv-gen2']
KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'

# (id, arguments, what the warning must say); each request is valid
WARNINGS = [
    ('flavor key as an image property', ['-i', 'os:vtpm=required'],
     'os:vtpm is a flavor extra spec, given as an image property: it is '
     'ignored there; give it with --extra-spec/-e (as an image property the '
     'key is os_vtpm)'),
    ('image key as a flavor extra spec', ['-e', 'os_vtpm_keys=' + KEY],
     'os_vtpm_keys is an image property, given as a flavor extra spec: it is '
     'ignored there; give it with --image-property/-i'),
    ('misspelt image key', ['-i', 'os_vtp_keys=' + KEY],
     'os_vtp_keys (image property) is not a key hyperv-vtpm reads; did you '
     'mean os_vtpm_keys?'),
    ('misspelt key of the other side', ['-e', 'os:vtpm_keys=' + KEY],
     'os:vtpm_keys (flavor extra spec) is not a key hyperv-vtpm reads; did '
     'you mean os_vtpm_keys (an image property)?'),
    ('one of ours, unlike any', ['-i', 'os_vtpm_version=2.0'],
     'os_vtpm_version (image property) is not a key hyperv-vtpm reads'),
    ('a key given twice', GEN2_ON + ['-i', 'os_vtpm=optional'],
     "os_vtpm (image property) is given 2 times ('required', 'optional'); "
     'the last one counts'),
    # keys are matched exactly: another case, or the other separator, is
    # not the key (the guides promise the warning)
    ('image key in capitals', ['-i', 'OS_VTPM=required'],
     'OS_VTPM (image property) is not a key hyperv-vtpm reads: keys are '
     'matched exactly, in lowercase with their own separator; did you mean '
     'os_vtpm?'),
    ('image key in capitals with a colon', ['-i', 'OS:VTPM=required'],
     'OS:VTPM (image property) is not a key hyperv-vtpm reads: keys are '
     'matched exactly, in lowercase with their own separator; did you mean '
     'os_vtpm?'),
    ('image key in mixed case', ['-i', 'Os_Vtpm=required'],
     'Os_Vtpm (image property) is not a key hyperv-vtpm reads: keys are '
     'matched exactly, in lowercase with their own separator; did you mean '
     'os_vtpm?'),
    ('flavor key in capitals', ['-e', 'OS:VTPM=required'],
     'OS:VTPM (flavor extra spec) is not a key hyperv-vtpm reads: keys are '
     'matched exactly, in lowercase with their own separator; did you mean '
     'os:vtpm?'),
    ('misspelt key in capitals', ['-i', 'OS_VTP_KEYS=' + KEY],
     'OS_VTP_KEYS (image property) is not a key hyperv-vtpm reads; did you '
     'mean os_vtpm_keys?'),
    ("nova's flavor key as an image property", ['-i', 'hw:tpm_version=2.0'],
     'hw:tpm_version is a flavor extra spec, given as an image property: it '
     'is ignored there; give it with --extra-spec/-e (as an image property '
     'the key is hw_tpm_version)'),
    ("nova's flavor-only key with the image's separator",
     ['-i', 'hw_tpm_secret_security=host'],
     'hw_tpm_secret_security (image property) is not a key hyperv-vtpm '
     'reads; did you mean hw:tpm_secret_security (a flavor extra spec)?'),
    ("nova's key misspelt", ['-e', 'hw:tpm_mode=tpm-crb'],
     'hw:tpm_mode (flavor extra spec) is not a key hyperv-vtpm reads; did '
     'you mean hw:tpm_model?'),
    ('--format without --audit', ['--format', 'json'],
     '--format applies to --audit only; it is ignored'),
    ('--os-cloud without --audit', ['--os-cloud', 'prod'],
     '--os-cloud applies to --audit only; it is ignored'),
]


@pytest.mark.parametrize('argv,warning', [w[1:] for w in WARNINGS],
                         ids=[w[0] for w in WARNINGS])
def test_a_key_not_read_as_given_is_a_warning_on_stderr(capsys, argv,
                                                        warning):
    assert check.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith('warning: ' + warning)
    assert captured.err.count('\n') == 1
    # the decision itself, on stdout, is as without the warning
    assert captured.out.startswith('vTPM: ')
    assert 'warning' not in captured.out


@pytest.mark.parametrize('argv,warning', [w[1:] for w in WARNINGS],
                         ids=[w[0] for w in WARNINGS])
def test_strict_makes_each_warning_an_error(capsys, argv, warning):
    assert check.main(['--strict'] + argv) == check.INVALID
    captured = capsys.readouterr()
    assert captured.err.startswith('error: ' + warning)
    assert captured.out == ''


@pytest.mark.parametrize('argv', [
    GEN2_ON + ['-e', 'os:vtpm=required', '-i', 'os_type=windows'],
    ['-i', 'hw_disk_bus=scsi', '-e', 'hw:cpu_policy=dedicated'],
    [],
], ids=['ours and nova\'s own', 'nova\'s only', 'nothing'])
def test_keys_read_as_given_and_other_services_keys_warn_of_nothing(
        capsys, argv):
    assert check.main(['--strict'] + argv) == 0
    assert capsys.readouterr().err == ''


def test_the_last_of_a_repeated_key_counts(capsys):
    assert check.main(GEN2_ON + ['-i', 'os_vtpm=disabled']) == 0
    assert capsys.readouterr().out.startswith('vTPM: off')


def test_audit_options_are_read_with_audit():
    args = check.parse_args(['--audit', '--format', 'json'])
    assert args.format == 'json' and args.ignored == []
    assert check.parse_args([]).format == 'human'


# --- absent values and key counts, as the errors say them --------------------

def test_the_why_and_the_errors_name_an_absent_value_alike(capsys):
    check.main([])
    why = capsys.readouterr().out
    assert 'os_vtpm (image property) is absent (disabled)' in why
    assert "'<absent>'" not in why
    assert check.main(['-e', 'os:vtpm=required']) == check.INVALID
    error = capsys.readouterr().err
    assert 'os_vtpm (image property) is absent:' in error
    assert check.main(['-i', 'os_vtpm=required']) == check.INVALID
    assert 'hw_machine_type (image property) is absent but' in \
        capsys.readouterr().err


def test_too_many_keys_are_counted(capsys):
    keys = ','.join('%08d-0000-4000-8000-000000000000' % n for n in range(7))
    assert check.main(GEN2_ON + ['-i', 'os_vtpm_keys=' + keys]) == \
        check.INVALID
    error = capsys.readouterr().err
    assert ': 7 keys; allowed: 1 to 6 Barbican secret UUIDs' in error
    assert 'bytes' not in error.split('allowed')[0]


def test_the_warnings_of_dependencies_are_not_shown_ours_are():
    """An [audit] install's dnspython warns (CryptographyDeprecationWarning,
    a UserWarning) on every run; the person at the terminal can act on
    none of it."""
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        with check.quiet_dependencies():
            warnings.warn_explicit('DSA is deprecated', UserWarning,
                                   'dsa.py', 14, module='dns.dnssecalgs.dsa')
            warnings.warn_explicit('Eventlet is deprecated',
                                   DeprecationWarning, 'loopingcall.py', 19,
                                   module='oslo_service.loopingcall')
            warnings.warn_explicit('ours', UserWarning, 'lint.py', 1,
                                   module='vtpm_cli.lint')
    assert [str(w.message) for w in shown] == ['ours']
