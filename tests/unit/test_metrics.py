"""The operator's HTTP endpoints on a free loopback port, and the metric families the issue names."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from trtllm_operator.metrics import Endpoints, Metrics


class Ready:
    def __init__(self) -> None:
        self.ok, self.why = False, "caches not synced: jobs"

    def __call__(self) -> tuple[bool, str]:
        return self.ok, self.why


@pytest.fixture
def served() -> Iterator[tuple[Metrics, Ready, str]]:
    metrics, ready = Metrics(), Ready()
    endpoints = Endpoints(metrics, ready)
    port = endpoints.serve("127.0.0.1:0")
    yield metrics, ready, f"http://127.0.0.1:{port}"
    endpoints.close()


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(), error.headers["Content-Type"]


def test_healthz_is_ok_while_the_process_serves(served: tuple[Metrics, Ready, str]) -> None:
    _, _, base = served
    assert get(f"{base}/healthz")[:2] == (200, "ok\n")
    assert get(f"{base}/nothing")[0] == 404


def test_readyz_is_503_with_the_reason_until_synced_then_200(served: tuple[Metrics, Ready, str]) -> None:
    _, ready, base = served
    assert get(f"{base}/readyz")[:2] == (503, "caches not synced: jobs\n")
    ready.ok, ready.why = True, "ok"
    assert get(f"{base}/readyz")[:2] == (200, "ok\n")


def test_metrics_exposes_the_families_an_operator_is_judged_by(served: tuple[Metrics, Ready, str]) -> None:
    metrics, _, base = served
    refreshed = []
    metrics.refresh = lambda: refreshed.append(True)
    metrics.reconciles.labels(kind="TRTEngine", result="success").inc()
    metrics.reconcile_errors.labels(kind="TRTEngine").inc()
    metrics.reconcile_seconds.labels(kind="TRTEngine").observe(0.02)
    metrics.observe_request("patch", "409")
    metrics.observe_request("patch", "409")
    metrics.builds.labels(phase="Ready").set(2)
    metrics.gates.labels(reason="AccuracyGatePassed").inc()
    metrics.cache_synced.labels(resource="jobs").set(1)
    metrics.leader.set(1)
    code, body, content_type = get(f"{base}/metrics")
    assert code == 200
    assert content_type.startswith("text/plain")
    assert refreshed == [True]  # gauges are refreshed at scrape time
    families = {f.name: f for f in text_string_to_metric_families(body)}
    for name in (
        "reconcile",
        "reconcile_errors",
        "reconcile_duration_seconds",
        "workqueue_depth",
        "workqueue_adds",
        "workqueue_retries",
        "workqueue_longest_running_processor_seconds",
        "api_requests",
        "engines",
        "build_slots",
        "gate_outcomes",
        "leader",
        "cache_synced",
        "cache_objects",
    ):
        assert f"trtllm_operator_{name}" in families, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("trtllm_operator_api_requests_total", (("code", "409"), ("verb", "patch")))] == 2
    assert samples[("trtllm_operator_engines", (("phase", "Ready"),))] == 2
    assert samples[("trtllm_operator_leader", ())] == 1
    assert samples[("trtllm_operator_reconcile_duration_seconds_count", (("kind", "TRTEngine"),))] == 1
    assert metrics.value("trtllm_operator_gate_outcomes_total", reason="AccuracyGatePassed") == 1
    assert metrics.value("trtllm_operator_gate_outcomes_total", reason="Other") == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.observe_request("get", "200")
    assert a.value("trtllm_operator_api_requests_total", verb="get", code="200") == 1
    assert b.value("trtllm_operator_api_requests_total", verb="get", code="200") == 0
