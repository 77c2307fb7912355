# SPDX-License-Identifier: Apache-2.0
"""``vtpm-check --audit --nova-config`` at cloud scale, against its floor.

    .venv/bin/python benchmarks/bench_audit.py [--sizes 1000,10000,100000]
                                               [--barbican]

Per size, a fresh nova cell database: nova's API and cell databases as
nova's own test case makes them (sqlite files in WAL mode, nova's
migrations, the cell mappings), in which nova's ``Instance.create`` writes
two instances, a plain one and one with a KeyProtector, each with the
system metadata nova copies from its image; their rows in every table that
holds an instance's (``instances``, ``instance_system_metadata``,
``instance_extra``, ``instance_info_caches``) are then copied, with new
uuids, names, projects, hosts and images, up to the size: one instance in
ten has a KeyProtector (``vtpm_fabrics`` and ``vtpm_keys``, written as the
compute side writes them), one in twenty a local key protector. A tenth of
the keyed instances were built from images since deleted.

The API side: 1,000 images and 100 flavors that carry vTPM properties.
The images: 600 without keys in six variants (``os_vtpm`` required or
optional, with nova's ``hw_tpm_*`` or not, shielded or not), 380 keyed
images, each naming one or two of 500 secrets of its own tenant (so their
properties are all distinct), and 20 with an invalid value. The flavors:
ten vTPM variants (``os:vtpm`` required, optional, disabled; nova's
``hw:tpm_*`` with ``host`` or ``user`` secret security; one ``deployment``,
one invalid) over ten sizes each (a flavor's vTPM keys do not change with
its size, which is why flavors share them). 2,000 hosts' reports in four
kinds. Secrets are answered in process (one in twenty is gone), counted;
with ``--barbican`` they are stored in the real Barbican (one in twenty
deleted again) and read as the audit reads them (``cloud.secret_checker``,
metadata only), and the floor's one read per distinct secret is the same
request: the services of ``python3 run.py test`` when ``VTPM_TEST_*`` is
set, else its own (``.state/bench``), stopped afterwards.

Printed per size, each best of three runs:

* the nova read (``novadb.instances``): its time, its pages and the
  longest single page (each one call of nova's scatter-gather, within
  nova's ``CELL_TIMEOUT`` of 60 s); the floor, one plain SQL query
  returning the same rows in one go; their ratio;
* at 10,000 instances and below, the reader this one replaced (every
  instance and all its system metadata as nova objects), once;
* the whole audit (the nova read, the images and flavors, the instances'
  secrets and fabrics, the JSON report): its time; the floor (the one SQL
  query and one read per distinct secret); their ratio; the peak of
  Python's memory during the audit (``tracemalloc``, a run of its own);
* the policy evaluations against the distinct pairs (at most one each,
  checked) and the naive image x flavor count, the secret reads against
  the distinct secrets (exactly one each, checked), and the findings and
  the subjects they count.

Exit status 1 when a rule is broken: an evaluation repeated, a secret
read twice, or a page that takes a tenth of ``CELL_TIMEOUT`` or more.
"""

import argparse
import contextlib
import datetime
import importlib
import os
import pathlib
import random
import sys
import time
import tracemalloc
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# before nova: the process prepared for nova's test fixtures
importlib.import_module('tools.simcloud.process').prepare()

from nova import context as nova_context  # noqa: E402
from nova.db.main import api as db_api  # noqa: E402
from nova.db.main import models  # noqa: E402
from nova import objects  # noqa: E402
from nova import test as nova_test  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from vtpm_cli import audit  # noqa: E402
from vtpm_cli import novadb  # noqa: E402
from vtpm_core import constants as c  # noqa: E402
from vtpm_core import objects as vtpm_objects  # noqa: E402
from vtpm_core import policy  # noqa: E402

KEYED_EVERY = 10  # one instance in ten has a KeyProtector
LOCAL_EVERY = 20  # one in twenty a local key protector
GONE_IMAGE_EVERY = 10  # of the keyed, built from an image since deleted
SECRETS = 500
GONE_SECRET_EVERY = 20
PROJECTS = 200
HOSTS = 2000
RUNS = 3
# the reader before, once, at the sizes it can read in reasonable time
BEFORE_UP_TO = 10000
# a page may take at most this share of nova's per-cell limit
ROOM = 0.1
FABRIC = 'c3' * 32
GEN2 = {c.IMAGE_MACHINE_TYPE: c.MACHINE_TYPE_GEN2}


