"""Reconcile one TRTEngine: gather (from the caches), decide (pure), write only what changed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import structlog

from trtllm_operator import k8s
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.conditions import ConditionStatus, find, rfc3339, set_condition
from trtllm_operator.api.engine import TRTEngineStatus
from trtllm_operator.handlers.runtime import BY_ENGINE, BY_JOB, Key, Runtime
from trtllm_operator.reconcile.engine import EngineDecision, EngineObservation, JobView, reconcile_engine
from trtllm_operator.reconcile.podsecurity import enforce_level
from trtllm_operator.reconcile.views import job_view
from trtllm_operator.render.cleanup import cleanup_job_name
from trtllm_operator.render.plan import RenderConfig

log = structlog.get_logger(__name__)


def _jobs(rt: Runtime, namespace: str, name: str) -> tuple[JobView, ...]:
    views = []
    for job in rt.caches.jobs.by_index(BY_ENGINE, f"{namespace}/{name}"):
        meta = job.get("metadata") or {}
        if (meta.get("labels") or {}).get(c.LABEL_COMPONENT) != c.COMPONENT_BUILD:
            continue
        pods = rt.caches.pods.by_index(BY_JOB, f"{namespace}/{meta.get('name')}")
        views.append(job_view(job, pods))
    return tuple(views)


def _baselines(rt: Runtime, namespace: str, spec: dict[str, Any]) -> dict[str, float | None]:
    """Measured scores of baseline TRTEngines referenced by accuracy tasks (None until they have one)."""
    scores: dict[str, float | None] = {}
    tasks = (((spec.get("validation") or {}).get("accuracy") or {}).get("tasks")) or []
    for task in tasks:
        ref = ((task.get("baseline") or {}).get("engineRef") or {}).get("name")
        if not ref:
            continue
        other = rt.caches.engines.get(namespace, ref) or {}
        results = (other.get("status") or {}).get("accuracy") or []
        try:
            scores[ref] = next(
                (
                    float(a["score"])
                    for a in results
                    if isinstance(a, dict) and a.get("task") == task.get("name")
                ),
                None,
            )
        except (TypeError, ValueError, KeyError):
            scores[ref] = None  # another engine's status is not ours to trust: no score yet
    return scores


def _spec_with_operator_selector(rt: Runtime, spec: dict[str, Any]) -> dict[str, Any]:
    if not rt.settings.node_selector:
        return spec
    return {**spec, "nodeSelector": {**rt.settings.node_selector, **(spec.get("nodeSelector") or {})}}


def observe(rt: Runtime, obj: dict[str, Any]) -> EngineObservation:
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    spec = obj.get("spec") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    cleanup = rt.caches.jobs.get(namespace, cleanup_job_name(name)) if deleting else None
    cleanup_pods = rt.caches.pods.by_index(BY_JOB, f"{namespace}/{cleanup_job_name(name)}") if cleanup else []
    ns = rt.caches.namespaces.get("", namespace) or {}
    ns_meta = ns.get("metadata") or {}
    return EngineObservation(
        namespace=namespace,
        name=name,
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        spec=_spec_with_operator_selector(rt, spec) if isinstance(spec, dict) else {},
        status=obj.get("status") or {},
        nodes=rt.nodes(),
        jobs=() if deleting else _jobs(rt, namespace, name),
        slot=None,
        baselines=_baselines(rt, namespace, spec) if isinstance(spec, dict) else {},
        deleting=deleting,
        has_finalizer=c.FINALIZER in (meta.get("finalizers") or []),
        cleanup_job=job_view(cleanup, cleanup_pods) if cleanup else None,
        namespace_terminating=bool(ns_meta.get("deletionTimestamp")),
        pod_security_level=enforce_level(ns),
    )


def _queued_since(status: dict[str, Any], now: datetime) -> str:
    """When this engine joined the line for a build slot (kept in its Queued condition), for FIFO."""
    for condition in status.get("conditions") or [] if isinstance(status, dict) else []:
        if (
            isinstance(condition, dict)
            and condition.get("type") == r.SCHEDULED
            and condition.get("reason") == r.QUEUED
        ):
            return str(condition.get("lastTransitionTime") or rfc3339(now))
    return rfc3339(now)


def decide(rt: Runtime, obj: dict[str, Any], now: datetime) -> EngineDecision:
    """The pure reconcile, asking the build slots only when it wants to start a build."""
    cfg = RenderConfig(
        builder_image=rt.settings.builder_image,
        cleanup_deadline_seconds=rt.settings.cleanup_deadline_seconds,
    )
    obs = observe(rt, obj)
    decision = reconcile_engine(obs, cfg, now)
    if decision.needs_slot:
        meta = obj["metadata"]
        slot = rt.slots.request(
            (meta["namespace"], meta["name"]), _queued_since(obj.get("status") or {}, now)
        )
        decision = reconcile_engine(dataclasses.replace(obs, slot=slot), cfg, now)
    return decision


def _status_changed(old: dict[str, Any], new: TRTEngineStatus) -> bool:
    try:
        before = TRTEngineStatus.model_validate(old or {}).model_dump(mode="json", exclude_none=True)
    except ValueError:
        return True
    return before != new.model_dump(mode="json", exclude_none=True) or not old


def _count_gate(rt: Runtime, old: dict[str, Any], new: TRTEngineStatus) -> None:
    before = next(
        (x for x in (old.get("conditions") or []) if isinstance(x, dict) and x.get("type") == r.VALIDATED),
        None,
    )
    after = find(new.conditions, r.VALIDATED)
    if after is None or after.status == "Unknown":
        return
    if before is None or (before.get("status"), before.get("reason")) != (after.status, after.reason):
        rt.metrics.gates.labels(reason=after.reason).inc()


def apply(rt: Runtime, obj: dict[str, Any], decision: EngineDecision) -> None:
    """Write the decision: finalizer, children, events (they record what was done), then status.

    The status goes last, over the resourceVersion the decision was made from (or the finalizer
    patch's): a 409 means the cache was behind, and the key is decided again once it catches up.
    """
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    resource_version = meta.get("resourceVersion")
    if decision.add_finalizer:
        resource_version = rt.kube.set_finalizer(c.ENGINE_PLURAL, obj, c.FINALIZER, True)
    try:
        for child in decision.create:
            child["metadata"].setdefault("namespace", namespace)
            if child.get("kind") == "Job":
                rt.expect(namespace, child["metadata"]["name"], name)
            rt.kube.create(child)
    except Exception as error:
        rt.slots.cancel((namespace, name))
        for child in decision.create:
            rt.observed(namespace, child["metadata"]["name"])
        _report_apply_failure(rt, obj, decision, error)
        raise
    for job in decision.delete_jobs:
        rt.kube.delete("Job", namespace, job)
    for event in decision.events:
        rt.kube.post_event(obj, event.type, event.reason, event.message)
        log.info(
            "event",
            namespace=namespace,
            name=name,
            type=event.type,
            reason=event.reason,
            message=event.message,
        )
    old_status = obj.get("status") or {}
    if _status_changed(old_status, decision.status):  # also while deleting: DeletingEngineFiles shows
        _count_gate(rt, old_status if isinstance(old_status, dict) else {}, decision.status)
        resource_version = rt.kube.patch_custom_status(
            c.ENGINE_PLURAL,
            namespace,
            name,
            # A merge patch keeps what it doesn't mention: fields that became unset (a new generation's
            # reset build/candidate/benchmark, a promoted candidate) are written as null.
            k8s.merge_patch_to(old_status, decision.status.model_dump(mode="json", exclude_none=True)),
            resource_version=resource_version,
        )
    if decision.remove_finalizer:
        current = {**obj, "metadata": {**meta, "resourceVersion": resource_version}}
        rt.kube.set_finalizer(c.ENGINE_PLURAL, current, c.FINALIZER, False)


def _report_apply_failure(
    rt: Runtime, obj: dict[str, Any], decision: EngineDecision, error: Exception
) -> None:
    """Say in status why children could not be created (the worker retries with backoff).

    The message is the API's own reason, short and stable from one attempt to the next (never the
    HTTP headers), so retrying does not rewrite the status each time.
    """
    message = f"could not create the build's objects (retrying with backoff): {k8s.describe_error(error)}"
    status = decision.status
    failed: tuple[tuple[str, ConditionStatus], ...] = (
        (r.READY, "False"),
        (r.RECONCILING, "True"),
        (r.STALLED, "False"),
    )
    for type_, value in failed:
        status.conditions = set_condition(
            status.conditions, type_, value, r.APPLY_FAILED, message, generation=status.observedGeneration
        )
    meta = obj["metadata"]
    if _status_changed(obj.get("status") or {}, status):
        rt.kube.patch_custom_status(
            c.ENGINE_PLURAL,
            meta["namespace"],
            meta["name"],
            k8s.merge_patch_to(obj.get("status"), status.model_dump(mode="json", exclude_none=True)),
            resource_version=meta.get("resourceVersion"),
        )


def reconcile(rt: Runtime, key: Key) -> float | None:
    _, namespace, name = key
    obj = rt.caches.engines.get(namespace, name)
    if obj is None:
        return None
    if rt.awaiting(namespace, name):
        return None  # the Job we just created is not in the cache yet; its watch event wakes us
    decision = decide(rt, obj, datetime.now(UTC))
    apply(rt, obj, decision)
    log.debug("reconciled", namespace=namespace, name=name, phase=decision.status.phase)
    return None
