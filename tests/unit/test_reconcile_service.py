"""The InferenceService reconcile as a pure function."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.reconcile.service import ServiceObservation, reconcile_service
from trtllm_operator.render.serving import DRAIN_SECONDS, FINISH_SECONDS

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
ENGINE_SPEC = {
    "model": {"source": "pvc://models/llama"},
    "image": "img:1.2.0",
    "precision": "fp8",
    "parallelism": {"tensor": 2},
    "storage": {"existingClaim": "engines"},
}


def engine(
    revision: int = 1, validated: bool = True, cc: str = "9.0", promoted: bool = True, name: str = "llama"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Ready" if promoted else "Building", "conditions": []}
    if promoted:
        status["engine"] = {
            "revision": revision,
            "uri": f"pvc://engines/engines/{name}/h{revision}",
            "sha256": "a" * 64,
            "image": "img:1.2.0",
            "computeCapability": cc,
            "validated": validated,
        }
    return {"spec": ENGINE_SPEC, "status": status}


def observe(
    spec: dict[str, Any],
    engines: dict[str, Any],
    deployments: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> ServiceObservation:
    return ServiceObservation("ns", "chat", "uid-s", 1, spec, status or {}, engines, deployments or {})


def cond(decision: Any, type_: str) -> tuple[str, str, str]:
    found = next(c for c in decision.status.conditions if c.type == type_)
    return found.status, found.reason, found.message


def deployment(name: str, replicas: int, ready: int, generation: int = 1) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": ready,
            "updatedReplicas": replicas,
            "availableReplicas": ready,
        },
    }


def test_serves_promoted_engine_pinned_to_its_architecture() -> None:
    decision = reconcile_service(
        observe({"engineRef": {"name": "llama"}, "replicas": 2}, {"llama": engine()}), NOW
    )
    kinds = [o["kind"] for o in decision.apply]
    assert kinds == ["Service", "Deployment"]
    dep = decision.apply[1]
    assert dep["metadata"]["name"] == "chat-sm90"
    assert dep["spec"]["replicas"] == 2
    terms = dep["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    expressions = {e["key"]: e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
    assert expressions == {"nvidia.com/gpu.compute.major": ["9"], "nvidia.com/gpu.compute.minor": ["0"]}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    # trtllm-serve answers to MODEL's basename: the engine is mounted again at /served/<model name>
    assert container["args"][:2] == ["trtllm-serve", "/served/chat"]
    assert {
        "name": "engine",
        "mountPath": "/served/chat",
        "subPath": "engines/llama/h1",
        "readOnly": True,
    } in (container["volumeMounts"])
    assert decision.status.modelName == "chat"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert container["image"] == "img:1.2.0"
    assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert decision.status.url == "http://chat.ns.svc.cluster.local:8000/v1"
    assert decision.status.engineRevision == 1
    assert cond(decision, r.READY)[0] == "False"
    assert cond(decision, r.RECONCILING)[0] == "True"


def test_ready_only_when_rollout_complete() -> None:
    deps = {"chat-sm90": deployment("chat-sm90", 2, 2)}
    decision = reconcile_service(
        observe({"engineRef": {"name": "llama"}, "replicas": 2}, {"llama": engine()}, deps), NOW
    )
    assert cond(decision, r.READY)[:2] == ("True", r.DEPLOYMENT_AVAILABLE)
    assert decision.status.readyReplicas == 2
    half = {"chat-sm90": deployment("chat-sm90", 2, 1)}
    assert (
        cond(
            reconcile_service(
                observe({"engineRef": {"name": "llama"}, "replicas": 2}, {"llama": engine()}, half), NOW
            ),
            r.READY,
        )[0]
        == "False"
    )


def test_stalled_rollout_is_reported() -> None:
    stuck = deployment("chat-sm90", 2, 0)
    stuck["status"]["conditions"] = [
        {
            "type": "Progressing",
            "status": "False",
            "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet has timed out progressing.",
        }
    ]
    decision = reconcile_service(
        observe({"engineRef": {"name": "llama"}}, {"llama": engine()}, {"chat-sm90": stuck}), NOW
    )
    assert cond(decision, r.STALLED)[:2] == ("True", r.ROLLOUT_STALLED)
    assert "timed out" in cond(decision, r.STALLED)[2]


def test_missing_unready_and_unvalidated_engines() -> None:
    missing = reconcile_service(observe({"engineRef": {"name": "nope"}}, {"nope": None}), NOW)
    assert cond(missing, r.STALLED)[:2] == ("True", r.ENGINE_NOT_FOUND)
    assert missing.apply == []
    building = reconcile_service(
        observe({"engineRef": {"name": "llama"}}, {"llama": engine(promoted=False)}), NOW
    )
    assert cond(building, r.RECONCILING)[:2] == ("True", r.ENGINE_NOT_READY)
    assert building.apply == []
    unvalidated = reconcile_service(
        observe({"engineRef": {"name": "llama"}}, {"llama": engine(validated=False)}), NOW
    )
    assert cond(unvalidated, r.STALLED)[1] == r.ENGINE_NOT_VALIDATED
    assert "allowUnvalidatedEngines" in cond(unvalidated, r.STALLED)[2]
    allowed = reconcile_service(
        observe(
            {"engineRef": {"name": "llama"}, "allowUnvalidatedEngines": True},
            {"llama": engine(validated=False)},
        ),
        NOW,
    )
    assert allowed.apply
    assert cond(allowed, r.UNVALIDATED_ENGINE)[0] == "True"


def test_one_deployment_per_architecture_behind_one_service() -> None:
    spec = {"engineRefs": [{"name": "h100"}, {"name": "a100"}]}
    decision = reconcile_service(
        observe(spec, {"h100": engine(cc="9.0", name="h100"), "a100": engine(cc="8.0", name="a100")}), NOW
    )
    names = [o["metadata"]["name"] for o in decision.apply]
    assert names == ["chat", "chat-sm90", "chat-sm80"]


def test_two_engines_of_one_architecture_never_share_a_deployment() -> None:
    """The second would overwrite the first's Deployment: it is refused, naming both and the fix."""
    spec = {"engineRefs": [{"name": "h100"}, {"name": "h100-b"}]}
    engines = {"h100": engine(cc="9.0", name="h100"), "h100-b": engine(cc="9.0", name="h100-b")}
    decision = reconcile_service(observe(spec, engines, {"chat-sm90": deployment("chat-sm90", 1, 1)}), NOW)
    deployments = [o for o in decision.apply if o["kind"] == "Deployment"]
    assert [d["metadata"]["labels"][c.LABEL_ENGINE] for d in deployments] == ["h100"]
    assert cond(decision, r.DEGRADED)[:2] == ("True", r.PARTIALLY_SERVED)
    message = cond(decision, r.DEGRADED)[2]
    assert "h100-b is built for compute capability 9.0, like h100" in message
    assert "one engine per GPU architecture" in message
    assert cond(decision, r.STALLED)[0] == "True"  # can't resolve by itself
    assert decision.status.engines == "h100 r1, h100-b (not served)"


