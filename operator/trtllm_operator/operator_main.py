"""Start the operator: informers (watch-fed caches), leader election, reconcile workers, endpoints.

The order is controller-runtime's: caches start on every replica and must sync before anything is
decided; then the replica campaigns for the Lease; only the leader starts workers. A standby keeps its
caches warm, so a failover reconciles from a full cache at once. Losing the Lease ends the process
(exit 1) so the Deployment restarts it as a candidate: a replica never keeps writing after another
one may have taken over.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from types import FrameType

import structlog

from trtllm_operator.handlers import engine, service
from trtllm_operator.handlers.runtime import Caches, Key, Runtime
from trtllm_operator.handlers.slots import BuildSlots
from trtllm_operator.handlers.watch import wire
from trtllm_operator.k8s import Kube
from trtllm_operator.leader import ElectionConfig, LeaderElector
from trtllm_operator.logging import configure_logging
from trtllm_operator.metrics import Endpoints, Metrics
from trtllm_operator.settings import OperatorSettings

log = structlog.get_logger(__name__)
RECONCILERS = {"TRTEngine": engine.reconcile, "InferenceService": service.reconcile}
EXIT_LOST_LEASE = 1
#: Seconds to wait for the optional caches (APIServices) after the required ones have synced.
OPTIONAL_CACHE_GRACE = 5.0


def dispatch(rt: Runtime, key: Key) -> float | None:
    return RECONCILERS[key[0]](rt, key)


class Operator:
    """Everything one replica runs; ``run`` blocks until stopped and returns the exit code."""

    def __init__(self, settings: OperatorSettings, kube: Kube | None = None, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.kube = kube or Kube(observe=self.metrics.observe_request)
        self.rt = Runtime(
            settings=settings,
            kube=self.kube,
            caches=Caches.build(self.kube, settings),
            metrics=self.metrics,
            slots=BuildSlots(settings.max_concurrent_builds),
        )
        wire(self.rt)
        self.stop_event = threading.Event()
        self.exit_code = 0
        self.elector: LeaderElector | None = None
        self.endpoints = Endpoints(self.metrics, self.ready)
        self.metrics.refresh = self.rt.refresh_metrics

    def ready(self) -> tuple[bool, str]:
        pending = self.rt.caches.pending()
        if pending:
            return False, "caches not synced: " + ", ".join(pending)
        role = "leader" if self.rt.leading.is_set() else "standby"
        return True, f"caches synced ({role})"

    def _lost_lease(self) -> None:
        self.exit_code = EXIT_LOST_LEASE
        self.stop_event.set()

    def run(self) -> int:
        caches = self.rt.caches
        for informer in caches.all().values():
            informer.run(self.stop_event)
        while not caches.synced():
            if self.stop_event.wait(0.05):
                return self.exit_code
        # The optional APIService cache gets a moment, so autoscaling doesn't start on a CPU fallback.
        deadline = time.monotonic() + OPTIONAL_CACHE_GRACE
        while not caches.apiservices.synced.is_set() and time.monotonic() < deadline:
            if self.stop_event.wait(0.05):
                return self.exit_code
        log.info("caches synced", objects={name: len(inf) for name, inf in caches.all().items()})

        def start() -> None:
            self.rt.start_workers(dispatch)

        if self.settings.leader_election:
            s = self.settings
            config = ElectionConfig(
                s.lease_namespace,
                s.lease_name,
                s.identity,
                s.lease_duration,
                s.renew_deadline,
                s.retry_period,
            )
            self.elector = LeaderElector(self.kube, config, on_started=start, on_stopped=self._lost_lease)
            elector = threading.Thread(
                target=self.elector.run, args=(self.stop_event,), name="leader", daemon=True
            )
            elector.start()
        else:
            start()
        self.stop_event.wait()
        self.shutdown()
        return self.exit_code

    def shutdown(self) -> None:
        self.stop_event.set()
        self.rt.stop()  # workers finish the reconcile in hand before the Lease goes
        if self.elector is not None and self.exit_code == 0:
            self.elector.release()
        self.endpoints.close()


def run_operator(
    namespaces: tuple[str, ...] = (),
    health_addr: str | None = None,
    metrics_addr: str | None = None,
    verbose: bool = False,
    prometheus_url: str | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or until the Lease is lost (exit 1)."""
    configure_logging()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    settings = OperatorSettings.from_env(namespaces=namespaces)
    if prometheus_url is not None:  # --prometheus-url wins over TRTLLM_PROMETHEUS_URL
        settings = dataclasses.replace(settings, prometheus_url=prometheus_url.strip())
    operator = Operator(settings)
    for address in {a for a in (health_addr, metrics_addr) if a}:
        port = operator.endpoints.serve(address)
        log.info("serving endpoints", address=address, port=port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        operator.stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return operator.run()
