# SPDX-License-Identifier: Apache-2.0
"""The demonstration: one small cloud, a few servers, a readable table.

``python3 run.py demo`` runs ``main()`` in the project's virtualenv. It

1. starts the real Keystone and Barbican on loopback (``tools.services``);
2. stores the tenant's key material in Barbican: a shielding data file
   (PDK) the tenant made for fabric ``contoso-a`` and its disaster-recovery
   site (``New-ShieldingDataFile``: the owner's keys never leave the
   tenant), an owner guardian bundle (PKCS#12, for a VM that trusts the
   hoster) with the DR site's guardian file, plus one secret of another
   project;
3. runs nova's own services in this process (API, conductor, scheduler with
   ``VTPMFilter``, placement), configured by the install guide's nova.conf
   blocks (``tools.simcloud.guide``), with five simulated Hyper-V hosts, all
   guarded, in HGS mode: two in fabric ``contoso-a``, two in ``contoso-b``
   (attested), and ``hv-a3`` of ``contoso-a``, whose attestation expired;
   their driver is ``VTPMDriverMixin`` composed with a simulated Hyper-V
   driver (``tools.simcloud.driver``), over the real backend and os-win's
   own code;
4. boots nine servers through nova's API: plain; the README's vTPM
   (``os:vtpm=required`` flavor, no keys: on a guarded host, a key protector
   of the host's own guardian for its fabric, Microsoft's "encryption
   supported" VM); shielded from the PDK; keyed with the owner bundle;
   keyed under a flavor in nova's own words; shielded with the owner bundle
   (refused); a conflicting flavor; another project's secret; the vTPM
   again, forced onto ``hv-a3``, which cannot open its key protector
   (refused by that host, nothing left); tries a cold migration of the
   shielded one and of the vTPM one (each moves within its fabric), and
   prints what happened: each ERROR row is an outcome the demo asks for,
   and any other outcome fails it (exit status 1);
5. audits the cloud as the tenant (``vtpm_cli.audit``, with nova's
   databases) and prints the report;
6. deletes the servers and the secrets and stops the services.
"""

import contextlib
import io
import os
import pathlib
import sys
import textwrap
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parent.parent
STATE = ROOT / '.state' / 'demo'
STARTED = time.monotonic()

# What the table prints, filled in by the scenario.
ROWS = []
NOTES = []
# The audit's report of the cloud, once the servers run.
AUDIT = []
# nova keeps this much of an instance fault's message.
NOVA_FAULT_CHARS = 255
# The one name of the move the demo tries, in the log and the table.
MIGRATION = 'cold migration'
EXPECTED = ('Every row is the outcome the demo asks for: each ERROR is a '
            'refusal it provokes on purpose (expected); any other outcome '
            'fails the demo.')


def say(message):
    """One line of progress, as run.py and tools.services write theirs."""
    # the real stdout: nova's services print to sys.stdout, which the
    # demo collects and shows only if something fails
    out = sys.__stdout__
    out.write('==> %s\n' % message)
    out.flush()


# --- the scenario, inside nova's in-process services -------------------------

class Tenant:
    """The tenant's Keystone users and what they stored in Barbican."""

    def __init__(self, env):
        from barbicanclient import client as barbican_client
        from keystoneauth1.identity import v3
        from keystoneauth1 import session as ks_session

        self.project = env['VTPM_TEST_OWNER_PROJECT_ID']
        self.region = env.get('VTPM_TEST_REGION')
        self.auth = {}
        self.barbican = {}
        for kind in ('owner', 'other'):
            prefix = 'VTPM_TEST_%s_' % kind.upper()
            self.auth[kind] = v3.Password(
                auth_url=env['VTPM_TEST_KEYSTONE_URL'],
                username=env[prefix + 'USERNAME'],
                password=env[prefix + 'PASSWORD'],
                project_name=env[prefix + 'PROJECT'],
                user_domain_id='default', project_domain_id='default')
            self.barbican[kind] = barbican_client.Client(
                session=ks_session.Session(auth=self.auth[kind]),
                region_name=env.get('VTPM_TEST_REGION'))
        self.plugins = {self.project: self.auth['owner'],
                        env['VTPM_TEST_OTHER_PROJECT_ID']: self.auth['other']}
        self.secrets = []

    def owner_auth(self, context):
        """The Keystone plugin of the project nova's request acts for."""
        return self.plugins.get(context.project_id)

    def store(self, kind, payload, name):
        ref = self.barbican[kind].secrets.create(
            name=name, payload=payload, secret_type='opaque').store()
        self.secrets.append((kind, ref))
        return ref.rsplit('/', 1)[1]

    def delete_secrets(self):
        for kind, ref in self.secrets:
            self.barbican[kind].secrets.delete(ref)


