"""The controller's handlers on real Informer stores (filled with ``upsert``, no threads) and a recording
``k8s.Kube`` (the project's own seam): what a reconcile writes, what it does not, how the runtime retries,
which keys a watch event wakes, and the periodic resync."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client

from tests.unit.test_reconcile_engine import spec
from trtllm_operator import k8s
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.dev.fleet import default_nodes
from trtllm_operator.gpu.labels import facts_from_node
from trtllm_operator.handlers import engine as engine_handler
from trtllm_operator.handlers import service as service_handler
from trtllm_operator.handlers import watch
from trtllm_operator.handlers.runtime import Caches, Key, Runtime
from trtllm_operator.handlers.slots import BuildSlots
from trtllm_operator.informer import Obj
from trtllm_operator.k8s import ConflictError
from trtllm_operator.reconcile.engine import Event
from trtllm_operator.reconcile.service import ServiceDecision, ServiceObservation
from trtllm_operator.settings import OperatorSettings
from trtllm_operator.workqueue import Backoff, WorkQueue

NS = "ns"
SPEC = spec()  # the same TRTEngine spec the pure reconcile is tested with


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class NoSource:
    """The caches are filled by the tests (``upsert``); nothing ever lists or watches."""

    def list(self) -> tuple[list[Obj], str]:
        raise AssertionError("a unit test never lists")

    def watch(self, resource_version: str) -> Iterator[Obj]:
        raise AssertionError("a unit test never watches")


class RecordingKube(k8s.Kube):
    """Records every write; any call it does not define fails (it has no API client)."""

    def __init__(self) -> None:  # no super().__init__: there is no API server behind this one
        self.calls: list[tuple[Any, ...]] = []
        self.objects: dict[tuple[str, str], Obj] = {}  # (kind, name) -> what was created or applied
        self.statuses: dict[str, Obj] = {}
        self.rv = 100
        self.create_error: Exception | None = None
        self.status_error: Exception | None = None

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def list_watch(self, resource: k8s.Resource, namespace: str | None, selector: str | None = None) -> Any:
        return NoSource()

    def create(self, obj: Obj) -> bool:
        self.calls.append(("create", obj["kind"], obj["metadata"]["name"]))
        if self.create_error is not None:
            raise self.create_error
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return True

    def apply(self, obj: Obj) -> None:
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"]))
        self.objects[(obj["kind"], obj["metadata"]["name"])] = k8s.with_rendered_hash(copy.deepcopy(obj))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", kind, name))

    def post_event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        self.calls.append(("event", involved["metadata"]["name"], reason))

    def set_finalizer(self, plural: str, obj: Obj, finalizer: str, present: bool) -> str | None:
        self.calls.append(("finalizer", obj["metadata"]["name"], present))
        return self._next_rv()

    def patch_custom_status(
        self, plural: str, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> str | None:
        self.calls.append(("status", name, resource_version))
        if self.status_error is not None:
            raise self.status_error
        self.statuses[name] = copy.deepcopy(status)
        return self._next_rv()

    def take(self) -> list[tuple[Any, ...]]:
        calls, self.calls = self.calls, []
        return calls


def fleet() -> dict[str, Any]:
    facts = (facts_from_node(node) for node in default_nodes())
    return {f.name: replace(f, ready=True) for f in facts if f is not None}


def runtime(limit: int = 4, clock: Clock | None = None, **settings: Any) -> tuple[Runtime, RecordingKube]:
    kube = RecordingKube()
    cfg = OperatorSettings(max_concurrent_builds=limit, **settings)
    rt = Runtime(
        cfg,
        kube,
        Caches.build(kube, cfg),  # the production indexers
        queue=WorkQueue(Backoff(base=1.0, cap=60.0, jitter=0.0), clock=clock or Clock()),
        slots=BuildSlots(limit, clock=clock or Clock()),
    )
    rt.gpu_nodes.update(fleet())
    watch.wire(rt)
    return rt, kube


def engine(name: str = "llama", rv: str = "1", **spec: Any) -> Obj:
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": c.ENGINE_KIND,
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": rv,
        },
        "spec": {**SPEC, **spec},
    }


def drain(rt: Runtime) -> list[Key]:
    keys = []
    while (key := rt.queue.get(0)) is not None:
        keys.append(key)
        rt.queue.done(key)
    return keys


def write_back_status(rt: Runtime, kube: RecordingKube, name: str) -> None:
    """What the watch delivers after a status patch: the object with the new status and resourceVersion."""
    obj = copy.deepcopy(rt.caches.engines.get(NS, name))
    assert obj is not None
    obj["status"] = kube.statuses[name]
    obj["metadata"]["resourceVersion"] = str(kube.rv)
    rt.caches.engines.upsert(obj)


def job_arrives(rt: Runtime, kube: RecordingKube, job_name: str, **status: Any) -> Obj:
    """The created Job shows up in the Job cache (its watch event)."""
    job = copy.deepcopy(kube.objects[("Job", job_name)])
    job["metadata"]["resourceVersion"] = kube._next_rv()
    job["status"] = status or {"active": 1}
    rt.caches.jobs.upsert(job)
    return job


def ekey(name: str = "llama") -> Key:
    return (c.ENGINE_KIND, NS, name)


def reconcile(rt: Runtime, name: str = "llama") -> None:
    engine_handler.reconcile(rt, ekey(name))


def building(rt: Runtime, kube: RecordingKube, name: str = "llama") -> str:
    """An engine whose build Job was created and is now running, its status written back: the steady state."""
    rt.caches.engines.upsert(engine(name))
    reconcile(rt, name)
    job_name = next(call[2] for call in kube.calls if call[:2] == ("create", "Job"))
    write_back_status(rt, kube, name)
    job_arrives(rt, kube, job_name)
    for _ in range(3):  # converge: the Job's pod is now awaited
        kube.take()
        reconcile(rt, name)
        if not any(call[0] == "status" for call in kube.calls):
            break
        write_back_status(rt, kube, name)
    kube.take()
    drain(rt)
    return job_name


# ---------------------------------------------------------------------------- TRTEngine reconcile


def test_an_engine_in_the_steady_state_makes_zero_calls() -> None:
    rt, kube = runtime()
    building(rt, kube)
    for _ in range(3):
        rt.process(engine_handler.reconcile, ekey())
    assert kube.calls == []
    assert rt.metrics.value("trtllm_operator_reconcile_total", kind=c.ENGINE_KIND, result="success") == 3


def test_a_first_reconcile_creates_the_build_and_patches_status_once_over_the_cached_version() -> None:
    rt, kube = runtime()
    rt.caches.engines.upsert(engine(rv="7"))
    reconcile(rt)
    calls = kube.take()
    job = next(call[2] for call in calls if call[:2] == ("create", "Job"))
    assert [call for call in calls if call[0] == "create"] == [
        ("create", "ConfigMap", job.replace("-build-", "-plan-")),
        ("create", "Job", job),
    ]
    assert [call for call in calls if call[0] == "status"] == [("status", "llama", "7")]
    assert kube.statuses["llama"]["phase"] == "Building"


def test_a_changed_status_is_patched_once_over_the_cached_resource_version() -> None:
    rt, kube = runtime()
    building(rt, kube)
    edited = copy.deepcopy(rt.caches.engines.get(NS, "llama"))
    assert edited is not None
    edited["status"]["phase"] = "Ready"  # someone wrote our status: the reconcile puts it back
    edited["metadata"]["resourceVersion"] = "555"
    rt.caches.engines.upsert(edited)
    reconcile(rt)
    assert kube.take() == [("status", "llama", "555")]
    assert kube.statuses["llama"]["phase"] == "Building"


def test_a_status_field_that_became_unset_is_written_as_null_not_left_behind() -> None:
    """A JSON merge patch keeps what it doesn't mention: when a new generation resets status.candidate,
    the patch must null it, or the stale candidate is read back from the cache by the next reconcile."""
    rt, kube = runtime()
    building(rt, kube)
    current = rt.caches.engines.get(NS, "llama")
    assert current is not None
    edited = copy.deepcopy(current)
    edited["status"]["candidate"] = ready_engine()["status"]["engine"]  # left by the revision before
    edited["spec"]["calibration"] = {"size": 64}  # another build config: a new revision starts over
    edited["metadata"].update(generation=2, resourceVersion="556")
    rt.caches.engines.upsert(edited)
    reconcile(rt)
    patch = kube.statuses["llama"]
    assert "candidate" in patch
    assert patch["candidate"] is None
    assert patch["revision"] == 2


def test_a_created_job_is_awaited_until_it_is_in_the_cache() -> None:
    rt, kube = runtime()
    rt.caches.engines.upsert(engine())
    reconcile(rt)
    job_name = next(call[2] for call in kube.take() if call[:2] == ("create", "Job"))
    write_back_status(rt, kube, "llama")  # the status watch event arrives before the Job's
    assert rt.awaiting(NS, "llama")
    for _ in range(3):
        reconcile(rt)
    assert kube.calls == []  # no second create, no JobMissing status
    job_arrives(rt, kube, job_name)
    assert not rt.awaiting(NS, "llama")  # the Job's event settles the expectation
    assert ekey() in drain(rt)
    reconcile(rt)
    calls = kube.take()
    assert not [call for call in calls if call[0] == "create"]
    assert "JobMissing" not in json.dumps(kube.statuses["llama"])


def test_the_build_limit_admits_one_job_and_queues_the_others_in_line() -> None:
    rt, kube = runtime(limit=1)
    for name in ("a", "b", "c"):
        rt.caches.engines.upsert(engine(name))
    for name in ("a", "b", "c"):
        reconcile(rt, name)
    calls = kube.take()
    assert [call[1:] for call in calls if call[0] == "create" and call[1] == "Job"] == [
        ("Job", next(call[2] for call in calls if call[:2] == ("create", "Job")))
    ]
    assert kube.statuses["a"]["phase"] == "Building"
    for name, position in (("b", 1), ("c", 2)):
        status = kube.statuses[name]
        assert status["phase"] == "Queued"
        scheduled = next(x for x in status["conditions"] if x["type"] == r.SCHEDULED)
        assert scheduled["reason"] == r.QUEUED
        assert f"position {position} in line" in scheduled["message"]
    assert rt.slots.snapshot() == (1, 2, 1)


def test_a_finished_build_wakes_the_queued_engines_and_the_head_gets_the_slot() -> None:
    rt, kube = runtime(limit=1)
    job_a = building(rt, kube, "a")
    for name in ("b", "c"):
        rt.caches.engines.upsert(engine(name))
        reconcile(rt, name)
        write_back_status(rt, kube, name)
    kube.take()
    drain(rt)
    done = copy.deepcopy(rt.caches.jobs.get(NS, job_a))
    assert done is not None
    done["status"] = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    done["metadata"]["resourceVersion"] = kube._next_rv()
    rt.caches.jobs.upsert(done)
    assert drain(rt) == [ekey("b"), ekey("c"), ekey("a")]  # line order, then the Job's own engine
    reconcile(rt, "b")
    reconcile(rt, "c")
    calls = kube.take()
    assert [call[1] for call in calls if call[0] == "create"] == ["ConfigMap", "Job"]
    assert all(call[2].startswith("b-") for call in calls if call[0] == "create")
    assert "position 1 in line" in json.dumps(kube.statuses["c"])


# ---------------------------------------------------------------------------- InferenceService reconcile


def ready_engine(name: str = "llama") -> Obj:
    obj = engine(name)
    obj["status"] = {
        "phase": "Ready",
        "conditions": [],
        "engine": {
            "revision": 1,
            "uri": f"pvc://engines/engines/{name}/h1",
            "sha256": "a" * 64,
            "image": SPEC["image"],
            "computeCapability": "9.0",
            "validated": True,
        },
    }
    return obj


def inference_service(replicas: int = 2, rv: str = "1", generation: int = 1) -> Obj:
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": c.SERVICE_KIND,
        "metadata": {
            "name": "chat",
            "namespace": NS,
            "uid": "uid-chat",
            "generation": generation,
            "resourceVersion": rv,
        },
        "spec": {"engineRef": {"name": "llama"}, "replicas": replicas},
    }


def children_arrive(rt: Runtime, kube: RecordingKube) -> None:
    """The applied children show up in their caches, stamped with their rendered hash."""
    for (kind, _), child in kube.objects.items():
        cached = copy.deepcopy(child)
        cached["metadata"]["resourceVersion"] = kube._next_rv()
        cached["status"] = {"observedGeneration": 1}
        {"Deployment": rt.caches.deployments, "Service": rt.caches.core_services}.get(
            kind, rt.caches.hpas
        ).upsert(cached)


def service_write_back(rt: Runtime, kube: RecordingKube) -> None:
    obj = copy.deepcopy(rt.caches.services.get(NS, "chat"))
    assert obj is not None
    obj["status"] = kube.statuses["chat"]
    obj["metadata"]["resourceVersion"] = kube._next_rv()
    rt.caches.services.upsert(obj)


def serving(rt: Runtime, kube: RecordingKube) -> list[tuple[Any, ...]]:
    rt.caches.engines.upsert(ready_engine())
    rt.caches.services.upsert(inference_service())
    service_handler.reconcile(rt, (c.SERVICE_KIND, NS, "chat"))
    first = kube.take()
    children_arrive(rt, kube)
    service_write_back(rt, kube)
    for _ in range(3):
        service_handler.reconcile(rt, (c.SERVICE_KIND, NS, "chat"))
        if not kube.calls:
            break
        if "chat" in kube.statuses:
            service_write_back(rt, kube)
        kube.take()
    drain(rt)
    return first


def test_an_inference_service_whose_children_are_up_to_date_makes_zero_calls() -> None:
    rt, kube = runtime()
    first = serving(rt, kube)
    assert any(call[:2] == ("apply", "Deployment") for call in first)
    for _ in range(3):
        rt.process(service_handler.reconcile, (c.SERVICE_KIND, NS, "chat"))
    assert kube.calls == []


def test_a_changed_rendering_applies_only_the_changed_child_once() -> None:
    rt, kube = runtime()
    serving(rt, kube)
    rt.caches.services.upsert(inference_service(replicas=3, rv="900", generation=2))
    service_handler.reconcile(rt, (c.SERVICE_KIND, NS, "chat"))
    calls = kube.take()
    applied = [call for call in calls if call[0] == "apply"]
    assert len(applied) == 1
    assert applied[0][1] == "Deployment"
    assert ("status", "chat", "900") in calls


# ---------------------------------------------------------------------------- Runtime.process


def test_a_conflict_requeues_with_backoff_and_is_counted_as_conflict() -> None:
    clock = Clock()
    rt, _ = runtime(clock=clock)

    def conflicting(rt: Runtime, key: Key) -> float | None:
        raise ConflictError("trtengines ns/llama changed since it was read")

    rt.process(conflicting, ekey())
    assert rt.metrics.value("trtllm_operator_reconcile_total", kind=c.ENGINE_KIND, result="conflict") == 1
    assert rt.metrics.value("trtllm_operator_reconcile_errors_total", kind=c.ENGINE_KIND) == 0
    assert rt.queue.failures(ekey()) == 1
    assert rt.queue.get(0) is None
    clock.now += 1.0
    assert rt.queue.get(0) == ekey()
    rt.queue.done(ekey())
    rt.process(lambda rt, key: None, ekey())  # success forgets the backoff
    assert rt.queue.failures(ekey()) == 0


def test_a_success_that_asks_for_a_requeue_comes_back_after_that_delay() -> None:
    clock = Clock()
    rt, _ = runtime(clock=clock)
    rt.process(lambda rt, key: 30.0, ekey())
    clock.now += 29.9
    assert rt.queue.get(0) is None
    clock.now += 0.2
    assert rt.queue.get(0) == ekey()


def api_error(status: int, reason: str, message: str) -> client.ApiException:
    error = client.ApiException(status=status, reason=reason)
    error.body = json.dumps({"kind": "Status", "message": message})
    error.headers = {"Audit-Id": "0f3c2b1a-audit", "Date": "Thu, 26 Nov 2026 12:00:00 GMT"}
    return error


def test_an_api_error_leaves_a_short_status_message_and_retries_with_growing_delays() -> None:
    clock = Clock()
    rt, kube = runtime(limit=1, clock=clock)
    rt.caches.engines.upsert(engine())
    kube.create_error = api_error(500, "Internal Server Error", "etcdserver: request timed out")
    drain(rt)
    rt.process(engine_handler.reconcile, ekey())
    status = json.dumps(kube.statuses["llama"])
    assert "500 Internal Server Error: etcdserver: request timed out" in status
    assert r.APPLY_FAILED in status
    assert "Audit-Id" not in status
    assert "0f3c2b1a" not in status
    assert rt.slots.snapshot()[0] == 0  # the granted slot was given back
    assert not rt.awaiting(NS, "llama")  # nothing to wait for: the Job was never created
    assert rt.metrics.value("trtllm_operator_reconcile_errors_total", kind=c.ENGINE_KIND) == 1
    write_back_status(rt, kube, "llama")
    kube.take()

    delays = []
    for _ in range(3):
        waited = 0.0
        while rt.queue.get(0) is None:
            clock.now += 0.5
            waited += 0.5
        rt.queue.done(ekey())
        delays.append(waited)
        kube.create_error = api_error(500, "Internal Server Error", "etcdserver: request timed out")
        kube.create_error.headers = {"Audit-Id": f"attempt-{len(delays)}"}  # changes every attempt
        rt.process(engine_handler.reconcile, ekey())
    assert delays == [1.0, 2.0, 4.0]
    assert not [call for call in kube.calls if call[0] == "status"]  # the message is stable: no rewrite


# ---------------------------------------------------------------------------- watch.py mappings


def service_for(name: str, engine_name: str) -> Obj:
    obj = inference_service()
    obj["metadata"]["name"] = name
    obj["spec"] = {"engineRef": {"name": engine_name}}
    return obj


def test_an_engine_event_wakes_itself_its_services_and_engines_using_it_as_baseline_only() -> None:
    rt, _ = runtime()
    rt.caches.services.upsert(service_for("serves-llama", "llama"))
    rt.caches.services.upsert(service_for("serves-other", "other"))
    rt.caches.engines.upsert(engine("other"))
    gated = engine("gated")
    gated["spec"]["validation"] = {
        "accuracy": {"tasks": [{"name": "mmlu", "baseline": {"engineRef": {"name": "llama"}}}]}
    }
    rt.caches.engines.upsert(gated)
    drain(rt)
    rt.caches.engines.upsert(engine("llama"))
    assert sorted(drain(rt)) == sorted([ekey("llama"), (c.SERVICE_KIND, NS, "serves-llama"), ekey("gated")])


def node(name: str, **labels: str) -> Obj:
    template = next(n for n in default_nodes() if n["metadata"]["name"] == name)
    out = copy.deepcopy(template)
    out["metadata"]["labels"].update(labels)
    return out


def test_a_node_heartbeat_with_unchanged_facts_wakes_nobody_and_a_change_wakes_waiting_engines() -> None:
    rt, _ = runtime()
    rt.gpu_nodes.clear()
    waiting = engine("waiting")
    nofit = engine("nofit")  # Stalled with NoCompatibleNodes: it waits for a node as much as a new one
    nofit["status"] = {"phase": "Stalled", "conditions": [{"type": "GPUCompatible", "status": "False"}]}
    done = engine("done")
    done["status"] = {"phase": "Ready", "build": {"revision": 1, "jobName": "x", "buildConfigHash": "h"}}
    rt.caches.engines.upsert(waiting)
    rt.caches.engines.upsert(nofit)
    rt.caches.engines.upsert(done)
    drain(rt)
    h100 = node("sim-h100-0")
    h100["metadata"]["resourceVersion"] = "1"
    rt.caches.nodes.upsert(h100)
    # New GPU capacity: only the engines still placing their build.
    assert sorted(drain(rt)) == sorted([ekey("waiting"), ekey("nofit")])
    heartbeat = copy.deepcopy(h100)
    heartbeat["metadata"]["resourceVersion"] = "2"
    heartbeat["status"]["conditions"] = [
        {**x, "lastHeartbeatTime": "2026-11-26T12:05:00Z"}
        for x in heartbeat["status"].get("conditions") or []
    ]
    heartbeat["metadata"]["annotations"] = {**heartbeat["metadata"].get("annotations", {}), "beat": "2"}
    rt.caches.nodes.upsert(heartbeat)
    assert drain(rt) == []
    rt.caches.nodes.remove(("", "sim-h100-0"))
    assert sorted(drain(rt)) == sorted([ekey("waiting"), ekey("nofit")])


def test_a_build_pod_and_an_owned_child_wake_their_owners() -> None:
    rt, _ = runtime()
    rt.caches.pods.upsert(
        {
            "kind": "Pod",
            "metadata": {
                "name": "p",
                "namespace": NS,
                "resourceVersion": "1",
                "labels": {c.LABEL_ENGINE: "llama", "batch.kubernetes.io/job-name": "j"},
            },
        }
    )
    assert drain(rt) == [ekey("llama")]
    owned = {
        "kind": "Deployment",
        "metadata": {
            "name": "chat-sm90",
            "namespace": NS,
            "resourceVersion": "1",
            "ownerReferences": [
                {"kind": "Other", "name": "x", "controller": True},
                {"kind": c.SERVICE_KIND, "name": "chat", "controller": True},
            ],
        },
    }
    rt.caches.deployments.upsert(owned)
    assert drain(rt) == [(c.SERVICE_KIND, NS, "chat")]


def test_a_terminating_namespace_wakes_its_engines_once() -> None:
    rt, _ = runtime()
    rt.caches.engines.upsert(engine("a"))
    other = engine("b")
    other["metadata"]["namespace"] = "elsewhere"
    rt.caches.engines.upsert(other)
    namespace = {"kind": "Namespace", "metadata": {"name": NS, "resourceVersion": "1"}}
    rt.caches.namespaces.upsert(namespace)
    drain(rt)
    terminating = copy.deepcopy(namespace)
    terminating["metadata"].update(resourceVersion="2", deletionTimestamp="2026-11-26T12:00:00Z")
    rt.caches.namespaces.upsert(terminating)
    assert drain(rt) == [ekey("a")]
    terminating["metadata"]["resourceVersion"] = "3"
    rt.caches.namespaces.upsert(terminating)
    assert drain(rt) == []


def test_a_changed_pod_security_level_wakes_the_namespaces_engines_and_other_labels_do_not() -> None:
    rt, _ = runtime()
    rt.caches.engines.upsert(engine("a"))
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    namespace = {"kind": "Namespace", "metadata": {"name": NS, "resourceVersion": "1", "labels": labels}}
    rt.caches.namespaces.upsert(namespace)
    drain(rt)
    relabelled = copy.deepcopy(namespace)
    relabelled["metadata"].update(resourceVersion="2", labels={**labels, "team": "llm"})
    rt.caches.namespaces.upsert(relabelled)
    assert drain(rt) == []
    relaxed = copy.deepcopy(relabelled)
    relaxed["metadata"].update(resourceVersion="3", labels={"team": "llm"})
    rt.caches.namespaces.upsert(relaxed)
    assert drain(rt) == [ekey("a")]


def test_a_deleted_engine_gives_its_slot_to_the_next_in_line() -> None:
    rt, kube = runtime(limit=1)
    for name in ("a", "b"):
        rt.caches.engines.upsert(engine(name))
        reconcile(rt, name)
    drain(rt)
    rt.caches.engines.remove((NS, "a"))  # deleted before its Job showed up: the reservation is freed
    assert ekey("b") in drain(rt)
    kube.take()
    reconcile(rt, "b")
    assert ("create", "Job") in [call[:2] for call in kube.calls]


# ---------------------------------------------------------------------------- the periodic resync


def test_the_periodic_resync_enqueues_every_cached_key_again() -> None:
    rt, _ = runtime(resync_seconds=0.01, workers=1)
    rt.caches.engines.upsert(engine("a"))
    rt.caches.engines.upsert(engine("b"))
    rt.caches.services.upsert(inference_service())
    drain(rt)
    seen: dict[Key, int] = {}
    enough = threading.Event()
    expected = {ekey("a"), ekey("b"), (c.SERVICE_KIND, NS, "chat")}

    def count(rt: Runtime, key: Key) -> float | None:
        seen[key] = seen.get(key, 0) + 1
        if set(seen) == expected and min(seen.values()) >= 3:
            enough.set()
        return None

    rt.queue = WorkQueue(Backoff(jitter=0.0))  # real time: the workers block on it
    rt.start_workers(count)
    try:
        assert enough.wait(5), f"only {seen} after the start: the resync did not run"
    finally:
        rt.stop()
    assert rt.metrics.value("trtllm_operator_leader") == 0


def test_enqueue_all_adds_every_engine_and_service_from_the_caches() -> None:
    rt, _ = runtime()
    rt.caches.engines.upsert(engine("a"))
    rt.caches.services.upsert(inference_service())
    drain(rt)
    rt.enqueue_all()
    assert sorted(drain(rt)) == sorted([ekey("a"), (c.SERVICE_KIND, NS, "chat")])


def test_stop_ends_the_resync_and_the_workers() -> None:
    rt, _ = runtime(resync_seconds=0.01, workers=2)
    rt.queue = WorkQueue(Backoff(jitter=0.0))
    calls: list[Key] = []
    record: Callable[[Runtime, Key], float | None] = lambda rt, key: calls.append(key)  # noqa: E731
    rt.start_workers(record)
    assert rt.leading.is_set()
    rt.stop()
    assert not any(thread.is_alive() for thread in rt._workers)
    assert not rt.leading.is_set()


def custom_metrics_apiservice(available: str, rv: str) -> Obj:
    return {
        "metadata": {"name": "v1beta1.custom.metrics.k8s.io", "resourceVersion": rv},
        "spec": {"group": "custom.metrics.k8s.io", "version": "v1beta1"},
        "status": {"conditions": [{"type": "Available", "status": available}]},
    }


def test_custom_metrics_coming_or_going_wakes_only_the_autoscaled_services() -> None:
    rt, _ = runtime()
    scaled = service_for("scaled", "llama")
    scaled["spec"]["autoscaling"] = {"maxReplicas": 3}
    rt.caches.services.upsert(scaled)
    rt.caches.services.upsert(service_for("fixed", "llama"))
    drain(rt)
    rt.caches.apiservices.upsert(custom_metrics_apiservice("True", "1"))
    assert drain(rt) == [(c.SERVICE_KIND, NS, "scaled")]
    rt.caches.apiservices.upsert(custom_metrics_apiservice("True", "2"))  # a status rewrite: no change
    assert drain(rt) == []
    rt.caches.apiservices.upsert(custom_metrics_apiservice("False", "3"))  # its server went down
    assert drain(rt) == [(c.SERVICE_KIND, NS, "scaled")]
    rt.caches.apiservices.upsert({"metadata": {"name": "v1.apps", "resourceVersion": "4"}, "spec": {}})
    assert drain(rt) == []
    rt.caches.apiservices.remove(("", "v1beta1.custom.metrics.k8s.io"))
    assert drain(rt) == [(c.SERVICE_KIND, NS, "scaled")]


def test_a_judged_canary_is_counted_once_per_outcome_and_other_events_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rt, kube = runtime()
    serving(rt, kube)
    real = service_handler.reconcile_service

    def judged(obs: ServiceObservation, now: datetime) -> ServiceDecision:
        decision = real(obs, now)
        decision.events += [
            Event("Warning", "CanaryRolledBack", "canary p95 0.6 s > 1.2 x stable 0.1 s"),
            Event("Normal", "CanaryStarted", "revision 2 on 1 canary pod"),
        ]
        return decision

    monkeypatch.setattr(service_handler, "reconcile_service", judged)
    service_handler.reconcile(rt, (c.SERVICE_KIND, NS, "chat"))
    name = "trtllm_operator_canary_outcomes_total"
    assert rt.metrics.value(name, outcome="CanaryRolledBack") == 1
    assert rt.metrics.value(name, outcome="CanaryStarted") == 0
    assert rt.metrics.value(name, outcome="CanaryPromoted") == 0
