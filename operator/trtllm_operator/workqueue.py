"""A controller-runtime style work queue: deduplicated keys, one worker per key at a time, delayed requeue.

Why not kopf daemons/timers: kopf puts a finalizer on every object that has one, so deleting a
TRTEngine would hang whenever the operator is down. Watch events only enqueue keys here; worker
threads run the (synchronous) reconcile, so a key is never reconciled twice concurrently and a burst
of events for one engine collapses into one reconcile.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()  # added while processing: requeue when done
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = 0
        self._closed = False

    def add(self, key: K, after: float = 0.0) -> None:
        with self._cond:
            if self._closed:
                return
            if after > 0:
                self._seq += 1
                heapq.heappush(self._delayed, (time.monotonic() + after, self._seq, key))
            elif key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
            self._cond.notify()

    def _promote_due(self) -> float | None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            if key in self._processing:
                self._dirty.add(key)
            elif key not in self._queued:
                self._queued.add(key)
                self._ready.append(key)
        return self._delayed[0][0] - now if self._delayed else None

    def get(self, timeout: float = 1.0) -> K | None:
        """The next key to process (marked as processing), or None after ``timeout`` / when closed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._closed:
                wait = self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing.add(key)
                    return key
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, wait) if wait is not None else remaining)
            return None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)
