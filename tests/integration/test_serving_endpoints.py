"""Serving pods that serve: the openai client completes requests through a Ready InferenceService's
endpoints, readiness follows the server's /health, and rollouts keep something serving.

Real: the operator, Deployments, ReplicaSets, the EndpointSlice controller, the scheduler, the ``openai``
client. Simulated: KWOK runs no containers, so the sim executor runs a stand-in ``trtllm-serve`` per
serving pod on a loopback port and is the kubelet for its readiness (dev/executor.py). The pod IPs in
the EndpointSlices are KWOK's; ``.cluster/serving-endpoints.json`` says which loopback port answers
for each ``podIP:port``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import openai
import pytest
from kubernetes import client

from tests.integration.test_validation_and_serving import BENCH_GATE, Services, _bench, _service
from tests.support import Engines, Kube, OperatorProcess, endpoint_fetch, engine_manifest, wait_for
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.dev.load import Load, mapping_file, read_mapping

pytestmark = pytest.mark.cluster


@pytest.fixture
def services(kube: Kube, namespace: str) -> Services:
    return Services(kube, namespace)


def ready_endpoints(kube: Kube, namespace: str, service: str) -> list[str]:
    """podIP:port of every ready endpoint in the Service's EndpointSlices (what kube-proxy would route to)."""
    slices = client.DiscoveryV1Api(kube.api).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    )
    found = []
    for item in slices.items:
        port = next((p.port for p in item.ports or [] if p.name == "http"), None)
        for endpoint in item.endpoints or []:
            if endpoint.conditions and endpoint.conditions.ready and port:
                found += [f"{address}:{port}" for address in endpoint.addresses]
    return sorted(found)


def loopback(cluster: LocalCluster, target: str) -> str | None:
    """The loopback address that really answers for an endpoint ``podIP:port`` (the sim's mapping)."""
    return read_mapping(mapping_file(cluster.state_dir)).get(target)


def serving_engine(engines: Engines, name: str = "fast", **spec: Any) -> dict[str, Any]:
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))
    engines.create(engine_manifest(name, validation={"benchmark": BENCH_GATE}, **spec))
    engines.wait_condition(name, "Ready", "True", timeout=120)
    return engines.get(name)


def test_openai_client_completes_through_the_services_endpoints(
    cluster: LocalCluster, kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    serving_engine(engines)
    services.create(_service("chat", "fast", servedModelName="llama-fp8", replicas=2))
    services.wait("chat", "Ready", "True", timeout=90)
    status = services.get("chat")["status"]
    assert status["modelName"] == "llama-fp8"
    targets = wait_for(
        lambda: len(x := ready_endpoints(kube, engines.namespace, "chat")) == 2 and x,
        30,
        what="2 ready endpoints",
    )
    for target in targets:
        address = wait_for(lambda t=target: loopback(cluster, t), 10, what=f"loopback for {target}")
        client = openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == [status["modelName"]]
        completion = client.completions.create(model=status["modelName"], prompt="Hello", max_tokens=8)
        assert completion.usage is not None
        assert completion.usage.completion_tokens == 8
        assert completion.system_fingerprint == "simulated-trtllm-serve"
        chat = client.chat.completions.create(
            model=status["modelName"], messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        assert chat.choices[0].message.content
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="not-served", prompt="Hello", max_tokens=1)


def test_pod_readiness_follows_the_servers_health(
    kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    """A server whose /health fails never becomes Ready: no endpoint, service not Ready."""
    serving_engine(engines)
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_SERVE=json.dumps({"healthy": False}))
    services.create(_service("sick", "fast", replicas=1))
    selector = "trtllm.dev/inference-service=sick"

    def running() -> list[Any]:
        pods = kube.core.list_namespaced_pod(engines.namespace, label_selector=selector).items
        return [
            p
            for p in pods
            if p.status.phase == "Running" and "sim.trtllm.dev/loopback" in (p.metadata.annotations or {})
        ]

    wait_for(running, 60, what="a Running serving pod with its stand-in started")
    for _ in range(3):  # several probe periods of the executor
        wait_for(lambda: running(), 5)
        ready = next(c for c in running()[0].status.conditions if c.type == "Ready")
        assert ready.status == "False"
        assert ready_endpoints(kube, engines.namespace, "sick") == []
        assert services.condition("sick", "Ready")["status"] == "False"
        time.sleep(1.5)
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049))  # healthy again: new pods come up Ready
    kube.core.delete_collection_namespaced_pod(engines.namespace, label_selector=selector)
    services.wait("sick", "Ready", "True", timeout=90)
    assert len(ready_endpoints(kube, engines.namespace, "sick")) == 1


def answers(cluster: LocalCluster, kube: Kube, namespace: str, service: str, model: str) -> int:
    """Ready endpoints right now, after checking that one of them completes a request."""
    targets = ready_endpoints(kube, namespace, service)
    assert targets, f"no ready endpoint behind Service {service}: a serving outage"
    address = loopback(cluster, targets[0])
    assert address, f"no loopback for {targets[0]}"
    client = openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0)
    assert client.completions.create(model=model, prompt="Hi", max_tokens=2).choices
    return len(targets)


