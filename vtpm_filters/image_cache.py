# SPDX-License-Identifier: Apache-2.0
"""What the scheduler read of an image, kept for a short time.

``ImageCache.get(image_id, read)`` calls ``read()`` at most once per image
per lifetime, however many requests (threads or greenthreads) ask at once:
the first asks Glance, the others wait for its answer. An answer is kept
for ``ttl`` seconds; a failure is not kept, it reaches the requests that
were waiting for that read and no others. The oldest-used entry goes when
``max_size`` would be exceeded.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import threading
import time


class _Read:
    """One read under way: its waiters block on ``done``."""

    __slots__ = ('done', 'ok', 'value', 'error')

    def __init__(self):
        self.done = threading.Event()
        self.ok = False
        self.value = None
        self.error = None


class ImageCache:
    """Values by image id: bounded, expiring, one read per image at once."""

    def __init__(self, ttl: float, max_size: int,
                 clock: Callable[[], float] = time.monotonic):
        """:param ttl: seconds an answer is kept; 0 keeps none.
        :param max_size: entries kept at most.
        :param clock: monotonic seconds (tests pass their own).
        """
        self._ttl = ttl
        self._max_size = max_size
        self._clock = clock
        self._lock = threading.Lock()
        # image id -> (expires at, value), oldest used first
        self._entries = collections.OrderedDict()
        # image id -> _Read, while one is under way
        self._reads = {}

    def get(self, image_id: str, read: Callable[[], object]):
        """The value for ``image_id``: kept, or ``read()`` now.

        :raises: whatever ``read`` raised, to this caller and to those that
            waited for the same read; nothing is kept then.
        """
        with self._lock:
            entry = self._entries.get(image_id)
            if entry is not None:
                if entry[0] > self._clock():
                    self._entries.move_to_end(image_id)
                    return entry[1]
                del self._entries[image_id]
            pending = self._reads.get(image_id)
            leader = pending is None
            if leader:
                pending = self._reads[image_id] = _Read()
        if not leader:
            pending.done.wait()
            if pending.ok:
                return pending.value
            if pending.error is not None:
                raise pending.error
            # the reader was stopped (GreenletExit, KeyboardInterrupt)
            return self.get(image_id, read)
        try:
            pending.value = read()
            pending.ok = True
        except Exception as e:
            pending.error = e
            raise
        finally:
            with self._lock:
                del self._reads[image_id]
                if pending.ok and self._ttl > 0:
                    self._keep(image_id, pending.value)
            pending.done.set()
        return pending.value

    def _keep(self, image_id, value):
        entries = self._entries
        entries[image_id] = (self._clock() + self._ttl, value)
        entries.move_to_end(image_id)
        while len(entries) > self._max_size:
            entries.popitem(last=False)

    def __len__(self):
        return len(self._entries)
