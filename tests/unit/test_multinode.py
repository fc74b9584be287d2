"""Multi-node engines, pure parts: placement (build on one node), the serving shape, the LeaderWorkerSet
rendering, readiness counted over every worker, and the service's decision (incl. no LWS API)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_mpissh import identity_secret
from tests.unit.test_placement import A100, B200, H100, no_fit, node, placed, spec
from tests.unit.test_reconcile_service import ENGINE_SPEC, NOW, cond, engine
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.api.service import InferenceServiceSpec
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.informer import Informer
from trtllm_operator.reconcile.multinode import GroupShape, ShapeProblem, lws_rollout, serving_shape
from trtllm_operator.reconcile.placement import choose_target, group_split
from trtllm_operator.reconcile.service import ServiceObservation, reconcile_service
from trtllm_operator.render.multinode import render_leader_worker_set

TP8_PP2 = {"tensor": 8, "pipeline": 2}
IDENTITY = identity_secret()
H100_PAIR = (node("h100-0", H100), node("h100-1", H100))


def big_spec(**extra: Any) -> TRTEngineSpec:
    return spec(**{"parallelism": TP8_PP2, **extra})


# ------------------------------------------------------------------ placement (the build)
def test_group_split_takes_the_fewest_even_pods() -> None:
    assert group_split(16, 8) == (2, 8)
    assert group_split(12, 8) == (2, 6)
    assert group_split(32, 8) == (4, 8)
    assert group_split(7, 4) == (7, 1)  # a prime world: one GPU per pod is the only even split
    assert group_split(8, 0) is None


def test_tp8_pp2_on_two_8_gpu_nodes_builds_on_one_node_with_its_8_gpus() -> None:
    placement = placed(choose_target(big_spec(), H100_PAIR))
    assert (placement.cc, placement.gpus, placement.group_size) == (ComputeCapability(9, 0), 8, 2)
    assert "multi-node" in placement.reason
    assert "trtllm-build compiles every rank" in placement.reason


def test_multi_node_needs_enough_nodes_of_one_architecture() -> None:
    """One B200 (10.0) can't hold a 16-GPU group; two H100s can: the newest architecture that fits."""
    assert placed(choose_target(big_spec(), (node("b200-0", B200), *H100_PAIR))).cc == ComputeCapability(9, 0)
    lone = no_fit(choose_target(big_spec(), (node("b200-0", B200), node("h100-0", H100))))
    assert lone.reason == r.NO_COMPATIBLE_NODES


def test_multi_node_engine_with_gates_says_multi_node_building_is_not_supported() -> None:
    gated = big_spec(validation={"benchmark": {"minOutputTokensPerSecond": 100}})
    refused = no_fit(choose_target(gated, H100_PAIR))
    assert refused.reason == r.MULTI_NODE_VALIDATION_UNSUPPORTED
    assert "multi-node build Job is not supported yet" in refused.message


def test_an_engine_that_fits_one_node_stays_single_node() -> None:
    assert placed(choose_target(spec(tensor=8), H100_PAIR)).group_size == 1


# ------------------------------------------------------------------ serving shape
def status(cc: str = "9.0") -> EngineStatus:
    return EngineStatus.model_validate(engine(cc=cc)["status"]["engine"])


def test_serving_shape_from_the_gpus_of_the_engines_architecture() -> None:
    nodes = (*H100_PAIR, node("a100-0", A100, count=4))
    assert serving_shape(big_spec(), status(), nodes) == GroupShape(size=2, gpus_per_pod=8, gpus_per_node=8)
    assert serving_shape(spec(tensor=8), status(), nodes) is None  # one node holds it: a Deployment
    assert serving_shape(big_spec(), status("10.0"), nodes) is None  # no node of 10.0 known: as today


def test_serving_shape_without_an_even_split_is_a_problem() -> None:
    odd = spec(parallelism={"tensor": 7, "pipeline": 1})
    shape = serving_shape(odd, status(), (node("h100-0", H100, count=6),))
    assert shape == GroupShape(size=7, gpus_per_pod=1, gpus_per_node=6)
    nine = spec(parallelism={"tensor": 9, "pipeline": 1})
    assert isinstance(serving_shape(nine, status(), (node("n", H100, count=0),)), ShapeProblem | None)


# ------------------------------------------------------------------ rendering
OWNER = {"apiVersion": "trtllm.dev/v1alpha1", "kind": "InferenceService", "name": "chat", "uid": "u"}


