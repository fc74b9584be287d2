"""Watch events -> work-queue keys, through indexes; nothing here reads the API server or reconciles.

Each handler maps one event to exactly the keys that depend on it (controller-runtime's
``EnqueueRequestForOwner`` and mapped handlers), never "every object of a kind":
- a TRTEngine -> itself, the InferenceServices that serve it, the engines that use it as a baseline;
- an InferenceService -> itself;
- a build Job or build pod -> its engine (label); a finished Job frees a build slot -> the engines
  waiting for one, in line order;
- a Deployment, LeaderWorkerSet, Service or HPA -> the InferenceService that owns it;
- a Node whose GPU facts changed -> the engines still looking for a place to build;
- a Namespace that starts terminating -> its engines (their deletion skips the cleanup Job);
- a custom.metrics.k8s.io APIService (appears, goes, changes availability) -> the autoscaled services.
"""

from __future__ import annotations

from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.gpu.labels import facts_from_node
from trtllm_operator.handlers.runtime import BY_BASELINE, BY_ENGINE_REF, Runtime
from trtllm_operator.informer import Obj
from trtllm_operator.reconcile.podsecurity import enforce_level


def _meta(obj: Obj | None) -> dict[str, Any]:
    meta = (obj or {}).get("metadata")
    return meta if isinstance(meta, dict) else {}


def _current(old: Obj | None, new: Obj | None) -> Obj:
    return new if new is not None else (old or {})


