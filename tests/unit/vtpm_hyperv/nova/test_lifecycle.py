# SPDX-License-Identifier: Apache-2.0
"""The lifecycle decision table: each cell, and each refusal's message."""

import datetime

import pytest

from tests.fixtures import paths
from vtpm_core import capabilities
from vtpm_core import exception
from vtpm_core import objects
from vtpm_core import policy
from vtpm_hyperv.nova import lifecycle

UUID = '0b7a1c2e-5d4f-4e8a-9c3b-2f1e0d9c8b7a'
KEY = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
GEN2 = {'hw_machine_type': 'hyperv-gen2'}


def vtpm_request(image, flavor=None):
    return policy.build_request(dict(GEN2, **image), flavor or {})


NO_VTPM = vtpm_request({})
LOCAL = vtpm_request({'os_vtpm': 'required'})
KEYED = vtpm_request({'os_vtpm': 'required', 'os_vtpm_keys': KEY})
SHIELDED = vtpm_request({'os_vtpm': 'required', 'os_vtpm_keys': KEY,
                         'os_shielded_vm': 'required'})


def subject(req, fabrics=()):
    return lifecycle.Subject(uuid=UUID, request=req, fabrics=fabrics,
                             host='hv1')


def refused(operation, subj, **facts):
    with pytest.raises(exception.OperationRefused) as info:
        lifecycle.check(operation, subj, **facts)
    err = info.value
    assert err.operation == operation
    assert err.instance == UUID
    assert str(err).startswith('%s of instance %s refused: ' % (operation,
                                                                UUID))
    return str(err)


@pytest.mark.parametrize('req,kind', [
    (None, lifecycle.NONE),
    (NO_VTPM, lifecycle.NONE),
    (LOCAL, lifecycle.LOCAL),
    (KEYED, lifecycle.KEYED),
    (SHIELDED, lifecycle.KEYED),
], ids=['no-request', 'vtpm-off', 'local-key-protector', 'keys',
        'shielded'])
def test_kind_follows_the_request(req, kind):
    assert subject(req).kind == kind


# Every operation on an instance without a vTPM is none of our business.
@pytest.mark.parametrize('operation', [r.operation for r in lifecycle.RULES])
def test_no_vtpm_allows_everything(operation):
    lifecycle.check(operation, subject(NO_VTPM), new_request=NO_VTPM)


# (operation, facts, local key protector allowed?, KeyProtector allowed?)
TABLE = [
    # the image holds disks only
    (lifecycle.SNAPSHOT, {}, True, True),
    # a local key protector opens on its own host only
    (lifecycle.RESIZE, {'same_host': True}, True, True),
    (lifecycle.RESIZE, {'same_host': False}, False, True),
    (lifecycle.MIGRATE, {'same_host': False}, False, True),
    (lifecycle.LIVE_MIGRATE, {}, False, True),
    # the configuration stays on the failed host
    (lifecycle.EVACUATE, {}, False, False),
    # a new VM would start an empty vTPM
    (lifecycle.REBUILD, {}, False, False),
    (lifecycle.SHELVE, {'offload': True}, False, False),
    (lifecycle.SHELVE_OFFLOAD, {'offload': True}, False, False),
    # shelved_offload_time = -1: the VM stays on its host
    (lifecycle.SHELVE, {'offload': False}, True, True),
    # only an already offloaded instance gets here
    (lifecycle.UNSHELVE, {}, True, True),
    # same VM, same vTPM; nova would set ERROR for a refusal
    (lifecycle.RESCUE, {}, True, True),
]


@pytest.mark.parametrize(
    'operation,facts,local_ok,keyed_ok', TABLE,
    ids=['%s-%s' % (row[0].replace(' ', '-'),
                    '-'.join('%s=%s' % kv for kv in row[1].items()) or 'any')
         for row in TABLE])
def test_table(operation, facts, local_ok, keyed_ok):
    for req, ok in ((LOCAL, local_ok), (KEYED, keyed_ok),
                    (SHIELDED, keyed_ok)):
        subj = subject(req, fabrics=('fabric-a',) if req is not LOCAL else ())
        if ok:
            lifecycle.check(operation, subj, new_request=req, **facts)
        else:
            refused(operation, subj, new_request=req, **facts)


# operation -> (local key protector, HGS KeyProtector): the admin guide's
# table, which is rendered from RULES
CELLS = {
    lifecycle.SNAPSHOT: (lifecycle.ALLOWED, lifecycle.ALLOWED),
    lifecycle.RESIZE: (lifecycle.SAME_HOST, lifecycle.IN_FABRICS),
    lifecycle.MIGRATE: (lifecycle.SAME_HOST, lifecycle.IN_FABRICS),
    lifecycle.LIVE_MIGRATE: (lifecycle.REFUSED, lifecycle.IN_FABRICS),
    lifecycle.EVACUATE: (lifecycle.REFUSED, lifecycle.REFUSED),
    lifecycle.REBUILD: (lifecycle.REFUSED, lifecycle.REFUSED),
    lifecycle.SHELVE: (lifecycle.NOT_OFFLOADED, lifecycle.NOT_OFFLOADED),
    lifecycle.SHELVE_OFFLOAD: (lifecycle.REFUSED, lifecycle.REFUSED),
    lifecycle.UNSHELVE: (lifecycle.NEW_VTPM, lifecycle.NEW_VTPM),
    lifecycle.RESCUE: (lifecycle.ALLOWED, lifecycle.ALLOWED),
}


def test_every_cell_of_the_rules_is_the_documented_one():
    assert {r.operation: (r.local, r.keyed) for r in lifecycle.RULES} == \
        CELLS
    assert {row[0] for row in TABLE} == set(CELLS)


