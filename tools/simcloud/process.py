# SPDX-License-Identifier: Apache-2.0
"""Make this process ready for nova's in-process services; once, first.

nova's test packages decide the threading mode when imported. On nova 34,
with ``OS_NOVA_DISABLE_EVENTLET_PATCHING=1`` native threads, and from then
on they refuse any eventlet import, failing outright if eventlet is loaded
already. os-win imports eventlet at import time (it only calls it from
inside a green thread), and so, through oslo.messaging, does
oslo.versionedobjects. So nova's test packages come first, and os-win
comes in past nova's guard. nova 27 and 28 have one mode, eventlet, and no
guard.
"""

import contextlib
import importlib
import inspect
import os
import sys

_PASTE = os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini')


def prepare():
    """Set nova's threading mode and import os-win; idempotent.

    * nova's threading mode (``choose_threading_mode``);
    * ``[wsgi] api_paste_config`` is the file a nova wheel ships
      (``<sys.prefix>/etc/nova/api-paste.ini``): the default path exists
      only in a source tree (``OS_<GROUP>__<OPT>`` beats the ConfFixture's
      ``set_default``);
    * nova's test packages, then os-win.
    """
    choose_threading_mode()
    if os.path.exists(_PASTE):
        os.environ.setdefault('OS_WSGI__API_PASTE_CONFIG', _PASTE)
    importlib.import_module('nova.tests.functional')  # first: sets the mode
    importlib.import_module('nova.test')  # imports nova.tests.unit
    import_os_win()


def choose_threading_mode():
    """Native threads where nova has them, else eventlet, unless
    ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` says; before nova's test packages.

    nova 34: native threads, not eventlet: the same process talks to
    Keystone, Barbican and Glance over real sockets, which eventlet would
    patch. nova 27 and 28 run on eventlet only, as their nova-compute does:
    their RPC servers use oslo.messaging's eventlet executor, which on
    native threads never serves a call (a build waits in scheduling
    forever). Importing their ``nova.monkey_patch`` patches, unless the
    environment says not to.
    """
    from nova import monkey_patch
    if native_threading(monkey_patch):
        os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')


def native_threading(monkey_patch):
    """Whether this nova can run its services on native threads: its
    ``nova.monkey_patch.patch`` takes a backend (nova 34)."""
    patch = getattr(monkey_patch, 'patch', None)
    return (patch is not None
            and 'backend' in inspect.signature(patch).parameters)


def import_os_win():
    """Import os-win where nova runs on native threads.

    Importing eventlet patches nothing, so nova's guard is lifted for
    os-win's modules and put back. Call it after nova has set its threading
    mode; idempotent.
    """
    guards = [f for f in sys.meta_path
              if type(f).__name__ == 'PoisonEventletImport']
    with contextlib.ExitStack() as stack:
        for guard in guards:
            sys.meta_path.remove(guard)
            stack.callback(sys.meta_path.insert, 0, guard)
        for name in ('eventlet', 'eventlet.tpool', 'os_win',
                     'os_win.utils.compute.vmutils10',
                     'os_win.utils.hostutils10', 'os_win.utilsfactory'):
            importlib.import_module(name)
