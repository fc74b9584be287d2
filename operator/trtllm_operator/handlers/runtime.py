"""The controller's state: watch-fed caches with their indexes, the work queue, build slots, workers.

Reads come from the caches (``Caches``), never from the API server; ``k8s.Kube`` is used for writes
only. Watch events map to the keys that depend on them through indexes (``handlers/watch.py``), the
work queue deduplicates them, and worker threads reconcile one key at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from trtllm_operator import k8s
from trtllm_operator.api import constants as c
from trtllm_operator.gpu.labels import GpuNodeFacts
from trtllm_operator.handlers.slots import BuildSlots
from trtllm_operator.informer import Informer, Obj
from trtllm_operator.k8s import ConflictError, Kube
from trtllm_operator.metrics import Metrics
from trtllm_operator.settings import OperatorSettings
from trtllm_operator.workqueue import Backoff, WorkQueue

log = structlog.get_logger(__name__)
Key = tuple[str, str, str]  # (kind, namespace, name)
#: A child we created is expected in its cache within this long; until then its owner waits for it.
EXPECTATION_TTL = 30.0

# Index names.
BY_ENGINE = "engine"  # "<namespace>/<engine>" of a build Job or build pod (label)
BY_JOB = "job"  # "<namespace>/<job>" of a build pod
BY_SERVICE = "service"  # "<namespace>/<inference service>" of a Deployment or LeaderWorkerSet
BY_LWS = "lws"  # "<namespace>/<leader worker set>" of a multi-node worker pod
BY_ENGINE_REF = "engine-ref"  # "<namespace>/<engine>" an InferenceService serves
BY_BASELINE = "baseline"  # "<namespace>/<engine>" a TRTEngine's accuracy gate compares against


def _ns_name(namespace: str, name: str | None) -> list[str]:
    return [f"{namespace}/{name}"] if name else []


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _label_index(label: str) -> Callable[[Obj], list[str]]:
    def index(obj: Obj) -> list[str]:
        meta = _meta(obj)
        return _ns_name(str(meta.get("namespace") or ""), (meta.get("labels") or {}).get(label))

    return index


def service_engine_refs(obj: Obj) -> list[str]:
    """The engines an InferenceService names (engineRef or engineRefs), tolerant of any shape."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    refs = [r.get("name") for r in spec.get("engineRefs") or [] if isinstance(r, dict)]
    single = spec.get("engineRef")
    if isinstance(single, dict):
        refs.append(single.get("name"))
    return [str(name) for name in refs if isinstance(name, str) and name]


def engine_baseline_refs(obj: Obj) -> list[str]:
    """The engines whose accuracy score this TRTEngine's gates use as a baseline."""
    spec = obj.get("spec")
    validation = spec.get("validation") if isinstance(spec, dict) else None
    accuracy = validation.get("accuracy") if isinstance(validation, dict) else None
    tasks = accuracy.get("tasks") if isinstance(accuracy, dict) else None
    names = []
    for task in tasks if isinstance(tasks, list) else []:
        baseline = task.get("baseline") if isinstance(task, dict) else None
        ref = baseline.get("engineRef") if isinstance(baseline, dict) else None
        if isinstance(ref, dict) and isinstance(ref.get("name"), str):
            names.append(ref["name"])
    return names


def _refs_index(refs: Callable[[Obj], list[str]]) -> Callable[[Obj], list[str]]:
    def index(obj: Obj) -> list[str]:
        namespace = str(_meta(obj).get("namespace") or "")
        return [f"{namespace}/{name}" for name in refs(obj)]

    return index


#: Caches the operator does not wait for (it works without them, with less).
OPTIONAL = frozenset({"apiservices"})


