# SPDX-License-Identifier: Apache-2.0
"""The compute-hyperv port's own rules: the modules imported past nova's
refusal of eventlet, the eventlet answers they get, the check of nova's
files, and the methods nova 34 calls with ``share_info``.

The bridges are feature-detected, so each test states the rule for the nova
it runs on: on nova 34 the bridge is taken, on nova 27 (which compute-hyperv
16.0.0 was written for) it stands aside.

tests/functional/test_compute_hyperv.py runs the port's driver in nova's
services; tests/functional/test_compute_hyperv_load.py loads it as
nova-compute does.
"""

import ast
import contextlib
import importlib
import importlib.util
import inspect
import pathlib
import re
import subprocess
import sys
import threading
import time
import types

from nova.compute import manager as nova_manager
from nova import exception as nova_exception
from nova import utils as nova_utils
from nova.virt import driver as nova_driver
from oslo_config import cfg
import pytest

from vtpm_hyperv.nova import compute_hyperv
from vtpm_hyperv.nova import exception
from vtpm_hyperv import oswin

ROOT = pathlib.Path(__file__).resolve().parents[4]
SHARE_INFO = ('power_on', 'reboot', 'resume', 'resume_state_on_host_boot',
              'rescue', 'finish_migration', 'finish_revert_migration')
# what tells the two novas apart, as nova itself says it: nova 34 chooses
# eventlet or native threads (and refuses eventlet in the latter), nova 27
# runs on eventlet only
THREADED_NOVA = hasattr(nova_utils, 'concurrency_mode_threading')
# compute-hyperv 16.0.0's nova/__init__.py, as its wheel ships it (less the
# licence)
REPLACED_INIT = (
    "__import__('pkg_resources').declare_namespace(__name__)\n\n"
    "import os\n\nos.environ['EVENTLET_NO_GREENDNS'] = 'yes'\n"
    "import oslo_service  # noqa\n\nimport eventlet  # noqa\n")


def eventlet_importers(package):
    """The modules of ``package`` that import eventlet at module level."""
    root = pathlib.Path(importlib.util.find_spec(package).origin).parent
    found = set()
    for path in root.rglob('*.py'):
        if 'tests' in path.relative_to(root).parts:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = ([a.name for a in node.names]
                     if isinstance(node, ast.Import) else
                     [node.module or ''] if isinstance(node, ast.ImportFrom)
                     else [])
            if any(n.split('.')[0] == 'eventlet' for n in names):
                parts = path.relative_to(root.parent).with_suffix('').parts
                found.add('.'.join(p for p in parts if p != '__init__'))
    return found


def test_every_module_that_imports_eventlet_is_listed():
    """An os-win or compute-hyperv that imports eventlet elsewhere fails
    here, not in nova-compute."""
    assert eventlet_importers('os_win') == set(oswin.EVENTLET_IMPORTERS)
    assert eventlet_importers('os_win') | eventlet_importers(
        'compute_hyperv') == set(compute_hyperv.EVENTLET_IMPORTERS)


