"""Canary by engine revision, judged live on the local cluster.

Real: the operator, the Deployments and EndpointSlices, Prometheus (the "metrics" add-on, scraping the
serving pods with the agreed labels), the PromQL judgement, kstatus and Argo CD's health script.
Simulated: the servers (stand-in trtllm-serve) and so their numbers; a slower or erroring revision comes
from the namespace's ``trtllm-sim`` knob ``TRTLLM_SIM_SERVE`` with ``revisions``. Requests go through the
Service's ready endpoints (pod IP -> loopback via .cluster/serving-endpoints.json), spread evenly over
the pods as kube-proxy would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_gitops_and_least_privilege import kstatus
from tests.integration.test_serving_endpoints import serving_engine
from tests.integration.test_validation_and_serving import BENCH_GATE, Services, _bench, _service
from tests.support import Engines, Kube, OperatorProcess, endpoint_fetch, wait_for
from tests.unit.test_argocd_health import run_health, script_of
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.dev.load import Load, mapping_file

pytestmark = pytest.mark.cluster
BAKE = 20


@pytest.fixture(scope="session")
def metrics_cluster(cluster: LocalCluster) -> LocalCluster:
    cluster.ensure_addons("metrics")
    return cluster


@pytest.fixture
def canary_operator(
    metrics_cluster: LocalCluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The operator with --prometheus-url's env (the add-on's Prometheus) and, simulation only, the
    pod IP -> loopback map for the accuracy probe."""
    env = {
        "TRTLLM_RESYNC_SECONDS": "10",
        "TRTLLM_LEASE_DURATION_SECONDS": "4",
        "TRTLLM_RENEW_DEADLINE_SECONDS": "3",
        "TRTLLM_RETRY_PERIOD_SECONDS": "0.5",
        "TRTLLM_PROMETHEUS_URL": metrics_cluster.prometheus_url,
        "TRTLLM_SIM_ENDPOINTS_FILE": str(mapping_file(metrics_cluster.state_dir)),
    }
    log = tmp_path / "operator.log"
    process = OperatorProcess(metrics_cluster.kubeconfig, namespace, log, env).start()
    yield process
    process.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"--- operator log ({process.log}) ---\n{process.output()[-20000:]}")


def chat_load(cluster: LocalCluster, kube: Kube, namespace: str) -> Load:
    """Three clients through the "chat" Service's ready endpoints, counted per track."""
    fetch = endpoint_fetch(kube, namespace, "chat")
    return Load(fetch, mapping_file(cluster.state_dir), model="chat", threads=3, timeout=30)


def canary_status(services: Services, name: str = "chat") -> dict[str, Any]:
    return dict(services.get(name).get("status", {}).get("canary") or {})


def verdicts(services: Services, name: str = "chat") -> tuple[str, str]:
    obj = services.get(name)
    return kstatus(obj)["status"], str(run_health(script_of("InferenceService"), obj)["status"])


def canary_service(**gates: Any) -> dict[str, Any]:
    canary = {"replicas": 1, "bakeSeconds": BAKE, "gates": {"minRequests": 10, **gates}}
    return _service("chat", "fast", replicas=2, rollout={"canary": canary})


def deployment_revision(kube: Kube, namespace: str, name: str) -> str:
    dep = kube.apps.read_namespaced_deployment(name, namespace)
    return str(dep.spec.template.metadata.labels["trtllm.dev/revision"])


def deployment_names(kube: Kube, namespace: str) -> set[str]:
    return {d.metadata.name for d in kube.apps.list_namespaced_deployment(namespace).items}


def start_revision_2(engines: Engines, serve_knobs: dict[str, Any]) -> None:
    """Revision 2 passes its build gates; the knobs apply to the servers of revision 2 only."""
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_SERVE=json.dumps(serve_knobs))
    engines.patch_spec("fast", {"calibration": {"size": 128}})


def watch_baking(services: Services, seen: dict[str, Any]) -> None:
    """Record the verdicts of the real judges while the canary bakes."""
    if canary_status(services).get("phase") == "Baking" and "baking" not in seen:
        seen["baking"] = verdicts(services)


