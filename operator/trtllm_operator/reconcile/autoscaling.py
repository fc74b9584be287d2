"""Autoscaling on inference load, pure: what each HorizontalPodAutoscaler scales on, and what status says.

CPU utilization says nothing about an LLM server: a GPU-bound trtllm-serve at full batch uses one busy
CPU core whether it has 1 or 500 requests queued. The default metric is **requests in flight per replica**
(``trtllm_num_requests_running + trtllm_num_requests_waiting``) against a target derived from the engine's
max batch size (80% of it): below the batch size more requests cost little latency (in-flight batching
absorbs them); above it requests queue and latency climbs steeply, so that is where a replica is "full".
KV-cache utilization and generated tokens/s per replica can be chosen instead (docs/metrics.md).

Those are custom metrics (``custom.metrics.k8s.io``, served in practice by the Prometheus Adapter). When
the cluster serves none — no APIService for the group, or not Available — the HPA scales on CPU and the
``AutoscalingDegraded`` condition says so and what to install. The HPA's own trouble (``ScalingActive`` or
``AbleToScale`` False) shows in the same condition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.service import AutoscalingSpec, AutoscalingStatus, InferenceServiceSpec

CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io"
CUSTOM_METRICS_APISERVICE = f"v1beta1.{CUSTOM_METRICS_GROUP}"
#: TensorRT-LLM's --max_batch_size when the engine sets none.
DEFAULT_MAX_BATCH_SIZE = 2048
#: The custom metric names the adapter serves (dev/addons/metrics.py ADAPTER_RULES; docs/metrics.md).
METRIC_NAMES = {
    "RequestsInFlight": "trtllm_requests_in_flight",
    "KVCacheUtilization": "trtllm_kv_cache_utilization",
    "GenerationTokensPerSecond": "trtllm_generation_tokens_per_second",
}
INSTALL_HINT = (
    "install a custom metrics pipeline (Prometheus scraping the serving pods and the Prometheus Adapter "
    "with the rules in docs/metrics.md) that registers APIService "
    f"{CUSTOM_METRICS_APISERVICE}"
)


@dataclass(frozen=True)
class CustomMetrics:
    """Whether the cluster serves custom.metrics.k8s.io, and if not, why not (for the condition)."""

    available: bool
    why_not: str = ""


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def custom_metrics(apiservices: list[dict[str, Any]] | None) -> CustomMetrics:
    """From the APIService cache (None: the cache could not be read, e.g. no RBAC for apiservices).

    Available when an APIService of group custom.metrics.k8s.io says Available=True."""
    if apiservices is None:
        return CustomMetrics(False, "the operator cannot read APIServices (apiregistration.k8s.io)")
    found = [
        item for item in apiservices if _dict(_dict(item).get("spec")).get("group") == CUSTOM_METRICS_GROUP
    ]
    if not found:
        return CustomMetrics(False, f"no APIService {CUSTOM_METRICS_APISERVICE} in the cluster")
    problems = []
    for item in found:
        conditions = _dict(item.get("status")).get("conditions")
        available = next(
            (
                x
                for x in (conditions if isinstance(conditions, list) else [])
                if isinstance(x, dict) and x.get("type") == "Available"
            ),
            None,
        )
        if available is not None and available.get("status") == "True":
            return CustomMetrics(True)
        name = _dict(item.get("metadata")).get("name", "?")
        detail = f"{available.get('reason')}: {available.get('message')}" if available else "no status yet"
        problems.append(f"APIService {name} is not Available ({str(detail)[:300]})")
    return CustomMetrics(False, "; ".join(problems))


def max_batch_size(engine: TRTEngineSpec) -> int:
    return engine.build.maxBatchSize or DEFAULT_MAX_BATCH_SIZE


@dataclass(frozen=True)
class HpaPlan:
    """What one HPA scales on."""

    metrics: list[dict[str, Any]]
    metric: str  # for status: pods/<name> or cpu
    target: str
    fallback: bool


def _quantity(value: float) -> str:
    """A Kubernetes quantity with milli precision: 6.4 -> '6400m', 3 -> '3'."""
    milli = round(value * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _cpu(scaling: AutoscalingSpec, fallback: bool) -> HpaPlan:
    target = scaling.targetCPUUtilizationPercentage or 80
    metric = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}},
    }
    return HpaPlan([metric], "cpu", f"{target}%", fallback)


def plan_hpa(scaling: AutoscalingSpec, engine: TRTEngineSpec, custom: CustomMetrics) -> HpaPlan:
    if scaling.metric == "CPU":
        return _cpu(scaling, fallback=False)
    if not custom.available:
        return _cpu(scaling, fallback=True)
    name = METRIC_NAMES[scaling.metric]
    if scaling.metric == "RequestsInFlight":
        value = float(scaling.targetRequestsInFlight or max(1.0, 0.8 * max_batch_size(engine)))
    elif scaling.metric == "KVCacheUtilization":
        value = (scaling.targetKVCacheUtilizationPercent or 80) / 100
    else:
        value = float(scaling.targetGenerationTokensPerSecond or 1)
    target = _quantity(value)
    metric = {
        "type": "Pods",
        "pods": {"metric": {"name": name}, "target": {"type": "AverageValue", "averageValue": target}},
    }
    return HpaPlan([metric], f"pods/{name}", target, fallback=False)


def behavior(scaling: AutoscalingSpec) -> dict[str, Any]:
    """HPA behavior: the stabilization windows; the policies are Kubernetes' defaults."""
    return {
        "scaleDown": {
            "stabilizationWindowSeconds": scaling.scaleDownStabilizationSeconds,
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}],
        },
        "scaleUp": {
            "stabilizationWindowSeconds": scaling.scaleUpStabilizationSeconds,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Percent", "value": 100, "periodSeconds": 15},
                {"type": "Pods", "value": 4, "periodSeconds": 15},
            ],
        },
    }


