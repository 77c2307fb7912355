# SPDX-License-Identifier: Apache-2.0
"""Re-authorization for another fabric, by the owner, through nova's API.

The cloud of ``test_end_to_end``: nova's own services, the real Keystone and
Barbican, simulated Hyper-V hosts in fabrics A and B. The tenant's own
machine is a simulated Windows host too (local mode, the owner's guardian
with its private keys): its KeyProtectors are made and re-granted there
through the WMI methods that New-HgsKeyProtector, Grant- and
Revoke-HgsKeyProtectorAccess call, stored in Barbican by the owner, and
named in server metadata while the server is stopped; the next start
applies them.
"""

import base64
import json

from nova.tests.functional.api import client as nova_client

from tests.functional import test_end_to_end as e2e
from tests import notification_samples as samples
from tests import realservices
from vtpm_core import constants
from vtpm_hyperv import fake

pytestmark = e2e.pytestmark
KEY = constants.METADATA_KEYPROTECTOR
STATUS = constants.METADATA_KEYPROTECTOR_STATUS


class TenantMachine:
    """The tenant's Windows machine: its HGS client, as the cmdlets use it.

    Its guardian store holds the owner (with private keys) and the public
    guardians of the fabrics, as Import-HgsGuardian puts them there.
    """

    def __init__(self, owner, *guardians):
        self.host = fake.FakeHyperVHost('tenant-pc')
        self.host.import_guardian(owner, 'owner')
        for g in guardians:
            self.host.import_guardian(g.public(), g.name)
        self._kp = self.host.hgs.MSFT_HgsKeyProtector

    def guardian(self, name):
        return self.host.hgs.MSFT_HgsGuardian(Name=name)[0]

    @staticmethod
    def _raw(answer):
        code, kp = answer
        assert code == 0, code
        return bytes(kp.RawData)

    def new(self, *names, owner='owner'):
        """New-HgsKeyProtector -Owner owner -Guardian names."""
        return self._raw(self._kp.NewByGuardians(
            Owner=self.guardian(owner),
            Guardian=[self.guardian(n) for n in names],
            AllowExpired=False, AllowUntrustedRoot=True))

    def _object(self, raw):
        """ConvertTo-HgsKeyProtector -Bytes raw."""
        code, kp = self._kp.ConvertToByRawBytes(Bytes=raw)
        assert code == 0, code
        return kp

    def grant(self, raw, name):
        """Grant-HgsKeyProtectorAccess (needs the owner's signing key)."""
        return self._raw(self._kp.Grant(
            KeyProtector=self._object(raw), Guardian=self.guardian(name),
            AllowExpired=False, AllowUntrustedRoot=True))

    def revoke(self, raw, name):
        """Revoke-HgsKeyProtectorAccess."""
        return self._raw(self._kp.Revoke(KeyProtector=self._object(raw),
                                         Guardian=self.guardian(name)))


