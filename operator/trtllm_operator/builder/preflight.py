"""Preflight: is this pod on GPUs that can build (and later serve) the plan? Decided before any heavy work.

The operator schedules the build pod from node labels (GPU Feature Discovery), but labels can be
stale or wrong, the device plugin can hand out fewer GPUs than requested, and another process can
hold the memory. A quantization that fails after 40 minutes on the wrong GPU — or worse, an engine
built for SM 8.9 that then refuses to load on the 9.0 serving nodes ("The engine plan file is
generated on an incompatible device") — is far more expensive than asking NVML first.

The decision (:func:`check`) is a pure function over :class:`Inventory`, so every rule is tested
without a GPU; :func:`probe` is the thin pynvml layer that fills the inventory.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import EXIT_INCOMPATIBLE_GPU, EXIT_NO_GPU
from trtllm_operator.api.plan import BuildPlan
from trtllm_operator.gpu.knowledge import ComputeCapability, Problem, compatibility_problems, parse_cc

GIB: Final = 1024**3
#: Slack on top of the weights: activations, CUDA context, allocator fragmentation.
MEMORY_SLACK: Final = 0.10
#: Bytes per parameter of the weights at each precision (4-bit formats: half a byte; scales ignored).
BYTES_PER_PARAM: Final[dict[str, float]] = {
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8_sq": 1.0,
    "int8_wo": 1.0,
    "int4_awq": 0.5,
    "int4_wo": 0.5,
    "w4a8_awq": 0.5,
    "nvfp4": 0.5,
}
_TRAILING_PARENS: Final = re.compile(r"\s*\([^()]*\)$")


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as NVML describes it (memory in bytes)."""

    index: int
    name: str
    cc: ComputeCapability
    memory_total: int
    memory_free: int
    uuid: str

    def describe(self) -> str:
        return f"{self.name} ({self.cc})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cc"] = str(self.cc)
        return data


@dataclass(frozen=True)
class Inventory:
    """What NVML reported; ``error`` is set when NVML itself could not be used."""

    gpus: tuple[GpuFacts, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "gpus": [gpu.to_json() for gpu in self.gpus],
        }


@dataclass(frozen=True)
class Failure:
    """Why the build must not start: a condition reason, a message and the exit code."""

    reason: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class Verdict:
    failure: Failure | None
    warnings: list[str] = field(default_factory=list)


def _problem_head(problem: Problem) -> str:
    """ "precision fp8 needs compute capability ≥ 8.9 (Ada, ...); the target is 8.0 — ..." -> the claim."""
    head = problem.message.split("; ", 1)[0]
    return _TRAILING_PARENS.sub("", head)


def _incompatible(plan: BuildPlan, gpu: GpuFacts) -> Failure | None:
    problems = compatibility_problems(plan.precision, plan.kv_cache_dtype, plan.backend, gpu.cc, gpu.name)
    if not problems:
        return None
    claims = "; ".join(_problem_head(problem) for problem in problems)
    return Failure(
        reasons.INCOMPATIBLE_GPU, f"{claims}; this node has {gpu.describe()}", EXIT_INCOMPATIBLE_GPU
    )


def _wrong_target(plan: BuildPlan, gpu: GpuFacts) -> Failure | None:
    target = parse_cc(plan.target_cc)
    if gpu.cc == target:
        return None
    return Failure(
        reasons.INCOMPATIBLE_GPU,
        f"the node's GFD labels claim compute capability {target} but NVML reports {gpu.describe()}: an "
        f"engine built here would only load on {gpu.cc} GPUs, not on the {target} GPUs it is meant to serve "
        "on; fix the node's nvidia.com/gpu.compute.* labels (GPU Feature Discovery) or the target",
        EXIT_INCOMPATIBLE_GPU,
    )


def _no_gpu(inventory: Inventory) -> Failure:
    detail = inventory.error or "0 devices"
    return Failure(
        reasons.NO_GPU_VISIBLE,
        f"no NVIDIA GPU visible to the build pod (NVML: {detail}): check the nvidia.com/gpu request and the "
        "device plugin",
        EXIT_NO_GPU,
    )


def _too_few(plan: BuildPlan, inventory: Inventory) -> Failure | None:
    need = plan.build_gpus or plan.tensor * plan.pipeline  # a multi-node engine builds on one node
    if len(inventory.gpus) >= need:
        return None
    return Failure(
        reasons.INSUFFICIENT_GPUS,
        f"tensor {plan.tensor} x pipeline {plan.pipeline} needs {need} GPUs but NVML sees "
        f"{len(inventory.gpus)} ({', '.join(gpu.name for gpu in inventory.gpus)}): check the pod's "
        "nvidia.com/gpu request and CUDA_VISIBLE_DEVICES",
        EXIT_INCOMPATIBLE_GPU,
    )


