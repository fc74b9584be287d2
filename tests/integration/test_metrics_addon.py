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

import pytest

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