def scenario(tenant, cloud, nova):
    """Store the keys, start the hosts, boot, move and delete the servers."""
    from vtpm_core import constants
    from vtpm_hyperv import fake
    from vtpm_hyperv import keyprotector

    say('generating guardians (RSA keys) for two fabrics and the tenant')
    fabrics = {n: fake.Fabric(n) for n in ('contoso-a', 'contoso-b')}
    owner = fake.make_guardian('tenant-owner')
    dr = fake.make_guardian('tenant-dr-site')
    stranger = fake.make_guardian('other-tenant')
    names = {keyprotector.fabric_id(g.signing_der): label for g, label in (
        (owner, 'tenant-owner (owner)'), (dr, 'tenant-dr-site'),
        (fabrics['contoso-a'].guardian, 'fabric contoso-a'),
        (fabrics['contoso-b'].guardian, 'fabric contoso-b'))}

    say('storing the tenant\'s key material in Barbican')
    # What the tenant made on its own machine, for fabric contoso-a and its
    # DR site: New-ShieldingDataFile, with an answer file and other files up
    # to the cmdlet's 384 KB, in a Barbican configured as the install guide
    # says.
    pdk_file = fake.shielding_data_file(
        owner, [fabrics['contoso-a'].guardian.public(), dr.public()])
    pdk = tenant.store('owner', pdk_file, 'demo shielding data file (PDK)')
    say('  a shielding data file of %d bytes' % len(pdk_file))
    bundle = tenant.store('owner', fake.export_owner_pkcs12(owner),
                          'demo owner guardian (PKCS#12)')
    dr_file = tenant.store('owner', fake.export_guardian_file(dr),
                           'demo DR guardian (Export-HgsGuardian file)')
    foreign = tenant.store('other', fake.export_guardian_file(stranger),
                           'demo guardian of another project')

    say('starting nova-compute on 5 simulated Hyper-V hosts')
    fabric_of = {}
    for name, fabric, status in (('hv-a1', 'contoso-a', 'Passed'),
                                 ('hv-a2', 'contoso-a', 'Passed'),
                                 ('hv-b1', 'contoso-b', 'Passed'),
                                 ('hv-b2', 'contoso-b', 'Passed'),
                                 ('hv-a3', 'contoso-a', 'Expired')):
        fabric_of[name] = fabric
        cloud.add_host(name, fabric=fabrics[fabric],
                       attestation_status=status)
        nova.start_compute(name)
        NOTES.append('%s: guarded, fabric %s, attestation %s' % (
            name, fabric, status))

    gen2 = {constants.IMAGE_MACHINE_TYPE: constants.MACHINE_TYPE_GEN2}
    plain = nova.create_image(**gen2)
    capable = nova.create_image(os_vtpm='optional', **gen2)
    shielded = nova.create_image(
        os_vtpm='required', os_shielded_vm='required', os_vtpm_keys=pdk,
        **gen2)
    keyed = nova.create_image(
        os_vtpm='required', os_vtpm_keys='%s,%s' % (bundle, dr_file), **gen2)
    owner_keys = nova.create_image(
        os_vtpm='required', os_shielded_vm='required',
        os_vtpm_keys='%s,%s' % (bundle, dr_file), **gen2)
    borrowed = nova.create_image(
        os_vtpm='required', os_vtpm_keys='%s,%s' % (bundle, foreign), **gen2)
    small = nova.create_flavor()
    vtpm = nova.create_flavor(vtpm='required')
    no_vtpm = nova.create_flavor(vtpm='disabled')
    # a flavor of a libvirt cloud, in nova's own words (Hyper-V's vTPM is a
    # TPM 2.0 with a CRB interface)
    nova_words = nova.create_flavor(**{
        constants.FLAVOR_TPM_VERSION: constants.TPM_VERSION,
        constants.FLAVOR_TPM_MODEL: constants.TPM_MODEL})

    # (name, what is asked, flavor, image, the state the demo expects,
    # nova's boot options)
    plan = [
        ('plain', 'no vTPM', small, plain, 'ACTIVE', {}),
        ('vtpm', 'vTPM (flavor os:vtpm=required), no keys', vtpm, capable,
         'ACTIVE', {}),
        ('shielded', 'shielded, keys: the tenant\'s PDK', small, shielded,
         'ACTIVE', {}),
        ('keyed', 'keys: owner bundle + DR guardian', small, keyed,
         'ACTIVE', {}),
        ('nova-words', "keys, flavor in nova's words: hw:tpm_version=2.0, "
         'hw:tpm_model=tpm-crb', nova_words, keyed, 'ACTIVE', {}),
        ('owner-keys', 'shielded, keys: owner bundle + DR guardian', small,
         owner_keys, 'ERROR', {}),
        ('conflict', 'image requires vTPM, flavor os:vtpm=disabled',
         no_vtpm, shielded, 'ERROR', {}),
        ('forbidden', "keys: owner + another project's secret", small,
         borrowed, 'ERROR', {}),
        # nova skips the scheduler's filters for a forced host: the host
        # itself refuses, before it changes anything
        ('vtpm-a3', 'vTPM, no keys, forced onto hv-a3', vtpm, capable,
         'ERROR', {'az': 'nova:hv-a3'}),
    ]
    servers = {}
    for name, asked, flavor, image, state, options in plan:
        say('booting %s (%s)' % (name, asked))
        servers[name] = nova.boot(flavor, image, expected_state=state,
                                  name=name, **options)
        ROWS.append(_row(name, asked, servers[name], cloud, fabric_of,
                         names))
    a3 = cloud.hosts['hv-a3']
    refused_vm = servers['vtpm-a3']['OS-EXT-SRV-ATTR:instance_name']
    if refused_vm in a3.vms or a3.guardian_names() != ['contoso-a']:
        raise RuntimeError('hv-a3 kept something after refusing vtpm-a3: '
                           'VMs %s, guardians %s' % (
                               sorted(a3.vms), a3.guardian_names()))
    NOTES.append('hv-a3 after refusing vtpm-a3: no VM of it, guardians %s '
                 '(as before)' % ', '.join(a3.guardian_names()))

    for name, why in (
            ('shielded', 'its KeyProtector names its fabric and the DR site '
                         'only'),
            ('vtpm', 'its key protector names its host\'s fabric: HGS opens '
                     'it on the fabric\'s other host')):
        say('cold migration of %s (%s)' % (name, why))
        server = nova._confirm_resize(nova._migrate_server(servers[name]))
        if fabric_of[nova.host_of(server)] != fabric_of[
                servers[name]['OS-EXT-SRV-ATTR:host']]:
            raise RuntimeError('%s left its fabric' % name)
        ROWS.append(_row(name, MIGRATION, server, cloud, fabric_of, names))

    say('auditing the cloud as the tenant (vtpm_cli.audit)')
    AUDIT.append(audit_cloud(tenant, nova))

    say('deleting the servers')
    for server in servers.values():
        nova._delete_server(server)
    left = []
    for n, hv in cloud.hosts.items():
        guardians = [g for g in hv.guardian_names()
                     if g.startswith('openstack-vtpm-')]
        if hv.vms or guardians:
            left.append('%s: VMs %s, instance guardians %s' % (
                n, sorted(hv.vms), guardians))
    NOTES.append('after the deletes: %s' % (
        '; '.join(left) or 'no VM and no instance guardian left on any '
        'host'))


