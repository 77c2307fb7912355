# SPDX-License-Identifier: Apache-2.0
"""ImageCache: one read per image per lifetime, bounded, failures not kept."""

import threading
import time

import pytest

from vtpm_filters import image_cache


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Reads:
    """read() callables that count, and answer or fail as told."""

    def __init__(self):
        self.calls = []

    def of(self, image_id, value=None, error=None, before=None):
        def read():
            self.calls.append(image_id)
            if before:
                before()
            if error:
                raise error
            return value if value is not None else {'id': image_id}
        return read


def test_one_read_per_image_per_lifetime():
    clock, reads = Clock(), Reads()
    cache = image_cache.ImageCache(ttl=60, max_size=10, clock=clock)
    for _ in range(5):
        assert cache.get('a', reads.of('a')) == {'id': 'a'}
        assert cache.get('b', reads.of('b')) == {'id': 'b'}
    assert reads.calls == ['a', 'b']
    clock.now += 59.9
    cache.get('a', reads.of('a'))
    assert reads.calls == ['a', 'b']
    # expired: read again, then kept for another lifetime
    clock.now += 0.1
    assert cache.get('a', reads.of('a', {'id': 'a', 'v': 2})) == {
        'id': 'a', 'v': 2}
    cache.get('a', reads.of('a'))
    assert reads.calls == ['a', 'b', 'a']


def test_ttl_zero_keeps_nothing():
    reads = Reads()
    cache = image_cache.ImageCache(ttl=0, max_size=10, clock=Clock())
    for _ in range(3):
        cache.get('a', reads.of('a'))
    assert reads.calls == ['a'] * 3
    assert len(cache) == 0


def test_least_recently_used_goes_first():
    reads = Reads()
    cache = image_cache.ImageCache(ttl=60, max_size=2, clock=Clock())
    cache.get('a', reads.of('a'))
    cache.get('b', reads.of('b'))
    cache.get('a', reads.of('a'))  # a used last
    cache.get('c', reads.of('c'))  # b goes
    assert len(cache) == 2
    cache.get('a', reads.of('a'))
    cache.get('b', reads.of('b'))
    assert reads.calls == ['a', 'b', 'c', 'b']


class GlanceDown(Exception):
    pass


def test_a_failure_is_not_kept():
    reads = Reads()
    cache = image_cache.ImageCache(ttl=60, max_size=10, clock=Clock())
    for _ in range(2):
        with pytest.raises(GlanceDown):
            cache.get('a', reads.of('a', error=GlanceDown()))
    assert cache.get('a', reads.of('a')) == {'id': 'a'}
    assert reads.calls == ['a'] * 3


def _concurrently(count, target):
    threads = [threading.Thread(target=target) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


class CountingEvent(threading.Event):
    """threading.Event that counts its waiters."""

    waiting = 0
    _lock = threading.Lock()

    def wait(self, timeout=None):
        with CountingEvent._lock:
            CountingEvent.waiting += 1
        return super().wait(timeout)


@pytest.mark.parametrize('error', [None, GlanceDown()],
                         ids=['answer', 'failure'])
def test_concurrent_requests_share_one_read(monkeypatch, error):
    # Eight requests for an image nobody has read: one read, and the seven
    # others get its answer (or its failure) instead of asking Glance too.
    monkeypatch.setattr(threading, 'Event', CountingEvent)
    monkeypatch.setattr(CountingEvent, 'waiting', 0)
    reads = Reads()
    cache = image_cache.ImageCache(ttl=60, max_size=10, clock=Clock())
    started, release = threading.Event(), threading.Event()

    def slow():
        started.set()
        assert release.wait(10)

    read = reads.of('a', error=error, before=slow)
    results = []

    def request():
        try:
            results.append(cache.get('a', read))
        except GlanceDown as e:
            results.append(e)

    leader = _concurrently(1, request)
    assert started.wait(10)
    waiters = _concurrently(7, request)
    deadline = time.monotonic() + 10
    # the leader's two waits (started, release) and the seven's
    while CountingEvent.waiting < 2 + 7 and time.monotonic() < deadline:
        time.sleep(0.001)
    release.set()
    for t in leader + waiters:
        t.join(10)
    assert reads.calls == ['a']
    assert len(results) == 8
    assert all(r is results[0] for r in results)
    assert len(cache) == (0 if error else 1)
