"""Autoscaling on inference load through the real parts: Prometheus scrapes the serving pods, the
Prometheus Adapter serves ``trtllm_requests_in_flight`` on custom.metrics.k8s.io through the API
aggregator, kube-controller-manager's HPA scales the Deployment. Simulated: the servers' load (stand-in
trtllm-serve queues requests once its batch is full) and the loopback addresses behind the endpoints.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.integration.test_serving_endpoints import ready_endpoints
from tests.integration.test_validation_and_serving import BENCH_GATE, Services, _bench, _service
from tests.support import Engines, Kube, OperatorProcess, endpoint_fetch, engine_manifest, wait_for
from trtllm_operator.dev.addons import metrics
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.dev.load import Load, mapping_file

pytestmark = pytest.mark.cluster

SCALING = {
    "minReplicas": 1,
    "maxReplicas": 3,
    "targetRequestsInFlight": 2,
    "scaleDownStabilizationSeconds": 5,
}


@pytest.fixture
def services(kube: Kube, namespace: str) -> Services:
    return Services(kube, namespace)


def small_batch_engine(engines: Engines) -> None:
    """Batch of 4: a replica queues requests beyond 4 in flight."""
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))
    engines.create(engine_manifest("fast", validation={"benchmark": BENCH_GATE}, build={"maxBatchSize": 4}))
    engines.wait_condition("fast", "Ready", "True", timeout=120)


def autoscaled(scaling: dict[str, Any]) -> dict[str, Any]:
    body = _service("chat", "fast", autoscaling=scaling)
    del body["spec"]["replicas"]  # the HPA owns them
    return body


def hpas(kube: Kube) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(kube.api)


def replicas(kube: Kube, namespace: str) -> int:
    return int(kube.apps.read_namespaced_deployment("chat-sm100", namespace).spec.replicas or 0)


def chat_load(cluster: LocalCluster, kube: Kube, namespace: str) -> Load:
    """Twelve clients keeping requests in flight through the "chat" Service's ready endpoints."""
    fetch = endpoint_fetch(kube, namespace, "chat")
    mapping = mapping_file(cluster.state_dir)
    return Load(fetch, mapping, model="chat", threads=12, prompt="Hello " * 16, max_tokens=400)


def test_load_scales_replicas_up_and_back_down(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    services: Services,
    operator: OperatorProcess,
) -> None:
    small_batch_engine(engines)
    services.create(autoscaled(SCALING))
    services.wait("chat", "Ready", "True", timeout=90)
    status = services.get("chat")["status"]
    assert [(a["metric"], a["target"], a["fallback"]) for a in status["autoscaling"]] == [
        ("pods/trtllm_requests_in_flight", "2", False)
    ]
    hpa = hpas(kube).read_namespaced_horizontal_pod_autoscaler("chat-sm100", engines.namespace)
    assert hpa.spec.metrics[0].pods.metric.name == "trtllm_requests_in_flight"
    # The HPA reads the metric through the aggregator before any load: 0 in flight, 1 replica.
    wait_for(
        lambda: (row := services.get("chat")["status"]["autoscaling"][0]).get("current") == "0" and row,
        120,
        what="the HPA reporting trtllm_requests_in_flight = 0",
    )
    # Until the adapter has seen the new pod's series the HPA may say ScalingActive=False; not now.
    wait_for(lambda: not services.condition("chat", "AutoscalingDegraded"), 60, what="no AutoscalingDegraded")
    assert replicas(kube, engines.namespace) == 1
    with chat_load(metrics_cluster, kube, engines.namespace) as load:
        wait_for(lambda: replicas(kube, engines.namespace) == 3, 240, what="3 replicas under load")
        services.wait("chat", "Ready", "True", timeout=120)
        wait_for(lambda: len(ready_endpoints(kube, engines.namespace, "chat")) == 3, 60, what="3 endpoints")
        row = services.get("chat")["status"]["autoscaling"][0]
        assert row["desiredReplicas"] == 3
        assert load.completed > 0
    wait_for(lambda: replicas(kube, engines.namespace) == 1, 240, what="back to 1 replica without load")
    reasons = {e.reason for e in kube.core.list_namespaced_event(engines.namespace).items}
    assert "SuccessfulRescale" in reasons  # the HPA controller did it (its Events)


@pytest.fixture
def without_custom_metrics(metrics_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The custom-metrics APIServices deleted for the test, registered again after it."""
    metrics.unregister(metrics_cluster)
    try:
        yield metrics_cluster
    finally:
        metrics_cluster.ensure_addons("metrics")  # registers them again and waits until Available


def test_without_custom_metrics_the_hpa_falls_back_to_cpu_and_status_says_so(
    without_custom_metrics: LocalCluster,
    kube: Kube,
    engines: Engines,
    services: Services,
    operator: OperatorProcess,
) -> None:
    small_batch_engine(engines)
    services.create(autoscaled(SCALING))
    degraded = services.wait("chat", "AutoscalingDegraded", "True", "CustomMetricsUnavailable", timeout=90)
    assert "no APIService v1beta1.custom.metrics.k8s.io" in degraded["message"]
    assert "Prometheus Adapter" in degraded["message"]
    hpa = hpas(kube).read_namespaced_horizontal_pod_autoscaler("chat-sm100", engines.namespace)
    assert hpa.spec.metrics[0].resource.name == "cpu"
    # The pipeline comes back: the operator sees the APIService (watch) and scales on load again.
    without_custom_metrics.ensure_addons("metrics")

    def on_load() -> bool:
        found = hpas(kube).read_namespaced_horizontal_pod_autoscaler("chat-sm100", engines.namespace)
        return found.spec.metrics[0].type == "Pods"

    wait_for(on_load, 60, what="the HPA back on trtllm_requests_in_flight")
    wait_for(
        lambda: not services.condition("chat", "AutoscalingDegraded"), 60, what="AutoscalingDegraded gone"
    )


@pytest.mark.parametrize(
    ("autoscaling", "resources", "refused"),
    [
        ({"maxReplicas": 3}, None, None),  # custom metrics: no CPU request needed
        ({"maxReplicas": 3, "metric": "CPU"}, None, "needs a CPU request"),
        ({"maxReplicas": 3, "metric": "CPU"}, {"requests": {"cpu": "2"}}, None),
        ({"maxReplicas": 3, "metric": "GenerationTokensPerSecond"}, None, "targetGenerationTokensPerSecond"),
    ],
)
def test_cel_asks_for_a_cpu_request_only_when_scaling_on_cpu(
    kube: Kube,
    namespace: str,
    autoscaling: dict[str, Any],
    resources: dict[str, Any] | None,
    refused: str | None,
) -> None:
    body = autoscaled(autoscaling)
    if resources:
        body["spec"]["resources"] = resources
    create = kube.custom.create_namespaced_custom_object
    if refused is None:
        create("trtllm.dev", "v1alpha1", namespace, "inferenceservices", body, dry_run="All")
        return
    with pytest.raises(client.ApiException) as error:
        create("trtllm.dev", "v1alpha1", namespace, "inferenceservices", body, dry_run="All")
    assert error.value.status == 422
    assert refused in json.loads(error.value.body)["message"]