@pytest.mark.parametrize('rule', lifecycle.RULES,
                         ids=lambda r: r.operation.replace(' ', '-'))
def test_every_rule_that_can_refuse_says_why(rule):
    can_refuse = {rule.local, rule.keyed} - {
        lifecycle.ALLOWED, lifecycle.NEW_VTPM, lifecycle.IN_FABRICS}
    assert rule.why
    assert bool(rule.refusal) == bool(can_refuse)


def test_local_move_names_the_missing_keys_and_the_host():
    message = refused(lifecycle.MIGRATE, subject(LOCAL), new_request=LOCAL)
    assert 'local key protector that only host hv1 can open' in message
    assert 'os_vtpm_keys (image property) is absent' in message
    assert 'os_vtpm (image property) is required' in message
    # what to do survives nova's 255-character fault message
    assert message.index('use an image with os_vtpm_keys') < 200


def test_evacuation_names_the_host_and_fabrics():
    message = refused(lifecycle.EVACUATE,
                      subject(SHIELDED, fabrics=('fabric-a', 'dr')))
    assert 'KeyProtector fabrics: fabric-a, dr' in message
    assert 'stay on host hv1' in message
    assert 'bring host hv1 back' in message
    # what to do survives nova's 255-character fault message
    assert message.index('bring host') < 255


def test_rebuild_says_what_to_do_instead():
    message = refused(lifecycle.REBUILD, subject(
        KEYED, ('a' * 64, 'b' * 64)))
    assert 'empty vTPM' in message
    assert message.index('delete the server and boot a new one') < 220


def test_shelve_names_the_option_that_allows_it():
    message = refused(lifecycle.SHELVE, subject(LOCAL), offload=True)
    assert 'shelved_offload_time = -1' in message


@pytest.mark.parametrize('old,new_flavor,fragment', [
    # on -> off: the state would be lost
    (vtpm_request({'os_vtpm': 'optional'}, {'os:vtpm': 'required'}),
     {'os:vtpm': 'disabled'}, 'turns the vTPM off'),
    # off -> on: a resize cannot add one
    (vtpm_request({'os_vtpm': 'optional'}), {'os:vtpm': 'required'},
     'cannot add a vTPM'),
], ids=['turns-vtpm-off', 'turns-vtpm-on'])
def test_resize_that_changes_the_decision_is_refused(old, new_flavor,
                                                     fragment):
    image = dict(GEN2, os_vtpm='optional')
    new = policy.build_request(image, new_flavor)
    message = refused(lifecycle.RESIZE, subject(old), new_request=new,
                      same_host=True)
    assert fragment in message
    assert "os:vtpm (flavor extra spec) is %s" % new_flavor['os:vtpm'] \
        in message


def test_resize_to_a_conflicting_flavor_names_both_values():
    image = dict(GEN2, os_vtpm='required')
    with pytest.raises(exception.InvalidVTPMRequest) as info:
        policy.build_request(image, {'os:vtpm': 'disabled'})
    message = refused(lifecycle.RESIZE, subject(LOCAL),
                      new_request_error=info.value, same_host=True)
    assert "os:vtpm (flavor extra spec) is 'disabled'" in message
    assert "os_vtpm (image property) is 'required'" in message


def test_resize_keeping_the_decision_is_allowed():
    new = vtpm_request({'os_vtpm': 'required', 'os_vtpm_keys': KEY},
                       {'os:vtpm': 'optional'})
    lifecycle.check(lifecycle.RESIZE, subject(KEYED, ('fabric-a',)),
                    new_request=new)


def _caps(fabric, status='Passed'):
    return objects.HostCapabilities(
        vtpm_supported=True, guarded=True, attestation_status=status,
        attestation_mode='TPM', fabric_id=fabric,
        measured_at=datetime.datetime.now(datetime.timezone.utc))


@pytest.mark.parametrize('caps,fragment', [
    (_caps('fabric-b'), "fabric fabric-b is not one the instance's "
                        "KeyProtector names (fabric-a)"),
    (_caps('fabric-a', 'Expired'), 'attestation status is Expired'),
], ids=['other-fabric', 'attestation-expired'])
def test_live_migration_to_a_host_that_cannot_unwrap(caps, fragment):
    subj = subject(KEYED, ('fabric-a',))
    verdict = capabilities.satisfies(KEYED, caps, max_report_age=600,
                                     allowed_fabrics=frozenset(subj.fabrics))
    message = refused(lifecycle.LIVE_MIGRATE, subj, destination=verdict,
                      destination_host='hv9')
    assert 'destination hv9 cannot unwrap its KeyProtector' in message
    assert fragment in message


def test_live_migration_within_the_fabric_is_allowed():
    subj = subject(KEYED, ('fabric-a',))
    verdict = capabilities.satisfies(KEYED, _caps('fabric-a'),
                                     max_report_age=600,
                                     allowed_fabrics=frozenset(subj.fabrics))
    lifecycle.check(lifecycle.LIVE_MIGRATE, subj, destination=verdict)


def test_the_admin_guide_renders_the_rules_and_enforces_known_ones():
    import re
    doc = (paths.ROOT / 'doc' / 'source' / 'admin' /
           'lifecycle.rst').read_text()
    decisions, enforcement = doc.split('Where each rule is enforced')
    # the decision table is vtpm_hyperv.nova.lifecycle.RULES, rendered
    assert '.. vtpm-lifecycle-rules::' in decisions
    # the enforcement table names only operations of the decision table
    row = re.compile(r'^   \* - (.+)\n', re.M)
    known = {r.operation for r in lifecycle.RULES}
    enforced = [op for op in row.findall(enforcement) if op != 'Operation']
    assert enforced
    for op in enforced:
        assert set(op.split(', ')) <= known, op