def test_os_win_imports_under_a_refusal_of_eventlet_and_leaves_none():
    """Where eventlet is refused (nova's native threading mode), os-win
    loads against the stand-in, which is gone afterwards; the real eventlet
    is never loaded."""
    code = '''
import sys

class Refuse:
    def find_spec(self, fullname, path, target=None):
        if fullname.startswith('eventlet'):
            raise ImportError('refused')

sys.meta_path.insert(0, Refuse())
from vtpm_hyperv import oswin
factory = oswin.load('os_win.utilsfactory')
from os_win import _utils
from os_win.utils.compute import vmutils
print(sorted(m for m in sys.modules if m.split('.')[0] == 'eventlet'))
print(_utils.eventlet.getcurrent().parent, _utils.socket.__name__)
print(vmutils.patcher.is_monkey_patched('thread'),
      vmutils.tpool.execute(lambda a, b=0: a + b, 1, b=2))
print(type(sys.meta_path[0]).__name__)
'''
    run = subprocess.run([sys.executable, '-W', 'ignore', '-c', code],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ['[]', 'None socket', 'False 3',
                                       'Refuse']


def test_the_stand_in_answers_as_unpatched_eventlet():
    modules = oswin._native_eventlet()
    assert sorted(modules) == ['eventlet', 'eventlet.patcher',
                               'eventlet.timeout', 'eventlet.tpool']
    root = modules['eventlet']
    assert root.patcher.original('threading') is sys.modules['threading']
    assert root.tpool.Proxy(ROOT) is ROOT
    assert root.timeout.with_timeout(5, lambda: 'done') == 'done'
    with pytest.raises(root.timeout.Timeout):
        root.timeout.with_timeout(0.01, time.sleep, 5)
    with pytest.raises(KeyError):
        root.timeout.with_timeout(5, {}.__getitem__, 'x')


def test_nova_files_replaced_by_compute_hyperv_are_refused(tmp_path):
    """On a nova with native threads, compute-hyperv's nova files (which
    import eventlet) are refused, naming the fix; on a nova that runs on
    eventlet only they are how compute-hyperv installs there, and pass."""
    (tmp_path / 'virt').mkdir()
    (tmp_path / '__init__.py').write_text(REPLACED_INIT)
    (tmp_path / 'virt' / '__init__.py').write_text('')
    if not THREADED_NOVA:
        assert compute_hyperv.check_nova_files(tmp_path) is None
        return
    with pytest.raises(exception.NovaFilesReplaced) as raised:
        compute_hyperv.check_nova_files(tmp_path)
    message = str(raised.value)
    assert str(tmp_path / '__init__.py') in message
    assert 'virt' not in message.split(' were ')[0]
    assert "__import__('pkg_resources').declare_namespace" in message
    assert 'pip install --force-reinstall --no-deps nova==' in message
    assert 'compute-hyperv on nova 34' in message


def test_novas_own_files_pass():
    compute_hyperv.check_nova_files()  # this environment's nova


@pytest.mark.parametrize('method', SHARE_INFO)
def test_the_methods_nova_34_calls_with_share_info_take_it(method):
    """The port's methods take every argument nova's driver interface
    names (the mixin's start hooks pass them all on): on nova 34 that
    includes share_info, which compute-hyperv 16.0.0's methods do not take
    (else the shim is moot); nova 27 names none, and the port's optional
    share_info is never passed there."""
    def params(cls):
        return set(inspect.signature(getattr(cls, method)).parameters)
    novas = params(nova_driver.ComputeDriver)
    assert ('share_info' in novas) == THREADED_NOVA
    assert 'share_info' not in params(
        compute_hyperv.hyperv_driver.HyperVDriver)
    assert novas <= params(compute_hyperv._PortedHyperVDriver)


def test_the_removed_hyperv_options_are_the_ones_compute_hyperv_reads():
    """compute-hyperv reads [hyperv] options it does not register; the
    port registers exactly those."""
    root = pathlib.Path(importlib.util.find_spec('compute_hyperv').origin)
    read = set()
    for path in root.parent.rglob('*.py'):
        if 'tests' not in path.parts:
            read.update(re.findall(
                r'CONF\.hyperv\.(\w+)', path.read_text()))
    own = {o.name for o in importlib.import_module(
        'compute_hyperv.nova.conf').hyperv_opts}
    removed = {o.name for o in compute_hyperv.REMOVED_HYPERV_OPTS}
    assert len(removed) == 18
    assert read - own == removed


def test_the_simulated_hosts_calls_are_os_wins():
    """What tools.compute_hyperv.host lets compute-hyperv call are os-win
    5.9.0's own methods (a renamed one fails here)."""
    from os_win.utils.compute import vmutils10
    from os_win.utils import hostutils10

    from tools.compute_hyperv import host
    assert [m for m in host.DEFINITION | host.SIMULATED
            if not hasattr(vmutils10.VMUtils10, m)] == []
    assert [m for m in set(host.HOST_FACTS) | host.HOST_SIMULATED
            if not hasattr(hostutils10.HostUtils10, m)] == []


def test_a_nova_that_defines_hyperv_options_keeps_its_own():
    """nova 27 and 28 define [hyperv]: the port registers the rest only."""
    conf = cfg.ConfigOpts()
    own = cfg.StrOpt('vswitch_name', default='nova-27', help="nova's")
    conf.register_opt(own, group='hyperv')
    compute_hyperv.register_removed_hyperv_opts(conf)
    conf([])
    assert conf.hyperv.vswitch_name == 'nova-27'
    assert conf.hyperv.power_state_check_timeframe == 60
    assert len(list(conf.hyperv)) == 18


class Nova27VirtAPI:
    def wait_for_instance_event(self, instance, event_names, deadline=300,
                                error_callback=None):
        raise AssertionError('not called')


class Nova34VirtAPI:
    def __init__(self, arrives):
        self.arrives = arrives
        self.waited = []

    @contextlib.contextmanager
    def wait_for_instance_event(self, instance, event_names, timeout=300,
                                error_callback=None):
        self.waited.append(timeout)
        yield
        if not self.arrives:
            raise nova_exception.InstanceEventTimeout()


def test_the_wait_is_bridged_on_nova_34_only():
    """The bridge is needed where nova's wait raises its own
    InstanceEventTimeout (nova 34), not where it takes ``deadline``."""
    novas = types.SimpleNamespace(wait_for_instance_event=(
        nova_manager.ComputeVirtAPI.wait_for_instance_event))
    assert compute_hyperv._VirtAPI.needed(novas) == hasattr(
        nova_exception, 'InstanceEventTimeout')
    assert compute_hyperv._VirtAPI.needed(Nova34VirtAPI(arrives=True))
    assert not compute_hyperv._VirtAPI.needed(Nova27VirtAPI())


def test_the_bridged_wait_times_out_as_compute_hyperv_catches():
    """nova 34's InstanceEventTimeout reaches compute-hyperv as the
    Timeout its VMOps.wait_vif_plug_events catches; nova 27's wait raises
    that very Timeout (eventlet's) itself, so there is nothing to bridge."""
    if not hasattr(nova_exception, 'InstanceEventTimeout'):
        assert nova_manager.eventlet.timeout.Timeout is (
            compute_hyperv.vmops.etimeout.Timeout)
        return
    virtapi = Nova34VirtAPI(arrives=False)
    bridged = compute_hyperv._VirtAPI(virtapi)
    with pytest.raises(compute_hyperv.vmops.etimeout.Timeout):
        with bridged.wait_for_instance_event(None, [], deadline=7):
            pass
    with bridged.wait_for_instance_event(None, [], deadline=9):
        virtapi.arrives = True
    assert virtapi.waited == [7, 9]


def test_spawn_n_runs_on_a_thread_of_its_own():
    """nova 34 has no spawn_n; compute-hyperv's calls get a thread (nova
    27 has it, and compute-hyperv keeps calling nova's own)."""
    assert hasattr(nova_utils, 'spawn_n') == (not THREADED_NOVA)
    if not THREADED_NOVA:
        # the port's driver swaps them only where spawn_n is missing
        assert compute_hyperv.eventhandler.utils is nova_utils
        assert compute_hyperv.vmops.utils is nova_utils
    ran = threading.Event()
    utils = compute_hyperv._NovaUtils()
    utils.spawn_n(ran.set)
    assert ran.wait(10)
    assert utils.get_root_helper is nova_utils.get_root_helper