class _Cells(nova_test.TestCase):
    """nova's API database, cell0 and cell1, as nova's tests make them."""

    def runTest(self):  # noqa: N802 - unittest's name for the default test
        """Nothing: the benchmark runs between setUp and doCleanups."""


# --- the API side: images, flavors, hosts, secrets ------------------------

def new_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def secret_pool(rng):
    return [new_uuid(rng) for _ in range(SECRETS)]


def cloud_images(rng, secrets):
    variants = [dict(GEN2, os_vtpm='required'), dict(GEN2, os_vtpm='optional'),
                dict(GEN2, os_vtpm='required', hw_tpm_version='2.0',
                     hw_tpm_model='tpm-crb'),
                dict(GEN2, os_vtpm='optional', hw_tpm_version='2.0',
                     hw_tpm_model='tpm-crb'),
                dict(GEN2, os_vtpm='required', os_shielded_vm='optional'),
                dict(GEN2, os_vtpm='optional', os_shielded_vm='disabled')]
    rows = [(new_uuid(rng), 'plain-%d' % n, dict(variants[n % 6]))
            for n in range(600)]
    for n in range(380):
        keys = rng.sample(secrets, 1 + n % 2)
        rows.append((new_uuid(rng), 'keyed-%d' % n, dict(
            GEN2, os_vtpm='required', os_vtpm_keys=','.join(keys),
            **({'os_shielded_vm': 'required'} if n % 3 == 0 else {}))))
    rows += [(new_uuid(rng), 'bad-%d' % n, dict(GEN2, os_vtpm='Required'))
             for n in range(20)]
    return audit.carriers('image', rows, c.IMAGE_KEYS)


