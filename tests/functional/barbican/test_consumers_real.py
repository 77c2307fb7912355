# SPDX-License-Identifier: Apache-2.0
"""Secret consumers against the real Keystone and Barbican 23.

What a tenant sees: after a keyed boot each secret lists the instance as a
consumer, a delete of the secret is refused with Barbican's own 400 and,
once the instance is deleted, the delete succeeds (204). Both through the
key source alone and through nova's own services (``tools.simcloud``: a
keyed boot from nova-api to a simulated Hyper-V host, as
tests/functional/test_end_to_end.py boots). The refusals are Barbican's
policy, not ours.
"""

import uuid

from barbicanclient import exceptions as barbican_exceptions
from nova.tests.functional.api import client as nova_client
import pytest

from tests.functional import test_end_to_end as e2e
from tests.functional import test_reauthorize
from tests import realservices
from vtpm_core import constants
from vtpm_hyperv.barbican import exception as barbican_exception
from vtpm_hyperv.barbican import key_source
from vtpm_hyperv import fake

pytestmark = e2e.pytestmark  # the real services, for the nova tests too

# the microversion from which Barbican refuses to delete a secret in use
MICROVERSION = {'OpenStack-API-Version': 'key-manager 1.2'}
HAS_CONSUMERS = 'Secret cannot be deleted as it has consumers'


def consumers_of(ref, kind='owner'):
    """(service, resource type, resource id) of each consumer, as the
    tenant lists them (``openstack secret consumer list``)."""
    return sorted((c.service, c.resource_type, c.resource_id)
                  for c in realservices.barbican(kind).secrets.list_consumers(
                      ref))


def tenant_delete(ref, kind='owner'):
    """The tenant's ``DELETE /v1/secrets/{ref}``: (status, body text)."""
    answer = realservices.session(kind).delete(
        '%s/v1/secrets/%s' % (realservices.barbican_url().rstrip('/'), ref),
        headers=MICROVERSION, raise_exc=False)
    return answer.status_code, answer.text


def as_nova(instance_uuid):
    return [('nova', 'instance', instance_uuid)]


# --- the key source --------------------------------------------------------

def test_a_secret_in_use_is_not_deleted_until_the_consumer_goes(
        conf, store):
    refs = [store(), store()]
    instance = str(uuid.uuid4())
    source = key_source.BarbicanKeySource(conf)

    source.register_consumer(refs, instance, auth=realservices.auth('owner'))

    for ref in refs:
        assert consumers_of(ref) == as_nova(instance)
        status, text = tenant_delete(ref)
        assert (status, HAS_CONSUMERS in text) == (400, True), text
    source.remove_consumer(refs, instance, auth=realservices.auth('owner'))
    for ref in refs:
        assert consumers_of(ref) == []
        assert tenant_delete(ref)[0] == 204


@pytest.mark.parametrize('kind', ['other', 'service'])
def test_only_the_owners_project_may_register(conf, store, kind):
    """Another project, and a plain service user, get Barbican's 403."""
    ref = store()
    with pytest.raises(barbican_exception.ConsumerRefused) as e:
        key_source.BarbicanKeySource(conf).register_consumer(
            [ref], str(uuid.uuid4()), auth=realservices.auth(kind))
    assert 'HTTP 403' in str(e.value) and ref in str(e.value)
    assert consumers_of(ref) == []


def test_another_projects_removal_is_refused_and_the_consumer_stays(
        conf, store):
    ref, instance = store(), str(uuid.uuid4())
    source = key_source.BarbicanKeySource(conf)
    source.register_consumer([ref], instance,
                             auth=realservices.auth('owner'))

    with pytest.raises(barbican_exception.ConsumerRefused):
        source.remove_consumer([ref], instance,
                               auth=realservices.auth('other'))

    assert consumers_of(ref) == as_nova(instance)
    # what the tenant does then (the user guide): remove it, then delete
    realservices.barbican('owner').secrets.remove_consumer(
        ref, 'nova', 'instance', instance)
    assert tenant_delete(ref)[0] == 204


# --- through nova's own services -----------------------------------------