def _current_value(hpa_status: dict[str, Any], plan: HpaPlan) -> str | None:
    metrics = hpa_status.get("currentMetrics")
    for item in metrics if isinstance(metrics, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "Pods" and plan.metric.startswith("pods/"):
            value = _dict(_dict(item.get("pods")).get("current")).get("averageValue")
            return str(value)[:64] if value is not None else None
        if item.get("type") == "Resource" and plan.metric == "cpu":
            current = _dict(_dict(item.get("resource")).get("current"))
            if current.get("averageUtilization") is not None:
                return f"{current['averageUtilization']}%"[:64]
    return None


def observe_hpa(name: str, plan: HpaPlan, hpa: dict[str, Any] | None) -> tuple[AutoscalingStatus, list[str]]:
    """The HPA's row in status.autoscaling, and its trouble (ScalingActive/AbleToScale False)."""
    hpa_status = _dict(_dict(hpa).get("status"))

    def count(key: str) -> int | None:
        value = hpa_status.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    row = AutoscalingStatus(
        name=name,
        metric=plan.metric,
        target=plan.target,
        current=_current_value(hpa_status, plan),
        currentReplicas=count("currentReplicas"),
        desiredReplicas=count("desiredReplicas"),
        fallback=plan.fallback,
    )
    trouble = []
    hpa_conditions = hpa_status.get("conditions")
    for cond in hpa_conditions if isinstance(hpa_conditions, list) else []:
        if not isinstance(cond, dict):
            continue
        if cond.get("type") in ("ScalingActive", "AbleToScale") and cond.get("status") == "False":
            message = str(cond.get("message"))[:400]
            trouble.append(f"HPA {name} {cond.get('type')}=False ({cond.get('reason')}): {message}")
    return row, trouble


def degraded_message(
    spec: InferenceServiceSpec, rows: list[AutoscalingStatus], custom: CustomMetrics, trouble: list[str]
) -> str | None:
    """The AutoscalingDegraded message, or None when autoscaling does what the spec asks."""
    parts = []
    if any(row.fallback for row in rows):
        scaling = spec.autoscaling
        metric = scaling.metric if scaling else "?"
        part = (
            f"scaling on CPU instead of {metric}: the cluster serves no custom metrics "
            f"({custom.why_not}); {INSTALL_HINT}"
        )
        if not (spec.resources and spec.resources.requests and "cpu" in spec.resources.requests):
            part += "; set spec.resources.requests.cpu too, or the CPU fallback cannot scale either"
        parts.append(part)
    parts += trouble
    return "; ".join(parts)[:4096] if parts else None


def degraded_reason(rows: list[AutoscalingStatus]) -> str:
    return r.CUSTOM_METRICS_UNAVAILABLE if any(row.fallback for row in rows) else r.HPA_NOT_SCALING
