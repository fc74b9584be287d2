"""A rate-limited work queue with client-go's semantics (``util/workqueue``), for worker threads.

- A key is at most once in the queue, and never handed to two workers at once: a key added while it
  is being processed is marked dirty and comes back once, after ``done``.
- ``add_after`` keeps at most one pending delayed entry per key: the earliest time wins.
- ``add_rate_limited`` requeues with per-key exponential backoff (base * 2^failures, capped, with a
  little jitter); ``forget`` resets it after a success. While a key is backing off, a plain ``add``
  (a watch event, a resync) does not cut the wait short: it is pushed to the end of the backoff. A
  failing object's own status write therefore cannot turn its retries into a hot loop.
- Fair: ready keys are served in the order they became ready (FIFO).

Watch events only add keys; worker threads run the (synchronous) reconcile. The queue keeps the
numbers an operator is judged by (depth, adds, retries, the longest-running item) in ``stats``.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Clock = Callable[[], float]


@dataclass(frozen=True)
class Backoff:
    """Per-key exponential backoff: ``base * 2**failures`` seconds, at most ``cap``, ±``jitter``."""

    base: float = 0.1
    cap: float = 300.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        raw = min(self.cap, self.base * 2 ** min(failures, 40))
        spread = raw * self.jitter
        jittered: float = raw + random.uniform(-spread, spread)  # noqa: S311 - jitter only
        return max(0.0, jittered)


@dataclass
class QueueStats:
    adds: int = 0
    retries: int = 0


class WorkQueue(Generic[K]):
    def __init__(self, backoff: Backoff | None = None, clock: Clock = time.monotonic) -> None:
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._queued: set[K] = set()
        self._processing: dict[K, float] = {}  # key -> when a worker took it
        self._dirty: set[K] = set()  # added while processing: requeue when done
        self._delayed: list[tuple[float, int, K]] = []  # heap; stale entries are skipped
        self._due: dict[K, float] = {}  # the one live delayed time per key
        self._failures: dict[K, int] = {}
        self._not_before: dict[K, float] = {}  # backoff: plain adds wait until then
        self._seq = 0
        self._closed = False
        self.stats = QueueStats()

    # ------------------------------------------------------------------ adding
    def add(self, key: K) -> None:
        """Make ``key`` ready now (or, while it backs off, when its backoff ends)."""
        with self._cond:
            if self._closed:
                return
            self.stats.adds += 1
            wait_until = self._not_before.get(key)
            if wait_until is not None and wait_until > self._clock():
                self._schedule(key, wait_until)
            else:
                self._make_ready(key)
            self._cond.notify()

    def add_after(self, key: K, delay: float) -> None:
        """Make ``key`` ready after ``delay`` seconds; an earlier pending time for it wins."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._closed:
                return
            self.stats.adds += 1
            self._schedule(key, self._clock() + delay)
            self._cond.notify()

    def add_rate_limited(self, key: K) -> float:
        """Requeue ``key`` after its next backoff step; returns the delay chosen."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            self.stats.retries += 1
            delay = self.backoff.delay(failures)
            self._not_before[key] = self._clock() + delay
        self.add_after(key, delay)
        return delay

    def forget(self, key: K) -> None:
        """The key succeeded: its next failure starts the backoff from the beginning."""
        with self._cond:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)

    def failures(self, key: K) -> int:
        with self._cond:
            return self._failures.get(key, 0)

    def _schedule(self, key: K, when: float) -> None:
        current = self._due.get(key)
        if current is not None and current <= when:
            return  # the earliest pending time wins
        self._due[key] = when
        self._seq += 1
        heapq.heappush(self._delayed, (when, self._seq, key))

    def _make_ready(self, key: K) -> None:
        if key in self._processing:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.append(key)

    def _promote_due(self) -> float | None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            when, _, key = heapq.heappop(self._delayed)
            if self._due.get(key) != when:
                continue  # superseded by an earlier time, already promoted
            del self._due[key]
            self._make_ready(key)
        return self._delayed[0][0] - now if self._delayed else None

    # ------------------------------------------------------------------ taking
    def get(self, timeout: float = 1.0) -> K | None:
        """The next key to process (marked as processing), or None after ``timeout`` / when closed."""
        deadline = self._clock() + timeout
        with self._cond:
            while not self._closed:
                wait = self._promote_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._queued.discard(key)
                    self._processing[key] = self._clock()
                    return key
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return None
                self._cond.wait(min(remaining, wait) if wait is not None else remaining)
            return None

    def done(self, key: K) -> None:
        with self._cond:
            self._processing.pop(key, None)
            if key in self._dirty:
                self._dirty.discard(key)
                wait_until = self._not_before.get(key)
                if wait_until is not None and wait_until > self._clock():
                    self._schedule(key, wait_until)
                elif key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ numbers
    def depth(self) -> int:
        """Keys waiting: ready now or scheduled for later (each key counted once)."""
        with self._cond:
            return len(self._queued) + sum(1 for k in self._due if k not in self._queued)

    def longest_running(self) -> float:
        """Seconds the longest-running key has been processed (0 when idle)."""
        with self._cond:
            if not self._processing:
                return 0.0
            return self._clock() - min(self._processing.values())

    def __len__(self) -> int:
        return self.depth()