def render(**kwargs: Any) -> dict[str, Any]:
    svc = InferenceServiceSpec.model_validate({"engineRef": {"name": "big"}, "replicas": 1})
    engine_spec = TRTEngineSpec.model_validate({**ENGINE_SPEC, "parallelism": TP8_PP2})
    return render_leader_worker_set(
        OWNER, "ns", "chat", svc, "big", engine_spec, status(), size=2, gpus_per_pod=8, **kwargs
    )


def test_the_leader_drains_before_it_stops_and_the_workers_do_not_wait() -> None:
    group = render()["spec"]["leaderWorkerTemplate"]
    leader = group["leaderTemplate"]["spec"]["containers"][0]
    worker = group["workerTemplate"]["spec"]["containers"][0]
    assert leader["lifecycle"]["preStop"]["sleep"]["seconds"] > 0  # clients reach the group through it
    assert "lifecycle" not in worker  # no traffic reaches a worker


def test_leader_worker_set_of_two_pods_each_with_a_whole_node_pinned_to_the_architecture() -> None:
    lws = render()
    assert (lws["apiVersion"], lws["kind"], lws["metadata"]["name"]) == (
        c.LWS_API_VERSION,
        c.LWS_KIND,
        "chat-sm90",
    )
    group = lws["spec"]["leaderWorkerTemplate"]
    assert group["size"] == 2
    assert group["restartPolicy"] == "RecreateGroupOnPodRestart"
    for role in ("leaderTemplate", "workerTemplate"):
        pod = group[role]["spec"]
        terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expressions = {e["key"]: e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
        assert expressions == {"nvidia.com/gpu.compute.major": ["9"], "nvidia.com/gpu.compute.minor": ["0"]}
        resources = pod["containers"][0]["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "8"
    # The maxUnavailable 0 of the spec can't reach a StatefulSet ("cannot be 0"): 1, with maxSurge.
    assert lws["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["maxUnavailable"] == 1


def test_leader_runs_trtllm_serve_on_every_rank_of_the_group_and_only_it_is_behind_the_service() -> None:
    group = render()["spec"]["leaderWorkerTemplate"]
    leader, worker = group["leaderTemplate"], group["workerTemplate"]
    server = leader["spec"]["containers"][0]
    assert server["command"] == [
        "mpirun",
        "--allow-run-as-root",
        "-np",
        "16",
        "--host",
        "$(LWS_LEADER_ADDRESS):8,chat-sm90-$(LWS_GROUP_INDEX)-1.chat-sm90.ns:8",
        "--mca",
        "plm_rsh_args",
        "-F /etc/trtllm/mpi-ssh/ssh_config",
        "--bind-to",
        "none",
        "trtllm-llmapi-launch",
    ]
    assert server["args"][:2] == ["trtllm-serve", "/served/chat"]
    assert server["args"][server["args"].index("--tp_size") + 1] == "8"
    assert server["args"][server["args"].index("--pp_size") + 1] == "2"
    group_index = next(e for e in server["env"] if e["name"] == "LWS_GROUP_INDEX")
    assert (
        group_index["valueFrom"]["fieldRef"]["fieldPath"] == f"metadata.labels['{c.LWS_LABEL_GROUP_INDEX}']"
    )
    assert leader["metadata"]["labels"][c.LABEL_COMPONENT] == c.COMPONENT_SERVER
    assert worker["metadata"]["labels"][c.LABEL_COMPONENT] == c.COMPONENT_SERVER_WORKER
    assert worker["spec"]["containers"][0]["command"][0] == "/usr/sbin/sshd"


# ------------------------------------------------------------------ readiness
def lws_object(ready: int = 1, size: int = 2) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat-sm90"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": size}},
        "status": {
            "replicas": 1,
            "readyReplicas": ready,
            "updatedReplicas": 1,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def worker_pod(ready: bool, group: str = "0") -> dict[str, Any]:
    return {
        "metadata": {"name": f"chat-sm90-{group}-1", "labels": {c.LWS_LABEL_GROUP_INDEX: group}},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]},
    }


def test_a_group_is_ready_only_when_lws_says_so_and_every_worker_is_ready() -> None:
    assert lws_rollout(lws_object(), 1, [worker_pod(True)])[0] is True
    # LWS v0.8.0 still counts the group ready with an unready worker: the operator does not.
    done, _, message, _, ready = lws_rollout(lws_object(), 1, [worker_pod(False)])
    assert (done, ready) == (False, 0)
    assert "0/1 groups ready" in message
    assert lws_rollout(lws_object(), 1, [])[0] is False  # no worker seen yet
    assert lws_rollout(lws_object(ready=0), 1, [worker_pod(True)])[0] is False  # leader not ready
    assert lws_rollout(None, 1)[:3] == (False, False, "LeaderWorkerSet not created yet")


