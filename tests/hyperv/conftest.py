# SPDX-License-Identifier: Apache-2.0
"""Simulated hosts, guardians, an in-memory key source and the backend.

``simulator`` (every test here): ``fake.installed()`` for the test's length.

``conformance``: a test that uses it fails if it made a WMI call that
``vtpm_hyperv.wmi_schema`` does not document; the session's summary prints
how many calls those tests validated and how many were undocumented.
"""

import collections
import uuid

from oslo_config import cfg
import pytest

from vtpm_core import exception
from vtpm_core import policy
from vtpm_hyperv import backend
from vtpm_hyperv import fake
from vtpm_hyperv import secrets

VM = 'instance-00000001'


class MemoryKeySource:
    """A key source collaborator: secrets by UUID, failures on request.

    It returns what ``BarbicanKeySource`` returns (``SecretPayload``) and
    keeps the payload buffers it handed out, to check they were wiped.
    """

    def __init__(self):
        self.secrets = {}
        self.fail = {}
        self.handed_out = []

    def add(self, payload):
        ref = str(uuid.uuid4())
        self.secrets[ref] = bytes(payload)
        return ref

    def fetch(self, key_refs, auth=None):
        items = []
        for ref in key_refs:
            if ref in self.fail:
                raise self.fail[ref]
            if ref not in self.secrets:
                raise exception.KeyNotFound(ref=ref)
            payload = bytearray(self.secrets[ref])
            self.handed_out.append(payload)
            items.append(secrets.SecretPayload(ref, payload))
        return items


@pytest.fixture(autouse=True)
def simulator():
    """The simulator installed for one test, and what it changed put back."""
    with fake.installed() as wmi_module:
        yield wmi_module


@pytest.fixture(scope='session')
def guardians():
    """Owner, two additional guardians and a stranger (keys made once)."""
    return {name: fake.make_guardian(name, reuse_keys=True)
            for name in ('owner', 'dr', 'branch', 'stranger', 'owner2')}


@pytest.fixture(scope='session')
def fabric():
    return fake.Fabric('contoso-hgs', reuse_keys=True)


@pytest.fixture(scope='session')
def other_fabric():
    return fake.Fabric('fabrikam-hgs', reuse_keys=True)


@pytest.fixture
def host(fabric):
    """A guarded host in HGS mode, attested, with one Gen2 VM."""
    h = fake.FakeHyperVHost('hv-%s' % uuid.uuid4().hex[:8], fabric=fabric)
    h.add_vm(VM, generation=2)
    yield h
    h.close()


@pytest.fixture
def local_host():
    """A host in local mode (no HGS), with one Gen2 VM."""
    h = fake.FakeHyperVHost('hv-local-%s' % uuid.uuid4().hex[:8])
    h.add_vm(VM, generation=2)
    yield h
    h.close()


CONFORMANCE = collections.Counter()
HOST_CHECK = []  # what vtpm-hyperv-check found in the recorded sample


@pytest.fixture
def conformance():
    """Count this test's WMI calls; fail it on an undocumented one."""
    before = collections.Counter(fake.STATS)
    yield
    delta = collections.Counter(fake.STATS)
    delta.subtract(before)
    CONFORMANCE['tests'] += 1
    CONFORMANCE['validated'] += delta['validated']
    CONFORMANCE['undocumented'] += delta['undocumented']
    assert delta['undocumented'] == 0, (
        'undocumented WMI calls: %s' % fake.wmi.UNDOCUMENTED[
            -delta['undocumented']:])


def pytest_terminal_summary(terminalreporter):
    if HOST_CHECK:
        terminalreporter.write_line(
            'vtpm-hyperv-check --compare tests/data/wmi-signatures-sample'
            '.json: %d difference(s)' % len(HOST_CHECK))
        for line in HOST_CHECK:
            terminalreporter.write_line('  ' + line)
    from tests.hyperv import test_rollback
    if test_rollback.INJECTIONS['injections']:
        terminalreporter.write_line(
            'rollback: %(injections)d faults injected at every WMI step of '
            'every attach path, %(leftovers)d leftovers'
            % test_rollback.INJECTIONS)
    if CONFORMANCE['tests']:
        terminalreporter.write_line(
            'WMI conformance: %(tests)d tests, %(validated)d WMI calls '
            'validated against vtpm_hyperv.wmi_schema, %(undocumented)d '
            'undocumented' % CONFORMANCE)


@pytest.fixture
def conf():
    c = cfg.ConfigOpts()
    c([], project='vtpm-test')
    return c


@pytest.fixture
def keys():
    return MemoryKeySource()


@pytest.fixture
def make_backend(conf, keys):
    def make(h, **overrides):
        for name, value in dict({'allow_untrusted_root': True},
                                **overrides).items():
            conf.set_override(name, value, group='hyperv_vtpm')
        vmutils, hostutils = h.os_win_utils()
        return backend.HyperVBackend(conf, key_source=keys, vmutils=vmutils,
                                     hostutils=hostutils)
    # Options are registered by the backend; overrides need them first.
    from vtpm_hyperv import conf as hv_conf
    hv_conf.register_opts(conf)
    return make


@pytest.fixture
def hv(make_backend, host):
    return make_backend(host)


@pytest.fixture
def local_hv(make_backend, local_host):
    return make_backend(local_host)


def as_before(host, before, vm=VM):
    """The VM as it was: flags and, where it had one, its key protector.

    No documented call removes a key protector or a security policy, nor
    reads a policy back, so a VM that had none may keep the ones an undone
    attach set; with its TPM, shielding and encryption off, Hyper-V uses
    them for nothing.
    """
    now = host.vm_security(vm)
    for blob in ('KeyProtector', 'SecurityPolicy'):
        if not before[blob]:
            now[blob] = b''
    return now == before


def request(keys=(), shielded=False):
    props = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
    if keys:
        props['os_vtpm_keys'] = ','.join(keys)
    if shielded:
        props['os_shielded_vm'] = 'required'
    return policy.build_request(props, {})