def test_autoscaling_leaves_replicas_to_the_hpa() -> None:
    spec = {
        "engineRef": {"name": "llama"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 4},
        "resources": {"requests": {"cpu": "4"}},
    }
    decision = reconcile_service(observe(spec, {"llama": engine()}), NOW)
    dep = next(o for o in decision.apply if o["kind"] == "Deployment")
    hpa = next(o for o in decision.apply if o["kind"] == "HorizontalPodAutoscaler")
    assert "replicas" not in dep["spec"]
    assert hpa["spec"]["maxReplicas"] == 4


def test_new_revision_rolls_out_with_an_event() -> None:
    status = {"engineRevision": 1}
    decision = reconcile_service(
        observe({"engineRef": {"name": "llama"}}, {"llama": engine(revision=2)}, status=status), NOW
    )
    assert decision.status.engineRevision == 2
    assert [e.reason for e in decision.events] == ["RollingOut"]
    dep = next(o for o in decision.apply if o["kind"] == "Deployment")
    assert dep["spec"]["template"]["metadata"]["annotations"]["trtllm.dev/engine-uri"].endswith("/h2")


# ------------------------------------------------------------------ GitOps verdicts (#13)
def stalled_engine() -> dict[str, Any]:
    body = engine(promoted=False)
    body["status"]["phase"] = "Stalled"
    body["status"]["conditions"] = [
        {
            "type": t,
            "status": v,
            "reason": "NoCompatibleNodes",
            "message": "no node can run fp8",
            "lastTransitionTime": "2026-11-26T11:00:00Z",
        }
        for t, v in (("Ready", "False"), ("Reconciling", "False"), ("Stalled", "True"))
    ]
    return body