def cloud_flavors():
    variants = [{'os:vtpm': 'required'}, {'os:vtpm': 'optional'},
                {'os:vtpm': 'disabled'},
                {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb'},
                {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb',
                 'hw:tpm_secret_security': 'host'},
                {'hw:tpm_version': '2.0', 'hw:tpm_model': 'tpm-crb',
                 'hw:tpm_secret_security': 'user'},
                {'os:vtpm': 'required', 'hw:tpm_secret_security': 'host'},
                {'os:vtpm': 'optional', 'hw:tpm_model': 'tpm-crb'},
                {'hw:tpm_secret_security': 'deployment'},
                {'os:vtpm': 'bogus'}]
    return audit.carriers('flavor', [
        ('flv-%d-%d' % (v, size), 'm%d.vtpm-%d' % (size, v), dict(specs))
        for v, specs in enumerate(variants) for size in range(10)],
        c.FLAVOR_KEYS)


def host_reports():
    now = datetime.datetime.now(datetime.timezone.utc)
    kinds = [dict(vtpm_supported=True, guarded=True,
                  attestation_status='Passed', local_key_protector=False,
                  fabric_id=FABRIC, fabric_ids=[FABRIC]),
             dict(vtpm_supported=True, guarded=True,
                  attestation_status='InsecureHostConfiguration',
                  local_key_protector=False, fabric_id=FABRIC,
                  fabric_ids=[FABRIC]),
             dict(vtpm_supported=True, guarded=False,
                  attestation_status='Unknown', local_key_protector=True),
             dict(vtpm_supported=False, guarded=False,
                  attestation_status='Unknown', local_key_protector=False)]
    return [vtpm_objects.HostCapabilities(measured_at=now, **kinds[n % 4])
            for n in range(HOSTS)]


class Secrets:
    """Barbican's answers, in process: None, or why a secret is gone."""

    def __init__(self, secrets, checker=None):
        self.gone = set(secrets[::GONE_SECRET_EVERY])
        self.reads = []
        # the audit's own reader of a real Barbican (--barbican)
        self.checker = checker

    def problem(self, ref):
        self.reads.append(ref)
        if self.checker is not None:
            return self.checker(ref)
        return 'does not exist' if ref in self.gone else None


def real_barbican(stack):
    """(secrets, checker): SECRETS secrets stored in the real Barbican as
    the tests' owner, one in GONE_SECRET_EVERY deleted again, and the
    audit's reader of their metadata (``cloud.secret_checker``)."""
    import openstack

    from tools import services
    from tools.services import clients
    from vtpm_cli import cloud

    if 'VTPM_TEST_KEYSTONE_URL' not in os.environ:
        state = ROOT / '.state' / 'bench'
        os.environ.update(services.start(state))
        stack.callback(services.stop, state)
    refs = [clients.store_secret(os.urandom(32), name='bench_audit')
            for _ in range(SECRETS)]
    stack.callback(lambda: [clients.delete_secret(r) for r in refs
                            if r not in refs[::GONE_SECRET_EVERY]])
    for ref in refs[::GONE_SECRET_EVERY]:
        clients.delete_secret(ref)
    conn = openstack.connection.Connection(
        session=clients.session('owner'),
        region_name=os.environ.get('VTPM_TEST_REGION'))
    return refs, cloud.secret_checker(conn)


# --- the cell database ----------------------------------------------------

def _system_metadata(image):
    """What nova copies into an instance's system metadata from its image
    (``utils.get_system_metadata_from_image``) and its owner."""
    sysmeta = {'image_base_image_ref': image.id, 'image_min_ram': '0',
               'image_min_disk': '40', 'image_disk_format': 'vhdx',
               'image_container_format': 'bare',
               'owner_user_name': 'user', 'owner_project_name': 'project',
               'boot_roles': 'member,reader'}
    sysmeta.update(('image_' + k, v) for k, v in image.properties.items())
    return sysmeta


def _copies():
    """Every table that holds an instance's rows."""
    return [t for t in models.BASE.metadata.sorted_tables
            if 'instance_uuid' in t.c or t.name == 'instances']


def populate(cell_context, size, images, rng):
    """``size`` instances in the cell, as nova writes them (see above)."""
    plain = [i for i in images if c.IMAGE_VTPM_KEYS not in i.properties
             and i.properties.get(c.IMAGE_VTPM) != 'Required']
    keyed = [i for i in images if c.IMAGE_VTPM_KEYS in i.properties]
    templates = {}
    for kind, image in (('plain', plain[0]), ('keyed', keyed[0])):
        sysmeta = _system_metadata(image)
        if kind == 'keyed':
            sysmeta[c.SYSMETA_FABRICS] = FABRIC
            sysmeta[c.SYSMETA_KEYS] = ','.join(
                policy.build_request(image.properties, {}).key_refs)
        instance = objects.Instance(
            context=cell_context, uuid=str(uuid.uuid4()),
            display_name='template', project_id='p', user_id='u',
            host='h', node='h', compute_id=1, image_ref=image.id,
            vm_state='active',
            power_state=1, memory_mb=4096, vcpus=2, root_gb=40,
            system_metadata=sysmeta)
        instance.create()
        templates[kind] = instance.uuid
    engine = db_api.get_engine(context=cell_context)
    tables = _copies()
    with engine.connect() as conn:
        rows = {kind: {t.name: [dict(r._mapping) for r in conn.execute(
            t.select().where((t.c.uuid if t.name == 'instances' else
                              t.c.instance_uuid) == u))] for t in tables}
                for kind, u in templates.items()}
        for t in tables:
            conn.execute(t.delete().where((t.c.uuid if t.name == 'instances'
                                           else t.c.instance_uuid).in_(
                                               templates.values())))
        conn.commit()
    batch = {t.name: [] for t in tables}
    by_name = {t.name: t for t in tables}

    def flush():
        with engine.begin() as conn:
            for t in tables:
                if batch[t.name]:
                    conn.execute(by_name[t.name].insert(), batch[t.name])
                    batch[t.name] = []

    for n in range(size):
        kind = 'keyed' if n % KEYED_EVERY == 0 else 'plain'
        image = rng.choice(keyed if kind == 'keyed' else plain)
        image_ref = (str(uuid.uuid4()) if kind == 'keyed' and
                     n % (KEYED_EVERY * GONE_IMAGE_EVERY) == 0 else image.id)
        new = str(uuid.uuid4())
        values = {c.SYSMETA_KEYS: ','.join(policy.build_request(
            image.properties, {}).key_refs)} if kind == 'keyed' else {}
        if kind == 'plain' and n % LOCAL_EVERY == 1:
            values[c.SYSMETA_FABRICS] = ''
        for t in tables:
            for row in rows[kind][t.name]:
                row = dict(row)
                row.pop('id', None)
                if t.name == 'instances':
                    row.update(uuid=new, display_name='vm-%d' % n,
                               project_id='p%d' % (n % PROJECTS),
                               host='hv%d' % (n % HOSTS),
                               image_ref=image_ref)
                else:
                    row['instance_uuid'] = new
                if t.name == 'instance_system_metadata':
                    if row['key'] == 'image_base_image_ref':
                        row['value'] = image_ref
                    row['value'] = values.get(row['key'], row['value'])
                batch[t.name].append(row)
        if kind == 'plain' and c.SYSMETA_FABRICS in values:
            batch['instance_system_metadata'].append(dict(
                rows['plain']['instance_system_metadata'][0],
                instance_uuid=new, key=c.SYSMETA_FABRICS, value=''))
            batch['instance_system_metadata'][-1].pop('id', None)
        if n % 5000 == 4999:
            flush()
    flush()


def floor_query(engine):
    """The rows the audit needs, in one plain SQL query."""
    meta, inst = models.InstanceSystemMetadata, models.Instance
    query = (sa.select(meta.instance_uuid, meta.key, meta.value,
                       inst.display_name, inst.project_id, inst.host,
                       inst.image_ref)
             .join(inst, inst.uuid == meta.instance_uuid)
             .where(meta.key.in_((c.SYSMETA_FABRICS, c.SYSMETA_KEYS)),
                    meta.deleted == 0, inst.deleted == 0))
    with engine.connect() as conn:
        return conn.execute(query).all()


# --- measuring ------------------------------------------------------------

class Counted:
    """policy.build_request, counted by its arguments."""

    def __init__(self):
        self.real = policy.build_request
        self.calls = []

    def __call__(self, image, flavor):
        self.calls.append((repr(sorted(image.items())),
                           repr(sorted(flavor.items()))))
        return self.real(image, flavor)


def run_audit(context, images, flavors, reports, secrets, parts):
    """The audit as ``cloud.run`` makes it, nova's side from the DB; the
    seconds of each part added to ``parts``."""
    def part(name, function):
        seconds, result = _timed(function)
        parts[name] = parts.get(name, 0) + seconds
        return result

    instances = part('nova read', lambda: novadb.instances(context))
    check = audit.once_per_secret(secrets.problem)
    findings = part('images x flavors', lambda: audit.audit(
        images, flavors, check, reports))
    findings += part('instances', lambda: audit.secret_findings(
        instances, check) + audit.fabric_findings(instances, reports))
    report = part('report', lambda: audit.render(
        images, flavors, findings, 'json', instances))
    return instances, audit.group(findings), report


def measure(size, images, flavors, reports, secret_refs, checker):
    cells = _Cells()
    cells.setUp()
    try:
        context = nova_context.get_admin_context()
        cell = cells.cell_mappings['cell1']
        started = time.perf_counter()
        with nova_context.target_cell(context, cell) as cctxt:
            populate(cctxt, size, images, random.Random(size))
            engine = db_api.get_engine(context=cctxt)
        built = time.perf_counter() - started
        return _measure(size, context, engine, images, flavors, reports,
                        secret_refs, checker, built)
    finally:
        cells.doCleanups()


def _read_cell_as_before(context):
    # the reader this one replaced: every instance and all its system
    # metadata as nova objects
    return [(i.uuid, i.display_name, dict(i.system_metadata))
            for i in objects.InstanceList.get_by_filters(
                context, {'deleted': False},
                expected_attrs=['system_metadata'])]


def read_as_before(context):
    return nova_context.scatter_gather_skip_cell0(context,
                                                  _read_cell_as_before)


def _timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def _measure(size, context, engine, images, flavors, reports, secret_refs,
             checker, built):
    pages = []
    real_page = novadb._read_page

    def timed_page(ctx, after, limit):
        seconds, rows = _timed(lambda: real_page(ctx, after, limit))
        pages.append(seconds)
        return rows

    novadb._read_page = timed_page
    counted = Counted()
    policy.build_request = counted
    try:
        read, floor_read, whole, floor_whole = [], [], [], []
        best, longest = None, 0
        for _ in range(RUNS):
            parts = {}
            pages.clear()
            counted.calls.clear()
            seconds, rows = _timed(lambda: floor_query(engine))
            distinct = sorted({r for row in rows if row[1] == c.SYSMETA_KEYS
                               for r in row[2].split(',')} | {
                r for i in images for r in i.properties.get(
                    c.IMAGE_VTPM_KEYS, '').split(',') if r})
            floor_secrets = Secrets(secret_refs, checker)
            secret_seconds, _ = _timed(
                lambda: [floor_secrets.problem(r) for r in distinct])
            floor_read.append(seconds)
            floor_whole.append(seconds + secret_seconds)
            secrets = Secrets(secret_refs, checker)
            seconds, (instances, findings, report) = _timed(
                lambda: run_audit(context, images, flavors, reports,
                                  secrets, parts))
            if not whole or seconds < min(whole):
                best = parts
            whole.append(seconds)
            read.append(sum(pages))
            evaluations = list(counted.calls)
            longest = max([longest] + pages)
            page_count = len(pages)
        before = None
        if size <= BEFORE_UP_TO:
            before, _ = _timed(lambda: read_as_before(context))
        tracemalloc.start()
        run_audit(context, images, flavors, reports,
                  Secrets(secret_refs, checker),
                  {})
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    finally:
        novadb._read_page = real_page
        policy.build_request = counted.real
    return dict(
        size=size, built=built, keyed=len(instances), rows=len(rows),
        read=min(read), floor_read=min(floor_read), pages=page_count,
        longest=longest, whole=min(whole), floor_whole=min(floor_whole),
        parts=best, before=before, peak=peak, evaluations=len(evaluations),
        distinct_pairs=len(set(evaluations)),
        reads=len(secrets.reads), distinct_secrets=len(set(secrets.reads)),
        expected_secrets=len(distinct), findings=len(findings),
        subjects=sum(f.count for f in findings), report=len(report))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='1000,10000,100000')
    parser.add_argument('--barbican', action='store_true',
                        help='read the secrets from the real Barbican '
                        '(tools.services), as the audit does')
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        return run(args, stack)


