# SPDX-License-Identifier: Apache-2.0
"""Simulated hosts, guardians, an in-memory key source and the backend."""

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
    h = fake.FakeHyperVHost('hv-%s' % uuid.uuid4().hex[:8], fabric=fabric)
    h.add_vm(VM, generation=2)
    yield h
    h.close()


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


def request(keys=(), shielded=False):
    props = {'os_vtpm': 'required', 'hw_machine_type': 'hyperv-gen2'}
    if keys:
        props['os_vtpm_keys'] = ','.join(keys)
    if shielded:
        props['os_shielded_vm'] = 'required'
    return policy.build_request(props, {})