# ------------------------------------------------------------------ the service's decision
def big_engine() -> dict[str, Any]:
    obj = engine(name="big")
    obj["spec"] = {**ENGINE_SPEC, "parallelism": TP8_PP2}
    return obj


def observe(**kwargs: Any) -> ServiceObservation:
    spec_ = {"engineRef": {"name": "big"}, "replicas": 1}
    kwargs.setdefault("mpi_ssh_secret", IDENTITY)
    return ServiceObservation(
        "ns", "chat", "uid", 1, spec_, {}, {"big": big_engine()}, {}, nodes=H100_PAIR, **kwargs
    )


def test_service_renders_a_leader_worker_set_instead_of_a_deployment_and_waits_for_every_worker() -> None:
    starting = reconcile_service(observe(), NOW)
    assert [o["kind"] for o in starting.apply] == ["Service", c.LWS_KIND]
    assert cond(starting, r.READY)[0] == "False"
    running = reconcile_service(
        observe(
            leader_worker_sets={"chat-sm90": lws_object()}, group_workers={"chat-sm90": [worker_pod(False)]}
        ),
        NOW,
    )
    assert cond(running, r.READY)[0] == "False"
    ready = reconcile_service(
        observe(
            leader_worker_sets={"chat-sm90": lws_object()}, group_workers={"chat-sm90": [worker_pod(True)]}
        ),
        NOW,
    )
    assert cond(ready, r.READY)[0] == "True"
    [arch] = ready.status.architectures
    assert (arch.deployment, arch.groupSize, arch.readyReplicas) == ("chat-sm90", 2, 1)


def test_without_the_leader_worker_set_api_the_service_stalls_saying_what_to_install() -> None:
    decision = reconcile_service(observe(lws_installed=False), NOW)
    assert [o["kind"] for o in decision.apply] == []
    status_, reason, message = cond(decision, r.READY)
    assert (status_, reason) == ("False", r.LEADER_WORKER_SET_MISSING)
    assert f"multi-node serving needs LeaderWorkerSet {c.LWS_TESTED_RELEASE}" in message
    assert cond(decision, r.STALLED)[:2] == ("True", r.LEADER_WORKER_SET_MISSING)


def test_a_deployment_of_the_same_name_is_retired_once_the_leader_worker_set_is_ready() -> None:
    """The engine moved from one node to a group (e.g. the nodes changed): the old Deployment keeps
    serving until the LeaderWorkerSet is ready, then goes."""
    old = {"metadata": {"name": "chat-sm90"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 1}}
    spec_ = {"engineRef": {"name": "big"}, "replicas": 1}

    def decide(workers_ready: bool) -> Any:
        obs = ServiceObservation(
            "ns",
            "chat",
            "uid",
            1,
            spec_,
            {},
            {"big": big_engine()},
            {"chat-sm90": old},
            leader_worker_sets={"chat-sm90": lws_object()},
            group_workers={"chat-sm90": [worker_pod(workers_ready)]},
            nodes=H100_PAIR,
            mpi_ssh_secret=IDENTITY,
        )
        return reconcile_service(obs, NOW)

    waiting = decide(False)
    assert waiting.delete == []
    assert [a.retiring for a in waiting.status.architectures] == [False, True]
    assert decide(True).delete == [("Deployment", "chat-sm90")]


# ------------------------------------------------------------------ the informer of an absent CRD
class Missing:
    def list(self) -> Any:
        raise LookupError("404 the server could not find the requested resource")

    def watch(self, resource_version: str) -> Any:
        raise AssertionError("never watched")


def test_an_informer_of_a_resource_not_served_is_empty_synced_and_absent() -> None:
    import threading

    informer = Informer(
        "lws", [(Missing(), "ns")], absent_if=lambda e: isinstance(e, LookupError), retry_cap=0.05
    )
    stop = threading.Event()
    informer.run(stop)
    assert informer.synced.wait(5)
    assert informer.absent.is_set()
    assert len(informer) == 0
    stop.set()


@pytest.mark.parametrize("error", [RuntimeError("boom")])
def test_other_list_errors_do_not_mark_the_resource_absent(error: Exception) -> None:
    import threading

    class Failing(Missing):
        def list(self) -> Any:
            raise error

    informer = Informer(
        "x", [(Failing(), "ns")], absent_if=lambda e: isinstance(e, LookupError), retry_cap=0.05
    )
    stop = threading.Event()
    informer.run(stop)
    assert not informer.synced.wait(0.5)
    assert not informer.absent.is_set()
    stop.set()