class ConsumersThroughNovaTestCase(e2e.KeyedCloud):
    """A keyed boot and a delete from nova-api, with the real Barbican."""

    def secrets(self):
        """Fresh secrets of this test (an owner bundle and a DR guardian):
        the test deletes them."""
        refs = [realservices.store_secret(
            fake.export_owner_pkcs12(e2e.guardian('tenant-owner'))),
            realservices.store_secret(
                fake.export_guardian_file(e2e.guardian('dr-site')))]
        for ref in refs:
            self.addCleanup(self._forget, ref)
        return refs

    @staticmethod
    def _forget(ref):
        try:
            realservices.barbican('owner').secrets.delete(ref, force=True)
        except barbican_exceptions.HTTPClientError:
            pass  # deleted by the test

    def test_a_keyed_instance_keeps_its_secrets_until_it_is_deleted(self):
        self.hosts(a1=('fabric-a', 'Passed'))
        refs = self.secrets()
        server = self.boot(self.create_flavor(), self.keyed_image(*refs))

        recorded = self.instance(server).system_metadata
        self.assertEqual(','.join(refs), recorded[constants.SYSMETA_KEYS])
        for ref in refs:
            self.assertEqual(as_nova(server['id']), consumers_of(ref))
            status, text = tenant_delete(ref)
            self.assertEqual(400, status, text)
            self.assertIn(HAS_CONSUMERS, text)

        self._delete_server(server)

        for ref in refs:
            self.assertEqual([], consumers_of(ref))
            self.assertEqual(204, tenant_delete(ref)[0])

    def test_a_delete_without_the_owners_token_leaves_the_consumer(self):
        """nova's admin of another project deletes the server: Barbican
        does not let its credentials remove the registration; the delete
        goes on, the log says so, and the tenant removes it."""
        self.hosts(a1=('fabric-a', 'Passed'))
        refs = self.secrets()
        server = self.boot(self.create_flavor(), self.keyed_image(*refs))

        # nova's admin, acting from the other tenant's project: the compute
        # gets that project's credentials (KeyedCloud's owner_auth)
        self.admin_api.project_id = self.other['project_id']
        self.admin_api.delete_server(server['id'])
        self._wait_until_deleted(server)

        log = self.stdlog.logger.output
        self.assertIn('stays registered as a consumer', log)
        for ref in refs:
            self.assertEqual(as_nova(server['id']), consumers_of(ref))
            realservices.barbican('owner').secrets.remove_consumer(
                ref, 'nova', 'instance', server['id'])
            self.assertEqual(204, tenant_delete(ref)[0])

    def test_a_reauthorization_moves_the_instance_onto_the_new_secret(self):
        """After an applied re-authorization the instance consumes the new
        secret alone: the old one can be retired (204)."""
        self.hosts(a1=('fabric-a', 'Passed'))
        pc = test_reauthorize.TenantMachine(
            e2e.guardian('tenant-owner'), e2e.fabric('fabric-a').guardian,
            e2e.fabric('fabric-b').guardian)
        self.addCleanup(pc.host.close)
        old = realservices.store_secret(pc.new('fabric-a'))
        self.addCleanup(self._forget, old)
        server = self.boot(self.create_flavor(), self.keyed_image(
            old, shielded=True))
        self.assertEqual(as_nova(server['id']), consumers_of(old))

        # the owner's steps (doc/source/user/reauthorize.rst), as a member
        owner_api = nova_client.TestOpenStackClient(
            'owner', self.api.base_url, project_id=self.owner['project_id'],
            roles=['reader', 'member'])
        owner_api.microversion = self.api.microversion
        new = realservices.store_secret(pc.grant(
            self.vm(server)[1]['KeyProtector'], 'fabric-b'))
        self.addCleanup(self._forget, new)
        owner_api.post_server_action(server['id'], {'os-stop': None})
        server = self._wait_for_state_change(server, 'SHUTOFF')
        owner_api.post_server_metadata(
            server['id'], {constants.METADATA_KEYPROTECTOR: new})
        owner_api.post_server_action(server['id'], {'os-start': None})
        server = self._wait_for_state_change(server, 'ACTIVE')
        self.assertEqual('applied %s' % new, server['metadata'][
            constants.METADATA_KEYPROTECTOR_STATUS])

        self.assertEqual(new, self.instance(server).system_metadata[
            constants.SYSMETA_KEYS])
        self.assertEqual(as_nova(server['id']), consumers_of(new))
        self.assertEqual(400, tenant_delete(new)[0])
        self.assertEqual([], consumers_of(old))
        self.assertEqual(204, tenant_delete(old)[0])
