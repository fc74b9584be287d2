"""State shared by the watch handlers and the workers: the GPU node index, the queues, the workers."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from trtllm_operator.gpu.labels import GpuNodeFacts
from trtllm_operator.k8s import Kube
from trtllm_operator.settings import OperatorSettings
from trtllm_operator.workqueue import WorkQueue

log = structlog.get_logger(__name__)
Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    #: GPU facts by node name, kept current from Node watch events (never a LIST per reconcile).
    gpu_nodes: dict[str, GpuNodeFacts] = field(default_factory=dict)
    #: Build Jobs not yet finished, by (namespace, job name) -> engine name; from Job watch events.
    active_builds: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Every object we have seen, for resyncs and for waking engines when the fleet changes.
    known: set[Key] = field(default_factory=set)
    failures: dict[Key, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def nodes(self) -> tuple[GpuNodeFacts, ...]:
        with self.lock:
            return tuple(self.gpu_nodes.values())

    def enqueue_kind(self, kind: str) -> None:
        with self.lock:
            keys = [k for k in self.known if k[0] == kind]
        for key in keys:
            self.queue.add(key)

    def start(self, reconcile: Callable[[Runtime, Key], float | None]) -> None:
        for index in range(self.settings.workers):
            thread = threading.Thread(
                target=self._work, args=(reconcile,), name=f"reconcile-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        resync = threading.Thread(target=self._resync, name="resync", daemon=True)
        resync.start()
        self._threads.append(resync)

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def _resync(self) -> None:
        while not self._stop.wait(self.settings.resync_seconds):
            with self.lock:
                keys = list(self.known)
            for key in keys:
                self.queue.add(key)

    def _work(self, reconcile: Callable[[Runtime, Key], float | None]) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                after = reconcile(self, key)
                self.failures.pop(key, None)
                if after:
                    self.queue.add(key, after=after)
            except Exception as error:  # a bad object or a flaky API must never kill a worker
                attempts = self.failures.get(key, 0) + 1
                self.failures[key] = attempts
                delay = min(300.0, 0.5 * 2**attempts) * random.uniform(0.8, 1.2)  # noqa: S311 - jitter only
                log.error(
                    "reconcile failed; retrying",
                    kind=key[0],
                    namespace=key[1],
                    name=key[2],
                    error=str(error)[:500],
                    attempt=attempts,
                    retry_in=round(delay, 1),
                    exc_info=attempts == 1,
                )
                self.queue.add(key, after=delay)
            finally:
                self.queue.done(key)