def run(args, stack):
    rng = random.Random(24)
    secret_refs, checker = secret_pool(rng), None
    if args.barbican:
        secret_refs, checker = real_barbican(stack)
    images, flavors = cloud_images(rng, secret_refs), cloud_flavors()
    reports = host_reports()
    print('%d images and %d flavors (%d x %d distinct vTPM properties), '
          '%d hosts\' reports; naive pairs: %d' % (
              len(images), len(flavors), len(audit._distinct(images)),
              len(audit._distinct(flavors)), len(reports),
              len(images) * len(flavors)))
    failed = []
    for size in [int(s) for s in args.sizes.split(',')]:
        r = measure(size, images, flavors, reports, secret_refs, checker)
        print()
        print('%(size)d instances (%(keyed)d with a KeyProtector, %(rows)d '
              'rows of ours), built in %(built).1f s' % r)
        print('  nova read   %7.3f s in %d page(s), longest page %.3f s '
              '(%.2f%% of CELL_TIMEOUT %d s); floor (one SQL query) %.3f s; '
              'ratio %.2fx' % (
                  r['read'], r['pages'], r['longest'],
                  100 * r['longest'] / nova_context.CELL_TIMEOUT,
                  nova_context.CELL_TIMEOUT, r['floor_read'],
                  r['read'] / r['floor_read']))
        if r['before'] is not None:
            print('  the reader before (every instance as nova objects): '
                  '%.3f s, %.1fx the floor' % (
                      r['before'], r['before'] / r['floor_read']))
        print('  audit       %7.3f s; floor (one SQL query, one read per '
              'distinct secret) %.3f s; ratio %.2fx; peak Python memory '
              '%.1f MB; JSON report %d KB' % (
                  r['whole'], r['floor_whole'],
                  r['whole'] / r['floor_whole'], r['peak'] / 2 ** 20,
                  r['report'] // 1024))
        print('  parts of the audit: %s' % ', '.join(
            '%s %.3f s' % kv for kv in r['parts'].items()))
        print('  policy evaluations %d (distinct pairs %d; naive %d); '
              'secret reads %d (distinct secrets %d); %d finding(s) '
              'counting %d subject(s)' % (
                  r['evaluations'], r['distinct_pairs'],
                  len(images) * len(flavors), r['reads'],
                  r['distinct_secrets'], r['findings'], r['subjects']))
        # the rules, checked
        if r['evaluations'] != r['distinct_pairs']:
            failed.append('%d: an evaluation was repeated' % size)
        if r['reads'] != r['expected_secrets']:
            failed.append('%d: %d secret reads for %d distinct secrets' % (
                size, r['reads'], r['expected_secrets']))
        if r['longest'] >= ROOM * nova_context.CELL_TIMEOUT:
            failed.append('%d: a page took %.1f s' % (size, r['longest']))
    for failure in failed:
        print('FAILED: %s' % failure)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
