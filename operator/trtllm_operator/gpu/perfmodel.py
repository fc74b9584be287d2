"""A roofline estimate of LLM serving throughput, for the simulated trtllm-bench — never a measurement.

The development cluster has no GPU, yet the benchmark gate, the status and the demo need numbers
that behave like real ones: FP8 on an H100 must beat BF16 on the same H100, which must beat INT8
SmoothQuant on an A100; a 70B model on four GPUs must be far slower per GPU than an 8B one on one.
This module derives such numbers from first principles, so they are *plausible*, and every caller
labels them simulated.

The model (one "round" of in-flight batching, ``batch`` requests of ISL/OSL tokens):

* **Prefill** is compute bound: ``2 x params x batch x ISL`` FLOPs on the dense Tensor-Core rate of
  the precision's compute dtype, split over the GPUs.
* **Decode** (one step per output token) is bounded by the larger of the time to stream the weights
  (``params x bytes/param ÷ world size``) plus every sequence's KV cache (``batch x context x KV
  bytes/token ÷ world size``) from HBM, and the ``2 x params x batch`` FLOPs of that step.
* Achieved rates are the peaks times :data:`BANDWIDTH_EFFICIENCY` / :data:`COMPUTE_EFFICIENCY`
  (decode kernels reach roughly 70-85 % of HBM bandwidth, large GEMMs 50-70 % of dense peak);
  tensor/pipeline parallelism pays :data:`PARALLEL_PENALTY` of extra time per doubling of the
  world size (all-reduces, pipeline bubbles).
* ``batch`` is the concurrency, capped by the engine's max batch size and by how many sequences'
  KV cache fit in :data:`KV_CACHE_FRACTION` of the memory the weights leave free.

It ignores everything else (attention FLOPs, kernel launch gaps, scheduling, sampling), which is
why the efficiency factors are deliberately below the peaks: the result is an order-of-magnitude
estimate with the right orderings, not a prediction of any particular run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

#: Fraction of peak HBM bandwidth a decode step achieves (assumption, see module docstring).
BANDWIDTH_EFFICIENCY: Final = 0.75
#: Fraction of dense Tensor-Core peak a large GEMM achieves (assumption).
COMPUTE_EFFICIENCY: Final = 0.6
#: Extra time per doubling of the world size (tensor/pipeline-parallel communication).
PARALLEL_PENALTY: Final = 0.1
#: Share of the memory left after the weights that holds the KV cache (trtllm's default is 0.9).
KV_CACHE_FRACTION: Final = 0.9
#: Activations, CUDA context and workspace per GPU, in bytes.
RUNTIME_OVERHEAD_BYTES: Final = 3 * 2**30

TERA: Final = 1e12


@dataclass(frozen=True)
class GpuSpec:
    """Published peak figures of one GPU (dense Tensor-Core rates, i.e. without 2:4 sparsity)."""

    name: str
    memory_bytes: int
    bandwidth: float  # bytes/s
    tflops: Mapping[str, float]  # compute dtype ("bf16", "fp8", "int8", "fp4") -> dense TFLOP/s (TOP/s)
    match: tuple[str, ...]  # NVML-name fragments that identify it (lower case)
    source: str


# Datasheet figures (NVIDIA publishes Tensor-Core rates "with sparsity"; dense is half of that).
# The datasheets were not re-read for this table: the values are the well-known published ones,
# cross-checked against public spec tables (e.g. the HGX B200 table and the H100 SXM figures).
GPUS: Final[tuple[GpuSpec, ...]] = (
    GpuSpec(
        "H200",
        141 * 10**9,
        4.8 * TERA,
        {"bf16": 989.4, "fp8": 1978.9, "int8": 1978.9},
        ("h200",),
        "NVIDIA H200 Tensor Core GPU datasheet (SXM): 141 GB HBM3e, 4.8 TB/s",
    ),
    GpuSpec(
        "H100 SXM",
        80 * 10**9,
        3.35 * TERA,
        {"bf16": 989.4, "fp8": 1978.9, "int8": 1978.9},
        ("h100",),
        "NVIDIA H100 Tensor Core GPU datasheet (SXM): 80 GB HBM3, 3.35 TB/s",
    ),
    GpuSpec(
        "A100 80GB",
        80 * 10**9,
        2.039 * TERA,
        {"bf16": 312.0, "int8": 624.0},
        ("a100",),
        "NVIDIA A100 Tensor Core GPU datasheet (80GB SXM): 2,039 GB/s; no FP8 Tensor Cores",
    ),
    GpuSpec(
        "L40S",
        48 * 10**9,
        0.864 * TERA,
        {"bf16": 362.05, "fp8": 733.0, "int8": 733.0},
        ("l40s",),
        "NVIDIA L40S GPU datasheet: 48 GB GDDR6, 864 GB/s; FP8 via Ada's 4th-gen Tensor Cores",
    ),
    GpuSpec(
        "B200",
        180 * 10**9,
        7.7 * TERA,
        {"bf16": 2250.0, "fp8": 4500.0, "int8": 4500.0, "fp4": 9000.0},
        ("b200",),
        "NVIDIA HGX B200 datasheet, per GPU: 180 GB HBM3e, 7.7 TB/s",
    ),
)


@dataclass(frozen=True)
class PrecisionCost:
    """Bytes per weight and the Tensor-Core dtype the GEMMs run in."""

    weight_bytes: float
    compute: str


#: ``quant_algo`` of a checkpoint (None: unquantized 16-bit) -> cost. NVFP4 carries one FP8 scale
#: per 16 weights (0.5 + 1/16 bytes).
PRECISIONS: Final[dict[str | None, PrecisionCost]] = {
    None: PrecisionCost(2.0, "bf16"),
    "FP8": PrecisionCost(1.0, "fp8"),
    "W8A8_SQ_PER_CHANNEL": PrecisionCost(1.0, "int8"),
    "W8A16": PrecisionCost(1.0, "bf16"),
    "W4A16": PrecisionCost(0.5, "bf16"),
    "W4A16_AWQ": PrecisionCost(0.5, "bf16"),
    "W4A8_AWQ": PrecisionCost(0.5, "fp8"),
    "NVFP4": PrecisionCost(0.5625, "fp4"),
}
#: ``kv_cache_quant_algo`` -> bytes per element (None: the activation dtype, 16-bit).
KV_BYTES: Final[dict[str | None, float]] = {None: 2.0, "FP8": 1.0, "INT8": 1.0, "NVFP4": 0.5625}


class PerfModelError(ValueError):
    """The combination cannot run (no such Tensor-Core dtype, does not fit) or is unknown."""


def gpu_spec(name: str) -> GpuSpec:
    """The table row whose fragment occurs in the NVML name ("NVIDIA H100 80GB HBM3" -> H100 SXM)."""
    lowered = name.lower()
    for spec in GPUS:
        if any(fragment in lowered for fragment in spec.match):
            return spec
    known = ", ".join(spec.name for spec in GPUS)
    raise PerfModelError(f"no performance figures for GPU {name!r} (known: {known})")


@dataclass(frozen=True)
class ModelShape:
    """The sizes that matter: parameters and KV-cache bytes per token per element byte."""

    params: float
    kv_elements_per_token: float  # 2 (K and V) x layers x KV heads x head dim
    assumed: bool = False  # True when the config lacked the sizes and LLAMA_8B's were used


def _int(config: Mapping[str, Any], key: str) -> int | None:
    value = config.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def shape_from_config(config: Mapping[str, Any]) -> ModelShape:
    """Parameter count and KV size of a decoder-only transformer from its (HF or TRT-LLM) config.

    ``num_parameters`` wins when present; otherwise embeddings (+ an untied LM head), attention
    (Q and O of ``hidden^2``, K and V of ``hidden x kv_dim``) and a gated MLP (``3 x hidden x
    intermediate``) per layer. A config without the sizes gets Llama-3-8B's, marked ``assumed``.
    """
    hidden, layers = _int(config, "hidden_size"), _int(config, "num_hidden_layers")
    vocab, inter = _int(config, "vocab_size"), _int(config, "intermediate_size")
    if hidden is None or layers is None or vocab is None or inter is None:
        return LLAMA_8B
    heads = _int(config, "num_attention_heads") or max(1, hidden // 128)
    kv_heads = _int(config, "num_key_value_heads") or heads
    head_dim = _int(config, "head_dim") or hidden // heads
    kv_dim = kv_heads * head_dim
    per_layer = 2 * hidden * hidden + 2 * hidden * kv_dim + 3 * hidden * inter
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    params = _int(config, "num_parameters") or layers * per_layer + embeddings
    return ModelShape(float(params), float(2 * layers * kv_dim))


#: Llama-3-8B (hidden 4096, 32 layers, 8 KV heads of 128, intermediate 14336, vocab 128256).
LLAMA_8B: Final = ModelShape(8.03e9, 2 * 32 * 8 * 128, assumed=True)


@dataclass(frozen=True)
class Workload:
    isl: float  # average input tokens
    osl: float  # average output tokens
    concurrency: int
    max_batch_size: int


@dataclass(frozen=True)
class Estimate:
    """What the roofline predicts for one workload (all simulated)."""

    output_tok_s: float  # system output tokens/s
    ttft_ms: float
    tpot_ms: float
    batch: int
    decode_bound: str  # "memory" or "compute"
    bandwidth_bound_tok_s: float  # batch x world x peak BW / weight bytes: no run can beat it

    def per_gpu(self, world_size: int) -> float:
        return self.output_tok_s / world_size


def _peak_flops(gpu: GpuSpec, compute: str, quant_algo: str | None) -> float:
    if compute not in gpu.tflops:
        raise PerfModelError(
            f"{gpu.name} has no {compute.upper()} Tensor Cores, so {quant_algo or 'BF16'} cannot run on it"
        )
    return gpu.tflops[compute] * TERA


def estimate(
    gpu: GpuSpec,
    shape: ModelShape,
    quant_algo: str | None,
    kv_algo: str | None,
    world_size: int,
    workload: Workload,
) -> Estimate:
    """Throughput and latencies of ``workload`` on ``world_size`` GPUs of ``gpu`` (see module doc)."""
    if quant_algo not in PRECISIONS:
        raise PerfModelError(f"no cost model for quantization {quant_algo!r}")
    cost = PRECISIONS[quant_algo]
    flops = _peak_flops(gpu, cost.compute, quant_algo) * COMPUTE_EFFICIENCY
    bandwidth = gpu.bandwidth * BANDWIDTH_EFFICIENCY
    weights = shape.params * cost.weight_bytes / world_size
    kv_per_token = shape.kv_elements_per_token * KV_BYTES.get(kv_algo, 2.0) / world_size
    free = gpu.memory_bytes - weights - RUNTIME_OVERHEAD_BYTES
    if free <= 0:
        capacity = gpu.memory_bytes / 1e9
        raise PerfModelError(
            f"{weights / 1e9:.1f} GB of weights per GPU do not fit in {gpu.name}'s {capacity:.0f} GB"
        )
    seq = workload.isl + workload.osl
    kv_fit = int(free * KV_CACHE_FRACTION / (kv_per_token * seq))
    batch = max(1, min(workload.concurrency, workload.max_batch_size, kv_fit))
    penalty = 1 + PARALLEL_PENALTY * math.log2(world_size)
    context = workload.isl + workload.osl / 2
    decode_memory = (weights + batch * context * kv_per_token) / bandwidth
    decode_compute = 2 * shape.params * batch / world_size / flops
    step = max(decode_memory, decode_compute) * penalty
    prefill = 2 * shape.params * batch * workload.isl / world_size / flops * penalty
    round_s = prefill + workload.osl * step
    return Estimate(
        output_tok_s=batch * workload.osl / round_s,
        ttft_ms=(prefill + step) * 1000,
        tpot_ms=step * 1000,
        batch=batch,
        decode_bound="memory" if decode_memory >= decode_compute else "compute",
        bandwidth_bound_tok_s=batch * world_size * gpu.bandwidth / (shape.params * cost.weight_bytes),
    )
