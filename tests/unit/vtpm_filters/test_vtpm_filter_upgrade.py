# SPDX-License-Identifier: Apache-2.0
"""Upgrades in either order, against the real code of the previous release.

The previous release (the one before ``vtpm:facts``) is this repository at
``PREVIOUS``: its ``vtpm_core`` and ``vtpm_filters`` are extracted with
``git archive`` and run in a subprocess of their own, so nothing of this
release is imported there. An older scheduler (that release's
``VTPMFilter``) reads what this release's computes publish, and this
release's filter reads what that release's computes published; each must
decide as this release's filter decides on this release's stats.
"""

import datetime
import io
import json
import os
import subprocess
import sys
import tarfile

from oslo_utils import timeutils
import pytest

from tests.fixtures import paths
from tests.unit.vtpm_filters import test_vtpm_filter as t
from vtpm_core import capabilities
from vtpm_core import objects

# main before the facts: the release a cloud upgrades from
PREVIOUS = 'f1adaf7e910cb79d5694eb1cb406b3441a27e3bf'
ROOT = paths.ROOT

# Runs inside the previous release: reads a JSON job from stdin, prints a
# JSON answer. 'stats' -> that release's to_stats of each report;
# 'filter' -> the names of the hosts that release's VTPMFilter passes.
_PREVIOUS_RELEASE = r'''
import json, os, sys
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
from nova import context as nova_context
from nova import objects as nova_objects
from nova.scheduler import host_manager
from oslo_config import cfg
from vtpm_core import capabilities, objects
from vtpm_filters import vtpm_filter
here = sys.argv[1]
assert capabilities.__file__.startswith(here), capabilities.__file__
assert vtpm_filter.__file__.startswith(here), vtpm_filter.__file__
assert not hasattr(capabilities, 'FACTS_KEY')
nova_objects.register_all()
job = json.load(sys.stdin)
if job['do'] == 'stats':
    print(json.dumps({name: capabilities.to_stats(
        objects.HostCapabilities.obj_from_primitive(p))
        for name, p in job['reports'].items()}))
    sys.exit()

class Images:
    def get(self, context, image_id):
        return {'id': image_id, 'properties': job['image']}

states = []
for name, stats in job['hosts'].items():
    state = host_manager.HostState(name, name, None)
    state.stats = stats
    states.append(state)
spec = nova_objects.RequestSpec(
    flavor=nova_objects.Flavor(extra_specs={}),
    image=nova_objects.ImageMeta.from_dict({'id': job['image_id'],
        'properties': {'hw_machine_type': 'hyperv-gen2'}}),
    instance_uuid=job['instance'], scheduler_hints={})
spec._context = nova_context.RequestContext('user', 'project',
                                            is_admin=False)
filt = vtpm_filter.VTPMFilter(conf=cfg.ConfigOpts(), image_api=Images())
print(json.dumps([s.host for s in filt.filter_all(states, spec)]))
'''


@pytest.fixture(scope='module')
def previous_release(tmp_path_factory):
    """Run one job in the previous release; returns its JSON answer."""
    archive = subprocess.run(
        ['git', '-C', str(ROOT), 'archive', '--format=tar', PREVIOUS,
         'vtpm_core', 'vtpm_filters'], capture_output=True, check=False)
    assert archive.returncode == 0, (
        'the upgrade tests need the previous release, commit %s, in this '
        'repository\'s history: %s' % (PREVIOUS, archive.stderr.decode()))
    here = tmp_path_factory.mktemp('previous-release')
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(here, filter='data')

    def run(job):
        env = dict(os.environ, PYTHONPATH=str(here))
        done = subprocess.run(
            [sys.executable, '-c', _PREVIOUS_RELEASE, str(here)],
            input=json.dumps(job), capture_output=True, text=True, cwd=here,
            env=env, check=False, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return run


def reports():
    """Hosts of every verdict a keyed request gives, measured just now (the
    previous release's filter reads the real clock)."""
    now = timeutils.utcnow(with_timezone=True).replace(microsecond=0)

    def caps(age=0, **overrides):
        values = dict(vtpm_supported=True, guarded=True,
                      attestation_status='Passed',
                      attestation_mode='TpmTrusted', fabric_id='fabric-a',
                      os_version='10.0.20348', local_key_protector=False,
                      measured_at=now - datetime.timedelta(seconds=age))
        values.update(overrides)
        return objects.HostCapabilities(**values)
    return {
        'attested': caps(), 'renewing': caps(
            fabric_ids=['fabric-a', 'fabric-a-old']),
        'attested-no-fabric-mode': caps(
            attestation_mode=None, os_version=None, local_key_protector=None),
        'stale': caps(age=3600), 'ahead': caps(age=-3600),
        'expired': caps(attestation_status='Expired'),
        'unguarded': caps(guarded=False), 'no-fabric': caps(fabric_id=None),
        'no-vtpm': caps(vtpm_supported=False),
    }


def this_release_passes(stats):
    """The hosts this release's filter passes for a keyed image."""
    filt, _ = t.make_filter(t.KEYED)
    hosts = [t.host(name, s) for name, s in stats.items()]
    return t.names(filt.filter_all(hosts, t.spec()))


def job(hosts):
    return {'do': 'filter', 'hosts': hosts, 'image': t.KEYED,
            'image_id': t.IMAGE_ID, 'instance': t.INSTANCE}


EXPECTED = ['attested', 'renewing', 'attested-no-fabric-mode']
# the previous release's object version: what its computes publish
PREVIOUS_VERSION = '1.2'


def test_an_older_scheduler_reads_this_releases_computes(previous_release):
    stats = {n: capabilities.to_stats(r) for n, r in reports().items()}
    assert all(capabilities.FACTS_KEY in s for s in stats.values())
    assert this_release_passes(stats) == EXPECTED
    assert previous_release(job(stats)) == EXPECTED
    # ... and a garbled report, facts and all, fails closed there too
    garbled = {n: dict(s, **{capabilities.STATS_KEY: s[
        capabilities.STATS_KEY][:-2]}) for n, s in stats.items()}
    assert previous_release(job(garbled)) == []


def test_this_scheduler_reads_an_older_releases_computes(previous_release):
    sent = reports()
    published = previous_release({'do': 'stats', 'reports': {
        n: r.obj_to_primitive(target_version=PREVIOUS_VERSION)
        for n, r in sent.items()}})
    # that release published the versioned entry alone, as this one does
    assert all(list(s) == [capabilities.STATS_KEY]
               for s in published.values())
    assert {n: s[capabilities.STATS_KEY] for n, s in published.items()} == {
        n: capabilities.to_stats(r, target_version=PREVIOUS_VERSION)[
            capabilities.STATS_KEY] for n, r in sent.items()}
    assert this_release_passes(published) == EXPECTED
