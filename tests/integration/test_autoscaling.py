"""Autoscaling on inference load through the real parts: Prometheus scrapes the serving pods, the
Prometheus Adapter serves ``trtllm_requests_in_flight`` on custom.metrics.k8s.io through the API
aggregator, kube-controller-manager's HPA scales the Deployment. Simulated: the servers' load (stand-in
trtllm-serve queues requests once its batch is full) and the loopback addresses behind the endpoints.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from kubernetes import client

from tests.integration.test_serving_endpoints import loopback, ready_endpoints
from tests.integration.test_validation_and_serving import BENCH_GATE, Services, _bench, _service
from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from trtllm_operator.dev.addons import metrics
from trtllm_operator.dev.cluster import LocalCluster

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


class Load:
    """Threads that keep requests in flight through the Service's ready endpoints (round robin)."""

    def __init__(self, cluster: LocalCluster, kube: Kube, namespace: str, threads: int) -> None:
        self.cluster, self.kube, self.namespace = cluster, kube, namespace
        self.stop = threading.Event()
        self.completed = 0
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _run(self, index: int) -> None:
        turn = index
        while not self.stop.is_set():
            targets = ready_endpoints(self.kube, self.namespace, "chat")
            address = loopback(self.cluster, targets[turn % len(targets)]) if targets else None
            turn += 1
            if address is None:
                self.stop.wait(0.2)
                continue
            api = openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0, timeout=60)
            try:
                api.completions.create(model="chat", prompt="Hello " * 16, max_tokens=400)
                self.completed += 1
            except openai.OpenAIError as error:  # a pod going away mid-request: try another
                self.errors.append(str(error))


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
    with Load(metrics_cluster, kube, engines.namespace, threads=12) as load:
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
