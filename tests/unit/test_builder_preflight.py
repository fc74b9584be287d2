"""Preflight decisions over probed GPU facts, and the pynvml probe against the stand-in shim."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import EXIT_INCOMPATIBLE_GPU, EXIT_NO_GPU
from trtllm_operator.builder.preflight import GIB, GpuFacts, Inventory, check, probe, weights_per_gpu
from trtllm_operator.gpu.knowledge import ComputeCapability

from .builder_support import load_shim, make_plan

A100 = ("NVIDIA A100-SXM4-80GB", ComputeCapability(8, 0), 80)
L40S = ("NVIDIA L40S", ComputeCapability(8, 9), 45)
H100 = ("NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 80)
B200 = ("NVIDIA B200", ComputeCapability(10, 0), 180)


def inventory(
    kind: tuple[str, ComputeCapability, int], count: int = 1, free_gib: float | None = None
) -> Inventory:
    name, cc, total = kind
    free = int((free_gib if free_gib is not None else total) * GIB)
    gpus = tuple(GpuFacts(i, name, cc, total * GIB, free, f"GPU-{i}") for i in range(count))
    return Inventory(gpus, "550.107.02", 12040)


def plan(**fields: Any) -> Any:
    defaults: dict[str, Any] = {"tensor": 1, "kv_cache_dtype": "auto", "steps": []}
    return make_plan(**(defaults | fields))


def test_fp8_on_ampere_is_refused_with_the_exact_message() -> None:
    verdict = check(plan(precision="fp8", target_cc="8.0"), inventory(A100))

    assert verdict.failure is not None
    assert verdict.failure.reason == reasons.INCOMPATIBLE_GPU
    assert verdict.failure.exit_code == EXIT_INCOMPATIBLE_GPU
    assert verdict.failure.message == (
        "precision fp8 needs compute capability ≥ 8.9; this node has NVIDIA A100-SXM4-80GB (8.0)"
    )


@pytest.mark.parametrize(("gpu", "cc"), [(L40S, "8.9"), (H100, "9.0")])
def test_fp8_on_ada_and_hopper_is_accepted(gpu: tuple[str, ComputeCapability, int], cc: str) -> None:
    verdict = check(plan(precision="fp8", kv_cache_dtype="fp8", target_cc=cc), inventory(gpu))
    assert verdict.failure is None
    assert verdict.warnings == []


def test_nvfp4_needs_blackwell() -> None:
    refused = check(plan(precision="nvfp4", target_cc="9.0"), inventory(H100))
    assert refused.failure is not None
    assert refused.failure.message == (
        "precision nvfp4 needs compute capability ≥ 10.0; this node has NVIDIA H100 80GB HBM3 (9.0)"
    )
    assert check(plan(precision="nvfp4", target_cc="10.0"), inventory(B200)).failure is None


def test_int8_formats_are_refused_by_the_engine_path_on_blackwell() -> None:
    verdict = check(plan(precision="int8_sq", target_cc="10.0"), inventory(B200))
    assert verdict.failure is not None
    assert verdict.failure.message == (
        "the tensorrt backend rejects INT8/INT4 formats such as int8_sq on SM 10.x-11.x; "
        "this node has NVIDIA B200 (10.0)"
    )
    assert (
        check(plan(precision="int8_sq", target_cc="10.0", backend="pytorch"), inventory(B200)).failure is None
    )


def test_too_few_gpus_for_the_parallelism() -> None:
    verdict = check(plan(tensor=4, target_cc="9.0"), inventory(H100, count=2))

    assert verdict.failure is not None
    assert verdict.failure.reason == reasons.INSUFFICIENT_GPUS
    assert verdict.failure.message.startswith("tensor 4 x pipeline 1 needs 4 GPUs but NVML sees 2")


def test_a_multi_node_engine_builds_with_one_nodes_gpus() -> None:
    """TP8xPP2 over two 8-GPU nodes: the build pod has 8 (trtllm-build compiles all 16 ranks there)."""
    multi = plan(tensor=8, pipeline=2, build_gpus=8, target_cc="9.0")
    assert check(multi, inventory(H100, count=8)).failure is None
    short = check(multi, inventory(H100, count=4)).failure
    assert short is not None
    assert short.reason == reasons.INSUFFICIENT_GPUS


def test_gfd_labels_that_lie_about_the_compute_capability_are_fatal() -> None:
    verdict = check(plan(precision="fp8", target_cc="9.0"), inventory(L40S))

    assert verdict.failure is not None
    assert verdict.failure.reason == reasons.INCOMPATIBLE_GPU
    assert verdict.failure.message.startswith(
        "the node's GFD labels claim compute capability 9.0 but NVML reports NVIDIA L40S (8.9)"
    )


def test_weights_must_fit_in_free_memory_with_slack() -> None:
    big = plan(precision="fp8", target_cc="9.0", tensor=1, model_params_billions=80)
    assert weights_per_gpu(big) == pytest.approx(80e9)

    verdict = check(big, inventory(H100))
    assert verdict.failure is not None
    assert (verdict.failure.reason, verdict.failure.exit_code) == (
        reasons.INSUFFICIENT_GPU_MEMORY,
        EXIT_INCOMPATIBLE_GPU,
    )
    assert verdict.failure.message == (
        "80B parameters at fp8 over 1 GPU(s) need 74.5 GiB of weights per GPU (+10%: 82.0 GiB) but GPU 0 "
        "(NVIDIA H100 80GB HBM3) has 80.0 GiB free of 80.0 GiB: use more tensor parallelism, a smaller "
        "precision or a larger GPU"
    )
    smaller = big.model_copy(update={"model_params_billions": 60})
    assert check(smaller, inventory(H100)).failure is None
    busy = check(smaller, inventory(H100, free_gib=40))
    assert busy.failure is not None
    assert "has 40.0 GiB free of 80.0 GiB" in busy.failure.message
    split = plan(precision="fp8", target_cc="9.0", tensor=2, model_params_billions=80)
    assert check(split, inventory(H100, count=2)).failure is None


@pytest.mark.parametrize(
    ("inv", "detail"),
    [(Inventory(error="Driver Not Loaded"), "Driver Not Loaded"), (Inventory(), "0 devices")],
)
def test_no_gpu(inv: Inventory, detail: str) -> None:
    verdict = check(plan(), inv)
    assert verdict.failure is not None
    assert (verdict.failure.reason, verdict.failure.exit_code) == (reasons.NO_GPU_VISIBLE, EXIT_NO_GPU)
    assert verdict.failure.message == (
        f"no NVIDIA GPU visible to the build pod (NVML: {detail}): check the nvidia.com/gpu request and the "
        "device plugin"
    )


def test_a_different_product_of_the_right_architecture_is_only_a_warning() -> None:
    verdict = check(plan(target_cc="9.0", target_product="NVIDIA-H200"), inventory(H100))
    assert verdict.failure is None
    assert verdict.warnings == ["target product NVIDIA-H200 but NVML reports NVIDIA H100 80GB HBM3"]


def test_probe_reads_every_fact_from_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "TRTLLM_SIM_GPUS",
        '[{"name": "NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "memory_total_mib": 81559, '
        '"memory_free_mib": 80000, "uuid": "GPU-abc"}]',
    )
    monkeypatch.setenv("TRTLLM_SIM_DRIVER", "560.35.03")
    found = probe(load_shim())

    assert found.error is None
    assert (found.driver_version, found.cuda_driver_version) == ("560.35.03", 12040)
    [gpu] = found.gpus
    assert gpu == GpuFacts(
        0, "NVIDIA H100 80GB HBM3", ComputeCapability(9, 0), 81559 * 2**20, 80000 * 2**20, "GPU-abc"
    )


def test_probe_turns_nvml_errors_into_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRTLLM_SIM_GPUS", raising=False)
    found = probe(load_shim())
    assert found.gpus == ()
    assert found.error == "Driver Not Loaded"
