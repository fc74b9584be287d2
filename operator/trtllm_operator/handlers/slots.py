"""Build slots: the one place that decides which engine may start a build Job (the global limit).

Reconciles run on several worker threads; if each counted running builds and then created a Job,
two could take the last slot at once (check-then-act). Here admission is serialized under one lock:
a slot is held by an engine whose build Job is running (from the Job cache) or that was just granted
one (a reservation, until its Job shows up in the cache). Engines that find no free slot wait in
FIFO order of the time they were first queued (kept in their Queued condition, so the order survives
a restart or a failover). When a slot frees, the waiting engines are woken in line order: the head
takes the slot, the others refresh the position their Queued condition shows. That costs one status
write per waiting engine per finished build (real builds take 20-40 minutes), never a poll.
Only the leader reconciles, so with two replicas there is still one place that decides.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from trtllm_operator.reconcile.engine import BuildSlot

EngineKey = tuple[str, str]  # (namespace, name)
#: A reservation whose Job never appeared (a create that failed after the grant) is dropped after this.
RESERVATION_TTL = 120.0


@dataclass
class _Waiting:
    since: str  # RFC 3339: when the engine was first queued
    seq: int


class BuildSlots:
    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit  # 0: unlimited
        self._clock = clock
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str], EngineKey] = {}  # (namespace, job) -> engine
        self._reserved: dict[EngineKey, float] = {}  # engine -> when granted
        self._waiting: dict[EngineKey, _Waiting] = {}
        self._seq = 0

    # ------------------------------------------------------------------ from the Job cache
    def job_seen(self, namespace: str, job: str, engine: str, running: bool) -> list[EngineKey]:
        """A build Job's state from a watch event; returns waiting engines to wake when a slot freed."""
        with self._lock:
            key = (namespace, engine)
            if running:
                self._running[(namespace, job)] = key
                self._reserved.pop(key, None)  # the reservation became a running Job
                return []
            if self._running.pop((namespace, job), None) is None and self._reserved.pop(key, None) is None:
                return []  # nothing was held: no slot freed
            return self._line()

    def forget(self, engine: EngineKey) -> list[EngineKey]:
        """The engine is gone: drop its place in line and its reservation."""
        with self._lock:
            waited = self._waiting.pop(engine, None) is not None
            held = self._reserved.pop(engine, None) is not None
            return self._line() if waited or held else []  # the engines behind it move up

    def cancel(self, engine: EngineKey) -> None:
        """A granted build could not be created: give the slot back (the engine retries)."""
        with self._lock:
            self._reserved.pop(engine, None)

    # ------------------------------------------------------------------ admission
    def request(self, engine: EngineKey, since: str) -> BuildSlot:
        """Grant a slot to ``engine`` if one is free and it is at the head of the line."""
        with self._lock:
            self._expire()
            if self.limit <= 0 or engine in self._reserved or engine in self._running.values():
                self._waiting.pop(engine, None)
                return BuildSlot(granted=True, running=self._used(), limit=self.limit)
            if engine not in self._waiting:
                self._seq += 1
                self._waiting[engine] = _Waiting(since, self._seq)
            line = self._line()
            position = line.index(engine)
            if position < self._free():
                del self._waiting[engine]
                self._reserved[engine] = self._clock()
                return BuildSlot(granted=True, running=self._used(), limit=self.limit)
            return BuildSlot(
                granted=False,
                position=position + 1,
                waiting=len(line),
                running=self._used(),
                limit=self.limit,
            )

    # ------------------------------------------------------------------ numbers
    def snapshot(self) -> tuple[int, int, int]:
        """(slots in use, engines waiting, limit)."""
        with self._lock:
            return self._used(), len(self._waiting), self.limit

    def _used(self) -> int:
        return len(set(self._running.values()) | set(self._reserved))

    def _free(self) -> int:
        return max(0, self.limit - self._used()) if self.limit > 0 else len(self._waiting)

    def _line(self) -> list[EngineKey]:
        return sorted(self._waiting, key=lambda k: (self._waiting[k].since, self._waiting[k].seq))

    def _expire(self) -> None:
        now = self._clock()
        for engine, when in list(self._reserved.items()):
            if now - when > RESERVATION_TTL:
                del self._reserved[engine]
