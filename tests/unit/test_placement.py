"""Choosing the GPU target from the cluster's nodes, and explaining when nothing fits."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.api import reasons
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.gpu import ComputeCapability, GpuNodeFacts, facts_from_node
from trtllm_operator.reconcile.placement import NO_GPU_NODES, NoFit, Placement, choose_target, summarize_fleet

A100 = ("NVIDIA-A100-SXM4-80GB", "8", "0", "81920")
H100 = ("NVIDIA-H100-80GB-HBM3", "9", "0", "81559")
L40S = ("NVIDIA-L40S", "8", "9", "46068")
B200 = ("NVIDIA-B200", "10", "0", "183359")
X = "\u00d7"  # the multiplication sign messages use


def node_dict(
    name: str,
    gpu: tuple[str, str, str, str],
    count: int = 8,
    *,
    allocatable: int | None = None,
    ready: bool = True,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A Node as the API returns it, with GFD labels."""
    product, major, minor, memory = gpu
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.compute.major": major,
                "nvidia.com/gpu.compute.minor": minor,
                "nvidia.com/gpu.count": str(count),
                "nvidia.com/gpu.memory": memory,
            },
        },
        "spec": {
            "unschedulable": unschedulable,
            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
        },
        "status": {
            "allocatable": {"nvidia.com/gpu": str(count if allocatable is None else allocatable)},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def node(name: str, gpu: tuple[str, str, str, str], count: int = 8, **kwargs: Any) -> GpuNodeFacts:
    facts = facts_from_node(node_dict(name, gpu, count, **kwargs))
    assert facts is not None
    return facts


def spec(precision: str = "fp8", tensor: int = 1, **extra: Any) -> TRTEngineSpec:
    model = {"source": "hf://meta-llama/Llama-3.3-70B-Instruct", **extra.pop("model", {})}
    return TRTEngineSpec.model_validate(
        {
            "model": model,
            "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
            "precision": precision,
            "parallelism": {"tensor": tensor},
            "storage": {"existingClaim": "engines"},
            **extra,
        }
    )


def no_fit(result: Placement | NoFit) -> NoFit:
    assert isinstance(result, NoFit), result
    return result


def placed(result: Placement | NoFit) -> Placement:
    assert isinstance(result, Placement), result
    return result


A100_FLEET = [node("a100-0", A100), node("a100-1", A100)]


class TestNoCompatibleNodes:
    def test_fp8_on_a100_only_fleet_lists_the_fleet(self) -> None:
        result = no_fit(choose_target(spec("fp8", 4), A100_FLEET))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        assert result.message.startswith(
            "fp8 needs compute capability ≥ 8.9 and 4 GPUs per node; "
            f"this cluster has 2 {X} NVIDIA-A100-SXM4-80GB (8.0, 8 GPUs)."
        )
        assert "int8_sq" in result.message  # what this cluster can run instead
        assert "fp8," not in result.message.split("support:")[1]

    def test_empty_fleet(self) -> None:
        result = no_fit(choose_target(spec("bf16"), []))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        assert f"this cluster has {NO_GPU_NODES}" in result.message
        assert NO_GPU_NODES == "no GPU nodes with GFD labels (nvidia.com/gpu.compute.major/minor)"
        assert "GPU Feature Discovery" in result.message

    def test_kv_cache_dtype_raises_the_requirement(self) -> None:
        result = no_fit(choose_target(spec("fp16", kvCacheDtype="fp8"), A100_FLEET))
        assert result.message.startswith(
            "fp16 with KV cache fp8 needs compute capability ≥ 8.9 and 1 GPU per node"
        )

    def test_tensorrt_int_formats_capped_below_blackwell(self) -> None:
        result = no_fit(choose_target(spec("int8_sq"), [node("b200", B200)]))
        assert (
            "int8_sq needs compute capability ≥ 8.0 and outside 10.0-12.0 exclusive (tensorrt backend)"
            in result.message
        )
        assert placed(choose_target(spec("int8_sq", backend="pytorch"), [node("b200", B200)])).cc == (10, 0)

    def test_target_without_matching_nodes(self) -> None:
        result = no_fit(choose_target(spec("fp8", target={"computeCapability": "9.0"}), [node("l40s", L40S)]))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        assert "on a 9.0 (Hopper) node as spec.target asks" in result.message
        assert f"1 {X} NVIDIA-L40S (8.9, 8 GPUs)" in result.message
        assert "change or remove spec.target" in result.message


class TestExplicitTarget:
    def test_target_that_cannot_run_the_precision(self) -> None:
        result = no_fit(choose_target(spec("fp8", target={"computeCapability": "8.0"}), A100_FLEET))
        assert result.reason == reasons.PRECISION_UNSUPPORTED
        assert "precision fp8 needs compute capability ≥ 8.9" in result.message
        assert "the target is 8.0" in result.message

    def test_pinned_product_that_cannot_run_the_precision(self) -> None:
        target = {"gpuProduct": "NVIDIA-A100-SXM4-80GB"}
        result = no_fit(choose_target(spec("fp8", target=target), A100_FLEET))
        assert result.reason == reasons.PRECISION_UNSUPPORTED
        assert "NVIDIA-A100-SXM4-80GB is 8.0" in result.message

    def test_kv_dtype_on_explicit_target(self) -> None:
        result = no_fit(
            choose_target(spec("bf16", kvCacheDtype="fp8", target={"computeCapability": "8.0"}), A100_FLEET)
        )
        assert result.reason == reasons.PRECISION_UNSUPPORTED
        assert "KV-cache dtype fp8" in result.message

    def test_product_and_cc_that_contradict(self) -> None:
        target = {"computeCapability": "8.0", "gpuProduct": "NVIDIA-H100-80GB-HBM3"}
        result = no_fit(choose_target(spec("bf16", target=target), A100_FLEET))
        assert result.reason == reasons.INVALID_SPEC
        assert "NVIDIA-H100-80GB-HBM3 is compute capability 9.0" in result.message

    def test_explicit_cc_is_honoured_over_a_newer_gpu(self) -> None:
        fleet = [node("h100", H100), *A100_FLEET]
        result = placed(choose_target(spec("bf16", target={"computeCapability": "8.0"}), fleet))
        assert (result.cc, result.product, result.candidate_nodes) == (ComputeCapability(8, 0), None, 2)
        assert result.reason == "spec.target pins 8.0 (8.0, Ampere): 2 nodes fit"


class TestHighestCapability:
    def test_no_target_picks_the_highest_fitting_cc(self) -> None:
        fleet = [*A100_FLEET, node("l40s-0", L40S), node("h100-0", H100), node("h100-1", H100)]
        result = placed(choose_target(spec("fp8", 2), fleet))
        assert result == Placement(
            cc=ComputeCapability(9, 0),
            product=None,
            gpus=2,
            candidate_nodes=2,
            reason="highest compute capability with a fitting node: 9.0 (Hopper), 2 nodes; "
            "also fits: 8.9 (1 node)",
        )

    def test_precision_excludes_newer_gpus_on_the_engine_path(self) -> None:
        fleet = [node("b200", B200), node("h100", H100)]
        assert placed(choose_target(spec("int4_awq"), fleet)).cc == ComputeCapability(9, 0)
        assert placed(choose_target(spec("fp8"), fleet)).cc == ComputeCapability(10, 0)

    def test_gpus_is_tensor_times_pipeline(self) -> None:
        result = placed(choose_target(spec("bf16", 2, parallelism={"tensor": 2, "pipeline": 2}), A100_FLEET))
        assert result.gpus == 4


class TestProductPinning:
    def test_pinned_product_only_counts_that_product(self) -> None:
        fleet = [
            node("h100", H100),
            node("h200", ("NVIDIA-H200", "9", "0", "143771")),
            node("h200-b", ("NVIDIA-H200", "9", "0", "143771")),
        ]
        result = placed(choose_target(spec("fp8", target={"gpuProduct": "NVIDIA-H200"}), fleet))
        assert (result.cc, result.product, result.candidate_nodes) == (
            ComputeCapability(9, 0),
            "NVIDIA-H200",
            2,
        )
        assert result.reason == "spec.target pins NVIDIA-H200 (9.0, Hopper): 2 nodes fit"

    def test_no_product_recorded_when_not_pinned(self) -> None:
        assert placed(choose_target(spec("fp8"), [node("h100", H100)])).product is None

    def test_shared_suffix_matches(self) -> None:
        fleet = [node("h100", ("NVIDIA-H100-80GB-HBM3-SHARED", "9", "0", "81559"))]
        assert (
            placed(
                choose_target(spec("fp8", target={"gpuProduct": "NVIDIA-H100-80GB-HBM3"}), fleet)
            ).candidate_nodes
            == 1
        )


class TestGpuCount:
    def test_too_few_gpus_per_node(self) -> None:
        result = no_fit(choose_target(spec("fp8", 8), [node("l40s", L40S, 4), *A100_FLEET]))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        assert "and 8 GPUs per node" in result.message
        assert (
            f"Nodes that can run fp8 (NVIDIA-L40S) have at most 4 GPUs but tensor {X} pipeline = 8"
            in result.message
        )
        assert "lower spec.parallelism to 4 or fewer GPUs" in result.message

    def test_falls_back_to_an_older_gpu_with_enough_gpus(self) -> None:
        fleet = [node("h100", H100, 2), node("l40s", L40S, 4)]
        assert placed(choose_target(spec("fp8", 4), fleet)).cc == ComputeCapability(8, 9)

    def test_allocatable_caps_the_label_count(self) -> None:
        fleet = [node("h100", H100, 8, allocatable=2)]
        result = no_fit(choose_target(spec("fp8", 4), fleet))
        assert f"1 {X} NVIDIA-H100-80GB-HBM3 (9.0, 2 GPUs)" in result.message


class TestMemory:
    def test_weights_that_do_not_fit(self) -> None:
        result = no_fit(choose_target(spec("fp16", model={"parametersBillions": 70}), A100_FLEET))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        # 70e9 x 2 bytes x 1.2 = 168e9 bytes = 156 GiB; one A100 holds 80 GiB.
        assert (
            "The weights need about 156 GiB (70B parameters at 2 bytes (fp16) plus 20% overhead)"
            in result.message
        )
        assert "1 GPU of NVIDIA-A100-SXM4-80GB hold 80 GiB" in result.message
        assert "raise spec.parallelism.tensor to at least 2" in result.message

    def test_more_gpus_or_smaller_precision_fit(self) -> None:
        assert placed(choose_target(spec("fp16", 2, model={"parametersBillions": 70}), A100_FLEET)).gpus == 2
        # fp8: 70e9 x 1 x 1.2 = 78 GiB <= 80 GiB
        assert (
            placed(choose_target(spec("fp8", 1, model={"parametersBillions": 70}), [node("h100", H100)])).gpus
            == 1
        )

    def test_memory_is_not_checked_without_model_size(self) -> None:
        assert isinstance(choose_target(spec("fp16"), A100_FLEET), Placement)

    def test_memory_rules_out_a_newer_gpu_with_less_memory(self) -> None:
        fleet = [node("l40s", L40S), node("a100", A100)]
        spec_ = spec("bf16", 1, model={"parametersBillions": 30})  # 67 GiB: fits 80 GiB, not 45 GiB
        result = placed(choose_target(spec_, fleet))
        assert (result.cc, result.candidate_nodes) == (ComputeCapability(8, 0), 1)


class TestUnusableNodes:
    def test_cordoned_and_notready_nodes_are_named(self) -> None:
        fleet = [node("h100-a", H100, unschedulable=True), node("h100-b", H100, ready=False), *A100_FLEET]
        result = no_fit(choose_target(spec("fp8"), fleet))
        assert result.reason == reasons.NO_COMPATIBLE_NODES
        assert "h100-a is cordoned (kubectl uncordon h100-a)" in result.message
        assert "h100-b is NotReady" in result.message
        assert "would fit but can't take pods now" in result.message

    def test_no_allocatable_gpus(self) -> None:
        result = no_fit(choose_target(spec("fp8"), [node("h100", H100, allocatable=0)]))
        assert "h100 advertises no allocatable nvidia.com/gpu" in result.message

    def test_usable_older_gpu_is_chosen_over_cordoned_newer(self) -> None:
        fleet = [node("h100", H100, unschedulable=True), node("l40s", L40S)]
        result = placed(choose_target(spec("fp8"), fleet))
        assert (result.cc, result.candidate_nodes) == (ComputeCapability(8, 9), 1)

    def test_cordoned_node_of_another_architecture_is_not_blamed(self) -> None:
        fleet = [node("a100", A100, unschedulable=True)]
        result = no_fit(choose_target(spec("fp8"), fleet))
        assert "cordoned" not in result.message


def test_summarize_fleet_groups_by_product_newest_first() -> None:
    fleet = [node("a", A100), node("b", A100), node("c", L40S, 4), node("d", H100), node("e", L40S, 4)]
    assert summarize_fleet(fleet) == (
        f"1 {X} NVIDIA-H100-80GB-HBM3 (9.0, 8 GPUs), 2 {X} NVIDIA-L40S (8.9, 4 GPUs), "
        f"2 {X} NVIDIA-A100-SXM4-80GB (8.0, 8 GPUs)"
    )
    assert summarize_fleet([node("x", L40S, 1)]) == f"1 {X} NVIDIA-L40S (8.9, 1 GPU)"
    assert summarize_fleet([]) == NO_GPU_NODES


@pytest.mark.parametrize("precision", ["fp16", "bf16", "int8_sq", "int4_awq", "int8_wo", "int4_wo"])
def test_every_ampere_precision_places_on_a100(precision: str) -> None:
    assert placed(choose_target(spec(precision), A100_FLEET)).cc == ComputeCapability(8, 0)
