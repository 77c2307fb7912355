# SPDX-License-Identifier: Apache-2.0
"""Each vTPM notification, captured inside nova's in-process services and
checked against its documented sample (``tests.notification_samples``).

nova's ``NotificationFixture`` stands behind ``nova.rpc`` as in nova's own
notification sample tests, and nova's ``ConfFixture`` sets
``[notifications] notification_format = both``. No payload, and no log
line at DEBUG, holds key material or the owner's token.
"""

import base64
import json

from keystoneauth1 import session as ks_session
import pytest

from tests.functional import test_end_to_end as e2e
from tests import notification_samples as samples
from tests import realservices
from vtpm_core import constants
from vtpm_hyperv import fake
from vtpm_hyperv import keyprotector

pytestmark = pytest.mark.usefixtures(realservices.FIXTURE)
HOST = 'hyperv-a1'


class NotificationSamplesTestCase(e2e.KeyedCloud):

    def notified(self, event_type):
        return [n for n in self.notifier.versioned_notifications
                if n['event_type'] == event_type]

    def assert_no_key_material(self, *secrets):
        """Neither the notifications nor nova's log (at DEBUG) hold the
        bytes of ``secrets``, a private key, or the owner's token."""
        token = self.plugins[self.owner['project_id']].get_token(
            ks_session.Session())
        needles = ['PRIVATE KEY', token]
        for payload in secrets:
            needles += [base64.b64encode(payload[:48]).decode(),
                        payload[:48].hex(), repr(payload[:24])[2:-1]]
        sent = json.dumps(self.notifier.versioned_notifications)
        log = self.stdlog.logger.output
        self.assertIn('DEBUG', log)
        for needle in needles:
            self.assertNotIn(needle, sent)
            self.assertNotIn(needle, log)

    @staticmethod
    def fabric_ids(*names):
        return {samples.fabric_id(n): e2e.fabric(n).fabric_id for n in names}

    # --- vtpm.attach.end -----------------------------------------------------

    def test_a_keyed_boot_sends_attach_end(self):
        self.hosts(**{HOST: ('fabric-a', 'Passed')})
        self.notifier.reset()
        server = self.boot(self.create_flavor(), self.keyed_image())
        (sent,) = self.notified('vtpm.attach.end')
        dr = e2e.guardian('dr-site')
        volatile = dict(self.fabric_ids('fabric-a'), **{
            samples.INSTANCE_UUID: server['id'],
            samples.fabric_id('dr-site'): keyprotector.fabric_id(
                dr.signing_der)})
        samples.check('vtpm-attach-end', sent, volatile)
        # the fabrics sent are those recorded for the scheduler
        self.assertEqual(
            self.instance(server).system_metadata[
                constants.SYSMETA_FABRICS].split(','),
            sent['payload']['vtpm_object.data']['fabrics'])
        # a shielded VM from the tenant's own KeyProtector says so
        shielded = self.boot(self.create_flavor(), self.keyed_image(
            e2e.secret('raw-kp'), shielded=True))
        _, again = self.notified('vtpm.attach.end')
        self.assertEqual(
            {'instance_uuid': shielded['id'], 'shielded': True,
             'fabrics': sent['payload']['vtpm_object.data']['fabrics']},
            {k: again['payload']['vtpm_object.data'][k]
             for k in ('instance_uuid', 'shielded', 'fabrics')})
        self.assert_no_key_material(
            fake.export_owner_pkcs12(e2e.guardian('tenant-owner')),
            fake.export_guardian_file(dr), self.vm(server)[1]['KeyProtector'],
            self.vm(shielded)[1]['KeyProtector'])

    # --- vtpm.attach.error ---------------------------------------------------

    def test_a_boot_with_a_refused_secret_sends_attach_error(self):
        self.hosts(**{HOST: ('fabric-a', 'Passed')})
        foreign = e2e.secret('dr-site', kind='other')
        self.notifier.reset()
        server = self.boot(self.create_flavor(), self.keyed_image(
            e2e.secret('owner-bundle'), foreign), expected_state='ERROR')
        (sent,) = self.notified('vtpm.attach.error')
        self.assertEqual(foreign,
                         sent['payload']['vtpm_object.data']['secret_ref'])
        samples.check('vtpm-attach-error', sent, {
            samples.INSTANCE_UUID: server['id'], samples.SECRET_REF: foreign})
        # the build was aborted, not rescheduled: one attempt, one error
        self.assertEqual([], self.notified('vtpm.attach.end'))
        self.assert_no_key_material(
            fake.export_owner_pkcs12(e2e.guardian('tenant-owner')),
            fake.export_guardian_file(e2e.guardian('dr-site')))

    # --- hgs_attestation.update ----------------------------------------------

    def test_a_host_losing_and_regaining_attestation_sends_one_update_each(
            self):
        hosts = self.hosts(**{HOST: ('fabric-a', 'Passed')})
        # the first report (at start) is the baseline: nothing sent
        self.assertEqual([], self.notified('hgs_attestation.update'))
        volatile = self.fabric_ids('fabric-a')
        hosts[HOST].set_attestation('Expired')
        self.refresh_reports()
        self.refresh_reports()  # still Expired: no second notification
        (lost,) = self.notified('hgs_attestation.update')
        samples.check('hgs_attestation-update-lost', lost, volatile)
        hosts[HOST].set_attestation('Passed')
        self.refresh_reports()
        lost_again, back = self.notified('hgs_attestation.update')
        self.assertEqual(lost, lost_again)
        samples.check('hgs_attestation-update-passed', back, volatile)
        self.assert_no_key_material()
