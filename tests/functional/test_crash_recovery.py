# SPDX-License-Identifier: Apache-2.0
"""A real ``kill -9`` in the middle of an attach; the next process cleans up.

A child process runs the real backend's attach of an owner bundle over a
simulated host, with its private directory under this test's. Inside the
WMI call that imports the owner's guardian from its two PFX files
(``MSFT_HgsGuardian.NewByAcceptCertificates``), the child says so and
waits; the test sends it SIGKILL. Nothing of the child's clean-up runs:
its private directory, with the PFX files whose password died with it,
survives on disk. A new process's reconciliation
(``HyperVBackend.reconcile``, what nova-compute's ``init_host`` runs)
leaves the directory empty. The simulated host lives in the child's
memory and dies with it, so what survives a process here is the disk;
the host's side (guardians, the VM) is test_crash.py's, at every WMI call.
"""

import os
import signal
import subprocess
import sys
import textwrap

from oslo_config import cfg

from vtpm_hyperv import backend
from vtpm_hyperv import fake

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

CHILD = textwrap.dedent('''
    import sys, time, uuid
    from oslo_config import cfg
    from tests.fixtures import hyperv
    from vtpm_hyperv import backend, fake

    private_dir = sys.argv[1]
    original = fake.wmi.Namespace.invoke

    def invoke(ns, class_name, method, *args, **kwargs):
        if method == 'NewByAcceptCertificates':
            print('inside', flush=True)   # the PFX files are on disk
            time.sleep(600)
        return original(ns, class_name, method, *args, **kwargs)
    fake.wmi.Namespace.invoke = invoke

    conf = cfg.ConfigOpts()
    conf([], project='vtpm-crash')
    with fake.installed():
        fabric = fake.Fabric('contoso-hgs')
        host = fake.FakeHyperVHost('hv-kill', fabric=fabric)
        host.add_vm(hyperv.VM)
        keys = hyperv.MemoryKeySource()
        refs = [keys.add(fake.export_owner_pkcs12(
            fake.make_guardian('owner')))]
        vmutils, hostutils = host.os_win_utils()
        be = backend.HyperVBackend(conf, key_source=keys, vmutils=vmutils,
                                   hostutils=hostutils)
        conf.set_override('allow_untrusted_root', True, 'hyperv_vtpm')
        conf.set_override('private_dir', private_dir, 'hyperv_vtpm')
        be.attach(str(uuid.uuid4()), hyperv.VM, hyperv.vtpm_request(refs))
''')


def test_a_killed_attach_leaves_nothing_once_the_next_process_starts(
        tmp_path):
    child = subprocess.Popen(
        [sys.executable, '-c', CHILD, str(tmp_path)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == 'inside', child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL
    (left,) = tmp_path.iterdir()
    assert left.name.startswith('vtpm-%d-' % child.pid)
    assert sorted(p.name for p in left.iterdir()) == ['encryption.pfx',
                                                      'signing.pfx']

    # the next nova-compute: init_host reconciles the host
    conf = cfg.ConfigOpts()
    conf([], project='vtpm-crash')
    with fake.installed():
        host = fake.FakeHyperVHost('hv-kill', fabric=fake.Fabric('f'))
        vmutils, hostutils = host.os_win_utils()
        be = backend.HyperVBackend(conf, vmutils=vmutils,
                                   hostutils=hostutils)
        conf.set_override('private_dir', str(tmp_path), 'hyperv_vtpm')
        done = be.reconcile()
        host.close()
    assert list(done.files) == [str(left)]
    assert list(tmp_path.iterdir()) == []
