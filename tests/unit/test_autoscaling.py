"""Autoscaling on inference load, pure: the HPA's metric, the CPU fallback and what status says."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_reconcile_service import NOW, engine, observe
from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.service import AutoscalingSpec
from trtllm_operator.reconcile import autoscaling
from trtllm_operator.reconcile.service import reconcile_service

GROUP = "custom.metrics.k8s.io"


def apiservice(available: str | None = "True", version: str = "v1beta1") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": f"{version}.{GROUP}"}, "spec": {"group": GROUP}}
    if available is not None:
        obj["status"] = {
            "conditions": [{"type": "Available", "status": available, "reason": "Why", "message": "because"}]
        }
    return obj


OTHER = {"metadata": {"name": "v1.apps"}, "spec": {"group": "apps"}}
AVAILABLE = [OTHER, apiservice()]


def spec(**scaling: Any) -> dict[str, Any]:
    return {
        "engineRef": {"name": "llama"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, **scaling},
    }


def hpa_of(decision: Any) -> dict[str, Any]:
    found: dict[str, Any] = next(o for o in decision.apply if o["kind"] == "HorizontalPodAutoscaler")
    return found


def conditions(decision: Any) -> dict[str, Any]:
    return {c.type: c for c in decision.status.conditions}


def test_custom_metrics_availability_from_the_apiservice_cache() -> None:
    assert autoscaling.custom_metrics(AVAILABLE).available
    assert autoscaling.custom_metrics([apiservice("False"), apiservice(version="v1beta2")]).available
    missing = autoscaling.custom_metrics([OTHER])
    assert not missing.available
    assert "no APIService v1beta1.custom.metrics.k8s.io" in missing.why_not
    down = autoscaling.custom_metrics([apiservice("False")])
    assert not down.available
    assert "not Available (Why: because)" in down.why_not
    assert not autoscaling.custom_metrics([apiservice(None)]).available
    unknown = autoscaling.custom_metrics(None)
    assert not unknown.available
    assert "cannot read APIServices" in unknown.why_not


def test_default_scales_on_requests_in_flight_against_the_engines_max_batch_size() -> None:
    llama = engine()
    llama["spec"] = {**llama["spec"], "build": {"maxBatchSize": 8}}
    obs = observe(spec(), {"llama": llama})
    decision = reconcile_service(_with(obs, apiservices=AVAILABLE), NOW)
    hpa = hpa_of(decision)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": "trtllm_requests_in_flight"},
                "target": {"type": "AverageValue", "averageValue": "6400m"},  # 80% of 8
            },
        }
    ]
    assert r.AUTOSCALING_DEGRADED not in conditions(decision)
    row = decision.status.autoscaling[0]
    assert (row.name, row.metric, row.target, row.fallback) == (
        "chat-sm90",
        "pods/trtllm_requests_in_flight",
        "6400m",
        False,
    )


def _with(obs: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obs, **changes)


def test_engine_without_max_batch_size_uses_trtllms_default() -> None:
    plan = autoscaling.plan_hpa(
        AutoscalingSpec(maxReplicas=3),
        TRTEngineSpec.model_validate(engine()["spec"]),
        autoscaling.CustomMetrics(True),
    )
    assert plan.target == "1638400m"  # 80% of TensorRT-LLM's default 2048


def test_other_metrics_and_explicit_targets() -> None:
    llama = TRTEngineSpec.model_validate(engine()["spec"])
    ok = autoscaling.CustomMetrics(True)
    kv = autoscaling.plan_hpa(AutoscalingSpec(maxReplicas=3, metric="KVCacheUtilization"), llama, ok)
    assert (kv.metric, kv.target) == ("pods/trtllm_kv_cache_utilization", "800m")
    tokens = autoscaling.plan_hpa(
        AutoscalingSpec(
            maxReplicas=3, metric="GenerationTokensPerSecond", targetGenerationTokensPerSecond=5000
        ),
        llama,
        ok,
    )
    assert (tokens.metric, tokens.target) == ("pods/trtllm_generation_tokens_per_second", "5000")
    inflight = autoscaling.plan_hpa(AutoscalingSpec(maxReplicas=3, targetRequestsInFlight=2), llama, ok)
    assert inflight.target == "2"
    cpu = autoscaling.plan_hpa(AutoscalingSpec(maxReplicas=3, metric="CPU"), llama, ok)
    assert (cpu.metric, cpu.target, cpu.fallback) == ("cpu", "80%", False)


def test_without_custom_metrics_it_falls_back_to_cpu_and_says_what_to_install() -> None:
    obs = observe(spec(targetCPUUtilizationPercentage=70), {"llama": engine()})
    decision = reconcile_service(_with(obs, apiservices=[OTHER]), NOW)
    assert hpa_of(decision)["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}},
        }
    ]
    degraded = conditions(decision)[r.AUTOSCALING_DEGRADED]
    assert (degraded.status, degraded.reason) == ("True", r.CUSTOM_METRICS_UNAVAILABLE)
    assert "scaling on CPU instead of RequestsInFlight" in degraded.message
    assert "Prometheus Adapter" in degraded.message
    assert "v1beta1.custom.metrics.k8s.io" in degraded.message
    assert "spec.resources.requests.cpu" in degraded.message  # no CPU request: the fallback can't scale
    assert decision.status.autoscaling[0].fallback
    # Custom metrics come back: the HPA scales on load again and the condition goes.
    again = reconcile_service(
        _with(obs, apiservices=AVAILABLE, status=decision.status.model_dump(mode="json")), NOW
    )
    assert hpa_of(again)["spec"]["metrics"][0]["type"] == "Pods"
    assert r.AUTOSCALING_DEGRADED not in conditions(again)


def test_cpu_chosen_is_not_degraded() -> None:
    body = spec(metric="CPU") | {"resources": {"requests": {"cpu": "2"}}}
    decision = reconcile_service(_with(observe(body, {"llama": engine()}), apiservices=[OTHER]), NOW)
    assert r.AUTOSCALING_DEGRADED not in conditions(decision)
    assert decision.status.autoscaling[0].metric == "cpu"


def test_behavior_carries_the_stabilization_windows() -> None:
    decision = reconcile_service(
        _with(
            observe(
                spec(scaleDownStabilizationSeconds=10, scaleUpStabilizationSeconds=3),
                {"llama": engine()},
            ),
            apiservices=AVAILABLE,
        ),
        NOW,
    )
    behavior = hpa_of(decision)["spec"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == 10
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 3
    assert hpa_of(decision)["spec"]["minReplicas"] == 1
    assert hpa_of(decision)["spec"]["maxReplicas"] == 3


def test_hpa_status_and_trouble_show_in_the_service_status() -> None:
    hpa = {
        "metadata": {"name": "chat-sm90"},
        "status": {
            "currentReplicas": 2,
            "desiredReplicas": 3,
            "currentMetrics": [
                {
                    "type": "Pods",
                    "pods": {
                        "metric": {"name": "trtllm_requests_in_flight"},
                        "current": {"averageValue": "4500m"},
                    },
                }
            ],
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"},
                {
                    "type": "ScalingActive",
                    "status": "False",
                    "reason": "FailedGetPodsMetric",
                    "message": "unable to get metric trtllm_requests_in_flight",
                },
            ],
        },
    }
    obs = _with(observe(spec(), {"llama": engine()}), apiservices=AVAILABLE, hpas={"chat-sm90": hpa})
    decision = reconcile_service(obs, NOW)
    row = decision.status.autoscaling[0]
    assert (row.current, row.currentReplicas, row.desiredReplicas) == ("4500m", 2, 3)
    degraded = conditions(decision)[r.AUTOSCALING_DEGRADED]
    assert degraded.reason == r.HPA_NOT_SCALING
    assert "ScalingActive=False (FailedGetPodsMetric)" in degraded.message


def test_garbage_hpa_status_does_not_crash() -> None:
    hpa = {"status": {"currentReplicas": "x", "currentMetrics": ["?", {"type": "Pods"}], "conditions": [1]}}
    obs = _with(observe(spec(), {"llama": engine()}), apiservices=AVAILABLE, hpas={"chat-sm90": hpa})
    row = reconcile_service(obs, NOW).status.autoscaling[0]
    assert (row.current, row.currentReplicas) == (None, None)


@pytest.mark.parametrize(
    "garbage",
    [
        [{"spec": "x"}],
        [{"spec": {"group": GROUP}, "status": "x"}],
        [{"spec": {"group": GROUP}, "status": {"conditions": "x"}}],
        [{"spec": {"group": GROUP}, "status": {"conditions": [1, {"type": "Available"}]}}],
        [{"spec": {"group": GROUP}, "metadata": "x"}],
        ["x", None],
    ],
)
def test_garbage_apiservices_are_no_custom_metrics(garbage: list[Any]) -> None:
    assert not autoscaling.custom_metrics(garbage).available


def test_garbage_hpa_lists_do_not_crash() -> None:
    for hpa in ({"status": "x"}, {"status": {"currentMetrics": "x", "conditions": "y"}}, "z"):
        obs = _with(observe(spec(), {"llama": engine()}), apiservices=AVAILABLE, hpas={"chat-sm90": hpa})
        assert reconcile_service(obs, NOW).status.autoscaling[0].current is None


def test_no_autoscaling_no_rows_no_condition() -> None:
    decision = reconcile_service(observe({"engineRef": {"name": "llama"}}, {"llama": engine()}), NOW)
    assert decision.status.autoscaling == []
    assert r.AUTOSCALING_DEGRADED not in conditions(decision)