def serve_through(cluster: LocalCluster, kube: Kube, services: Services, done: Any, what: str) -> None:
    """Keep sending requests through the Service's endpoints until ``done()``; each must succeed."""
    namespace, model = services.namespace, "chat"
    deadline = time.monotonic() + 180
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {services.get('chat')['status']}"
        answers(cluster, kube, namespace, "chat", model)
        time.sleep(0.2)


def test_revision_2_rolls_out_while_revision_1_keeps_serving(
    cluster: LocalCluster, kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    serving_engine(engines)
    services.create(_service("chat", "fast", replicas=2))
    services.wait("chat", "Ready", "True", timeout=90)
    # Revision 2 passes its gate; its servers take a while to load, so the rollout has a window.
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_SERVE=json.dumps({"loadSeconds": 2}))
    engines.patch_spec("fast", {"calibration": {"size": 128}})
    selector = "trtllm.dev/inference-service=chat"

    def rolled_out() -> bool:
        status = services.get("chat")["status"]
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        pods = kube.core.list_namespaced_pod(engines.namespace, label_selector=selector).items
        return (
            status.get("engineRevision") == 2
            and ready["status"] == "True"
            and all(p.metadata.labels["trtllm.dev/revision"] == "2" for p in pods)
        )

    serve_through(cluster, kube, services, rolled_out, "revision 2 rolled out")
    assert answers(cluster, kube, engines.namespace, "chat", "chat") == 2
    deployment = kube.apps.read_namespaced_deployment("chat-sm100", engines.namespace)
    assert deployment.spec.strategy.type == "RollingUpdate"


def test_a_rolling_update_under_concurrent_load_fails_no_request(
    cluster: LocalCluster, kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    """Clients that learn the ready endpoints from the EndpointSlices once a second (as kube-proxy does)
    lose no request while revision 2 replaces revision 1: a deleted pod keeps answering through its
    preStop drain (render/serving.py DRAIN_SECONDS) until its endpoint is gone from every client."""
    serving_engine(engines)
    services.create(_service("chat", "fast", replicas=2))
    services.wait("chat", "Ready", "True", timeout=90)
    selector = "trtllm.dev/inference-service=chat"
    fetch = endpoint_fetch(kube, engines.namespace, "chat")
    with Load(fetch, mapping_file(cluster.state_dir), model="chat", threads=4) as load:
        wait_for(lambda: load.completed >= 20, 60, what="requests answered by revision 1")
        engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_SERVE=json.dumps({"loadSeconds": 2}))
        engines.patch_spec("fast", {"calibration": {"size": 128}})

        def rolled_out() -> bool:
            pods = kube.core.list_namespaced_pod(engines.namespace, label_selector=selector).items
            return len(pods) == 2 and all(p.metadata.labels["trtllm.dev/revision"] == "2" for p in pods)

        wait_for(rolled_out, 240, interval=1.0, what="revision 2 on every pod, the old pods gone")
        before = load.completed
        wait_for(lambda: load.completed >= before + 20, 60, what="requests answered by revision 2")
    assert sum(load.failed.values()) == 0, load.failures[:5]
    assert load.completed > 40


def test_switching_architecture_keeps_the_old_one_serving_until_the_new_is_ready(
    cluster: LocalCluster, kube: Kube, engines: Engines, services: Services, operator: OperatorProcess
) -> None:
    serving_engine(engines, "ada", target={"computeCapability": "8.9"}, parallelism={"tensor": 1})
    serving_engine(engines, "blackwell", target={"computeCapability": "10.0"}, parallelism={"tensor": 1})
    services.create(_service("chat", "ada", replicas=2))
    services.wait("chat", "Ready", "True", timeout=90)
    engines.sim(TRTLLM_SIM_BENCH=_bench(6049), TRTLLM_SIM_SERVE=json.dumps({"loadSeconds": 2}))
    services.patch("chat", {"engineRef": {"name": "blackwell"}})
    saw_both = False

    def switched() -> bool:
        nonlocal saw_both
        status = services.get("chat")["status"]
        rows = {a["deployment"]: a for a in status.get("architectures") or []}
        if "chat-sm89" in rows and "chat-sm100" in rows:
            assert rows["chat-sm89"]["retiring"] is True
            saw_both = True
        names = {d.metadata.name for d in kube.apps.list_namespaced_deployment(engines.namespace).items}
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        return names == {"chat-sm100"} and ready["status"] == "True"

    serve_through(cluster, kube, services, switched, "the switch to sm100")
    assert saw_both
    status = services.get("chat")["status"]
    assert [(a["computeCapability"], a["readyReplicas"]) for a in status["architectures"]] == [("10.0", 2)]
    assert answers(cluster, kube, engines.namespace, "chat", "chat") == 2