def test_a_stalled_engine_stalls_the_service() -> None:
    """Reconciling=True forever would hang a sync wave / `flux --wait`: Stalled propagates."""
    decision = reconcile_service(observe({"engineRef": {"name": "llama"}}, {"llama": stalled_engine()}), NOW)
    assert cond(decision, r.STALLED)[:2] == ("True", r.ENGINE_STALLED)
    assert cond(decision, r.RECONCILING)[0] == "False"
    assert "NoCompatibleNodes" in cond(decision, r.STALLED)[2]
    assert decision.apply == []


def test_a_partially_served_service_is_degraded_and_keeps_serving_the_rest() -> None:
    spec = {"engineRefs": [{"name": "h100"}, {"name": "a100"}]}
    engines = {"h100": engine(cc="9.0", name="h100"), "a100": engine(cc="8.0", name="a100", validated=False)}
    done = {"chat-sm90": deployment("chat-sm90", 1, 1)}
    decision = reconcile_service(observe(spec, engines, done), NOW)
    assert [o["metadata"]["name"] for o in decision.apply] == ["chat", "chat-sm90"]
    assert cond(decision, r.DEGRADED)[:2] == ("True", r.PARTIALLY_SERVED)
    assert "a100" in cond(decision, r.DEGRADED)[2]
    assert cond(decision, r.READY)[0] == "False"
    assert cond(decision, r.STALLED)[:2] == ("True", r.PARTIALLY_SERVED)  # refused: can't come by itself
    assert cond(decision, r.RECONCILING)[0] == "False"
    assert decision.status.engines == "h100 r1, a100 (not served)"
    # The missing engine can still come (it is building): Reconciling, not Stalled, still Degraded.
    engines["a100"] = engine(cc="8.0", name="a100", promoted=False)
    building = reconcile_service(observe(spec, engines, done), NOW)
    assert cond(building, r.DEGRADED)[0] == "True"
    assert cond(building, r.RECONCILING)[0] == "True"
    assert cond(building, r.STALLED)[0] == "False"
    # All served: the Degraded condition goes.
    engines["a100"] = engine(cc="8.0", name="a100")
    both = {**done, "chat-sm80": deployment("chat-sm80", 1, 1)}
    healthy = reconcile_service(observe(spec, engines, both, building.status.model_dump()), NOW)
    assert r.DEGRADED not in [c.type for c in healthy.status.conditions]
    assert cond(healthy, r.READY)[0] == "True"


@pytest.mark.parametrize(
    "uri",
    [
        "pvc://models/../../../etc",
        "pvc://engines/engines/llama/../../etc",
        "pvc://other/engines/llama/h1",
        "pvc://engines/engines/llamb/h1",
        "pvc://engines/engines/llama",
    ],
)
def test_a_patched_engine_uri_outside_the_engine_directory_is_never_mounted(uri: str) -> None:
    body = engine()
    body["status"]["engine"]["uri"] = uri
    decision = reconcile_service(observe({"engineRef": {"name": "llama"}}, {"llama": body}), NOW)
    assert decision.apply == []
    assert cond(decision, r.STALLED)[:2] == ("True", r.INVALID_ENGINE_STATUS)
    assert "status.engine.uri" in cond(decision, r.STALLED)[2]


def test_served_model_name_is_the_served_directory_and_in_status() -> None:
    spec = {"engineRef": {"name": "llama"}, "servedModelName": "llama-3.1-8b"}
    decision = reconcile_service(observe(spec, {"llama": engine()}), NOW)
    container = decision.apply[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][1] == "/served/llama-3.1-8b"
    assert decision.status.modelName == "llama-3.1-8b"


