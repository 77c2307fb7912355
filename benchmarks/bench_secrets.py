# SPDX-License-Identifier: Apache-2.0
"""Reading an instance's six secrets from the real Barbican, against bounds.

In one run, interleaved round by round so noise hits all alike:

- lower bound: six concurrent raw ``GET /v1/secrets/{id}/payload`` with a
  token already in hand, a warm connection pool and a ready thread pool;
- ``BarbicanKeySource.fetch`` of the six (goal: at most 1.25x the bound);
- the loop the retired compute-hyperv ran: python-barbicanclient's
  ``Client(session=...).secrets.get(ref).payload``, one secret after the
  other (the client built once, outside the timing, which flatters it);
- ``fetch`` of one secret, against six.

Usage: ``.venv/bin/python benchmarks/bench_secrets.py [rounds]``. It uses the
services of ``python3 run.py test`` when ``VTPM_TEST_*`` is set, else starts
its own (``.state/bench``) and stops them afterwards.
"""

import concurrent.futures
import os
import pathlib
import secrets as random_bytes
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from barbicanclient import client as barbican_client  # noqa: E402
from keystoneauth1 import session as ks_session  # noqa: E402
from oslo_config import cfg  # noqa: E402
import requests  # noqa: E402

from tests import realservices  # noqa: E402
from tools import services  # noqa: E402
from vtpm_hyperv import secrets  # noqa: E402

SECRETS = 6
PAYLOAD_BYTES = 2048  # about an owner PKCS#12 bundle


def timed(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def run(rounds):
    refs = [realservices.store_secret(random_bytes.token_bytes(PAYLOAD_BYTES))
            for _ in range(SECRETS)]
    try:
        return measure(refs, rounds)
    finally:
        for ref in refs:
            realservices.delete_secret(ref)


def measure(refs, rounds):
    auth = realservices.auth('owner')
    sess = ks_session.Session(auth=auth)
    token = auth.get_token(sess)
    base = realservices.barbican_url()

    raw = requests.Session()
    raw.headers.update({'X-Auth-Token': token, 'Accept': '*/*'})
    pool = concurrent.futures.ThreadPoolExecutor(SECRETS)

    def raw_get(ref):
        response = raw.get('%s/v1/secrets/%s/payload' % (base, ref),
                           timeout=10)
        response.raise_for_status()
        return response.content

    def lower_bound():
        list(pool.map(raw_get, refs))

    conf = cfg.ConfigOpts()
    conf([], project='hyperv-vtpm-bench')
    source = secrets.BarbicanKeySource(conf)

    def fetch_six():
        secrets.wipe_all(source.fetch(refs, auth=auth))

    def fetch_one():
        secrets.wipe_all(source.fetch(refs[:1], auth=auth))

    client = barbican_client.Client(session=sess)

    def client_loop():
        for ref in refs:
            client.secrets.get(ref).payload

    cases = {'lower bound (6 raw concurrent GETs)': lower_bound,
             'fetch, 6 secrets': fetch_six,
             'barbicanclient loop, 6 secrets': client_loop,
             'fetch, 1 secret': fetch_one}

    # the same bytes every way
    expected = [raw_get(ref) for ref in refs]
    assert [bytes(i.payload) for i in source.fetch(refs, auth=auth)] == \
        expected
    assert [client.secrets.get(r).payload for r in refs] == expected

    for function in cases.values():  # warm up connections and caches
        function()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, function in cases.items():
            times[name].append(timed(function))
    pool.shutdown()
    return {name: (statistics.median(t), sorted(t)[int(len(t) * 0.9) - 1])
            for name, t in times.items()}


def report(results, rounds):
    print('%d rounds, %d secrets of %d bytes; real Keystone + Barbican '
          '(1 gunicorn worker, 1 thread)' % (rounds, SECRETS, PAYLOAD_BYTES))
    print('%-40s %10s %10s' % ('case', 'median ms', 'p90 ms'))
    for name, (median, p90) in results.items():
        print('%-40s %10.1f %10.1f' % (name, median * 1000, p90 * 1000))
    lower = results['lower bound (6 raw concurrent GETs)'][0]
    six = results['fetch, 6 secrets'][0]
    one = results['fetch, 1 secret'][0]
    loop = results['barbicanclient loop, 6 secrets'][0]
    print()
    print('fetch(6) / lower bound          = %.2fx  (goal <= 1.25x)'
          % (six / lower))
    print('barbicanclient loop / fetch(6)  = %.2fx' % (loop / six))
    print('fetch(6) / fetch(1)             = %.2fx  (Barbican here serves '
          'one request at a time)' % (six / one))
    return six / lower <= 1.25


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    started_here = 'VTPM_TEST_KEYSTONE_URL' not in os.environ
    state = ROOT / '.state' / 'bench'
    if started_here:
        os.environ.update(services.start(state))
    try:
        ok = report(run(rounds), rounds)
    finally:
        if started_here:
            services.stop(state)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
