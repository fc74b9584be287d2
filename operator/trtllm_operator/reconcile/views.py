"""Turn Job and Pod objects (plain dicts as the API returns them) into the small views the reconcile reads.

Pure and defensive: a malformed child never raises, it just looks unfinished.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.reconcile.engine import ANNOTATION_TARGET_CC, ANNOTATION_TARGET_PRODUCT, JobView, PodView
from trtllm_operator.render.security import SECURITY_ANNOTATION


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _time(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return text.replace("+00:00", "Z")


def pod_view(pod: Mapping[str, Any]) -> PodView:
    status = pod.get("status") or {}
    terminated = next(
        (
            _get(cs, "state", "terminated")
            for cs in status.get("containerStatuses") or []
            if cs.get("name") == "builder" and _get(cs, "state", "terminated")
        ),
        None,
    )
    unschedulable = next(
        (
            cond.get("message")
            for cond in status.get("conditions") or []
            if cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ),
        None,
    )
    return PodView(
        name=str(_get(pod, "metadata", "name")),
        phase=str(status.get("phase") or "Pending"),
        created=_time(_get(pod, "metadata", "creationTimestamp")) or "",
        node=_get(pod, "spec", "nodeName"),
        exit_code=terminated.get("exitCode") if terminated else None,
        message=terminated.get("message") if terminated else None,
        unschedulable=unschedulable,
    )


def job_view(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> JobView:
    meta = job.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    status = job.get("status") or {}
    conditions = {
        cond.get("type"): cond for cond in status.get("conditions") or [] if cond.get("status") == "True"
    }
    failed = conditions.get("Failed")
    try:
        revision = int(labels.get(c.LABEL_REVISION, "0"))
    except ValueError:
        revision = 0
    return JobView(
        name=str(meta.get("name")),
        config_hash=str(labels.get(c.LABEL_CONFIG_HASH, "")),
        revision=revision,
        active=int(status.get("active") or 0),
        succeeded=int(status.get("succeeded") or 0),
        failed=int(status.get("failed") or 0),
        complete="Complete" in conditions,
        failed_final=failed is not None,
        failure_reason=failed.get("reason") if failed else None,
        failure_message=failed.get("message") if failed else None,
        start_time=_time(status.get("startTime")),
        completion_time=_time(status.get("completionTime")),
        target_cc=annotations.get(ANNOTATION_TARGET_CC),
        target_product=annotations.get(ANNOTATION_TARGET_PRODUCT),
        pods=tuple(pod_view(p) for p in pods),
        security_hash=annotations.get(SECURITY_ANNOTATION),
    )