def audit_cloud(tenant, nova):
    """The audit's report of this cloud, as ``vtpm-check --audit
    --nova-config`` makes it: the images (nova's image fixture stands in for
    Glance here) and the flavors through nova's API, each secret's metadata
    from the real Barbican through openstacksdk as the tenant, and the
    instances and hosts' reports from nova's databases."""
    from keystoneauth1 import session as ks_session
    from nova import context as nova_context
    import openstack

    from vtpm_cli import audit
    from vtpm_cli import cloud as audit_cloud_reader
    from vtpm_cli import novadb
    from vtpm_core import constants

    images = [(image['id'], image['name'], dict(image.get('properties') or {}))
              for image in nova.glance.images.values()]
    flavors = [(f['id'], f['name'], nova.admin_api.get_extra_specs(f['id']))
               for f in nova.admin_api.get_flavors()]
    conn = openstack.connection.Connection(
        session=ks_session.Session(auth=tenant.auth['owner']),
        region_name=tenant.region)
    instances, reports = novadb.gather(nova_context.get_admin_context())
    carriers = (audit.carriers('image', images, constants.IMAGE_KEYS),
                audit.carriers('flavor', flavors, constants.FLAVOR_KEYS))
    findings = audit.audit(*carriers,
                           audit_cloud_reader.secret_checker(conn), reports)
    findings += audit.fabric_findings(instances, reports)
    return audit.render(*carriers, findings, 'human', instances,
                        audit.key_warnings('image', images) +
                        audit.key_warnings('flavor', flavors))


