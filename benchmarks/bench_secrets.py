# SPDX-License-Identifier: Apache-2.0
"""Reading an instance's six secrets from the real Barbican, against bounds.

In one run, interleaved round by round so noise hits all alike:

- raw lower bound: six concurrent raw ``GET /v1/secrets/{id}/payload``
  with a token already in hand, a warm connection pool and a ready thread
  pool, ``Accept: */*``, retried as ``fetch`` is (``raw_retries``: on a
  loaded machine Barbican may reset a kept connection, which crashed the
  unretried baseline);
- the same asking ``Accept: application/octet-stream``;
- ``BarbicanKeySource.fetch`` of the six: python-barbicanclient with a
  payload content type given (one request per secret), concurrently, under
  the guarded transport (deadline, redirect rule, size cap); goal: at most
  1.25x the bound;
- python-barbicanclient as the retired compute-hyperv used it:
  ``Client(session=...).secrets.get(ref).payload`` without the content
  type (two requests per secret), one secret after the other (the client
  built once, outside the timing, which flatters it).

Why the key source asks ``*/*``: Barbican 23 answers it in the type the
secret was stored with, the same bytes, but it serves
``application/octet-stream`` markedly slower (the second row: 1.4x to 1.5x
the bound, about 4 ms more per request on this machine; the time is spent
in Barbican, not in any client). Asking ``application/octet-stream`` the
client measured 1.57x the bound, asking ``*/*`` 0.97x to 1.12x over
several runs. The figures of one run, and of the hand-written REST client
the key source had before python-barbicanclient, are in
``doc/source/admin/barbican.rst``.

Usage: ``.venv/bin/python benchmarks/bench_secrets.py [rounds]``. It uses the
services of ``python3 run.py test`` when ``VTPM_TEST_*`` is set, else starts
its own (``.state/bench``) and stops them afterwards. Exit status 1 when
``fetch`` misses its goal.
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
from urllib3.util import retry as urllib3_retry  # noqa: E402

from tools import services  # noqa: E402
from tools.services import clients as realservices  # noqa: E402
from vtpm_hyperv.barbican import conf as barbican_conf  # noqa: E402
from vtpm_hyperv.barbican import key_source  # noqa: E402

SECRETS = 6
PAYLOAD_BYTES = 2048  # about an owner PKCS#12 bundle
GOAL = 1.25

BOUND = 'raw lower bound (6 concurrent GETs)'
OCTET = 'raw, Accept: application/octet-stream'
FETCH = 'fetch: barbicanclient, 6 secrets'
NAIVE = 'barbicanclient loop, no content type'


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


def raw_retries(conf):
    """urllib3's Retry doing what keystoneauth does for the key source:
    ``connect_retries`` more attempts when the connection fails (refused,
    or reset while the answer is read), ``status_code_retries`` on
    ``retriable_status_codes``, 0.5 s then doubling between them."""
    group = conf[barbican_conf.GROUP]
    return urllib3_retry.Retry(
        total=None, connect=group.connect_retries,
        read=group.connect_retries, other=0,
        status=group.status_code_retries,
        status_forcelist=group.retriable_status_codes,
        backoff_factor=0.5, raise_on_status=False)


def measure(refs, rounds):
    auth = realservices.auth('owner')
    sess = ks_session.Session(auth=auth)
    token = auth.get_token(sess)
    base = realservices.barbican_url()

    conf = cfg.ConfigOpts()
    conf([], project='hyperv-vtpm-bench')
    source = key_source.BarbicanKeySource(conf)
    client = barbican_client.Client(session=sess)

    raw = requests.Session()
    raw.headers.update({'X-Auth-Token': token})
    # retried as the key source is (its [vtpm_key_manager] defaults,
    # through keystoneauth): a connection refused or reset, or a 5xx
    # Barbican may answer when loaded, again after 0.5 s, then 1 s
    raw.mount(base, requests.adapters.HTTPAdapter(
        pool_maxsize=SECRETS, max_retries=raw_retries(conf)))
    pool = concurrent.futures.ThreadPoolExecutor(SECRETS)

    def raw_get(ref, accept='*/*'):
        response = raw.get('%s/v1/secrets/%s/payload' % (base, ref),
                           headers={'Accept': accept}, timeout=10)
        response.raise_for_status()
        return response.content

    cases = {
        BOUND: lambda: list(pool.map(raw_get, refs)),
        OCTET: lambda: list(pool.map(
            raw_get, refs, ['application/octet-stream'] * len(refs))),
        FETCH: lambda: key_source.wipe_all(source.fetch(refs, auth=auth)),
        NAIVE: lambda: [client.secrets.get(r).payload for r in refs],
    }

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
          '(1 gunicorn worker, 1 thread) on loopback'
          % (rounds, SECRETS, PAYLOAD_BYTES))
    bound = results[BOUND][0]
    print('%-40s %10s %10s %10s' % ('case', 'median ms', 'p90 ms',
                                    'x bound'))
    for name, (median, p90) in results.items():
        print('%-40s %10.1f %10.1f %9.2fx' % (name, median * 1000,
                                              p90 * 1000, median / bound))
    fetch = results[FETCH][0]
    print()
    print('fetch / raw lower bound          = %.2fx  (goal <= %.2fx)'
          % (fetch / bound, GOAL))
    print('barbicanclient loop / fetch      = %.2fx'
          % (results[NAIVE][0] / fetch))
    return fetch / bound <= GOAL


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
