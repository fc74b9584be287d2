"""Multi-node engines: a TP8xPP2 engine on 8-GPU nodes is served by a LeaderWorkerSet of 2 pods.

Real: the operator, the LeaderWorkerSet controller and its webhooks (sigs.k8s.io/lws, the "lws"
cluster add-on), its StatefulSets and headless Service, the scheduler, the EndpointSlice controller,
the ``openai`` client. Simulated: KWOK runs no containers; the sim executor runs the stand-in
trtllm-serve for the leader (it serves for the whole group) and marks each worker Ready while the
leader is, unless the worker is annotated ``sim.trtllm.dev/unready`` (dev/executor.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from kubernetes import client

from tests.conftest import PrivateFleet
from tests.integration.test_serving_endpoints import loopback, ready_endpoints
from tests.integration.test_validation_and_serving import Services, _service
from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from trtllm_operator.api import constants as c
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.dev.executor import UNREADY_ANNOTATION
from trtllm_operator.gpu.labels import GFD
from trtllm_operator.k8s import SPEC_HASH_ANNOTATION

pytestmark = pytest.mark.cluster
LWS = "chat-sm90"  # render.serving.deployment_name: the LeaderWorkerSet takes the Deployment's name


@pytest.fixture
def lws_addon(cluster: LocalCluster) -> LocalCluster:
    cluster.ensure_addons("lws")
    return cluster


@pytest.fixture
def services(kube: Kube, namespace: str) -> Services:
    return Services(kube, namespace)


@pytest.fixture
def without_lws(kube: Kube, cluster: LocalCluster) -> Iterator[None]:
    """The LeaderWorkerSet CRD removed for this test (before the operator starts); put back after."""
    cluster.ensure_addons("lws")
    crd = f"{c.LWS_PLURAL}.{c.LWS_GROUP}"
    kube.ext.delete_custom_resource_definition(crd)

    def gone() -> bool:
        try:
            kube.ext.read_custom_resource_definition(crd)
        except client.ApiException as error:
            return error.status == 404
        return False

    wait_for(gone, 60, what="the LeaderWorkerSet CRD to go")
    yield
    cluster.ensure_addons("lws")


def get_lws(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        c.LWS_GROUP, c.LWS_VERSION, namespace, c.LWS_PLURAL, name
    )
    return obj


def group_pods(kube: Kube, namespace: str) -> list[Any]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"{c.LWS_LABEL_NAME}={LWS}").items
    return sorted(pods, key=lambda p: p.metadata.name)


def affinity_terms(template: dict[str, Any]) -> list[dict[str, Any]]:
    required = template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    return [e for term in required["nodeSelectorTerms"] for e in term["matchExpressions"]]


@pytest.mark.operator_env(private_fleet=True)
def test_tp8_pp2_engine_is_served_by_a_leader_worker_set_of_two_pods(
    lws_addon: LocalCluster,
    kube: Kube,
    engines: Engines,
    services: Services,
    private_fleet: PrivateFleet,
    operator: OperatorProcess,
) -> None:
    nodes = private_fleet.add("h100", 2)  # 8 GPUs each: TP8xPP2 = 16 GPUs needs two of them
    engines.create(engine_manifest("big", parallelism={"tensor": 8, "pipeline": 2}))
    engines.wait_condition("big", "Ready", "True", timeout=180)
    gpu = engines.get("big")["status"]["gpu"]
    assert gpu["computeCapability"] == "9.0"
    assert gpu["gpus"] == 8, gpu  # built on one node: trtllm-build compiles all 16 ranks there
    assert "multi-node" in gpu["reason"]

    services.create(_service("chat", "big", replicas=1, allowUnvalidatedEngines=True))
    services.wait("chat", "Ready", "True", timeout=180)

    lws = get_lws(kube, engines.namespace, LWS)
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    for role in ("leaderTemplate", "workerTemplate"):
        pod_template = template[role]
        assert {(e["key"], tuple(e["values"])) for e in affinity_terms(pod_template)} >= {
            (GFD.COMPUTE_MAJOR, ("9",)),
            (GFD.COMPUTE_MINOR, ("0",)),
        }
        assert pod_template["spec"]["containers"][0]["resources"]["limits"][GFD.RESOURCE] == "8"
    leader_container = template["leaderTemplate"]["spec"]["containers"][0]
    assert leader_container["command"][:4] == ["mpirun", "--allow-run-as-root", "-np", "16"]
    assert leader_container["command"][-1] == "trtllm-llmapi-launch"
    assert leader_container["args"][0] == "trtllm-serve"

    pods = group_pods(kube, engines.namespace)
    assert [p.metadata.name for p in pods] == [f"{LWS}-0", f"{LWS}-0-1"]
    landed = {p.spec.node_name for p in pods}
    assert len(landed) == 2, "each pod takes a whole 8-GPU node"
    for name in landed:
        labels = kube.core.read_node(name).metadata.labels
        assert (labels[GFD.COMPUTE_MAJOR], labels[GFD.COMPUTE_MINOR]) == ("9", "0"), name
    leader, worker = pods
    env = {e.name: e.value for e in leader.spec.containers[0].env if e.value}
    assert env["LWS_GROUP_SIZE"] == "2"  # set by the real LWS pod webhook
    assert env["LWS_LEADER_ADDRESS"] == f"{LWS}-0.{LWS}.{engines.namespace}"
    assert leader.metadata.labels[c.LABEL_COMPONENT] == c.COMPONENT_SERVER
    assert worker.metadata.labels[c.LABEL_COMPONENT] == c.COMPONENT_SERVER_WORKER

    status = services.get("chat")["status"]
    [arch] = status["architectures"]
    assert (arch["deployment"], arch["groupSize"], arch["readyReplicas"]) == (LWS, 2, 1)
    # The Service reaches the leader only, and the leader answers for the group.
    targets = wait_for(lambda: ready_endpoints(kube, engines.namespace, "chat"), 30, what="a ready endpoint")
    assert targets == [f"{leader.status.pod_ip}:8000"]
    address = wait_for(lambda: loopback(lws_addon, targets[0]), 10, what="the leader's loopback")
    model = status["modelName"]
    completion = openai.OpenAI(base_url=f"http://{address}/v1", api_key="unused", max_retries=0)
    answer = completion.completions.create(model=model, prompt="Hello", max_tokens=4)
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 4

    # One unready worker makes the group, and so the service, not Ready. LWS v0.8.0 itself keeps
    # counting the group ready (it does not look at worker readiness): the operator reads the workers.
    kube.core.patch_namespaced_pod(
        worker.metadata.name, engines.namespace, {"metadata": {"annotations": {UNREADY_ANNOTATION: "true"}}}
    )
    services.wait("chat", "Ready", "False", timeout=60)
    ready_condition = next(
        x
        for x in kube.core.read_namespaced_pod(worker.metadata.name, engines.namespace).status.conditions
        if x.type == "Ready"
    )
    assert ready_condition.status == "False"
    assert services.get("chat")["status"]["architectures"][0]["readyReplicas"] == 0
    kube.core.patch_namespaced_pod(
        worker.metadata.name, engines.namespace, {"metadata": {"annotations": {UNREADY_ANNOTATION: None}}}
    )
    services.wait("chat", "Ready", "True", timeout=60)
    assert nodes


def test_an_api_that_is_not_served_leaves_an_empty_synced_cache_marked_absent(kube: Kube) -> None:
    """What the operator's LeaderWorkerSet cache does where the LWS CRD is not installed: the real
    API server answers the LIST with 404, the informer is synced and empty, and says it is absent."""
    import threading

    from trtllm_operator import k8s
    from trtllm_operator.informer import Informer

    missing = k8s.Resource("not-installed.trtllm.dev", "v1", "things")
    informer = Informer(
        "things",
        [(k8s.Kube(kube.api).list_watch(missing, "default"), "default")],
        describe=k8s.describe_error,
        absent_if=k8s.is_not_found,
        retry_cap=0.5,
    )
    stop = threading.Event()
    informer.run(stop)
    try:
        assert informer.synced.wait(30)
        assert informer.absent.is_set()
        assert len(informer) == 0
    finally:
        stop.set()


@pytest.mark.operator_env(private_fleet=True)
def test_without_leader_worker_set_installed_the_service_stalls_and_the_operator_keeps_running(
    without_lws: None,
    kube: Kube,
    engines: Engines,
    services: Services,
    private_fleet: PrivateFleet,
    operator: OperatorProcess,
) -> None:
    private_fleet.add("h100", 2)
    engines.create(engine_manifest("big", parallelism={"tensor": 8, "pipeline": 2}))
    engines.wait_condition("big", "Ready", "True", timeout=180)
    services.create(_service("chat", "big", replicas=1, allowUnvalidatedEngines=True))
    stalled = services.wait("chat", "Stalled", "True", reason="LeaderWorkerSetNotInstalled", timeout=90)
    assert f"multi-node serving needs LeaderWorkerSet {c.LWS_TESTED_RELEASE}" in stalled["message"]
    assert (services.condition("chat", "Ready") or {}).get("status") == "False"
    assert operator.get("/readyz")[0] == 200  # caches synced, nothing crashed


@pytest.mark.operator_env(private_fleet=True)
def test_load_on_the_leaders_scales_groups_up_and_back_down(
    metrics_cluster: LocalCluster,
    kube: Kube,
    engines: Engines,
    services: Services,
    private_fleet: PrivateFleet,
    operator: OperatorProcess,
) -> None:
    """The real HPA scales the LeaderWorkerSet through its scale subresource, on requests in flight
    that Prometheus scrapes from the leaders only (LWS's status.hpaPodSelector: worker-index 0)."""
    from tests.integration.test_autoscaling import chat_load, hpas

    metrics_cluster.ensure_addons("lws")
    private_fleet.add("h100", 4)  # two groups of two 8-GPU nodes
    engines.create(
        engine_manifest("big", parallelism={"tensor": 8, "pipeline": 2}, build={"maxBatchSize": 4})
    )
    engines.wait_condition("big", "Ready", "True", timeout=180)
    body = _service(
        "chat",
        "big",
        allowUnvalidatedEngines=True,
        autoscaling={
            "minReplicas": 1,
            "maxReplicas": 2,
            "targetRequestsInFlight": 2,
            "scaleDownStabilizationSeconds": 5,
        },
    )
    del body["spec"]["replicas"]  # the HPA owns them
    services.create(body)
    services.wait("chat", "Ready", "True", timeout=180)
    lws = get_lws(kube, engines.namespace, LWS)
    assert lws["spec"]["replicas"] == 1  # defaulted by LWS's webhook: not in the operator's apply
    assert lws["status"]["hpaPodSelector"].endswith(f"{c.LWS_LABEL_WORKER_INDEX}=0")  # leaders only
    hpa = hpas(kube).read_namespaced_horizontal_pod_autoscaler(LWS, engines.namespace)
    target = hpa.spec.scale_target_ref
    assert (target.api_version, target.kind, target.name) == (c.LWS_API_VERSION, c.LWS_KIND, LWS)
    assert hpa.spec.metrics[0].pods.metric.name == "trtllm_requests_in_flight"
    wait_for(
        lambda: (row := services.get("chat")["status"]["autoscaling"][0]).get("current") == "0" and row,
        180,
        what="the HPA reading trtllm_requests_in_flight = 0 from the leader",
    )
    wait_for(lambda: not services.condition("chat", "AutoscalingDegraded"), 90, what="no AutoscalingDegraded")

    def groups() -> int:
        return int(get_lws(kube, engines.namespace, LWS)["spec"]["replicas"])

    with chat_load(metrics_cluster, kube, engines.namespace) as load:
        wait_for(lambda: groups() == 2, 300, what="2 groups under load")
        services.wait("chat", "Ready", "True", timeout=180)
        wait_for(lambda: len(ready_endpoints(kube, engines.namespace, "chat")) == 2, 90, what="2 leaders")
        assert len(group_pods(kube, engines.namespace)) == 4  # each group: leader + worker
        row = services.get("chat")["status"]["autoscaling"][0]
        assert row["desiredReplicas"] == 2
        wait_for(lambda: load.completed > 0, 180, what="requests answered by the leaders")
        # The operator applies again (its rendered-hash annotation drifted away): its server-side
        # apply does not own the group count, so the HPA's 2 stays.
        kube.custom.patch_namespaced_custom_object(
            c.LWS_GROUP,
            c.LWS_VERSION,
            engines.namespace,
            c.LWS_PLURAL,
            LWS,
            {"metadata": {"annotations": {SPEC_HASH_ANNOTATION: None}}},
        )
        lws = wait_for(
            lambda: (
                (found := get_lws(kube, engines.namespace, LWS))["metadata"]
                .get("annotations", {})
                .get(SPEC_HASH_ANNOTATION)
                and found
            ),
            60,
            what="the operator applying the LeaderWorkerSet again",
        )
        owners = {
            entry["manager"]
            for entry in lws["metadata"]["managedFields"]
            if "f:replicas" in (entry.get("fieldsV1") or {}).get("f:spec", {})
        }
        assert c.MANAGED_BY not in owners, owners
        assert lws["spec"]["replicas"] == 2
    wait_for(lambda: groups() == 1, 300, what="back to 1 group without load")
    reasons = {e.reason for e in kube.core.list_namespaced_event(engines.namespace).items}
    assert "SuccessfulRescale" in reasons
