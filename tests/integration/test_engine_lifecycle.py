"""TRTEngine end to end on the real control plane.

operator → Job → scheduler → builder (stand-ins) → status.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import PrivateFleet
from tests.support import Engines, Kube, OperatorProcess, claim_host_path, engine_manifest, wait_for

pytestmark = pytest.mark.cluster

H100_LABELS = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.compute.major": "9"}


def _build_node(kube: Kube, engines: Engines, name: str) -> dict[str, str]:
    pods = wait_for(
        lambda: [p for p in engines.pods(name) if p.spec.node_name], 60, what=f"{name} pod scheduled"
    )
    labels: dict[str, str] = kube.core.read_node(pods[0].spec.node_name).metadata.labels
    return labels


def test_fp8_builds_on_h100_end_to_end(kube: Kube, engines: Engines, operator: OperatorProcess) -> None:
    engines.create(engine_manifest("llama-fp8", target={"computeCapability": "9.0"}))
    labels = _build_node(kube, engines, "llama-fp8")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    ready = engines.wait_condition("llama-fp8", "Ready", "True", timeout=90)
    assert ready["reason"] == "EnginePromoted"
    status = engines.get("llama-fp8")["status"]
    engine = status["engine"]
    assert status["phase"] == "Ready"
    assert status["revision"] == 1
    assert engine["uri"].startswith("pvc://llama-fp8-engines/engines/llama-fp8/")
    assert engine["computeCapability"] == "9.0"
    assert "H100" in engine["gpuProduct"]
    assert engine["trtllmVersion"] == "1.2.0"
    assert len(engine["sha256"]) == 64
    assert engine["sizeBytes"] > 0
    assert status["gpu"]["computeCapability"] == "9.0"
    assert status["gpu"]["gpus"] == 2
    # The manifest on the volume is what status points at.
    root = claim_host_path(kube, engines.namespace, "llama-fp8-engines")
    manifest = json.loads((root / engine["manifest"]).read_text())
    assert manifest["precision"] == "fp8"
    assert manifest["kv_cache_dtype"] == "fp8"
    assert manifest["build_flags"]["gemm_swiglu_plugin"] == "fp8"
    assert manifest["build_flags"]["reduce_fusion"] == "enable"
    job = engines.jobs("llama-fp8")[0]
    spec = job.spec.template.spec
    assert spec.automount_service_account_token is False
    assert spec.containers[0].resources.limits["nvidia.com/gpu"] == "2"
    assert job.spec.pod_failure_policy.rules[0].action == "FailJob"


def test_int8_sq_builds_on_a100_with_preset_flags(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.create(
        engine_manifest(
            "llama-int8", precision="int8_sq", kvCacheDtype="int8", target={"computeCapability": "8.0"}
        )
    )
    labels = _build_node(kube, engines, "llama-int8")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    config_maps = kube.core.list_namespaced_config_map(
        engines.namespace, label_selector="trtllm.dev/engine=llama-int8"
    ).items
    steps = config_maps[0].data["steps.sh"]
    assert "--qformat int8_sq" in steps
    assert "--kv_cache_dtype int8" in steps
    assert "gemm_swiglu_plugin" not in steps  # FP8-on-Hopper only
    engines.wait_condition("llama-int8", "Ready", "True", timeout=90)


# No resync in the test's time: only the Node's watch event may wake the stalled engine.
@pytest.mark.operator_env(private_fleet=True, TRTLLM_RESYNC_SECONDS="3600")
def test_no_compatible_nodes_then_node_appears(
    kube: Kube, engines: Engines, operator: OperatorProcess, private_fleet: PrivateFleet
) -> None:
    private_fleet.add("a100", 2)
    engines.create(engine_manifest("needs-fp8"))
    stalled = engines.wait_condition("needs-fp8", "GPUCompatible", "False", "NoCompatibleNodes")
    assert "8.9" in stalled["message"]
    assert "NVIDIA-A100-SXM4-80GB" in stalled["message"]
    assert engines.condition("needs-fp8", "Stalled")["status"] == "True"
    assert engines.jobs("needs-fp8") == []
    private_fleet.add("h100", 1)  # no change to the TRTEngine: the node watch wakes it
    engines.wait_condition("needs-fp8", "GPUCompatible", "True")
    assert _build_node(kube, engines, "needs-fp8")["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    engines.wait_condition("needs-fp8", "Ready", "True", timeout=90)


@pytest.mark.operator_env(private_fleet=True)
def test_stale_gfd_labels_fail_fast_with_preflight_message(
    kube: Kube, engines: Engines, operator: OperatorProcess, private_fleet: PrivateFleet
) -> None:
    a100 = [{"name": "NVIDIA A100-SXM4-80GB", "major": 8, "minor": 0, "memory_total_mib": 81920}] * 8
    private_fleet.add("h100", 1, actual_gpus=a100)  # labels say 9.0, the GPUs are 8.0
    engines.create(engine_manifest("stale", backoffLimit=3))
    stalled = engines.wait_condition("stale", "Stalled", "True", "IncompatibleGPU", timeout=90)
    assert "fp8 needs compute capability ≥ 8.9" in stalled["message"]
    assert "A100" in stalled["message"]
    assert len(engines.pods("stale")) == 1, "the incompatible-GPU exit code must not be retried"
    built = engines.condition("stale", "Built")
    assert built["status"] == "False"
    assert built["reason"] == "IncompatibleGPU"


def test_failed_build_is_stalled_with_builder_message(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_FAIL="trtllm-build")
    engines.create(engine_manifest("broken", backoffLimit=1))
    stalled = engines.wait_condition("broken", "Stalled", "True", timeout=90)
    assert stalled["reason"] == "StepFailed"
    assert "simulated failure in trtllm-build" in stalled["message"]
    assert len(engines.pods("broken")) == 2  # one retry (backoffLimit 1), then Failed
    assert engines.condition("broken", "Ready")["status"] == "False"
    assert engines.condition("broken", "Reconciling")["status"] == "False"


@pytest.mark.operator_env(TRTLLM_RESYNC_SECONDS="5")
def test_operator_killed_mid_build_creates_no_second_job(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_STEP_SECONDS="0.5")
    engines.create(engine_manifest("survivor"))
    wait_for(
        lambda: [p for p in engines.pods("survivor") if p.status.phase == "Running"], 60, what="build running"
    )
    operator.kill()
    operator.start()
    engines.wait_condition("survivor", "Ready", "True", timeout=120)
    assert len(engines.jobs("survivor")) == 1
    assert len(engines.pods("survivor")) == 1


def test_spec_change_builds_new_revision_and_keeps_old_engine(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.create(engine_manifest("rev"))
    engines.wait_condition("rev", "Ready", "True", timeout=90)
    first = engines.get("rev")["status"]["engine"]
    engines.sim(TRTLLM_SIM_STEP_SECONDS="0.5")
    engines.patch_spec("rev", {"calibration": {"size": 128}})
    wait_for(lambda: engines.get("rev")["status"].get("revision") == 2, 30, what="revision 2")
    during = engines.get("rev")["status"]
    assert during["engine"]["uri"] == first["uri"]
    assert during["engine"]["revision"] == 1
    assert during["build"]["revision"] == 2
    engines.wait_condition("rev", "Ready", "True", timeout=120)
    wait_for(lambda: engines.get("rev")["status"]["engine"]["revision"] == 2, 60, what="revision 2 promoted")
    second = engines.get("rev")["status"]["engine"]
    assert second["uri"] != first["uri"]
    wait_for(lambda: len(engines.jobs("rev")) == 1, 30, what="old revision's Job removed")


def test_job_deleted_by_hand_is_recreated(kube: Kube, engines: Engines, operator: OperatorProcess) -> None:
    engines.sim(TRTLLM_SIM_STEP_SECONDS="1")
    engines.create(engine_manifest("orphan"))
    job = wait_for(lambda: engines.jobs("orphan"), 60, what="Job created")[0]
    kube.batch.delete_namespaced_job(job.metadata.name, engines.namespace, propagation_policy="Foreground")
    wait_for(
        lambda: any(e.reason == "JobMissing" for e in kube.events_for(engines.namespace, "orphan")),
        60,
        what="JobMissing event",
    )
    engines.wait_condition("orphan", "Ready", "True", timeout=120)


def test_unschedulable_build_pod_says_why(kube: Kube, engines: Engines, operator: OperatorProcess) -> None:
    engines.create(engine_manifest("nowhere", nodeSelector={"example.com/rack": "missing"}))
    scheduled = engines.wait_condition(
        "nowhere", "Scheduled", "False", "Unschedulable", contains="node affinity/selector"
    )
    assert "0/" in scheduled["message"]  # the scheduler's own summary, copied verbatim
    assert engines.condition("nowhere", "Reconciling")["status"] == "True"


@pytest.mark.operator_env(TRTLLM_MAX_CONCURRENT_BUILDS="1")
def test_global_build_limit_queues(kube: Kube, engines: Engines, operator: OperatorProcess) -> None:
    engines.sim(TRTLLM_SIM_STEP_SECONDS="1")
    engines.create(engine_manifest("first"))
    wait_for(lambda: engines.jobs("first"), 60, what="first Job")
    engines.create(engine_manifest("second"))
    queued = engines.wait_condition("second", "Scheduled", "False", "Queued")
    assert "limit is 1" in queued["message"]
    assert engines.get("second")["status"]["phase"] == "Queued"
    engines.wait_condition("first", "Ready", "True", timeout=120)
    engines.wait_condition("second", "Ready", "True", timeout=120)


def _shared_claim(kube: Kube, namespace: str) -> Path:
    kube.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": "engines"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
        },
    )
    return claim_host_path(kube, namespace, "engines")


def _gone(engines: Engines, name: str) -> bool:
    try:
        engines.get(name)
    except Exception:
        return True
    return False


def test_delete_policy_removes_files_through_finalizer(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    root = _shared_claim(kube, engines.namespace)
    for name, policy in (("ephemeral", "Delete"), ("kept", "Retain")):
        manifest = engine_manifest(name, deletionPolicy=policy)
        manifest["spec"]["storage"] = {"existingClaim": "engines"}
        engines.create(manifest)
    engines.wait_condition("ephemeral", "Ready", "True", timeout=90)
    engines.wait_condition("kept", "Ready", "True", timeout=90)
    assert "trtllm.dev/engine-files" in engines.get("ephemeral")["metadata"]["finalizers"]
    assert "trtllm.dev/engine-files" not in (engines.get("kept")["metadata"].get("finalizers") or [])
    assert (root / "engines" / "ephemeral").is_dir()
    assert (root / "engines" / "kept").is_dir()
    for name in ("ephemeral", "kept"):
        kube.custom.delete_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", engines.namespace, "trtengines", name
        )
    wait_for(lambda: _gone(engines, "ephemeral"), 60, what="TRTEngine deleted after cleanup")
    wait_for(lambda: _gone(engines, "kept"), 60, what="Retain engine deleted at once")
    assert not (root / "engines" / "ephemeral").exists(), "deletionPolicy Delete must remove the engine files"
    assert (root / "engines" / "kept").is_dir(), "deletionPolicy Retain must keep the engine files"