def test_a_resource_installed_later_is_listed_at_the_next_recheck() -> None:
    import threading
    import time

    stop = threading.Event()

    class Later:
        calls = 0

        def list(self) -> Any:
            Later.calls += 1
            if Later.calls == 1:
                raise LookupError("404")
            return [{"metadata": {"name": "chat-sm90", "namespace": "ns", "resourceVersion": "5"}}], "5"

        def watch(self, resource_version: str) -> Any:
            stop.wait(5)
            return iter(())

    informer = Informer(
        "lws", [(Later(), "ns")], absent_if=lambda e: isinstance(e, LookupError), absent_recheck=0.05
    )
    informer.run(stop)
    try:
        assert informer.synced.wait(5)
        deadline = time.monotonic() + 5
        while informer.get("ns", "chat-sm90") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert informer.get("ns", "chat-sm90") is not None
        assert not informer.absent.is_set()
    finally:
        stop.set()


# ------------------------------------------------------------------ autoscaling groups
def test_with_autoscaling_the_leader_worker_set_leaves_replicas_to_the_hpa() -> None:
    assert render()["spec"]["replicas"] == 1
    svc = InferenceServiceSpec.model_validate(
        {"engineRef": {"name": "big"}, "autoscaling": {"maxReplicas": 3}}
    )
    engine_spec = TRTEngineSpec.model_validate({**ENGINE_SPEC, "parallelism": TP8_PP2})
    lws = render_leader_worker_set(
        OWNER, "ns", "chat", svc, "big", engine_spec, status(), size=2, gpus_per_pod=8
    )
    assert "replicas" not in lws["spec"]


def test_an_autoscaled_multi_node_service_gets_an_hpa_on_its_leader_worker_set() -> None:
    """The HPA scales groups through LWS's scale subresource, on the same metric plan as a Deployment:
    requests in flight per leader (= per group) against 80% of the engine's max batch (one group's)."""
    from tests.unit.test_autoscaling import AVAILABLE

    big = big_engine()
    big["spec"] = {**big["spec"], "build": {"maxBatchSize": 8}}
    hpa_status = {"currentReplicas": 1, "desiredReplicas": 2, "currentMetrics": []}
    obs = ServiceObservation(
        "ns",
        "chat",
        "uid",
        1,
        {"engineRef": {"name": "big"}, "autoscaling": {"minReplicas": 1, "maxReplicas": 3}},
        {},
        {"big": big},
        {},
        nodes=H100_PAIR,
        mpi_ssh_secret=IDENTITY,
        apiservices=AVAILABLE,
        hpas={"chat-sm90": {"status": hpa_status}},
        leader_worker_sets={"chat-sm90": lws_object()},
        group_workers={"chat-sm90": [worker_pod(True)]},
    )
    decision = reconcile_service(obs, NOW)
    assert [o["kind"] for o in decision.apply] == ["Service", c.LWS_KIND, "HorizontalPodAutoscaler"]
    lws, hpa = decision.apply[1], decision.apply[2]
    assert "replicas" not in lws["spec"]
    assert hpa["metadata"]["name"] == "chat-sm90"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "name": "chat-sm90",
    }
    [metric] = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "trtllm_requests_in_flight"
    assert metric["pods"]["target"]["averageValue"] == "6400m"  # 80% of one group's batch of 8
    [row] = decision.status.autoscaling
    assert (row.name, row.metric, row.target, row.desiredReplicas) == (
        "chat-sm90",
        "pods/trtllm_requests_in_flight",
        "6400m",
        2,
    )
    assert r.AUTOSCALING_DEGRADED not in {x.type for x in decision.status.conditions}
    assert cond(decision, r.READY)[0] == "True"


def test_an_autoscaled_multi_node_service_without_custom_metrics_falls_back_to_cpu_and_says_so() -> None:
    obs = ServiceObservation(
        "ns",
        "chat",
        "uid",
        1,
        {"engineRef": {"name": "big"}, "autoscaling": {"maxReplicas": 3}},
        {},
        {"big": big_engine()},
        {},
        nodes=H100_PAIR,
        mpi_ssh_secret=IDENTITY,
        apiservices=[],
    )
    decision = reconcile_service(obs, NOW)
    hpa = next(o for o in decision.apply if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == c.LWS_KIND
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    status_, reason, message = cond(decision, r.AUTOSCALING_DEGRADED)
    assert (status_, reason) == ("True", r.CUSTOM_METRICS_UNAVAILABLE)
    assert "not autoscaled" not in message
    assert decision.status.autoscaling[0].fallback
