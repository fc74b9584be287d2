"""The roofline behind the simulated trtllm-bench: orderings a real fleet shows, and physical bounds."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.dev.demo import MODELS, benchmark_line
from trtllm_operator.gpu import perfmodel as pm

LLAMA_8B = pm.shape_from_config(MODELS["llama-3.1-8b"])
LLAMA_70B = pm.shape_from_config(MODELS["llama-3.3-70b"])
WORKLOAD = pm.Workload(isl=128, osl=128, concurrency=512, max_batch_size=2048)
H100, H200, A100, L40S, B200 = (
    pm.gpu_spec(name)
    for name in (
        "NVIDIA H100 80GB HBM3",
        "NVIDIA H200",
        "NVIDIA A100 SXM4 80GB",
        "NVIDIA L40S",
        "NVIDIA B200",
    )
)


def tok_s(gpu: pm.GpuSpec, quant: str | None, shape: pm.ModelShape = LLAMA_8B, world: int = 1) -> float:
    return pm.estimate(gpu, shape, quant, None, world, WORKLOAD).output_tok_s


def test_parameter_counts_come_from_the_config() -> None:
    assert LLAMA_8B.params == pytest.approx(8.03e9, rel=0.01)
    assert LLAMA_70B.params == pytest.approx(70.6e9, rel=0.01)
    assert not LLAMA_8B.assumed
    assert LLAMA_70B.kv_elements_per_token == 2 * 80 * 8 * 128
    assert pm.shape_from_config(MODELS["llama-3.1-8b"] | {"num_parameters": 9_000_000_000}).params == 9e9


def test_a_config_without_sizes_is_an_assumed_8b() -> None:
    shape = pm.shape_from_config({"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 4})
    assert shape.assumed
    assert shape.params == pytest.approx(8.03e9)


def test_nvml_names_map_to_their_rows() -> None:
    assert [H100.name, H200.name, A100.name, L40S.name, B200.name] == [
        "H100 SXM",
        "H200",
        "A100 80GB",
        "L40S",
        "B200",
    ]
    with pytest.raises(pm.PerfModelError, match="no performance figures"):
        pm.gpu_spec("Tesla T4")


def test_precision_and_gpu_order_the_same_model() -> None:
    fp8_h100, bf16_h100, int8sq_a100 = (
        tok_s(H100, "FP8"),
        tok_s(H100, None),
        tok_s(A100, "W8A8_SQ_PER_CHANNEL"),
    )
    assert fp8_h100 > bf16_h100 > int8sq_a100
    assert tok_s(H200, "FP8") > fp8_h100  # same compute, more bandwidth
    assert tok_s(B200, "NVFP4") > tok_s(B200, "FP8") > fp8_h100
    assert tok_s(L40S, "FP8") < fp8_h100


def test_a_70b_on_four_gpus_is_far_slower_per_gpu_than_an_8b_on_one() -> None:
    big = pm.estimate(H100, LLAMA_70B, "FP8", "FP8", 4, WORKLOAD)
    small = pm.estimate(H100, LLAMA_8B, "FP8", "FP8", 1, WORKLOAD)
    assert big.per_gpu(4) < small.per_gpu(1) / 4


@pytest.mark.parametrize("gpu", [H100, H200, A100, L40S, B200], ids=lambda g: g.name)
@pytest.mark.parametrize("quant", [None, "FP8", "W8A8_SQ_PER_CHANNEL", "W4A16_AWQ", "NVFP4"])
@pytest.mark.parametrize("concurrency", [1, 8, 512])
def test_never_above_the_bandwidth_bound_nor_unphysical(
    gpu: pm.GpuSpec, quant: str | None, concurrency: int
) -> None:
    workload = pm.Workload(isl=128, osl=128, concurrency=concurrency, max_batch_size=2048)
    if pm.PRECISIONS[quant].compute not in gpu.tflops:
        with pytest.raises(pm.PerfModelError, match="Tensor Cores"):
            pm.estimate(gpu, LLAMA_8B, quant, None, 1, workload)
        return
    found = pm.estimate(gpu, LLAMA_8B, quant, None, 1, workload)
    weight_bytes = LLAMA_8B.params * pm.PRECISIONS[quant].weight_bytes
    # Every decode step reads all weights once: batch x bandwidth / weights is a hard ceiling.
    assert found.output_tok_s <= found.batch * gpu.bandwidth / weight_bytes
    assert found.output_tok_s <= found.bandwidth_bound_tok_s
    assert found.tpot_ms >= weight_bytes / gpu.bandwidth * 1000
    assert found.ttft_ms > found.tpot_ms > 0
    assert found.batch <= concurrency


def test_precisions_a_gpu_lacks_are_refused() -> None:
    with pytest.raises(pm.PerfModelError, match="A100 80GB has no FP8 Tensor Cores"):
        tok_s(A100, "FP8")
    with pytest.raises(pm.PerfModelError, match="no FP4"):
        tok_s(H100, "NVFP4")
    with pytest.raises(pm.PerfModelError, match="no FP4"):
        tok_s(L40S, "NVFP4")
    with pytest.raises(pm.PerfModelError, match="do not fit"):
        tok_s(L40S, None, LLAMA_70B)


def test_the_kv_cache_caps_the_batch() -> None:
    long = pm.Workload(isl=32768, osl=1024, concurrency=512, max_batch_size=2048)
    found = pm.estimate(H100, LLAMA_70B, "FP8", None, 4, long)
    assert found.batch < 512


def _bench(**extra: Any) -> dict[str, Any]:
    return {
        "outputTokensPerSecond": 14023.6,
        "isl": 128,
        "osl": 128,
        "concurrency": 512,
        "passed": True,
    } | extra


def test_demo_says_simulated_for_a_simulated_benchmark() -> None:
    line = benchmark_line(_bench(simulated=True, tool="trtllm-bench (simulated stand-in)"))
    assert line.startswith("benchmark: ~14024 output tok/s at ISL/OSL 128/128, concurrency 512")
    assert "SIMULATED by trtllm-bench (simulated stand-in)" in line
    measured = benchmark_line(_bench(simulated=False, tool="trtllm-bench"))
    assert "~" not in measured
    assert "SIMULATED" not in measured.upper()