def _row(name, asked, server, cloud, fabric_of, names):
    """The table's row for a server: where it runs, what its vTPM is, whom
    its KeyProtector names."""
    from vtpm_hyperv import fake
    from vtpm_hyperv import keyprotector

    if server['status'] == 'ERROR':
        fault = server['fault']['message']
        if len(fault) >= NOVA_FAULT_CHARS:
            fault += '... (nova keeps %d characters)' % NOVA_FAULT_CHARS
        return (name, asked, 'ERROR (expected): %s' % fault, '-', '-')
    host = server['OS-EXT-SRV-ATTR:host']
    hv = cloud.hosts[host]
    vm = hv.vm_security(server['OS-EXT-SRV-ATTR:instance_name'])
    where = '%s (%s)' % (host, fabric_of[host])
    if not vm['TpmEnabled']:
        return (name, asked, where, 'none', '-')
    parsed = fake.parse_key_protector(vm['KeyProtector'])
    labels = [names.get(keyprotector.fabric_id(g.signing_der))
              or _local_guardian(g, cloud)
              for g in (parsed.owner,) + tuple(parsed.guardians)]
    if vm['ShieldingRequested']:
        kind = 'shielded'
    elif parsed.guardians:
        kind = 'encryption supported'
    else:
        kind = 'local key protector'
    return (name, asked, where, kind, ', '.join(labels))


def _local_guardian(guardian, cloud):
    """The label of a host's own guardian: which host made it."""
    for host, hv in cloud.hosts.items():
        for stored in hv.store.values():
            if stored.guardian.signing_der == guardian.signing_der:
                return '%s (local guardian of %s)' % (guardian.name, host)
    return guardian.name


def run(env):
    """The scenario, with nova's services and the simulator around it."""
    # first: nova's threading mode, before anything imports eventlet
    from tools.simcloud import process
    process.prepare()
    from tools.simcloud import driver
    from tools.simcloud import guide
    from tools.simcloud import nova

    tenant = Tenant(env)
    # the install guide's compute nova.conf, with this Keystone's nova user
    compute_conf = guide.compute_replacements(
        env['VTPM_TEST_KEYSTONE_URL'], env['VTPM_TEST_NOVA_USERNAME'],
        env['VTPM_TEST_NOVA_PASSWORD'])
    with driver.SimulatedCloud(nova.CONF,
                               owner_auth=tenant.owner_auth) as cloud, \
            nova.running(cloud.make_driver, project_id=tenant.project,
                         compute_conf=compute_conf) as services:
        say('nova.conf from %s: %s' % (
            guide.GUIDE.relative_to(ROOT), '; '.join(
                '%s, lines %s' % (name, guide.lines_read(applied))
                for name, applied in services.from_guide.items())))
        try:
            scenario(tenant, cloud, services)
        finally:
            # while nova's services still capture the clients' logs
            tenant.delete_secrets()


def _table(rows):
    headers = ('server', 'what was asked', 'outcome: the host, or the error',
               'vTPM', "KeyProtector's guardians")
    widths = (10, 24, 44, 13, 30)

    def wrap(text, width):
        words, lines, line = str(text).split(' '), [], ''
        for word in words:
            while len(word) > width:
                if line:
                    lines.append(line)
                    line = ''
                lines.append(word[:width])
                word = word[width:]
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = (line + ' ' + word).strip()
        lines.append(line)
        return lines

    out = []
    sep = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    for i, row in enumerate((headers,) + tuple(rows)):
        cells = [wrap(c, w) for c, w in zip(row, widths)]
        out.append(sep if i < 2 else '')
        for n in range(max(len(c) for c in cells)):
            out.append('| ' + ' | '.join(
                (c[n] if n < len(c) else '').ljust(w)
                for c, w in zip(cells, widths)) + ' |')
    out.append(sep)
    return '\n'.join(line for line in out if line != '')


def main(argv=None):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ['OS_NOVA_DISABLE_EVENTLET_PATCHING'] = '1'
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    import warnings
    warnings.simplefilter('ignore')
    from tools import services

    say('starting Keystone, Barbican and Glance on loopback (state in %s)'
        % STATE.relative_to(ROOT))
    noise = io.StringIO()
    failure = None
    with services.running(STATE) as env:
        say('starting nova (API, conductor, scheduler with VTPMFilter, '
            'placement) in this process')
        # nova's services log to stdout and stderr: kept, shown on failure
        # (nova is imported in here, so that its log handlers write to it)
        with contextlib.redirect_stdout(noise), \
                contextlib.redirect_stderr(noise):
            try:
                run(env)
            except Exception:  # noqa: BLE001 - reported below, exit 1
                failure = traceback.format_exc()
        say('stopping Keystone, Barbican and Glance')
    if failure:
        print(noise.getvalue(), file=sys.stderr)
        print(failure, file=sys.stderr)
    print()
    for note in NOTES:
        print('  ' + note)
    print()
    print(_table(ROWS))
    print(textwrap.fill(EXPECTED, 100))
    print()
    for report in AUDIT:
        print('The audit of this cloud (vtpm-check --audit --nova-config): '
              'the refusals above it can see, and the pairs no boot tried:')
        print(textwrap.indent(report, '  '))
        print()
    say('%s in %.1f s' % ('FAILED' if failure else 'done',
                          time.monotonic() - STARTED))
    return 1 if failure else 0


if __name__ == '__main__':
    sys.exit(main())
