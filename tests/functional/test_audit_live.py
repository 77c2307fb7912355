# SPDX-License-Identifier: Apache-2.0
"""``vtpm-check --audit`` against real Keystone, Barbican, Glance and nova-api.

Keystone, Barbican and Glance are the real services ``python3 run.py test``
starts on loopback (``tools.services``). nova-api is nova's own WSGI
application in this process (``OSAPIFixture``, through wsgi-intercept)
with its real keystonemiddleware validating the tokens openstacksdk sends
against that Keystone; the test puts its URL in the catalog as ``compute``.
The audit runs through ``vtpm_cli.check.main`` with the owner's
``OS_*`` environment, exactly as the console script does: a subprocess
would not see the in-process nova-api.
"""

import base64
import contextlib
import io
import json
import logging
import os
import secrets as random_bytes

from barbicanclient import exceptions as barbican_exceptions
import fixtures
from keystoneauth1 import loading as ks_loading
# registers [keystone_authtoken] on nova's CONF, as nova-api's paste pipeline
# does when it loads; the test sets those options before that
from keystonemiddleware import auth_token  # noqa: F401 - its options
from nova import conf as nova_conf
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client as nova_client
import pytest

from tests import realservices
from tools import services
from vtpm_cli import check
from vtpm_cli import cloud

pytestmark = pytest.mark.usefixtures('real_services')
CONF = nova_conf.CONF
LOGGERS = ('keystoneauth', 'openstack', 'keystonemiddleware', 'barbicanclient',
           'vtpm_core', 'nova')
AUTHTOKEN = 'keystone_authtoken'
GEN2 = {'hw_machine_type': 'hyperv-gen2'}
# seven UUIDs: beyond MAX_KEYS (6) and MAX_VALUE_BYTES (251)
TOO_MANY_KEYS = ','.join('%08d-0000-4000-8000-000000000000' % n
                         for n in range(7))


class _TokenClient(nova_client.TestOpenStackClient):
    """nova's functional API client, authenticated by a real token."""

    def __init__(self, base_url, token):
        super().__init__('admin', base_url)
        self._token = token

    def request(self, url, method='GET', body=None, headers=None):
        headers = dict(headers or {}, **{'X-Auth-Token': self._token})
        return super().request(url, method=method, body=body,
                               headers=headers)


