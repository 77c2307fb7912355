# SPDX-License-Identifier: Apache-2.0
"""nova-compute 34 loads the install guide's driver module in its default
threading mode, in a fresh interpreter, with nothing of nova's lifted.

``tools.compute_hyperv.nova_compute`` starts as ``nova/cmd/compute.py``
does and calls nova's own ``load_compute_driver``; the guide's module names
the compute-hyperv port (``vtpm_hyperv.nova.compute_hyperv``). Unlike the
rest of the suite (``tools/simcloud/process.py`` imports os-win past nova's
guard), these run without ``OS_NOVA_DISABLE_EVENTLET_PATCHING``: nova's
default.
"""

import os
import pathlib
import subprocess
import sys

from nova import utils as nova_utils
import pytest

from tools.simcloud import guide

# nova 34 and later: native threads by default, eventlet refused; nova 27
# and 28 run nova-compute on eventlet
NATIVE = hasattr(nova_utils, 'concurrency_mode_threading')

ROOT = pathlib.Path(__file__).resolve().parents[2]
# the install guide's nova.conf names the guide's module and class
(COMPUTE_DRIVER,) = [o.values[0] for o in guide.options(guide.COMPUTE)
                     if o.name == 'compute_driver']
GUARD = ('refuses: The service started in native threading mode so it '
         'should not import eventlet')


def fresh_interpreter(args, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'PYTHONPATH')}
    env['PYTHONPATH'] = str(ROOT)
    env['PYTHONWARNINGS'] = 'ignore'
    return subprocess.run([sys.executable] + args, cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def nova_conf(tmp_path):
    conf = tmp_path / 'nova.conf'
    conf.write_text('[DEFAULT]\ntransport_url = fake:/\n'
                    'instances_path = %s\nhost = hv1\n'
                    'compute_driver = %s\n' % (tmp_path, COMPUTE_DRIVER))
    return conf


def test_load_compute_driver_loads_the_guides_module(nova_conf, tmp_path):
    run = fresh_interpreter(['-m', 'tools.compute_hyperv.nova_compute',
                             str(nova_conf)], tmp_path)
    print(run.stdout)
    assert run.returncode == 0, run.stderr[-3000:]
    found = dict(line.split(': ', 1) for line in run.stdout.splitlines()
                 if ': ' in line)
    if NATIVE:
        # nova's default mode, its guard in place before and after
        assert run.stdout.splitlines()[0] == 'eventlet guard: ' + GUARD
        assert found['eventlet guard'] == GUARD
        assert found['mixin and backend imported'] == 'True'
        assert found['eventlet loaded'] == 'False'
    else:
        assert found['eventlet loaded'] == 'True'
    assert found['compute_driver'] == COMPUTE_DRIVER == \
        'hyperv_vtpm.HyperVDriver'
    assert found['loaded'] == 'vtpm_hyperv.nova.compute_hyperv.HyperVDriver'
    assert found['mro'].split() == [
        'vtpm_hyperv.nova.compute_hyperv.HyperVDriver',
        'vtpm_hyperv.nova.driver.VTPMDriverMixin',
        'vtpm_hyperv.nova.compute_hyperv._PortedHyperVDriver',
        'compute_hyperv.nova.driver.HyperVDriver']
    # compute-hyperv's constructor: the Windows version check (over the
    # simulator), its power-state listener
    assert found['os-win calls'].split() == [
        'hostutils.check_min_windows_version',
        'hostutils.check_min_windows_version',
        'vmutils.get_vm_power_state_change_listener']


@pytest.mark.skipif(not NATIVE, reason='a nova without native threading')
def test_the_guard_refuses_os_win_imported_otherwise(tmp_path):
    """What the port's import avoids: os-win imported plainly in nova's
    default mode fails as nova-compute did."""
    run = fresh_interpreter(['-c', (
        "from nova import monkey_patch; "
        "monkey_patch.patch(backend='threading')\n"
        "import os_win")], tmp_path)
    assert run.returncode == 1
    assert ('ImportError: The service started in native threading mode so '
            'it should not import eventlet') in run.stderr
