# SPDX-License-Identifier: Apache-2.0
"""nova-compute 34's start, up to its driver, with the install guide's
driver module: ``python -m tools.compute_hyperv.nova_compute NOVA_CONF``.

In a fresh interpreter, as ``nova/cmd/compute.py`` does: nova's threading
mode first (``monkey_patch.patch(backend='threading')``: native threads
unless nova.conf or ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` says otherwise,
and from then on no eventlet import), nova's configuration, then
``nova.virt.driver.load_compute_driver``, which imports
``nova.virt.<compute_driver>`` and constructs it. Nothing of nova's guard is
lifted. Two stand-ins, both outside the product: the guide's
``nova/virt/hyperv_vtpm.py`` is read from ``doc/source/install.rst`` into a
folder added to ``nova.virt``'s package path (the same import by name,
without writing into nova's installation), and os-win's utilsfactory answers
from a simulated Hyper-V host (``tools.compute_hyperv.host``), as it answers
from Windows on a real host.

Prints what it found, one ``key: value`` a line; exits 0 when the driver
loaded.
"""

from nova import monkey_patch  # noqa: I100

# imports the standard library only, so it may come before nova's patching
from tools.simcloud import process  # noqa: I202

# nova-compute's first line: nova 34's (native threads by default); a nova
# without that mode (27, 28) patched with eventlet as the module was imported
if process.native_threading(monkey_patch):
    monkey_patch.patch(backend='threading')
elif hasattr(monkey_patch, 'patch'):
    monkey_patch.patch()

import pathlib  # noqa: E402,I100
import sys  # noqa: E402
import tempfile  # noqa: E402


def main(argv):
    from nova import config
    config.parse_args(['nova-compute', '--config-file', argv[1]])
    report('eventlet guard', _guard())

    # the product, in nova's default mode and before any test support
    from vtpm_hyperv import backend  # noqa: F401
    from vtpm_hyperv.nova import driver  # noqa: F401
    report('mixin and backend imported', 'eventlet' not in sys.modules)

    import nova.virt
    from nova.virt import driver as nova_driver

    from tools.compute_hyperv import host
    from tools.simcloud import guide
    from vtpm_hyperv import fake

    folder = tempfile.mkdtemp()
    code, _ = guide.snippet(guide.COMPUTE_DRIVER_MODULE)
    (pathlib.Path(folder) / 'hyperv_vtpm.py').write_text(code)
    nova.virt.__path__.append(folder)

    calls = []
    import nova.conf
    conf = nova.conf.CONF
    with fake.installed():
        hv = fake.FakeHyperVHost(conf.host, fabric=fake.Fabric('contoso-hgs'))
        with host.installed(hv, calls):
            loaded = nova_driver.load_compute_driver(None)
    cls = type(loaded)
    report('compute_driver', conf.compute_driver)
    report('loaded', '%s.%s' % (cls.__module__, cls.__qualname__))
    report('mro', ' '.join('%s.%s' % (c.__module__, c.__qualname__)
                           for c in cls.__mro__[:4]))
    report('eventlet loaded', 'eventlet' in sys.modules)
    report('eventlet guard', _guard())
    report('os-win calls', ' '.join(calls))
    return 0


def _guard():
    """Whether nova's refusal of eventlet is in place, first on the path."""
    import importlib.util
    try:
        importlib.util.find_spec('eventlet')
    except ImportError as e:
        return 'refuses: %s' % e
    return 'absent'


def report(key, value):
    print('%s: %s' % (key, value), flush=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv))
