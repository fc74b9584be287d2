"""Validation gates and serving on the real control plane: numbers in status, promotion rules, rollouts.

trtllm-bench and trtllm-eval are stand-ins whose numbers each test picks (namespace ConfigMap
``trtllm-sim``); everything else — operator, Jobs, scheduler, Deployments — is real.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for

pytestmark = pytest.mark.cluster

BENCH_GATE = {
    "inputLength": 128,
    "outputLength": 128,
    "concurrency": 64,
    "numRequests": 64,
    "minOutputTokensPerSecond": 5000,
}
ACCURACY_GATE = {"tasks": [{"name": "gsm8k", "baseline": {"value": 0.781}, "maxDrop": 0.02}]}


def _bench(tok_s: float) -> str:
    return json.dumps({"system_output_throughput_tok_s": tok_s})


def _service(name: str, engine: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trtllm.dev/v1alpha1",
        "kind": "InferenceService",
        "metadata": {"name": name},
        "spec": {"engineRef": {"name": engine}, "replicas": 2, **spec},
    }


class Services:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace

    def create(self, body: dict[str, Any]) -> None:
        self.kube.custom.create_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "inferenceservices", body
        )

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.kube.custom.get_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "inferenceservices", name
        )
        return result

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.kube.custom.patch_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "inferenceservices", name, {"spec": spec}
        )

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        return next(
            (c for c in (self.get(name).get("status") or {}).get("conditions") or [] if c["type"] == type_),
            None,
        )

    def wait(
        self, name: str, type_: str, status: str, reason: str | None = None, timeout: float = 60
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = self.condition(name, type_)
            return (
                found if found and found["status"] == status and reason in (None, found["reason"]) else None
            )

        try:
            return wait_for(probe, timeout, what=f"{name} {type_}={status} {reason or ''}")
        except AssertionError as error:
            raise AssertionError(f"{error}\nstatus: {self.get(name).get('status')}") from None


@pytest.fixture
def services(kube: Kube, namespace: str) -> Services:
    return Services(kube, namespace)


def test_benchmark_meets_floor_engine_validated_with_numbers(
    engines: Engines, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_EVAL=json.dumps({"gsm8k": 77.9}))
    engines.create(engine_manifest("good", validation={"benchmark": BENCH_GATE, "accuracy": ACCURACY_GATE}))
    validated = engines.wait_condition("good", "Validated", "True", "GatesPassed", timeout=120)
    assert "gsm8k" in validated["message"]
    engines.wait_condition("good", "Ready", "True")
    status = engines.get("good")["status"]
    bench = status["benchmark"]
    assert bench["outputTokensPerSecond"] == pytest.approx(6049)
    assert (bench["isl"], bench["osl"], bench["concurrency"]) == (128, 128, 64)
    assert bench["passed"] is True
    assert bench["measuredAt"]
    assert bench["ttftMs"]["p99"] > 0
    assert bench["itlMs"]["p50"] > 0
    accuracy = status["accuracy"][0]
    assert accuracy["task"] == "gsm8k"
    assert accuracy["passed"] is True
    assert accuracy["score"] == pytest.approx(0.779)
    assert accuracy["drop"] == pytest.approx(0.002, abs=1e-6)
    assert status["engine"]["validated"] is True


def test_accuracy_drop_beyond_max_drop_is_regression_with_numbers(
    engines: Engines, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_EVAL=json.dumps({"gsm8k": 71.2}))
    manifest = engine_manifest(
        "mathy",
        model={"domain": "math"},
        calibration={"dataset": "cnn_dailymail"},
        validation={"accuracy": ACCURACY_GATE},
    )
    engines.create(manifest)
    stalled = engines.wait_condition("mathy", "Stalled", "True", "AccuracyRegression", timeout=120)
    message = stalled["message"]
    assert "gsm8k 0.712 vs baseline 0.781: drop 0.069 > maxDrop 0.02" in message
    assert "calibration dataset cnn_dailymail does not match model domain math" in message
    assert engines.condition("mathy", "Validated")["status"] == "False"
    assert engines.condition("mathy", "CalibrationDomainMismatch")["status"] == "True"
    status = engines.get("mathy")["status"]
    assert "engine" not in status
    assert status["candidate"]["revision"] == 1


def test_throughput_miss_keeps_previous_revision_promoted_and_serving(
    kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))
    engines.create(engine_manifest("fast", validation={"benchmark": BENCH_GATE}))
    engines.wait_condition("fast", "Ready", "True", timeout=120)
    first = engines.get("fast")["status"]["engine"]
    services.create(_service("chat", "fast"))
    services.wait("chat", "Ready", "True", timeout=90)

    engines.sim(TRTLLM_SIM_BENCH=_bench(3600))
    engines.patch_spec("fast", {"calibration": {"size": 128}})
    stalled = engines.wait_condition("fast", "Stalled", "True", "ThroughputBelowTarget", timeout=120)
    assert (
        "3,600 tok/s < minOutputTokensPerSecond 5,000" in stalled["message"]
        or "3600 tok/s" in stalled["message"]
    )
    assert "revision 1 stays promoted" in stalled["message"]
    status = engines.get("fast")["status"]
    assert status["revision"] == 2
    assert status["engine"]["revision"] == 1
    assert status["engine"]["uri"] == first["uri"]
    assert status["benchmark"]["passed"] is False
    cc = first["computeCapability"].replace(".", "")
    deployment = kube.apps.read_namespaced_deployment(f"chat-sm{cc}", engines.namespace)
    assert deployment.spec.template.metadata.annotations["trtllm.dev/engine-uri"] == first["uri"]
    assert services.get("chat")["status"]["engineRevision"] == 1
    assert services.condition("chat", "Ready")["status"] == "True"


def test_service_pinned_to_engine_architecture_and_scalable(
    kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))
    engines.create(
        engine_manifest(
            "l40s",
            target={"computeCapability": "8.9"},
            parallelism={"tensor": 1},
            validation={"benchmark": BENCH_GATE},
        )
    )
    engines.wait_condition("l40s", "Ready", "True", timeout=120)
    services.create(_service("ada", "l40s"))
    ready = services.wait("ada", "Ready", "True", timeout=90)
    assert "serving at http://ada." in ready["message"]
    status = services.get("ada")["status"]
    assert status["readyReplicas"] == 2
    assert status["engineRevision"] == 1
    assert status["selector"] == "trtllm.dev/inference-service=ada,trtllm.dev/component=server"
    pods = kube.core.list_namespaced_pod(engines.namespace, label_selector=status["selector"]).items
    assert len(pods) == 2
    for pod in pods:
        labels = kube.core.read_node(pod.spec.node_name).metadata.labels
        assert (labels["nvidia.com/gpu.compute.major"], labels["nvidia.com/gpu.compute.minor"]) == ("8", "9")
    args = pods[0].spec.containers[0].args
    assert args[:2] == ["trtllm-serve", "/served/ada"]  # the engine, mounted under the served name
    assert "--backend" in args
    assert "tensorrt" in args
    # The scale subresource drives the Deployment.
    kube.custom.patch_namespaced_custom_object_scale(
        "trtllm.dev", "v1alpha1", engines.namespace, "inferenceservices", "ada", {"spec": {"replicas": 3}}
    )
    wait_for(
        lambda: (
            (kube.apps.read_namespaced_deployment("ada-sm89", engines.namespace).status.ready_replicas or 0)
            == 3
        ),
        60,
        what="3 ready replicas",
    )
    wait_for(lambda: services.get("ada")["status"]["readyReplicas"] == 3, 60, what="status follows")


def test_unvalidated_engine_refused_unless_opted_in(
    kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    engines.create(engine_manifest("plain"))
    engines.wait_condition("plain", "Ready", "True", timeout=120)
    assert engines.condition("plain", "Validated")["reason"] == "NotConfigured"
    services.create(_service("strict", "plain"))
    stalled = services.wait("strict", "Stalled", "True", "EngineNotValidated")
    assert "allowUnvalidatedEngines" in stalled["message"]
    assert kube.apps.list_namespaced_deployment(engines.namespace).items == []
    services.patch("strict", {"allowUnvalidatedEngines": True})
    services.wait("strict", "Ready", "True", timeout=90)
    warning = services.condition("strict", "UnvalidatedEngine")
    assert warning["status"] == "True"
    assert "plain r1" in warning["message"]


def test_service_waits_for_missing_engine_and_says_so(
    engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    services.create(_service("early", "not-yet"))
    stalled = services.wait("early", "Stalled", "True", "EngineNotFound")
    assert "TRTEngine not-yet not found" in stalled["message"]
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))
    engines.create(engine_manifest("not-yet", validation={"benchmark": BENCH_GATE}))
    services.wait("early", "Ready", "True", timeout=150)