@dataclass
class Caches:
    engines: Informer
    services: Informer
    jobs: Informer
    pods: Informer
    deployments: Informer
    core_services: Informer
    hpas: Informer
    nodes: Informer
    namespaces: Informer
    #: LeaderWorkerSets of multi-node engines; ``absent`` while the LWS CRD is not installed.
    leader_worker_sets: Informer
    #: The operator's own Secrets only (server-side label selector): multi-node SSH identities.
    secrets: Informer
    #: Canary serving pods (track=canary): where the canary accuracy probe sends its prompts.
    canary_pods: Informer
    #: Optional: the operator runs without it (no RBAC, no aggregation layer) and autoscales on CPU.
    apiservices: Informer

    def all(self) -> dict[str, Informer]:
        return {
            "trtengines": self.engines,
            "inferenceservices": self.services,
            "jobs": self.jobs,
            "pods": self.pods,
            "deployments": self.deployments,
            "services": self.core_services,
            "horizontalpodautoscalers": self.hpas,
            "nodes": self.nodes,
            "namespaces": self.namespaces,
            "leaderworkersets": self.leader_worker_sets,
            "secrets": self.secrets,
            "canary-pods": self.canary_pods,
            "apiservices": self.apiservices,
        }

    def pending(self) -> list[str]:
        """Required caches that have not listed yet (the optional apiservices cache is not waited for)."""
        return [name for name, inf in self.all().items() if name not in OPTIONAL and not inf.synced.is_set()]

    def synced(self) -> bool:
        return not self.pending()

    def apiservice_objects(self) -> list[Obj] | None:
        """The APIServices, or None while that cache has not listed (unknown: reconcile/autoscaling.py)."""
        return self.apiservices.objects() if self.apiservices.synced.is_set() else None

    def child(self, kind: str, namespace: str, name: str) -> Obj | None:
        informer = {
            "Deployment": self.deployments,
            "Service": self.core_services,
            c.LWS_KIND: self.leader_worker_sets,
        }.get(kind, self.hpas)
        return informer.get(namespace, name)

    @classmethod
    def build(cls, kube: Kube, settings: OperatorSettings) -> Caches:
        namespaces: list[str | None] = list(settings.namespaces) or [None]

        def sources(resource: k8s.Resource, selector: str | None = None) -> list[tuple[Any, str | None]]:
            return [(kube.list_watch(resource, ns, selector), ns) for ns in namespaces]

        managed = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        # Build and cleanup pods (their scheduling and exit status), and multi-node worker pods (LWS
        # v0.8.0 counts a group ready without looking at its workers' readiness: reconcile/multinode.py).
        # Other serving pods are the Deployments'.
        components = f"{c.COMPONENT_BUILD},{c.COMPONENT_CLEANUP},{c.COMPONENT_SERVER_WORKER}"
        job_pods = f"{managed},{c.LABEL_COMPONENT} in ({components})"
        node_selector = ",".join(f"{k}={v}" for k, v in settings.node_selector.items()) or None

        def informer(name: str, scopes: list[tuple[Any, str | None]], **kwargs: Any) -> Informer:
            return Informer(name, scopes, describe=k8s.describe_error, **kwargs)

        return cls(
            engines=informer(
                "trtengines", sources(k8s.ENGINES), indexers={BY_BASELINE: _refs_index(engine_baseline_refs)}
            ),
            services=informer(
                "inferenceservices",
                sources(k8s.SERVICES),
                indexers={BY_ENGINE_REF: _refs_index(service_engine_refs)},
            ),
            jobs=informer(
                "jobs", sources(k8s.JOBS, managed), indexers={BY_ENGINE: _label_index(c.LABEL_ENGINE)}
            ),
            pods=informer(
                "pods",
                sources(k8s.PODS, job_pods),
                indexers={
                    BY_JOB: _label_index("batch.kubernetes.io/job-name"),
                    BY_LWS: _label_index(c.LWS_LABEL_NAME),
                },
            ),
            deployments=informer(
                "deployments",
                sources(k8s.DEPLOYMENTS, managed),
                indexers={BY_SERVICE: _label_index(c.LABEL_SERVICE)},
            ),
            core_services=informer("services", sources(k8s.CORE_SERVICES, managed)),
            hpas=informer("horizontalpodautoscalers", sources(k8s.HPAS, managed)),
            nodes=informer("nodes", [(kube.list_watch(k8s.NODES, None, node_selector), None)]),
            # Whether a namespace is terminating (nothing can be created there: cleanup is skipped).
            namespaces=informer("namespaces", [(kube.list_watch(k8s.NAMESPACES, None), None)]),
            leader_worker_sets=informer(
                "leaderworkersets",
                sources(k8s.LEADER_WORKER_SETS, managed),
                indexers={BY_SERVICE: _label_index(c.LABEL_SERVICE)},
                absent_if=k8s.is_not_found,
            ),
            secrets=informer(
                "secrets", sources(k8s.SECRETS, f"{managed},{c.LABEL_COMPONENT}={c.COMPONENT_MPI_SSH}")
            ),
            canary_pods=informer(
                "canary-pods",
                sources(k8s.PODS, f"{managed},{c.LABEL_TRACK}={c.TRACK_CANARY}"),
                indexers={BY_SERVICE: _label_index(c.LABEL_SERVICE)},
            ),
            apiservices=informer("apiservices", [(kube.list_watch(k8s.APISERVICES, None), None)]),
        )