def on_engine(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    meta = _meta(_current(old, new))
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    ref = f"{namespace}/{name}"
    if type_ == "DELETED":
        for key in rt.slots.forget((namespace, name)):
            rt.enqueue(c.ENGINE_KIND, *key)
    else:
        rt.enqueue(c.ENGINE_KIND, namespace, name)
    for service in rt.caches.services.by_index(BY_ENGINE_REF, ref):
        rt.enqueue(c.SERVICE_KIND, namespace, str(_meta(service).get("name")))
    for engine in rt.caches.engines.by_index(BY_BASELINE, ref):
        rt.enqueue(c.ENGINE_KIND, namespace, str(_meta(engine).get("name")))


def on_service(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    meta = _meta(_current(old, new))
    if type_ != "DELETED":
        rt.enqueue(c.SERVICE_KIND, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def job_running(job: Obj) -> bool:
    status = job.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    return not any(
        isinstance(x, dict) and x.get("type") in ("Complete", "Failed") and x.get("status") == "True"
        for x in conditions or []
    )


def on_job(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    job = _current(old, new)
    meta = _meta(job)
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    labels = meta.get("labels") or {}
    engine = labels.get(c.LABEL_ENGINE)
    if type_ != "DELETED":
        rt.observed(namespace, name)
    if not engine:
        return
    if labels.get(c.LABEL_COMPONENT) == c.COMPONENT_BUILD:
        running = type_ != "DELETED" and job_running(job)
        for key in rt.slots.job_seen(namespace, name, str(engine), running):
            rt.enqueue(c.ENGINE_KIND, *key)
    rt.enqueue(c.ENGINE_KIND, namespace, str(engine))


def on_build_pod(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    """A build or cleanup pod -> its engine; a multi-node worker pod -> its InferenceService."""
    meta = _meta(_current(old, new))
    labels = meta.get("labels") or {}
    if labels.get(c.LABEL_COMPONENT) == c.COMPONENT_SERVER_WORKER:
        if service := labels.get(c.LABEL_SERVICE):
            rt.enqueue(c.SERVICE_KIND, str(meta.get("namespace") or ""), str(service))
        return
    engine = labels.get(c.LABEL_ENGINE)
    if engine:
        rt.enqueue(c.ENGINE_KIND, str(meta.get("namespace") or ""), str(engine))


def on_owned(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    """A Deployment, Service, HPA, LeaderWorkerSet or SSH identity Secret: wake the InferenceService
    that controls it."""
    meta = _meta(_current(old, new))
    for owner in meta.get("ownerReferences") or []:
        if isinstance(owner, dict) and owner.get("kind") == c.SERVICE_KIND and owner.get("controller", True):
            rt.enqueue(c.SERVICE_KIND, str(meta.get("namespace") or ""), str(owner.get("name")))


def _waits_for_nodes(engine: Obj) -> bool:
    """An engine whose placement is still open: no build has fixed its target yet.

    Whatever its phase: one with no fitting node is Stalled (NoCompatibleNodes) until a node appears.
    """
    status = engine.get("status")
    if not isinstance(status, dict):
        return True
    return status.get("build") is None


def on_node(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    node = _current(old, new)
    name = str(_meta(node).get("name") or "")
    facts = None
    if type_ != "DELETED" and new is not None:
        try:
            facts = facts_from_node(new)
        except Exception:  # a node whose labels we cannot read is not GPU capacity
            facts = None
    with rt.lock:
        before = rt.gpu_nodes.get(name)
        if facts is None:
            rt.gpu_nodes.pop(name, None)
        else:
            rt.gpu_nodes[name] = facts
    if before == facts:
        return  # a heartbeat or an unrelated change
    for engine in rt.caches.engines.objects():
        if _waits_for_nodes(engine):
            meta = _meta(engine)
            rt.enqueue(c.ENGINE_KIND, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def on_namespace(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    """A namespace started terminating (its engines' deletion must not wait for a cleanup Job), or its
    Pod Security enforce level changed (a build refused by the old level may now run, or the reverse)."""
    if new is None:
        return
    terminating = bool(_meta(new).get("deletionTimestamp")) and not _meta(old).get("deletionTimestamp")
    relabelled = old is not None and enforce_level(new) != enforce_level(old)
    if not (terminating or relabelled):
        return
    namespace = str(_meta(new).get("name") or "")
    for engine in rt.caches.engines.objects(namespace):
        rt.enqueue(c.ENGINE_KIND, namespace, str(_meta(engine).get("name") or ""))


def _custom_metrics_state(obj: Obj | None) -> tuple[bool, str | None] | None:
    """(group is custom metrics, Available status) of an APIService; None for any other group."""
    spec = (obj or {}).get("spec")
    if not isinstance(spec, dict) or spec.get("group") != "custom.metrics.k8s.io":
        return None
    status = (obj or {}).get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    available = next(
        (x.get("status") for x in conditions or [] if isinstance(x, dict) and x.get("type") == "Available"),
        None,
    )
    return True, available


def on_apiservice(rt: Runtime, type_: str, old: Obj | None, new: Obj | None) -> None:
    """Custom metrics came or went: every InferenceService with spec.autoscaling re-plans its HPAs."""
    before = None if type_ == "ADDED" else _custom_metrics_state(old)
    after = None if type_ == "DELETED" else _custom_metrics_state(new)
    if before == after or (before is None and after is None):
        return
    for service in rt.caches.services.objects():
        spec = service.get("spec")
        if isinstance(spec, dict) and spec.get("autoscaling"):
            meta = _meta(service)
            rt.enqueue(c.SERVICE_KIND, str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def wire(rt: Runtime) -> None:
    """Register the handlers on the runtime's informers."""
    caches = rt.caches

    def bind(handler: Any) -> Any:
        return lambda type_, old, new: handler(rt, type_, old, new)

    caches.engines.add_handler(bind(on_engine))
    caches.services.add_handler(bind(on_service))
    caches.jobs.add_handler(bind(on_job))
    caches.pods.add_handler(bind(on_build_pod))
    owned = (caches.deployments, caches.core_services, caches.hpas, caches.leader_worker_sets, caches.secrets)
    for informer in owned:
        informer.add_handler(bind(on_owned))
    caches.nodes.add_handler(bind(on_node))
    caches.namespaces.add_handler(bind(on_namespace))
    caches.apiservices.add_handler(bind(on_apiservice))
