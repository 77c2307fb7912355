# SPDX-License-Identifier: Apache-2.0
"""Concurrent attaches on one host.

nova-compute builds several instances at once on one host. With the
simulator's latency on, each WMI call takes a while outside the host's
lock, so concurrent callers interleave between their calls as they do on
Windows.
"""

import concurrent.futures
import uuid

import pytest

from tests.fixtures import hyperv
from vtpm_hyperv import fake

THREADS = 8


def _run_all(attaches):
    with concurrent.futures.ThreadPoolExecutor(len(attaches)) as pool:
        futures = [pool.submit(a) for a in attaches]
        return [f.exception() for f in futures]


@pytest.mark.parametrize('latency', [0.0, 0.02],
                         ids=['no-latency', 'latency'])
def test_concurrent_attaches_without_keys_on_a_fresh_host(
        make_backend, latency, conformance):
    """Every attach succeeds, and the host ends with one local guardian
    that opens every VM."""
    host = fake.FakeHyperVHost('hv-conc-%s' % uuid.uuid4().hex[:6],
                               latency=latency)
    vms = ['vm-%d' % i for i in range(THREADS)]
    for vm in vms:
        host.add_vm(vm)
    # One backend per nova-compute, but also two of them in one process.
    backends = [make_backend(host), make_backend(host)]
    errors = _run_all([
        (lambda b, vm: lambda: b.attach(vm, vm, hyperv.vtpm_request()))(
            backends[i % 2], vm) for i, vm in enumerate(vms)])
    assert errors == [None] * THREADS
    assert host.guardian_names() == [fake.LOCAL_GUARDIAN]
    for vm in vms:
        assert host.vm_security(vm)['TpmEnabled']
        host.start_vm(vm)
    host.close()


def test_concurrent_keyed_attaches_on_a_guarded_host(make_backend, fabric,
                                                     guardians, keys,
                                                     conformance):
    host = fake.FakeHyperVHost('hv-conc-keyed', fabric=fabric, latency=0.01)
    hv = make_backend(host)
    refs = [keys.add(fake.export_owner_pkcs12(guardians['owner'])),
            keys.add(fake.export_guardian_file(guardians['dr']))]
    vms = ['vm-%d' % i for i in range(THREADS)]
    for vm in vms:
        host.add_vm(vm)
    errors = _run_all([
        (lambda vm: lambda: hv.attach(str(uuid.uuid4()), vm,
                                      hyperv.vtpm_request(refs)))(vm)
        for vm in vms])
    assert errors == [None] * THREADS
    assert host.guardian_names() == [fabric.name]
    for vm in vms:
        host.start_vm(vm)
    host.close()