class ReauthorizeTestCase(e2e.KeyedCloud):

    def setUp(self):
        super().setUp()
        self.hosts(a1=('fabric-a', 'Passed'), b1=('fabric-b', 'Passed'))
        self.pc = TenantMachine(e2e.guardian('tenant-owner'),
                                e2e.fabric('fabric-a').guardian,
                                e2e.fabric('fabric-b').guardian,
                                e2e.guardian('stranger'))
        self.addCleanup(self.pc.host.close)
        # nova's functional API acts as admin; the owner and the other
        # project's user are plain members, as Keystone would make them.
        self.owner_api, self.other_api = (
            self.member_api(who['project_id'])
            for who in (self.owner, self.other))
        # The tenant's KeyProtector for fabric A, kept to re-grant later.
        self.kp_a = self.pc.new('fabric-a')
        image = self.keyed_image(realservices.store_secret(self.kp_a),
                                 shielded=True)
        # At boot nothing tells the scheduler which fabric a raw
        # KeyProtector names; fabric B's host would refuse and reschedule.
        self.server = self._create_server(
            flavor_id=self.create_flavor(), image_uuid=image, host='a1',
            networks='none')
        self.assertEqual('a1', self.host_of(self.server))

    def member_api(self, project_id):
        api = nova_client.TestOpenStackClient(
            'user-of-%s' % project_id, self.api.base_url,
            project_id=project_id, roles=['reader', 'member'])
        api.microversion = self.api.microversion
        return api

    def reauthorization_sent(self, server, ref):
        """The one ``vtpm.reauthorize.*`` sent for ``ref``, its payload
        checked against what the instance records."""
        (sent,) = [n for n in self.notifier.versioned_notifications
                   if n['event_type'].startswith('vtpm.reauthorize.')
                   and n['payload']['vtpm_object.data']['secret_ref'] == ref]
        data = sent['payload']['vtpm_object.data']
        self.assertEqual((server['id'], 'nova-compute:a1'),
                         (data['instance_uuid'], sent['publisher_id']))
        self.last_sent = sent
        return sent['event_type'], sent['priority'], data

    def assert_sample(self, name, server, ref):
        """The last notification is the documented sample ``name``."""
        samples.check(name, self.last_sent, {
            samples.INSTANCE_UUID: server['id'], samples.SECRET_REF: ref,
            samples.fabric_id('fabric-a'): e2e.fabric('fabric-a').fabric_id,
            samples.fabric_id('fabric-b'): e2e.fabric('fabric-b').fabric_id,
            'hyperv-a1': 'a1'})

    def fabrics(self, server):
        return set(self.instance(server).system_metadata[
            constants.SYSMETA_FABRICS].split(','))

    def state(self, server):
        """The VM's settings and the system metadata, to compare."""
        _, vm = self.vm(server)
        sysmeta = dict(self.instance(server).system_metadata)
        sysmeta.pop(constants.SYSMETA_HANDLED_KEYPROTECTOR, None)
        return vm, sysmeta

    def request(self, server, payload, kind='owner'):
        """Stop, name the new KeyProtector, start: the tenant's steps."""
        ref = realservices.store_secret(payload, kind)
        if server['status'] != 'SHUTOFF':
            self.owner_api.post_server_action(server['id'],
                                              {'os-stop': None})
            server = self._wait_for_state_change(server, 'SHUTOFF')
        self.owner_api.post_server_metadata(server['id'], {KEY: ref})
        self.owner_api.post_server_action(server['id'], {'os-start': None})
        return ref

    def current(self, server):
        """The server's KeyProtector as Get-VMKeyProtector reads it on its
        host, which the hoster gives its owner."""
        return self.vm(server)[1]['KeyProtector']

    def assert_start_failed(self, server, status, *fragments):
        """The start failed and the server is stopped; the status metadata
        starts with ``status``, the fault holds ``fragments`` (nova keeps
        255 characters of it)."""
        self._wait_for_instance_action_event(
            server, 'start', 'compute_start_instance', 'Error')
        server = self._wait_for_server_parameter(
            server, {'status': 'SHUTOFF', 'OS-EXT-STS:task_state': None})
        fault = self.latest_fault(server)
        for fragment in fragments:
            self.assertIn(fragment, fault)
        self.assertTrue(server['metadata'][STATUS].startswith(status),
                        server['metadata'][STATUS])
        return server

    # --- authorized for B, then it moves there ----------------------------

    def test_owner_authorizes_fabric_b_and_the_server_moves_there(self):
        a, b = e2e.fabric('fabric-a'), e2e.fabric('fabric-b')
        self.assertEqual({a.fabric_id}, self.fabrics(self.server))
        # Before: fabric B passes attestation, but the KeyProtector does
        # not name it; no valid host.
        self.api.post_server_action(self.server['id'], {'migrate': None})
        self._assert_resize_migrate_action_fail(self.server, 'migrate',
                                                'NoValidHost')
        server = self._wait_for_state_change(self.server, 'ACTIVE')

        # The owner grants from the server's current KeyProtector, which
        # the hoster hands over (Get-VMKeyProtector): the one of its last
        # start, which its vTPM's state is encrypted for.
        granted = self.pc.grant(self.current(server), 'fabric-b')
        ref = self.request(server, granted)
        server = self._wait_for_state_change(server, 'ACTIVE')
        # the payload reached no log line (DEBUG is on)
        log = self.stdlog.logger.output
        self.assertIn('re-authorized with secret %s' % ref, log)
        sent = json.dumps(self.notifier.versioned_notifications)
        for needle in (base64.b64encode(granted[:48]).decode(),
                       granted[:48].hex(), repr(granted[:24])[2:-1]):
            self.assertNotIn(needle, log)
            self.assertNotIn(needle, sent)
        self.assertEqual('applied %s' % ref, server['metadata'][STATUS])
        self.assertEqual({a.fabric_id, b.fabric_id}, self.fabrics(server))
        event, priority, data = self.reauthorization_sent(server, ref)
        self.assertEqual(('vtpm.reauthorize.end', 'INFO', True, None),
                         (event, priority, data['applied'], data['fault']))
        self.assertEqual(([a.fabric_id], {a.fabric_id, b.fabric_id}),
                         (data['old_fabrics'], set(data['new_fabrics'])))
        self.assert_sample('vtpm-reauthorize-end', server, ref)
        _, vm = self.vm(server)
        self.assert_unwraps(vm['KeyProtector'], allowed=[
            ('A', a.guardian.encryption_key),
            ('B', b.guardian.encryption_key)], refused=[])

        server = self._migrate_server(server)
        self.assertEqual('b1', self.host_of(server))
        _, vm = self.vm(server)
        self.assertEqual(fake.host.VM_ENABLED, vm['EnabledState'])
        self._confirm_resize(server)

    # --- refused before anything changes -----------------------------------

    def test_another_owner_or_a_dropped_fabric_changes_nothing(self):
        server = self._stop_server(self.server)
        before = self.state(server)
        granted = self.pc.grant(self.kp_a, 'fabric-b')
        # another owner of the tenant's, with its private keys
        self.pc.host.import_guardian(e2e.guardian('stranger'), 'owner2')
        cases = [
            (self.pc.new('fabric-a', 'fabric-b', owner='owner2'),
             'ReauthorizationOwnerChanged', 'owner never changes'),
            (self.pc.revoke(granted, 'fabric-a'),
             'ReauthorizationDropsFabric', 'does not name fabric %s'
             % e2e.fabric('fabric-a').fabric_id),
        ]
        for payload, error_class, fragment in cases:
            ref = self.request(server, payload)
            server = self.assert_start_failed(
                server, 'refused %s: ' % ref,
                'os_vtpm_keyprotector (server metadata) %r refused' % ref,
                fragment)
            self.assertIn(fragment, server['metadata'][STATUS])
            self.assertEqual(before, self.state(server), error_class)
            event, priority, data = self.reauthorization_sent(server, ref)
            self.assertEqual(('vtpm.reauthorize.error', 'ERROR', False,
                              error_class),
                             (event, priority, data['applied'],
                              data['fault']['vtpm_object.data']['exception']))
            self.assertIn(fragment, data['reason'])
        # The refused secret is not tried again: the server starts as it was.
        server = self._start_server(server)
        self.assertEqual('a1', self.host_of(server))

    # --- set, then it does not open: the last known good comes back --------

    def test_a_key_protector_that_does_not_open_is_rolled_back(self):
        a = e2e.fabric('fabric-a')
        server = self._stop_server(self.server)
        _, vm_before = self.vm(server)
        # The tenant's copy of fabric A's guardian is stale: A's signing
        # certificate, another encryption certificate; HGS cannot unwrap.
        stale = e2e.guardian('stale-a')
        self.pc.host.import_guardian(fake.Guardian(
            'stale-a', a.guardian.signing_cert, stale.encryption_cert))
        ref = self.request(server, self.pc.new('stale-a', 'fabric-b'))
        server = self.assert_start_failed(
            server, 'restored %s: ' % ref,
            'did not start with os_vtpm_keyprotector (server metadata) %r'
            % ref, 'last known good KeyProtector restored')
        self.assertIn('could not be unwrapped', server['metadata'][STATUS])
        event, _, data = self.reauthorization_sent(server, ref)
        self.assertEqual(('vtpm.reauthorize.error', 'KeyProtectorDidNotOpen'),
                         (event,
                          data['fault']['vtpm_object.data']['exception']))
        _, vm = self.vm(server)
        self.assertEqual(self.parties(vm_before['KeyProtector']),
                         self.parties(vm['KeyProtector']))
        self.assertEqual({a.fabric_id}, self.fabrics(server))
        server = self._start_server(server)
        self.assertEqual(fake.host.VM_ENABLED, self.vm(server)[1][
            'EnabledState'])

    def test_a_grant_from_before_the_last_start_is_stale_and_rolled_back(
            self):
        """Each start encrypts the vTPM's state with a new transport key
        (MS-KPS's egress key protector): a KeyProtector granted from the one
        the server booted with no longer opens it; the last known good, the
        one of the last start, comes back and starts."""
        a = e2e.fabric('fabric-a')
        stale = self.pc.grant(self.kp_a, 'fabric-b')
        ref = self.request(self.server, stale)
        server = self.assert_start_failed(
            self.server, 'restored %s: ' % ref,
            'last known good KeyProtector restored')
        self.assertIn('stale', server['metadata'][STATUS])
        self.assertEqual({a.fabric_id}, self.fabrics(server))
        server = self._start_server(server)
        self.assertEqual(fake.host.VM_ENABLED, self.vm(server)[1][
            'EnabledState'])

    # --- only the owner -----------------------------------------------------

    def test_another_project_cannot_reauthorize(self):
        server = self._stop_server(self.server)
        before = self.state(server)
        granted = self.pc.grant(self.kp_a, 'fabric-b')
        # nova's policy: the server does not exist for another project.
        foreign_ref = realservices.store_secret(granted, 'other')
        error = self.assertRaises(
            nova_client.OpenStackApiNotFoundException,
            self.other_api.post_server_metadata, server['id'],
            {KEY: foreign_ref})
        self.assertEqual(404, error.response.status_code)
        self.assertNotIn(KEY, self.owner_api.get_server(
            server['id'])['metadata'])
        # Barbican's: the owner names the other project's secret.
        self.owner_api.post_server_metadata(server['id'], {KEY: foreign_ref})
        self.owner_api.post_server_action(server['id'], {'os-start': None})
        server = self.assert_start_failed(
            server, 'refused %s: ' % foreign_ref,
            "Barbican refused it to the instance owner's project "
            "(HTTP 403)")
        self.assertIn('(HTTP 403)', server['metadata'][STATUS])
        self.assertEqual(before, self.state(server))
