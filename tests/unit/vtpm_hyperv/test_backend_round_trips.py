# SPDX-License-Identifier: Apache-2.0
"""The WMI round trips of each attach path, pinned.

Each path makes the calls its end state is made of and the documented
checks ``benchmarks/bench_attach.py`` names, no more (``PATHS`` there: the
floor of issue 24 and each check's reason). On Windows each round trip is a
COM call, so one more is a regression these tests catch.
"""

import collections
import uuid

from benchmarks import bench_attach
from cryptography.hazmat.primitives.serialization import pkcs12
import pytest

from vtpm_hyperv import fake
from vtpm_hyperv import material

PATHS = {p.name: p for p in bench_attach.PATHS}


@pytest.fixture(scope='module')
def others():
    """Five guardians beside the owner (keys made once)."""
    return [fake.make_guardian('rt-%d' % i, reuse_keys=True)
            for i in range(5)]


def _attaches(path, make_backend, keys, fabric, guardians, others):
    """The host, and the round trips of a backend's first and next attach
    of ``path``."""
    refs = [keys.add(p) for p in bench_attach.payloads(
        path, fabric, guardians['owner'], others)]
    host = bench_attach.make_host(path, fabric)
    hv = make_backend(host)
    first, then = bench_attach.round_trips(hv, host, path, refs)
    for vm in ('first', 'next'):
        assert host.vm_security(vm)['TpmEnabled'], 'no vTPM on %s' % vm
    return host, hv, first, then


@pytest.mark.parametrize('name', list(PATHS))
def test_each_path_makes_its_floor_and_named_checks_only(
        name, make_backend, keys, fabric, guardians, others, conformance):
    path = PATHS[name]
    host, _, _, made = _attaches(path, make_backend, keys, fabric,
                                 guardians, others)
    assert bench_attach.verdict(path, made) is None
    expected = collections.Counter(
        c.target for c in path.end_state + path.checks)
    extra = collections.Counter(made)
    extra.subtract(expected)
    # a shielding data file may still be tried as a raw KeyProtector first
    # (until vtpm_hyperv.material tells the two apart in memory)
    assert +extra in ({}, {bench_attach.RAW_TRY.target: 1}) \
        if path.optional else +extra == {}, made
    assert not -extra, 'missing: %s' % dict(-extra)
    assert made.count('MSFT_HgsClientConfiguration.Get') == 1
    host.close()


@pytest.mark.parametrize('name, count', [
    ('no keys, HGS mode', 11), ('no keys, local mode', 10),
    ('raw KeyProtector', 10), ('owner bundle, 1 guardian', 14),
    ('owner bundle, 5 guardians', 22)])
def test_round_trips_per_path(name, count, make_backend, keys, fabric,
                              guardians, others, conformance):
    """The figures the admin guide gives."""
    host, _, _, made = _attaches(PATHS[name], make_backend, keys, fabric,
                                 guardians, others)
    assert len(made) == count, made
    host.close()


def test_removing_imported_guardians_needs_no_look_up(
        make_backend, keys, fabric, guardians, others, conformance):
    """Remove "removes a guardian from the guardian store": one call per
    guardian, and the store read once, by the measurement."""
    path = PATHS['owner bundle, 5 guardians']
    host, _, _, made = _attaches(path, make_backend, keys, fabric,
                                 guardians, others)
    assert made.count('MSFT_HgsGuardian.Remove') == 6
    assert made.count('MSFT_HgsGuardian') == 1
    assert not [n for n in host.guardian_names() if n.startswith('openstack')]
    host.close()


def test_reads_kept_for_the_process(make_backend, keys, fabric, guardians,
                                    others, conformance):
    """The first attach reads the Windows version (os-win keeps it for the
    process), the security service and the Secure Boot template's name
    (kept by the backend); the next reads none of them."""
    path = PATHS['raw KeyProtector']
    host, _, first, then = _attaches(path, make_backend, keys, fabric,
                                     guardians, others)
    once = collections.Counter(first)
    once.subtract(then)
    assert +once == {'Win32_OperatingSystem': 1, 'Msvm_SecurityService': 1,
                     'Msvm_VirtualSystemSettingData': 1}
    # another backend in the process: the version is not read again
    host.add_vm('other', generation=2)
    del host.round_trips[:]
    make_backend(host).get_capabilities()
    assert host.round_trips == ['MSFT_HgsClientConfiguration.Get',
                                'MSFT_HgsGuardian']
    host.close()


def test_periodic_report_reads_the_configuration_once(
        make_backend, host, conformance):
    hv = make_backend(host)
    hv.get_capabilities()
    for _ in range(3):
        del host.round_trips[:]
        hv.get_capabilities()
        assert collections.Counter(host.round_trips) == collections.Counter(
            c.target for c in bench_attach.REPORT)


def test_owner_bundle_keys_are_loaded_and_checked_once(
        make_backend, keys, fabric, guardians, others, monkeypatch,
        conformance):
    """cryptography checks an RSA private key as it loads it: each of the
    bundle's two files is loaded once per attach."""
    loads = []
    real = pkcs12.load_pkcs12

    def counted(data, password, *args, **kwargs):
        loads.append(len(data))
        return real(data, password, *args, **kwargs)
    monkeypatch.setattr(material.pkcs12, 'load_pkcs12', counted)
    path = PATHS['owner bundle, 1 guardian']
    refs = [keys.add(p) for p in bench_attach.payloads(
        path, fabric, guardians['owner'], others)]
    host = bench_attach.make_host(path, fabric)
    host.add_vm('vm', generation=2)
    make_backend(host).attach(str(uuid.uuid4()), 'vm',
                              bench_attach.request(path, refs))
    assert len(loads) == 2
    host.close()


@pytest.mark.parametrize('change', ['one more', 'one fewer check'])
def test_the_benchmark_fails_a_path_off_its_floor(change):
    """bench_attach exits non-zero when a path makes a round trip that is
    neither its end state's nor a named check's, or skips a check."""
    path = PATHS['owner bundle, 1 guardian']
    made = [c.target for c in path.end_state + path.checks]
    assert bench_attach.verdict(path, made) is None
    if change == 'one more':
        made.append('Msvm_SecurityService')
    else:
        made.remove(bench_attach.CURRENT_KP.target)
    assert bench_attach.verdict(path, made) is not None
