# SPDX-License-Identifier: Apache-2.0
"""os-win as the backend uses it: its utils, and the WMI connections in them.

os-win's public calls cover what it knows of a VM and of the host
(``VMUtils10``: a VM's generation, id and existence; ``HostUtils10``: the
Windows version, whether the host is guarded). It has none for the HGS
guardian store and KeyProtectors, for ``Msvm_SecurityService``'s key
protector methods, nor for reading a shielding data file: for those the
backend talks WMI (``vtpm_hyperv.keyprotector``) through the connections
os-win opened, the same PyMI objects, and waits on Hyper-V's jobs with
os-win's own job utils. os-win keeps those in private attributes; this
module is the one place that reads them (os-win 5.9.0's names), so that an
os-win release that renames one breaks here alone.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types

# os-win 5.9.0's modules that import eventlet when they are imported (the
# package itself, ``from eventlet import patcher``, among them); every other
# os-win module imports eventlet only through these.
# tests/unit/vtpm_hyperv/test_oswin.py reads os-win's sources against it.
EVENTLET_IMPORTERS = (
    'os_win',
    'os_win._utils',
    'os_win.utils.compute.clusterutils',
    'os_win.utils.compute.vmutils',
    'os_win.utils.io.ioutils',
    'os_win.utils.io.namedpipe',
    'os_win.utils.network.networkutils',
)


def load(name: str, importers=EVENTLET_IMPORTERS):
    """Import module ``name`` of os-win (or of a library built on it) the
    way this process allows; the module.

    os-win imports eventlet when it is imported, and only uses it where
    eventlet has patched the process or the caller runs in a green thread.
    nova-compute 34 runs on native threads by default, and from its first
    line (``nova.monkey_patch.patch``) refuses any import of eventlet
    ("The service started in native threading mode so it should not import
    eventlet"). So, unless the process has eventlet already (nova's
    ``[DEFAULT] concurrency_backend = eventlet``), os-win's modules that
    import it, ``importers``, are imported against ``_native_eventlet()``:
    the few names they take from eventlet, answering as eventlet answers
    when nothing is patched, which is what native threading is. Nothing of
    nova's is lifted, the real eventlet is never loaded, and the stand-in is
    gone from ``sys.modules`` when this returns (the modules keep the names
    they bound).
    """
    module = sys.modules.get(name)
    if module is not None:
        return module
    if 'eventlet' in sys.modules:
        return importlib.import_module(name)
    with _IMPORT_LOCK:
        standin = _native_eventlet()
        sys.modules.update(standin)
        try:
            for importer in importers + (name,):
                importlib.import_module(importer)
        finally:
            for key in standin:
                sys.modules.pop(key, None)
    return sys.modules[name]


_IMPORT_LOCK = threading.Lock()


class _Timeout(Exception):
    """``eventlet.timeout.Timeout``: the time limit passed."""


def _with_timeout(seconds, function, *args, **kwargs):
    """``eventlet.timeout.with_timeout`` on a native thread: ``function``'s
    result, or ``_Timeout`` after ``seconds`` (it runs on in its thread)."""
    outcome = {}

    def call():
        try:
            outcome['result'] = function(*args, **kwargs)
        except BaseException as e:  # handed to the caller below
            outcome['error'] = e

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Timeout(seconds)
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result']


def _native_eventlet():
    """Modules named as eventlet's, with what os-win 5.9.0 and
    compute-hyperv 16.0.0 take from them, answering as eventlet does in a
    process it has not patched, called from a native thread:

    * ``patcher.original(name)``: the module itself (nothing is patched);
      ``patcher.is_monkey_patched(name)``: False;
    * ``tpool.execute(f, ...)``: ``f(...)`` in the calling thread, and
      ``tpool.Proxy(obj)``: ``obj``, as ``nova.utils.tpool_wrap`` does in
      native threading mode;
    * ``getcurrent().parent``: None (a native thread is no green thread;
      os-win then calls directly); ``import_patched(name)``: the module;
    * ``timeout.Timeout`` and ``timeout.with_timeout``.
    """
    def module(name, **names):
        m = types.ModuleType(name, '%s as eventlet answers in a process it '
                                   'has not patched (vtpm_hyperv.oswin)'
                             % name)
        m.__path__ = []  # a package: any other submodule is looked up
        m.__dict__.update(names)
        return m

    patcher = module('eventlet.patcher', original=importlib.import_module,
                     is_monkey_patched=lambda name: False)
    tpool = module('eventlet.tpool',
                   execute=lambda f, *a, **kw: f(*a, **kw),
                   Proxy=lambda obj, autowrap=(), **kw: obj)
    timeout = module('eventlet.timeout', Timeout=_Timeout,
                     with_timeout=_with_timeout)
    root = module('eventlet', patcher=patcher, tpool=tpool, timeout=timeout,
                  getcurrent=lambda: types.SimpleNamespace(parent=None),
                  import_patched=importlib.import_module)
    return {m.__name__: m for m in (root, patcher, tpool, timeout)}


class OsWin:
    """os-win's utils for this Hyper-V host.

    :param vmutils: os-win's ``VMUtils10``; default: os-win's utilsfactory
        for this Windows host, made on first use (so the backend loads
        anywhere, and runs on Windows).
    :param hostutils: os-win's ``HostUtils10``; same default.
    """

    def __init__(self, vmutils=None, hostutils=None):
        self._vmutils = vmutils
        self._hostutils = hostutils

    @property
    def vmutils(self):
        if self._vmutils is None:
            self._vmutils = load('os_win.utilsfactory').get_vmutils()
        return self._vmutils

    @property
    def hostutils(self):
        if self._hostutils is None:
            self._hostutils = load('os_win.utilsfactory').get_hostutils()
        return self._hostutils

    # -- os-win's private attributes ------------------------------------------
    @property
    def virt(self):
        """``root/virtualization/v2`` (``BaseUtilsVirt._conn``)."""
        return self.vmutils._conn

    @property
    def msps(self):
        """``root/msps`` (``VMUtils10._conn_msps``)."""
        return self.vmutils._conn_msps

    @property
    def hgs(self):
        """``Root/Microsoft/Windows/Hgs`` (``HostUtils10._conn_hgs``)."""
        return self.hostutils._conn_hgs

    @property
    def jobutils(self):
        """os-win's ``JobUtils`` that waits on Hyper-V's jobs
        (``VMUtils._jobutils``)."""
        return self.vmutils._jobutils
