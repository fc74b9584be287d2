"""Reconcile one TRTEngine: gather (API reads), decide (pure), write once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.conditions import ConditionStatus, set_condition
from trtllm_operator.api.engine import TRTEngineStatus
from trtllm_operator.handlers.runtime import Key, Runtime
from trtllm_operator.reconcile.engine import EngineDecision, EngineObservation, JobView, reconcile_engine
from trtllm_operator.reconcile.views import job_view
from trtllm_operator.render.cleanup import cleanup_job_name
from trtllm_operator.render.plan import RenderConfig

log = structlog.get_logger(__name__)
#: While a build runs, look again this often even without Job events (pod scheduling, retries).
BUILD_POLL_SECONDS = 3.0


def _jobs(rt: Runtime, namespace: str, name: str) -> tuple[JobView, ...]:
    selector = f"{c.LABEL_ENGINE}={name},{c.LABEL_COMPONENT}={c.COMPONENT_BUILD}"
    views = []
    for job in rt.kube.list_jobs(namespace, selector):
        pods = rt.kube.list_pods(namespace, f"batch.kubernetes.io/job-name={job['metadata']['name']}")
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
        other = rt.kube.get_custom(c.ENGINE_PLURAL, namespace, ref) or {}
        results = (other.get("status") or {}).get("accuracy") or []
        scores[ref] = next((float(a["score"]) for a in results if a.get("task") == task.get("name")), None)
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
    cleanup = rt.kube.get_job(namespace, cleanup_job_name(name)) if deleting else None
    with rt.lock:
        others = sum(1 for (ns, _), engine in rt.active_builds.items() if (ns, engine) != (namespace, name))
    return EngineObservation(
        namespace=namespace,
        name=name,
        uid=meta.get("uid", ""),
        generation=int(meta.get("generation") or 0),
        spec=_spec_with_operator_selector(rt, spec) if isinstance(spec, dict) else {},
        status=obj.get("status") or {},
        nodes=rt.nodes(),
        jobs=() if deleting else _jobs(rt, namespace, name),
        other_active_builds=others,
        max_concurrent_builds=rt.settings.max_concurrent_builds,
        baselines=_baselines(rt, namespace, spec) if isinstance(spec, dict) else {},
        deleting=deleting,
        has_finalizer=c.FINALIZER in (meta.get("finalizers") or []),
        cleanup_job=job_view(cleanup, []) if cleanup else None,
    )


def _status_changed(old: dict[str, Any], new: TRTEngineStatus) -> bool:
    try:
        before = TRTEngineStatus.model_validate(old or {}).model_dump(mode="json", exclude_none=True)
    except ValueError:
        return True
    return before != new.model_dump(mode="json", exclude_none=True) or not old


def apply(rt: Runtime, obj: dict[str, Any], decision: EngineDecision) -> None:
    meta = obj["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if decision.add_finalizer:
        rt.kube.set_finalizer(c.ENGINE_PLURAL, obj, c.FINALIZER, True)
    try:
        for child in decision.create:
            child["metadata"].setdefault("namespace", namespace)
            rt.kube.create(child)
    except Exception as error:
        _report_apply_failure(rt, obj, decision, error)
        raise
    for job in decision.delete_jobs:
        rt.kube.delete("Job", namespace, job)
    if not meta.get("deletionTimestamp") and _status_changed(obj.get("status") or {}, decision.status):
        rt.kube.patch_custom_status(
            c.ENGINE_PLURAL, namespace, name, decision.status.model_dump(mode="json", exclude_none=True)
        )
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
    if decision.remove_finalizer:
        rt.kube.set_finalizer(c.ENGINE_PLURAL, obj, c.FINALIZER, False)


def _report_apply_failure(
    rt: Runtime, obj: dict[str, Any], decision: EngineDecision, error: Exception
) -> None:
    """Say in status why children could not be created (the worker retries with backoff)."""
    message = f"could not create the build's objects (retrying): {str(error)[:800]}"
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
    rt.kube.patch_custom_status(
        c.ENGINE_PLURAL, meta["namespace"], meta["name"], status.model_dump(mode="json", exclude_none=True)
    )


def reconcile(rt: Runtime, key: Key) -> float | None:
    _, namespace, name = key
    obj = rt.kube.get_custom(c.ENGINE_PLURAL, namespace, name)
    if obj is None:
        with rt.lock:
            rt.known.discard(key)
        return None
    cfg = RenderConfig(builder_image=rt.settings.builder_image)
    decision = reconcile_engine(observe(rt, obj), cfg, datetime.now(UTC))
    apply(rt, obj, decision)
    log.debug("reconciled", namespace=namespace, name=name, phase=decision.status.phase)
    if decision.requeue_after:
        return decision.requeue_after
    return BUILD_POLL_SECONDS if decision.status.phase in ("Building", "Queued", "Validating") else None
