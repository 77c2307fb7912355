# SPDX-License-Identifier: Apache-2.0
"""Every WMI step of every attach path, failed in every way.

For each kind of attach (owner bundle with a guardian file, raw
KeyProtector, shielding data file, no keys), a clean attach is recorded;
then each of its WMI calls in turn is made to fail in each mode that
applies to it: an exception (x_wmi), a failing return code, a failing job
(methods that answer with a job), and "applied, then failed" (the call
takes effect and then reports a failure, as a time-out after the provider
acted does). After each injection the VM is as it was and no guardian the
attach may have created is left (the host's local guardian included, on a
host that had none); or, where the backend absorbs the failure (a removal
that it retries and verifies in the store, a last step that took effect
and then reported a failure), the attach succeeded. The
session summary prints the count.
"""

import collections
import uuid

import pytest

from tests.fixtures import hyperv
from vtpm_core import exception
from vtpm_hyperv import fake
from vtpm_hyperv import wmi_schema

VM = hyperv.VM
INJECTIONS = hyperv.INJECTIONS
KINDS = ('owner-bundle', 'raw', 'pdk', 'no-keys')


def _modes(target):
    class_name, name = target.split('.')
    method = next(m for m in wmi_schema.METHODS
                  if (m.class_name, m.name) == (class_name, name))
    modes = [{'mode': 'raise'}, {'mode': 'return', 'return_code': 32768}]
    if any(p.cim_type == 'REF CIM_ConcreteJob' for p in method.outputs):
        modes.append({'mode': 'job', 'job_error': 32768})
    modes += [{'mode': 'applied', 'return_code': 32772}]
    return modes


def _setup(kind, fabric, guardians, keys):
    if kind == 'no-keys':
        host = fake.FakeHyperVHost('hv-rb-%s' % uuid.uuid4().hex[:6])
        refs = []
    else:
        host = fake.FakeHyperVHost('hv-rb-%s' % uuid.uuid4().hex[:6],
                                   fabric=fabric)
        owner = guardians['owner']
        parties = [fabric.guardian.public(), guardians['dr'].public()]
        payload = {
            'owner-bundle': lambda: None,
            'raw': lambda: fake.build_key_protector(owner, parties),
            'pdk': lambda: fake.make_shielding_data_file(owner, parties),
        }[kind]()
        if payload is None:
            refs = [keys.add(fake.export_owner_pkcs12(owner)),
                    keys.add(fake.export_guardian_file(guardians['dr']))]
        else:
            refs = [keys.add(payload)]
    host.add_vm(VM)
    return host, hyperv.vtpm_request(refs, shielded=kind in ('raw', 'pdk'))


def _steps(make_backend, kind, fabric, guardians, keys):
    """The WMI calls of a clean attach, with each call's occurrence."""
    host, req = _setup(kind, fabric, guardians, keys)
    make_backend(host).attach('clean', VM, req)
    seen = collections.Counter()
    steps = []
    for target in host.calls:
        seen[target] += 1
        steps.append((target, seen[target]))
    host.close()
    return steps


@pytest.mark.parametrize('kind', KINDS)
def test_every_failure_at_every_step_leaves_nothing_behind(
        make_backend, fabric, guardians, keys, kind, conformance):
    leftovers = []
    for target, at in _steps(make_backend, kind, fabric, guardians, keys):
        for fault in _modes(target):
            host, req = _setup(kind, fabric, guardians, keys)
            before, store = host.vm_security(VM), host.guardian_names()
            planted = host.fail(target, at=at, **fault)
            INJECTIONS['injections'] += 1
            what = '%s #%d %s' % (target, at, fault['mode'])
            try:
                make_backend(host).attach(str(uuid.uuid4()), VM, req)
                absorbed = True
            except exception.VTPMError:
                absorbed = False
            assert planted.times == 0, 'never reached: %s' % what
            # the local guardian stays with the vTPM it owns
            kept = {fake.LOCAL_GUARDIAN} if absorbed else set()
            if set(host.guardian_names()) - kept != set(store):
                leftovers.append('%s: guardians %s' % (
                    what, sorted(set(host.guardian_names()) - set(store))))
            if not absorbed and not hyperv.as_before(host, before):
                leftovers.append('%s: the VM changed' % what)
            if absorbed and not host.vm_security(VM)['TpmEnabled']:
                leftovers.append('%s: absorbed, but no vTPM' % what)
            if target == 'MSFT_HgsGuardian.Remove' and not absorbed:
                # One failed removal is retried and, verified in the
                # store, costs nothing: the attach itself succeeded.
                leftovers.append('%s: a good attach failed' % what)
            host.close()
    INJECTIONS['leftovers'] += len(leftovers)
    assert leftovers == [], '\n'.join(leftovers)