def test_serving_image_of_another_version_is_refused() -> None:
    spec = {"engineRef": {"name": "llama"}, "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.1"}
    decision = reconcile_service(observe(spec, {"llama": engine()}), NOW)
    assert [o["kind"] for o in decision.apply] == []  # nothing rolls out
    ready = cond(decision, r.READY)
    assert ready[:2] == ("False", r.RUNTIME_VERSION_MISMATCH)
    assert "1.2.0" in ready[2]
    assert "1.2.1" in ready[2]
    assert cond(decision, r.STALLED)[0] == "True"


def test_version_recorded_in_the_manifest_wins_over_the_build_image_tag() -> None:
    obj = engine()
    obj["status"]["engine"]["trtllmVersion"] = "1.2.1"
    spec = {"engineRef": {"name": "llama"}, "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.1"}
    decision = reconcile_service(observe(spec, {"llama": obj}), NOW)
    assert [o["kind"] for o in decision.apply] == ["Service", "Deployment"]


def test_serving_image_without_a_version_tag_warns() -> None:
    spec = {"engineRef": {"name": "llama"}, "image": "registry.local/trtllm:latest"}
    decision = reconcile_service(observe(spec, {"llama": engine()}), NOW)
    assert [o["kind"] for o in decision.apply] == ["Service", "Deployment"]
    warning = cond(decision, r.RUNTIME_VERSION_UNKNOWN)
    assert warning[0] == "True"
    assert "registry.local/trtllm:latest" in warning[2]


def test_switching_architecture_keeps_the_old_deployment_until_the_new_one_is_ready() -> None:
    spec = {"engineRef": {"name": "llama"}, "replicas": 2}
    old = deployment("chat-sm90", 2, 2)
    # The engine now is a Blackwell build: its Deployment is created, the Hopper one keeps serving.
    starting = reconcile_service(observe(spec, {"llama": engine(2, cc="10.0")}, {"chat-sm90": old}), NOW)
    assert [o["metadata"]["name"] for o in starting.apply if o["kind"] == "Deployment"] == ["chat-sm100"]
    assert starting.delete == []
    assert cond(starting, r.READY)[0] == "False"
    assert "keeping chat-sm90 serving" in cond(starting, r.READY)[2]
    rows = {a.deployment: a for a in starting.status.architectures}
    assert rows["chat-sm90"].retiring
    assert (rows["chat-sm90"].computeCapability, rows["chat-sm90"].readyReplicas) == ("9.0", 2)
    assert (rows["chat-sm100"].computeCapability, rows["chat-sm100"].revision) == ("10.0", 2)
    assert starting.status.readyReplicas == 2  # the old pods still serve
    # Half-way: still kept.
    halfway = {"chat-sm90": old, "chat-sm100": deployment("chat-sm100", 2, 1)}
    assert reconcile_service(observe(spec, {"llama": engine(2, cc="10.0")}, halfway), NOW).delete == []
    # The new Deployment is ready: now the old one goes, in the same reconcile that says Ready.
    done = {"chat-sm90": old, "chat-sm100": deployment("chat-sm100", 2, 2)}
    finished = reconcile_service(observe(spec, {"llama": engine(2, cc="10.0")}, done), NOW)
    assert finished.delete == [("Deployment", "chat-sm90")]
    assert cond(finished, r.READY)[0] == "True"
    assert [a.deployment for a in finished.status.architectures] == ["chat-sm100"]


def test_serving_deployment_rolls_out_without_downtime() -> None:
    """Recreate would stop every old pod before a new one is ready: a serving outage."""
    decision = reconcile_service(
        observe({"engineRef": {"name": "llama"}, "replicas": 2}, {"llama": engine()}), NOW
    )
    strategy = decision.apply[1]["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] in (0, "0", "0%")
    assert strategy["rollingUpdate"]["maxSurge"] not in (0, "0", "0%")


def test_a_stopping_server_drains_before_sigterm() -> None:
    """preStop sleep (the kubelet's own action) keeps a deleted pod answering while clients drop its
    endpoint; the grace period leaves its in-flight requests time to finish after SIGTERM."""
    decision = reconcile_service(observe({"engineRef": {"name": "llama"}}, {"llama": engine()}), NOW)
    pod = decision.apply[1]["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["lifecycle"] == {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}}
    assert DRAIN_SECONDS >= 5
    assert pod["terminationGracePeriodSeconds"] == DRAIN_SECONDS + FINISH_SECONDS > DRAIN_SECONDS