class _Records(logging.Handler):
    """Every log record of the test, formatted, at DEBUG."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


class AuditLiveTest(test.TestCase):

    def setUp(self):
        super().setUp()
        # a failure, never a skip, without the services
        self.owner = realservices.user('owner')
        self.other = realservices.user('other')
        self.state_dir = realservices.state_dir()
        self.payloads = []  # of the secrets stored: never to be logged
        self.records = _Records()
        # including the HTTP traces of the clients and of authtoken
        for name in LOGGERS:
            logger = logging.getLogger(name)
            self.addCleanup(logger.setLevel, logger.level)
            logger.setLevel(logging.DEBUG)
        self.api = self._start_nova_api()

    # --- nova-api, authenticated by the real Keystone -----------------------

    def _start_nova_api(self):
        nova = {name.lower(): realservices.env('NOVA_' + name)
                for name in ('USERNAME', 'PASSWORD', 'PROJECT')}
        # keystonemiddleware registers its own options on import, and the
        # password plugin's only when it loads them: too late to set them
        ks_loading.register_auth_conf_options(CONF, AUTHTOKEN)
        plugin_opts = ks_loading.get_auth_plugin_conf_options('password')
        CONF.register_opts(plugin_opts, group=AUTHTOKEN)
        self.addCleanup(self._unregister, plugin_opts)
        keystone = realservices.keystone_url()
        self.flags(group=AUTHTOKEN, auth_type='password', auth_url=keystone,
                   username=nova['username'], password=nova['password'],
                   project_name=nova['project'], user_domain_id='default',
                   project_domain_id='default')
        self.flags(group=AUTHTOKEN, www_authenticate_uri=keystone)
        osapi = self.useFixture(nova_fixtures.OSAPIFixture(
            stub_keystone=False))
        services.register_endpoint(self.state_dir, 'nova', 'compute',
                                   osapi.base_url)
        self.addCleanup(services.unregister_endpoint, self.state_dir, 'nova')
        return _TokenClient(osapi.base_url,
                            services.admin_token(self.state_dir))

    @staticmethod
    def _unregister(opts):
        # the next test's ConfFixture parses CONF, and auth_url is required
        CONF.reset()  # unregistering needs an unparsed CONF
        CONF.unregister_opts(opts, group=AUTHTOKEN)

    def create_flavor(self, name, vtpm=None):
        flavor = self.api.post_flavor({'flavor': {
            'name': name, 'ram': 512, 'vcpus': 1, 'disk': 1}})
        if vtpm is not None:
            # microversion 2.1: no extra spec validation, as for flavors
            # made before the validator was installed
            self.api.post_extra_spec(flavor['id'],
                                     {'extra_specs': {'os:vtpm': vtpm}})
        return flavor['id']

    # --- Glance and Barbican, as the users ----------------------------------

    def create_image(self, kind, name, **properties):
        session = realservices.session(kind)
        body = dict(name=name, disk_format='raw', container_format='bare',
                    **properties)
        image = session.post('/v2/images', json=body, endpoint_filter={
            'service_type': 'image', 'interface': 'public'}).json()
        self.addCleanup(session.delete, '/v2/images/%s' % image['id'],
                        endpoint_filter={'service_type': 'image',
                                         'interface': 'public'},
                        raise_exc=False)
        return image['id']

    def store_secret(self, kind):
        payload = random_bytes.token_bytes(32)
        self.payloads.append(payload)
        ref = realservices.store_secret(payload, kind)
        self.addCleanup(self._delete_secret, ref, kind)
        return ref

    @staticmethod
    def _delete_secret(ref, kind):
        # deleted by the test already
        with contextlib.suppress(barbican_exceptions.HTTPError):
            realservices.delete_secret(ref, kind)

    # --- the command --------------------------------------------------------

    def audit(self, kind, *argv):
        user = realservices.user(kind)
        env = {'OS_AUTH_URL': realservices.keystone_url(),
               'OS_IDENTITY_API_VERSION': '3',
               'OS_USERNAME': user['username'],
               'OS_PASSWORD': user['password'],
               'OS_PROJECT_NAME': user['project'],
               'OS_USER_DOMAIN_ID': 'default',
               'OS_PROJECT_DOMAIN_ID': 'default',
               'OS_REGION_NAME': os.environ.get('VTPM_TEST_REGION',
                                                'RegionOne'),
               'OS_INTERFACE': 'public', 'OS_CLOUD': None,
               # no clouds.yaml of this machine
               'OS_CLIENT_CONFIG_FILE': os.devnull}
        for name, value in env.items():
            self.useFixture(fixtures.EnvironmentVariable(name, value))
        out, err = io.StringIO(), io.StringIO()
        # what the audit (and nova-api serving it) logs, not the set-up
        logging.getLogger().addHandler(self.records)
        try:
            with contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(err):
                status = check.main(['--audit'] + list(argv))
        finally:
            logging.getLogger().removeHandler(self.records)
        # a report on stdout, or an error on stderr; never both
        self.assertEqual(status == cloud.UNREADABLE, not out.getvalue())
        return status, out.getvalue() or err.getvalue()

    # --- the tests ----------------------------------------------------------

    def test_audit_reports_what_would_fail_and_passes_a_clean_project(self):
        mine = self.store_secret('owner')
        theirs = self.store_secret('other')
        gone = self.store_secret('owner')
        realservices.delete_secret(gone, 'owner')
        images = {
            'good': self.create_image(
                'owner', 'vtpm-good', os_vtpm='required', os_vtpm_keys=mine,
                os_shielded_vm='required', **GEN2),
            'bad-value': self.create_image(
                'owner', 'vtpm-bad-value', os_vtpm='Required', **GEN2),
            'too-many': self.create_image(
                'owner', 'vtpm-too-many', os_vtpm='required',
                os_vtpm_keys=TOO_MANY_KEYS, **GEN2),
            'unreadable': self.create_image(
                'owner', 'vtpm-unreadable', os_vtpm='required',
                os_vtpm_keys='%s,%s' % (theirs, gone), **GEN2),
        }
        self.create_image('owner', 'plain', os_distro='windows')
        flavors = {
            'required': self.create_flavor('vtpm-required', 'required'),
            'disabled': self.create_flavor('vtpm-disabled', 'disabled'),
            'bogus': self.create_flavor('vtpm-bogus', 'bogus'),
        }
        self.create_flavor('plain')

        def image(name):
            return 'image vtpm-%s (%s)' % (name, images[name])

        def flavor(name):
            return 'flavor vtpm-%s (%s)' % (name, flavors[name])

        status, text = self.audit('owner', '--format', 'json')
        report = json.loads(text)

        self.assertEqual(1, status)
        self.assertEqual(
            {images['good']: dict(GEN2, os_vtpm='required',
                                  os_vtpm_keys=mine,
                                  os_shielded_vm='required'),
             images['bad-value']: dict(GEN2, os_vtpm='Required'),
             images['too-many']: dict(GEN2, os_vtpm='required',
                                      os_vtpm_keys=TOO_MANY_KEYS),
             images['unreadable']: dict(GEN2, os_vtpm='required',
                                        os_vtpm_keys='%s,%s' % (theirs,
                                                                gone))},
            {r['id']: r['properties'] for r in report['images']})
        self.assertEqual(
            {flavors[v]: {'os:vtpm': v} for v in flavors},
            {r['id']: r['properties'] for r in report['flavors']})
        # one finding per distinct problem, naming all its subjects here
        for f in report['findings']:
            self.assertEqual(f['count'], len(f['subjects']), f)
        found = sorted((f['kind'], subject, f['problem'])
                       for f in report['findings']
                       for subject in f['subjects'])
        # the two keyed images under the disabling flavor: one problem
        self.assertEqual([2], [f['count'] for f in report['findings']
                               if f['kind'] == 'pair'])
        self.assertEqual(sorted([
            ('flavor', flavor('bogus')),
            ('image', image('bad-value')),
            ('image', image('too-many')),
            ('pair', '%s with %s' % (image('good'), flavor('disabled'))),
            ('pair', '%s with %s' % (image('unreadable'),
                                     flavor('disabled'))),
            ('secret', image('unreadable')),
            ('secret', image('unreadable')),
        ]), [f[:2] for f in found])
        problems = {(kind, subject): [] for kind, subject, _ in found}
        for kind, subject, problem in found:
            problems[kind, subject].append(problem)
        self.assertEqual(sorted([
            'Barbican secret %s named by os_vtpm_keys (image property): '
            'the caller may not read it' % theirs,
            'Barbican secret %s named by os_vtpm_keys (image property): '
            'does not exist' % gone]),
            problems['secret', image('unreadable')])
        [bogus] = problems['flavor', flavor('bogus')]
        self.assertIn("os:vtpm (flavor extra spec) is 'bogus'", bogus)
        self.assertIn('allowed: disabled, optional, required', bogus)
        [bad] = problems['image', image('bad-value')]
        self.assertIn("os_vtpm (image property) is 'Required'", bad)
        [over] = problems['image', image('too-many')]
        self.assertIn('os_vtpm_keys (image property) is %r' % TOO_MANY_KEYS,
                      over)
        self.assertIn(': 7 keys;', over)
        for kind, subject, problem in found:
            if kind == 'pair':
                self.assertIn("os:vtpm (flavor extra spec) is 'disabled' but "
                              "os_vtpm (image property) is 'required'",
                              problem)

        # the same audit for people
        status, text = self.audit('owner')
        lines = text.splitlines()
        self.assertEqual(1, status)
        self.assertEqual('4 image(s) and 3 flavor(s) carry vTPM properties',
                         lines[0])
        self.assertIn('  %s: hw_machine_type=hyperv-gen2, '
                      'os_shielded_vm=required, os_vtpm=required, '
                      'os_vtpm_keys=%s' % (image('good'), mine), lines)
        self.assertIn('  %s: os:vtpm=bogus' % flavor('bogus'), lines)
        at = lines.index('6 problem(s):')
        self.assertEqual(sorted(
            '  [%s] %s: %s' % (f['kind'], f['subjects'][0] if f['count'] == 1
                               else '2, e.g. ' + '; '.join(f['subjects']),
                               f['problem'])
            for f in report['findings']), sorted(lines[at + 1:]))
        self.assertNotIn('plain', text)

        # the other tenant: its own keyed image, flavors that fit
        self.api.delete_flavor(flavors['bogus'])
        self.api.delete_flavor(flavors['disabled'])
        theirs_image = self.create_image(
            'other', 'vtpm-theirs', os_vtpm='required', os_vtpm_keys=theirs,
            **GEN2)
        status, text = self.audit('other')
        self.assertEqual(0, status, text)
        self.assertEqual([
            '1 image(s) and 1 flavor(s) carry vTPM properties',
            '  image vtpm-theirs (%s): hw_machine_type=hyperv-gen2, '
            'os_vtpm=required, os_vtpm_keys=%s' % (theirs_image, theirs),
            '  %s: os:vtpm=required' % flavor('required'),
            'no problems found'], text.splitlines())
        status, text = self.audit('other', '--format', 'json')
        self.assertEqual((0, []), (status, json.loads(text)['findings']))

        self.assert_nothing_secret_logged()

    def test_a_cloud_it_cannot_read_is_an_error_barbican_down_a_finding(
            self):
        mine = self.store_secret('owner')
        keyed = self.create_image('owner', 'vtpm-keyed', os_vtpm='required',
                                  os_vtpm_keys=mine, **GEN2)
        subject = 'image vtpm-keyed (%s)' % keyed

        # Barbican down, as openstacksdk sees it: nothing answers where it
        # looks for the key-manager service
        self.useFixture(fixtures.EnvironmentVariable(
            'OS_KEY_MANAGER_ENDPOINT_OVERRIDE',
            realservices.unreachable_url()))
        status, text = self.audit('owner', '--format', 'json')
        [finding] = json.loads(text)['findings']
        self.assertEqual((1, 'secret', [subject]),
                         (status, finding['kind'], finding['subjects']))
        self.assertIn('Barbican secret %s named by os_vtpm_keys (image '
                      'property): could not be checked: ConnectFailure: '
                      'Unable to establish connection' % mine,
                      finding['problem'])

        self.useFixture(fixtures.EnvironmentVariable(
            'VTPM_TEST_OWNER_PASSWORD', 'not-' + self.owner['password']))
        status, text = self.audit('owner')
        self.assertEqual(2, status)
        self.assertTrue(text.startswith(
            'error: could not read images and flavors from the cloud '
            '(OS_* environment): Unauthorized: '), text)
        status, text = self.audit('owner', '--format', 'json')
        self.assertEqual(2, status)
        self.assertTrue(text.startswith('error: ') and 'Unauthorized' in text,
                        text)

        self.assert_nothing_secret_logged(secrets_read=False)

    def assert_nothing_secret_logged(self, secrets_read=True):
        self.assertTrue(self.records.lines, 'no log records captured')
        logged = '\n'.join(self.records.lines)
        # metadata only: never a payload, always asked for as JSON
        secret_reads = [line for line in self.records.lines
                        if line.startswith('REQ: ') and '/v1/secrets' in line]
        self.assertEqual(secrets_read, bool(secret_reads), secret_reads)
        for line in secret_reads:
            self.assertNotIn('/payload', line)
            self.assertIn('-H "Accept: application/json"', line)
        # Keystone's fernet tokens all start so
        self.assertNotIn('gAAAAA', logged)
        for user in (self.owner, self.other):
            self.assertNotIn(user['password'], logged)
        for payload in self.payloads:
            self.assertNotIn(base64.b64encode(payload).decode(), logged)
            self.assertNotIn(payload.hex(), logged)