def test_an_erroring_canary_is_rolled_back_and_the_stable_keeps_serving(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    canary_operator: OperatorProcess,
) -> None:
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(canary_service(maxErrorRate=0.1, maxP95LatencyRatio=3.0))
    services.wait("chat", "Ready", "True", timeout=120)
    seen: dict[str, Any] = {}
    with chat_load(metrics_cluster, kube, engines.namespace) as load:
        start_revision_2(engines, {"errorRate": 0.5, "revisions": [2]})

        def rolled_back() -> bool:
            watch_baking(services, seen)
            phase = canary_status(services).get("phase")
            assert phase not in ("Promoting", "Promoted"), canary_status(services)
            return phase == "RolledBack"

        wait_for(rolled_back, 420, interval=1.0, what="the canary rolled back")
        wait_for(
            lambda: "chat-sm100-canary" not in deployment_names(kube, engines.namespace),
            60,
            what="the canary Deployment deleted",
        )
        time.sleep(3)  # the stable keeps answering after the rollback
    assert load.stable_failures == [], load.stable_failures[:5]
    assert load.ok["stable"] > 0
    assert load.failed["canary"] > 0
    assert seen.get("baking") == ("InProgress", "Progressing")
    status = services.get("chat")["status"]
    canary = status["canary"]
    assert (canary["revision"], canary["baselineRevision"]) == (2, 1)
    assert canary["canary"]["errorRate"] > 0.1
    assert canary["canary"]["requests"] >= 10
    assert canary["stable"]["errorRate"] == 0
    assert canary["canary"]["simulated"] is True  # the stand-in says so; so does the message
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert rolled["status"] == "True"
    assert "maxErrorRate 0.1" in rolled["message"]
    assert "canary r2" in rolled["message"]
    assert "(SIMULATED servers)" in rolled["message"]
    assert "stable r1" in rolled["message"]
    assert deployment_revision(kube, engines.namespace, "chat-sm100") == "1"
    assert verdicts(services) == ("Failed", "Degraded")
    reasons = {e.reason for e in kube.core.list_namespaced_event(engines.namespace).items}
    assert {"CanaryStarted", "CanaryRolledBack"} <= reasons
    # Prometheus was asked once, at the judgement, not in a loop (resyncs every 10 s meanwhile).
    assert canary_operator.output().count("canary measured") == 1


