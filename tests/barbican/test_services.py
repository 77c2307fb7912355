# SPDX-License-Identifier: Apache-2.0
"""tools/services.py's process handling: it signals only its own servers."""

import json
import os
import socket

import pytest

from tools import services


def test_a_stale_pid_file_never_gets_a_stranger_signalled(tmp_path):
    # this very process: alive, but its cwd is not the service's directory
    (tmp_path / 'barbican').mkdir()
    (tmp_path / 'barbican' / 'gunicorn.pid').write_text(str(os.getpid()))

    assert services._our_pid(tmp_path, 'barbican') is None
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
