# SPDX-License-Identifier: Apache-2.0
"""HyperVBackend.reconcile and vm_security over the simulator: what dead
calls left goes, what running calls hold stays."""

import os
import subprocess
import sys
import uuid

from vtpm_hyperv import backend
from vtpm_hyperv import fake
from vtpm_hyperv import reconcile

PREFIX = 'openstack-vtpm-'  # [hyperv_vtpm] guardian_name_prefix


def _dead_pid():
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


def _leave(host, guardians, uuid_, private=True):
    """Guardians an attach of instance ``uuid_`` imported and left."""
    owner = guardians['owner'] if private else guardians['owner'].public()
    # the owner last in the store: the reconciliation still takes it first
    host.import_guardian(guardians['dr'].public(),
                         '%s%s-dr' % (PREFIX, uuid_))
    host.import_guardian(owner, '%s%s-owner' % (PREFIX, uuid_))


def test_leftover_guardians_go_owner_first_running_attaches_keep_theirs(
        make_backend, conf, keys, host, guardians, tmp_path, conformance):
    dead, running = str(uuid.uuid4()), str(uuid.uuid4())
    _leave(host, guardians, dead)
    _leave(host, guardians, running)
    make_backend(host, private_dir=str(tmp_path))  # the options
    vmutils, hostutils = host.os_win_utils()
    hv = backend.HyperVBackend(conf, key_source=keys, vmutils=vmutils,
                               hostutils=hostutils, host_name=host.name)
    # the backend's attach registers so (HyperVBackend.attach)
    with reconcile.attaching(host.name, running):
        host.calls.clear()
        done = hv.reconcile()
    assert set(done.guardians) == {'%s%s-owner' % (PREFIX, dead),
                                   '%s%s-dr' % (PREFIX, dead)}
    # the owner's private signing key went first
    assert done.guardians[0] == '%s%s-owner' % (PREFIX, dead)
    assert sorted(n for n in host.guardian_names()
                  if n.startswith(PREFIX)) == [
        '%s%s-dr' % (PREFIX, running), '%s%s-owner' % (PREFIX, running)]
    # the fabric's guardian is not ours
    assert host.fabric.name in host.guardian_names()


def test_private_directories_of_dead_calls_go_live_ones_stay(
        make_backend, host, tmp_path):
    dead = tmp_path / ('vtpm-%d-abcd1234' % _dead_pid())
    live_other = tmp_path / ('vtpm-%d-abcd1234' % os.getppid())
    mine_orphan = tmp_path / ('vtpm-%d-orphan00' % os.getpid())
    not_ours = tmp_path / 'vtpm-notours'
    for d in (dead, live_other, mine_orphan, not_ours):
        d.mkdir()
        (d / 'signing.pfx').write_bytes(b'\x30\x00')
    hv = make_backend(host, private_dir=str(tmp_path))
    with reconcile.private_files(str(tmp_path)) as running:
        done = hv.reconcile()
        assert os.path.isdir(running.path)
    assert sorted(done.files) == sorted([str(dead), str(mine_orphan)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live_other.name, not_ours.name])


def test_it_is_idempotent_and_cheap_when_there_is_nothing(
        make_backend, host, guardians, tmp_path, conformance):
    _leave(host, guardians, str(uuid.uuid4()))
    hv = make_backend(host, private_dir=str(tmp_path))
    assert hv.reconcile().guardians
    host.calls.clear()
    again = hv.reconcile()
    assert (again.guardians, again.files) == ((), ())
    # one enumeration of the guardian store, no method call
    assert host.calls == []


def test_vm_security_reads_what_the_vm_has(make_backend, host, keys,
                                           guardians, fabric, conformance):
    from tests.fixtures import hyperv
    hv = make_backend(host)
    assert hv.vm_security('i', hyperv.VM).tpm is False
    ref = keys.add(fake.build_key_protector(guardians['owner'],
                                            [fabric.guardian.public()]))
    hv.attach('i', hyperv.VM, hyperv.vtpm_request([ref], shielded=True))
    read = hv.vm_security('i', hyperv.VM)
    assert (read.exists, read.off, read.tpm, read.shielded, read.encrypted,
            read.key_protector) == (True, True, True, True, True, True)
    assert tuple(read.fabrics) == (fabric.fabric_id,)
    assert hv.vm_security('i', 'no-such-vm').exists is False