def test_without_prometheus_the_canary_fails_closed(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    """No --prometheus-url: the canary can't be judged, so it is rolled back, saying what is missing."""
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(canary_service(maxErrorRate=0.1))
    services.wait("chat", "Ready", "True", timeout=120)
    start_revision_2(engines, {})
    wait_for(lambda: canary_status(services).get("phase") == "RolledBack", 300, what="the canary rolled back")
    status = services.get("chat")["status"]
    rolled = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert (rolled["status"], rolled["reason"]) == ("True", "MetricsUnavailable")
    assert "--prometheus-url" in rolled["message"]
    assert "TRTLLM_PROMETHEUS_URL" in rolled["message"]
    assert deployment_revision(kube, engines.namespace, "chat-sm100") == "1"
    wait_for(lambda: deployment_names(kube, engines.namespace) == {"chat-sm100"}, 60, what="the canary gone")
    assert verdicts(services) == ("Failed", "Degraded")


def test_a_healthy_canary_is_promoted_and_the_stable_serves_revision_2(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    canary_operator: OperatorProcess,
) -> None:
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    probe = {"prompts": [{"prompt": "Say something", "expect": "sim0"}], "minScore": 1.0, "maxTokens": 4}
    body = canary_service(maxErrorRate=0.05, maxP95LatencyRatio=3.0, minTokensPerSecondRatio=0.5)
    body["spec"]["rollout"]["canary"]["accuracyProbe"] = probe
    services.create(body)
    services.wait("chat", "Ready", "True", timeout=120)
    seen: dict[str, Any] = {}
    with chat_load(metrics_cluster, kube, engines.namespace):
        start_revision_2(engines, {})

        def promoted() -> bool:
            watch_baking(services, seen)
            phase = canary_status(services).get("phase")
            assert phase != "RolledBack", canary_status(services)
            return phase == "Promoted"

        wait_for(promoted, 420, interval=1.0, what="the canary promoted")
    assert seen.get("baking") == ("InProgress", "Progressing")
    services.wait("chat", "Ready", "True", timeout=60)
    assert deployment_revision(kube, engines.namespace, "chat-sm100") == "2"
    wait_for(lambda: deployment_names(kube, engines.namespace) == {"chat-sm100"}, 60, what="the canary gone")
    canary = services.get("chat")["status"]["canary"]
    assert canary["canary"]["errorRate"] == 0
    assert canary["canary"]["tokensPerSecondPerReplica"] > 0
    assert canary["stable"]["tokensPerSecondPerReplica"] > 0
    assert canary["accuracyScore"] == 1.0  # the stand-in's filler text starts with "sim0"
    assert canary["verdict"].startswith("passed")
    assert verdicts(services) == ("Current", "Healthy")
    status = services.get("chat")["status"]
    assert status["engineRevision"] == 2
    cond = next(c for c in status["conditions"] if c["type"] == "Canary")
    assert (cond["status"], cond["reason"]) == ("False", "CanaryPromoted")
    assert BENCH_GATE  # revision 2 was promoted by the same benchmark gate as revision 1


def test_a_slower_canary_is_rolled_back_on_its_p95_latency(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    canary_operator: OperatorProcess,
) -> None:
    """Revision 2's servers are 6x slower: its p95 (histogram_quantile over the real scraped buckets)
    exceeds 1.5x the stable's, and it goes."""
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(canary_service(maxErrorRate=0.1, maxP95LatencyRatio=1.5))
    services.wait("chat", "Ready", "True", timeout=120)
    with chat_load(metrics_cluster, kube, engines.namespace) as load:
        start_revision_2(engines, {"slowdown": 6, "revisions": [2]})

        def rolled_back() -> bool:
            phase = canary_status(services).get("phase")
            assert phase not in ("Promoting", "Promoted"), canary_status(services)
            return phase == "RolledBack"

        wait_for(rolled_back, 420, interval=1.0, what="the slow canary rolled back")
    assert load.stable_failures == [], load.stable_failures[:5]
    assert load.ok["canary"] > 0
    canary = canary_status(services)
    assert canary["canary"]["p95LatencySeconds"] > 1.5 * canary["stable"]["p95LatencySeconds"]
    assert canary["canary"]["errorRate"] == 0
    rolled = next(c for c in services.get("chat")["status"]["conditions"] if c["type"] == "RolledBack")
    assert "maxP95LatencyRatio 1.5" in rolled["message"]
    assert "> maxErrorRate" not in rolled["message"]  # slow, not failing
    assert deployment_revision(kube, engines.namespace, "chat-sm100") == "1"


def test_a_second_canary_after_a_promotion_bakes_its_own_window(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    canary_operator: OperatorProcess,
) -> None:
    """Revision 2 is promoted, then revision 3 (failing half its requests) gets a canary of its own: the
    first canary's bakingSince/judgeAt are gone from status (a merge patch keeps what it does not mention),
    so it bakes its full window and is judged once, with data, not at once with none."""
    services = Services(kube, engines.namespace)
    serving_engine(engines)
    services.create(canary_service(maxErrorRate=0.1))
    services.wait("chat", "Ready", "True", timeout=120)
    with chat_load(metrics_cluster, kube, engines.namespace):
        start_revision_2(engines, {"errorRate": 0.5, "revisions": [3]})
        wait_for(lambda: canary_status(services).get("phase") == "Promoted", 420, what="revision 2 promoted")
        wait_for(lambda: deployment_names(kube, engines.namespace) == {"chat-sm100"}, 60, what="canary gone")
        services.wait("chat", "Ready", "True", timeout=120)
        engines.patch_spec("fast", {"calibration": {"size": 64}})

        def rolled_back() -> bool:
            canary = canary_status(services)
            return canary.get("revision") == 3 and canary.get("phase") == "RolledBack"

        wait_for(rolled_back, 420, interval=1.0, what="revision 3 rolled back")
    canary = canary_status(services)
    assert canary["baselineRevision"] == 2
    assert canary["deferrals"] == 0
    assert canary["canary"]["requests"] >= 10
    assert canary["canary"]["errorRate"] > 0.1
    assert deployment_revision(kube, engines.namespace, "chat-sm100") == "2"
    assert canary_operator.output().count("canary measured") == 2  # once per canary
