# SPDX-License-Identifier: Apache-2.0
"""tools.services without the services: processes, state, the command line."""

import json
import os
import socket
import subprocess
import sys

import pytest

from tools import services
from tools.services import install
from tools.services import process


def test_a_stale_pid_file_never_gets_a_stranger_signalled(tmp_path):
    # this very process: alive, but its cwd is not the service's directory
    (tmp_path / 'barbican').mkdir()
    (tmp_path / 'barbican' / 'gunicorn.pid').write_text(str(os.getpid()))

    assert process.master_pid(tmp_path / 'barbican') is None
    services.stop_service(tmp_path, 'barbican')  # must not kill us

    assert not (tmp_path / 'barbican' / 'gunicorn.pid').exists()


def test_stop_with_nothing_running_is_a_no_op(tmp_path):
    services.stop(tmp_path / 'never-started')
    services.stop(tmp_path)


def test_start_service_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        (tmp_path / 'ports.json').write_text(json.dumps(
            {'keystone': busy.getsockname()[1], 'barbican': 1}))
        (tmp_path / 'keystone').mkdir()

        with pytest.raises(services.ServiceError) as raised:
            services.start_service(tmp_path, 'keystone')

    assert 'in use' in str(raised.value)


def test_start_service_needs_a_configured_state_dir(tmp_path):
    with pytest.raises(services.ServiceError) as raised:
        services.start_service(tmp_path, 'barbican')

    assert 'start() first' in str(raised.value)


def test_the_package_imports_nothing_but_the_standard_library():
    # run.py imports it with the system python3, before any virtualenv
    code = ('import sys, tools.services, tools.services.cli; '
            'print(*sorted({m.split(".")[0] for m in sys.modules}'
            ' - set(sys.stdlib_module_names) - {"__main__"}))')
    result = subprocess.run([sys.executable, '-S', '-c', code],
                            cwd=install.ROOT, capture_output=True, text=True,
                            check=True)

    assert result.stdout.split() == ['tools']


def _cli(*args):
    return subprocess.run(
        [sys.executable, '-m', 'tools.services'] + list(args),
        cwd=install.ROOT, capture_output=True, text=True, check=False)


def test_cli_help_names_its_commands():
    result = _cli('--help')

    assert result.returncode == 0
    assert '{start,stop,env}' in result.stdout


def test_cli_env_prints_export_lines_of_the_last_start(tmp_path):
    (tmp_path / 'env.json').write_text(json.dumps(
        {'VTPM_TEST_OWNER_PASSWORD': "it's", 'VTPM_TEST_REGION': 'RegionOne'}))

    result = _cli('env', str(tmp_path))

    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "export VTPM_TEST_OWNER_PASSWORD='it'\"'\"'s'",
        'export VTPM_TEST_REGION=RegionOne']


def test_cli_env_without_a_start_is_an_error(tmp_path):
    result = _cli('env', str(tmp_path))

    assert result.returncode == 1
    assert 'start first' in result.stderr


def test_cli_refuses_an_unknown_command():
    result = _cli('restart')

    assert result.returncode == 2
    assert "invalid choice: 'restart'" in result.stderr
