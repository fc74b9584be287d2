"""Reconcile one InferenceService: gather the engines and Deployments, decide (pure), apply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from trtllm_operator.api import constants as c
from trtllm_operator.api.service import InferenceServiceStatus
from trtllm_operator.handlers.runtime import Key, Runtime
from trtllm_operator.reconcile.service import ServiceObservation, reconcile_service

log = structlog.get_logger(__name__)


def _refs(spec: dict[str, Any]) -> list[str]:
    refs = [ref.get("name") for ref in spec.get("engineRefs") or [] if isinstance(ref, dict)]
    single = (spec.get("engineRef") or {}).get("name") if isinstance(spec.get("engineRef"), dict) else None
    return [name for name in [*refs, single] if name]


def reconcile(rt: Runtime, key: Key) -> float | None:
    _, namespace, name = key
    obj = rt.kube.get_custom(c.SERVICE_PLURAL, namespace, name)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return None  # children go with ownerReferences
    spec = obj.get("spec") or {}
    spec = spec if isinstance(spec, dict) else {}
    engines = {ref: rt.kube.get_custom(c.ENGINE_PLURAL, namespace, ref) for ref in _refs(spec)}
    selector = f"{c.LABEL_SERVICE}={name},{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
    deployments = {d["metadata"]["name"]: d for d in rt.kube.list_deployments(namespace, selector)}
    meta = obj["metadata"]
    obs = ServiceObservation(
        namespace,
        name,
        meta.get("uid", ""),
        int(meta.get("generation") or 0),
        spec,
        obj.get("status") or {},
        engines,
        deployments,
    )
    decision = reconcile_service(obs, datetime.now(UTC))
    for child in decision.apply:
        if not rt.kube.create(child):
            rt.kube.replace_spec(child)
    for kind, child_name in decision.delete:
        rt.kube.delete(kind, namespace, child_name)
    new = decision.status.model_dump(mode="json", exclude_none=True)
    try:
        old = InferenceServiceStatus.model_validate(obj.get("status") or {}).model_dump(
            mode="json", exclude_none=True
        )
    except ValueError:
        old = {}
    if new != old or not obj.get("status"):
        rt.kube.patch_custom_status(c.SERVICE_PLURAL, namespace, name, new)
    for event in decision.events:
        rt.kube.post_event(obj, event.type, event.reason, event.message)
    ready = any(x.type == "Ready" and x.status == "True" for x in decision.status.conditions)
    return None if ready else 5.0
