"""The "metrics" add-on: real Prometheus (built from the Go module proxy) scrapes the serving pods of an
InferenceService with the agreed labels (namespace, pod, inference_service, engine, revision, track).

Simulated: the servers' numbers (stand-in trtllm-serve) and their loopback address (the executor's
annotation stands in for the pod IP, see dev/addons/metrics.py).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from typing import Any

import openai
import pytest
from kubernetes import client

from tests.integration.test_serving_endpoints import serving_engine
from tests.integration.test_validation_and_serving import Services, _service
from tests.support import Engines, Kube, OperatorProcess, wait_for
from trtllm_operator.dev.cluster import LocalCluster

pytestmark = pytest.mark.cluster


def prometheus_query(cluster: LocalCluster, query: str) -> list[dict[str, Any]]:
    """Instant query; the result vector (each {"metric": labels, "value": [ts, "v"]})."""
    url = f"{cluster.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_prometheus_scrapes_serving_pods_with_the_agreed_labels(
    metrics_cluster: LocalCluster, kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(_service("chat", "fast", replicas=2))
    services.wait("chat", "Ready", "True", timeout=90)
    pods = {
        p.metadata.name: p
        for p in kube.core.list_namespaced_pod(
            engines.namespace, label_selector="trtllm.dev/inference-service=chat"
        ).items
    }
    # up == 1: scraped and answering; the servers' gauges appear with their first request.
    query = f'up{{namespace="{engines.namespace}",inference_service="chat"}} == 1'
    series = wait_for(
        lambda: len(x := prometheus_query(metrics_cluster, query)) == 2 and x,
        60,
        what="both serving pods scraped by Prometheus",
    )
    for item in series:
        labels = item["metric"]
        pod = pods[labels["pod"]]
        assert labels["namespace"] == engines.namespace
        assert labels["inference_service"] == "chat"
        assert labels["engine"] == "fast"
        assert labels["revision"] == pod.metadata.labels["trtllm.dev/revision"]
        assert labels.get("track", "") == pod.metadata.labels.get("trtllm.dev/track", "")
        assert labels["job"] == "trtllm-serving"
    static = f'trtllm_max_batch_size_static{{namespace="{engines.namespace}",inference_service="chat"}}'
    assert len(prometheus_query(metrics_cluster, static)) == 2  # the servers' own metrics, same labels


def custom_metric(kube: Kube, namespace: str, metric: str) -> dict[str, str]:
    """pod -> value of a custom metric, read through the API server's aggregator (as the HPA does)."""
    path = f"/apis/custom.metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/*/{metric}"
    method, url, headers, _, _ = kube.api.param_serialize(
        "GET", path, header_params={"Accept": "application/json"}, auth_settings=["BearerToken"]
    )
    try:
        response = kube.api.call_api(method, url, header_params=headers)
        response.read()
        body = json.loads(response.data)
    except client.ApiException:
        return {}
    return {item["describedObject"]["name"]: item["value"] for item in body.get("items") or []}


def test_the_adapter_serves_each_inference_metric_per_pod_through_the_aggregator(
    metrics_cluster: LocalCluster, kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(_service("chat", "fast", replicas=1))
    services.wait("chat", "Ready", "True", timeout=90)
    (pod,) = kube.core.list_namespaced_pod(
        engines.namespace, label_selector="trtllm.dev/inference-service=chat"
    ).items
    name = pod.metadata.name
    # Before any request the server has no gauges yet: requests in flight is 0, not missing.
    wait_for(
        lambda: custom_metric(kube, engines.namespace, "trtllm_requests_in_flight").get(name) == "0",
        60,
        what="trtllm_requests_in_flight = 0 for the idle pod",
    )
    address = wait_for(lambda: _loopback(kube, engines.namespace, name), 30, what="the pod's loopback")
    api = openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0)

    def served(metric: str) -> str | None:
        api.completions.create(model="chat", prompt="Hello", max_tokens=64)  # keep tokens coming
        return custom_metric(kube, engines.namespace, metric).get(name)

    wait_for(lambda: served("trtllm_kv_cache_utilization"), 60, what="trtllm_kv_cache_utilization")
    # A counter's first scraped value is its baseline (Prometheus' rate): > 0 once later scrapes grow.
    wait_for(
        lambda: served("trtllm_generation_tokens_per_second") not in (None, "0"),
        60,
        what="trtllm_generation_tokens_per_second > 0",
    )


def _loopback(kube: Kube, namespace: str, pod: str) -> str | None:
    annotations = kube.core.read_namespaced_pod(pod, namespace).metadata.annotations or {}
    return annotations.get("sim.trtllm.dev/loopback")