def weights_per_gpu(plan: BuildPlan) -> float | None:
    """Bytes of weights each GPU holds, or None when the model size is unknown."""
    if plan.model_params_billions is None:
        return None
    total = plan.model_params_billions * 1e9 * BYTES_PER_PARAM[plan.precision]
    return total / (plan.tensor * plan.pipeline)


def _memory_message(plan: BuildPlan, gpu: GpuFacts, per_gpu: float) -> str:
    gpus = plan.tensor * plan.pipeline
    needed = per_gpu * (1 + MEMORY_SLACK)
    return (
        f"{plan.model_params_billions:g}B parameters at {plan.precision} over {gpus} GPU(s) need "
        f"{per_gpu / GIB:.1f} GiB of weights per GPU (+{MEMORY_SLACK:.0%}: {needed / GIB:.1f} GiB) but GPU "
        f"{gpu.index} ({gpu.name}) has {gpu.memory_free / GIB:.1f} GiB free of "
        f"{gpu.memory_total / GIB:.1f} GiB: use more tensor parallelism, a smaller precision or a larger GPU"
    )


def _short_of_memory(plan: BuildPlan, gpus: Sequence[GpuFacts]) -> Failure | None:
    per_gpu = weights_per_gpu(plan)
    if per_gpu is None:
        return None
    needed = per_gpu * (1 + MEMORY_SLACK)
    for gpu in gpus:
        if gpu.memory_free < needed:
            return Failure(
                reasons.INSUFFICIENT_GPU_MEMORY, _memory_message(plan, gpu, per_gpu), EXIT_INCOMPATIBLE_GPU
            )
    return None


def _product_warning(plan: BuildPlan, gpus: Sequence[GpuFacts]) -> list[str]:
    if not plan.target_product:
        return []
    wanted = plan.target_product.removesuffix("-SHARED")
    others = sorted({gpu.name for gpu in gpus if gpu.name.replace(" ", "-") != wanted})
    if not others:
        return []
    return [f"target product {plan.target_product} but NVML reports {', '.join(others)}"]


def _failures(plan: BuildPlan, inventory: Inventory) -> Iterator[Failure | None]:
    """Every rule in order, lazily: count, then each GPU's capability, target, memory."""
    yield _too_few(plan, inventory)
    yield from (_incompatible(plan, gpu) for gpu in inventory.gpus)
    yield from (_wrong_target(plan, gpu) for gpu in inventory.gpus)
    yield _short_of_memory(plan, inventory.gpus[: plan.tensor * plan.pipeline])


def check(plan: BuildPlan, inventory: Inventory) -> Verdict:
    """The preflight decision: the first failing rule, or no failure and possibly warnings."""
    if inventory.error is not None or not inventory.gpus:
        return Verdict(_no_gpu(inventory))
    failure = next((failure for failure in _failures(plan, inventory) if failure is not None), None)
    return Verdict(failure, [] if failure else _product_warning(plan, inventory.gpus))


#: The ``pynvml`` module (or a fake with the same functions: nvmlInit, nvmlDeviceGetCount, ...).
Nvml = Any


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _device(nvml: Nvml, index: int) -> GpuFacts:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = nvml.nvmlDeviceGetCudaComputeCapability(handle)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    return GpuFacts(
        index=index,
        name=_text(nvml.nvmlDeviceGetName(handle)),
        cc=ComputeCapability(int(major), int(minor)),
        memory_total=int(memory.total),
        memory_free=int(memory.free),
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
    )


def _load_pynvml() -> Nvml:
    import pynvml

    return pynvml


def probe(nvml: Nvml | None = None) -> Inventory:
    """Ask NVML for every visible GPU; NVML errors become ``Inventory.error``, never exceptions."""
    try:
        lib = nvml if nvml is not None else _load_pynvml()
        lib.nvmlInit()
    except Exception as exc:  # NVMLError, ImportError, OSError: all mean "no usable GPU here"
        return Inventory(error=str(exc) or type(exc).__name__)
    try:
        gpus = tuple(_device(lib, index) for index in range(lib.nvmlDeviceGetCount()))
        return Inventory(
            gpus, _text(lib.nvmlSystemGetDriverVersion()), int(lib.nvmlSystemGetCudaDriverVersion())
        )
    except Exception as exc:
        return Inventory(error=f"{type(exc).__name__}: {exc}")
    finally:
        lib.nvmlShutdown()