@dataclass
class Runtime:
    settings: OperatorSettings
    kube: Kube
    caches: Caches
    metrics: Metrics = field(default_factory=Metrics)
    queue: WorkQueue[Key] = field(default_factory=lambda: WorkQueue(Backoff()))
    slots: BuildSlots = field(default_factory=lambda: BuildSlots(0))
    #: GPU facts by node name, kept current from Node watch events.
    gpu_nodes: dict[str, GpuNodeFacts] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (namespace, job) -> (engine, when created): Jobs created but not yet seen in the cache.
    _expected: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    _workers: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    leading: threading.Event = field(default_factory=threading.Event)

    def nodes(self) -> tuple[GpuNodeFacts, ...]:
        with self.lock:
            return tuple(self.gpu_nodes.values())

    # ------------------------------------------------------------------ expectations
    def expect(self, namespace: str, job: str, engine: str) -> None:
        """We just created this Job: until the cache has it, its engine must not act on a stale view."""
        with self.lock:
            self._expected[(namespace, job)] = (engine, time.monotonic())

    def observed(self, namespace: str, job: str) -> None:
        with self.lock:
            self._expected.pop((namespace, job), None)

    def awaiting(self, namespace: str, engine: str) -> bool:
        """A Job this engine's last reconcile created is not in the cache yet (kube-controller-manager's
        "expectations"): deciding now could create it twice or report it missing."""
        now = time.monotonic()
        with self.lock:
            return any(
                ns == namespace and owner == engine and now - when < EXPECTATION_TTL
                for (ns, _), (owner, when) in self._expected.items()
            )

    # ------------------------------------------------------------------ enqueueing
    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    def enqueue_all(self) -> None:
        """The periodic resync: every object, from the caches (no API request)."""
        for namespace, name in self.caches.engines.object_keys():
            self.enqueue(c.ENGINE_KIND, namespace, name)
        for namespace, name in self.caches.services.object_keys():
            self.enqueue(c.SERVICE_KIND, namespace, name)

    # ------------------------------------------------------------------ workers
    def start_workers(self, reconcile: Callable[[Runtime, Key], float | None]) -> None:
        """Start reconciling (on becoming leader): the workers, and the resync served from the caches."""
        self.leading.set()
        self.metrics.leader.set(1)
        for index in range(self.settings.workers):
            thread = threading.Thread(
                target=self._work, args=(reconcile,), name=f"reconcile-{index}", daemon=True
            )
            thread.start()
            self._workers.append(thread)
        resync = threading.Thread(target=self._resync, name="resync", daemon=True)
        resync.start()
        self._workers.append(resync)
        self.enqueue_all()

    def stop(self) -> None:
        self._stop.set()
        self.queue.close()
        for thread in self._workers:
            thread.join(timeout=10)
        self.leading.clear()
        self.metrics.leader.set(0)

    def _resync(self) -> None:
        while not self._stop.wait(self.settings.resync_seconds):
            self.enqueue_all()

    def process(self, reconcile: Callable[[Runtime, Key], float | None], key: Key) -> None:
        """Reconcile one key: success forgets its backoff, failure and conflict requeue rate-limited."""
        kind = key[0]
        started = time.perf_counter()
        try:
            after = reconcile(self, key)
        except ConflictError as error:
            self.metrics.reconciles.labels(kind=kind, result="conflict").inc()
            delay = self.queue.add_rate_limited(key)
            log.debug(
                "write conflict; requeued",
                kind=kind,
                key=f"{key[1]}/{key[2]}",
                error=str(error),
                retry_in=delay,
            )
        except Exception as error:  # a bad object or a flaky API must never kill a worker
            self.metrics.reconciles.labels(kind=kind, result="error").inc()
            self.metrics.reconcile_errors.labels(kind=kind).inc()
            attempt = self.queue.failures(key) + 1
            delay = self.queue.add_rate_limited(key)
            log.error(
                "reconcile failed; retrying",
                kind=kind,
                namespace=key[1],
                name=key[2],
                error=k8s.describe_error(error),
                attempt=attempt,
                retry_in=round(delay, 2),
                exc_info=attempt == 1 and not k8s.is_api_error(error),
            )
        else:
            self.metrics.reconciles.labels(kind=kind, result="success").inc()
            self.queue.forget(key)
            if after:
                self.queue.add_after(key, after)
        finally:
            self.metrics.reconcile_seconds.labels(kind=kind).observe(time.perf_counter() - started)

    def _work(self, reconcile: Callable[[Runtime, Key], float | None]) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is None:
                continue
            try:
                self.process(reconcile, key)
            finally:
                self.queue.done(key)

    # ------------------------------------------------------------------ numbers
    def refresh_metrics(self) -> None:
        m, q = self.metrics, self.queue
        m.queue_depth.set(q.depth())
        m.queue_adds.set(q.stats.adds)
        m.queue_retries.set(q.stats.retries)
        m.queue_longest.set(q.longest_running())
        phases: dict[str, int] = {}
        for engine in self.caches.engines.objects():
            status = engine.get("status")
            phase = status.get("phase") if isinstance(status, dict) else None
            phases[str(phase or "Unknown")] = phases.get(str(phase or "Unknown"), 0) + 1
        m.builds.clear()
        for phase, count in phases.items():
            m.builds.labels(phase=phase).set(count)
        used, waiting, limit = self.slots.snapshot()
        m.build_slots.labels(state="used").set(used)
        m.build_slots.labels(state="waiting").set(waiting)
        m.build_slots.labels(state="limit").set(limit)
        for name, informer in self.caches.all().items():
            m.cache_synced.labels(resource=name).set(1 if informer.synced.is_set() else 0)
            m.cache_objects.labels(resource=name).set(len(informer))
        m.leader.set(1 if self.leading.is_set() else 0)
