"""What each GPU architecture can run, and why not when it can't.

Sources (see ``shared/reference/trtllm.md``): TensorRT-LLM's precision support matrix, the engine
builder's SM >= 100 rejections, and NVML product names. Everything here is pure and table-driven;
adding a GPU or a precision is a one-line change in a table, never new branching.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NamedTuple

from trtllm_operator.api import reasons
from trtllm_operator.trtllm import sm_rules


class ComputeCapability(NamedTuple):
    """CUDA compute capability (SM version) as (major, minor); orders naturally: 8.9 < 9.0 < 10.0."""

    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


_CC_RE: Final = re.compile(r"^(\d{1,2})\.(\d)$")


def parse_cc(text: str) -> ComputeCapability:
    """Parse "9.0" into ComputeCapability(9, 0); raises ValueError on anything else."""
    match = _CC_RE.match(text.strip())
    if not match:
        raise ValueError(f"compute capability must look like '9.0', got {text!r}")
    return ComputeCapability(int(match.group(1)), int(match.group(2)))


CC70, CC75, CC80, CC86, CC89, CC90, CC100, CC103, CC120 = (
    ComputeCapability(7, 0),
    ComputeCapability(7, 5),
    ComputeCapability(8, 0),
    ComputeCapability(8, 6),
    ComputeCapability(8, 9),
    ComputeCapability(9, 0),
    ComputeCapability(10, 0),
    ComputeCapability(10, 3),
    ComputeCapability(12, 0),
)

#: Architecture names by major.minor, used in messages ("Ada, Hopper, Blackwell").
ARCH_NAMES: Final[dict[ComputeCapability, str]] = {
    CC70: "Volta",
    CC75: "Turing",
    CC80: "Ampere",
    CC86: "Ampere",
    CC89: "Ada",
    CC90: "Hopper",
    CC100: "Blackwell",
    CC103: "Blackwell",
    CC120: "Blackwell",
}


def arch_name(cc: ComputeCapability) -> str:
    """Architecture family name of a compute capability ("Hopper" for 9.0)."""
    if cc in ARCH_NAMES:
        return ARCH_NAMES[cc]
    known = [arch for known_cc, arch in sorted(ARCH_NAMES.items()) if known_cc <= cc]
    return known[-1] if known else "pre-Volta"


#: Minimum compute capability per weight/activation precision (``spec.precision``).
PRECISION_MIN_CC: Final[dict[str, ComputeCapability]] = {
    "fp16": CC70,
    "bf16": CC80,
    "int8_sq": CC80,
    "int8_wo": CC80,
    "int4_wo": CC80,
    "int4_awq": CC80,
    "fp8": CC89,
    "w4a8_awq": CC89,
    "nvfp4": CC100,
}

#: Minimum compute capability per KV-cache dtype (``spec.kvCacheDtype``); "auto" follows the model.
KV_MIN_CC: Final[dict[str, ComputeCapability]] = {
    "auto": CC70,
    "fp16": CC70,
    "int8": CC80,
    "fp8": CC89,
}

#: What to suggest instead, per precision, when the GPU is too old.
_ALTERNATIVES: Final[dict[str, str]] = {
    "fp8": "use int8_sq or int4_awq on this GPU, or target an H100 (9.0) or L40S (8.9)",
    "w4a8_awq": "use int4_awq on this GPU, or target an H100 (9.0) or L40S (8.9)",
    "nvfp4": "use fp8 on Ada/Hopper, or target a Blackwell GPU such as B200 (10.0)",
    "bf16": "use fp16 on this GPU",
    "int8_sq": "use fp16 on this GPU",
    "int8_wo": "use fp16 on this GPU",
    "int4_wo": "use fp16 on this GPU",
    "int4_awq": "use fp16 on this GPU",
    "fp16": "target a GPU of compute capability 7.0 or newer",
}

#: The TensorRT engine builder rejects integer formats (and an INT8 KV cache) for
#: ENGINE_INT_MAX_CC <= CC < ENGINE_INT_BELOW_CC: ``tensorrt_llm/builder.py`` @ 14e801da3632, ``build()``,
#: ``if get_sm_version() >= 100 and get_sm_version() < 120`` (SM 12.x is allowed). The numbers live in
#: ``trtllm/sm_rules.py``, which the CRD's CEL rules are generated from too.
ENGINE_INT_FORMATS: Final[frozenset[str]] = sm_rules.ENGINE_INT_PRECISIONS
ENGINE_INT_MAX_CC: Final = parse_cc(sm_rules.sm_to_cc(sm_rules.ENGINE_INT_SM[0]))
ENGINE_INT_BELOW_CC: Final = parse_cc(sm_rules.sm_to_cc(sm_rules.ENGINE_INT_SM[1]))

#: NVML product names (as GFD writes them: spaces -> "-") and their compute capability.
GPU_PRODUCTS: Final[dict[str, ComputeCapability]] = {
    "Tesla-V100-SXM2-32GB": CC70,
    "Tesla-V100-SXM2-16GB": CC70,
    "Tesla-T4": CC75,
    "NVIDIA-A100-SXM4-80GB": CC80,
    "NVIDIA-A100-SXM4-40GB": CC80,
    "NVIDIA-A100-80GB-PCIe": CC80,
    "NVIDIA-A100-PCIE-40GB": CC80,
    "NVIDIA-A10": CC86,
    "NVIDIA-A40": CC86,
    "NVIDIA-A16": CC86,
    "NVIDIA-A2": CC86,
    "NVIDIA-L4": CC89,
    "NVIDIA-L40": CC89,
    "NVIDIA-L40S": CC89,
    "NVIDIA-H100-80GB-HBM3": CC90,
    "NVIDIA-H100-PCIe": CC90,
    "NVIDIA-H100-NVL": CC90,
    "NVIDIA-H200": CC90,
    "NVIDIA-H200-NVL": CC90,
    "NVIDIA-GH200-480GB": CC90,
    "NVIDIA-B200": CC100,
    "NVIDIA-GB200": CC100,
    "NVIDIA-B300-SXM6-AC": CC103,
    "NVIDIA-GB300": CC103,
    "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition": CC120,
}


def product_cc(product: str) -> ComputeCapability | None:
    """Compute capability of a GFD/NVML product name, tolerant of spaces and the "-SHARED" suffix."""
    name = product.replace(" ", "-").removesuffix("-SHARED")
    return GPU_PRODUCTS.get(name)


@dataclass(frozen=True)
class Problem:
    """One reason a (precision, KV dtype, backend) request can't run on a GPU."""

    field: str
    reason: str
    message: str


def _archs_from(min_cc: ComputeCapability) -> str:
    names = dict.fromkeys(arch for cc, arch in sorted(ARCH_NAMES.items()) if cc >= min_cc)
    return ", ".join(names)


def _gpu_phrase(cc: ComputeCapability, gpu: str | None) -> str:
    return f"{gpu} is {cc}" if gpu else f"the target is {cc}"


def compatibility_problems(
    precision: str,
    kv_cache_dtype: str,
    backend: str,
    cc: ComputeCapability,
    gpu: str | None = None,
) -> list[Problem]:
    """Every reason this request can't run on a GPU of compute capability ``cc`` (empty: it can).

    ``gpu`` names the device in messages (a GFD product or NVML name); messages say what to do.
    """
    problems: list[Problem] = []
    need = PRECISION_MIN_CC.get(precision)
    if need is None:
        problems.append(Problem("spec.precision", reasons.INVALID_SPEC, f"unknown precision {precision!r}"))
    elif cc < need:
        problems.append(
            Problem(
                "spec.precision",
                reasons.PRECISION_UNSUPPORTED,
                f"precision {precision} needs compute capability ≥ {need} ({_archs_from(need)}); "
                f"{_gpu_phrase(cc, gpu)} — {_ALTERNATIVES[precision]}",
            )
        )
    kv_need = KV_MIN_CC.get(kv_cache_dtype)
    if kv_need is None:
        problems.append(
            Problem("spec.kvCacheDtype", reasons.INVALID_SPEC, f"unknown KV-cache dtype {kv_cache_dtype!r}")
        )
    elif cc < kv_need:
        problems.append(
            Problem(
                "spec.kvCacheDtype",
                reasons.PRECISION_UNSUPPORTED,
                f"KV-cache dtype {kv_cache_dtype} needs compute capability ≥ {kv_need} "
                f"({_archs_from(kv_need)}); {_gpu_phrase(cc, gpu)} — use kvCacheDtype "
                f"{'int8 or auto' if cc >= KV_MIN_CC['int8'] else 'auto or fp16'} on this GPU",
            )
        )
    if backend == "pytorch" and kv_cache_dtype == "int8":
        problems.append(
            Problem(
                "spec.kvCacheDtype",
                reasons.PRECISION_UNSUPPORTED,
                "the pytorch backend has no INT8 KV cache: ModelOpt's Hugging Face export refuses it "
                '("Invalid KV cache quantization format") — use kvCacheDtype fp8 (compute capability ≥ 8.9) '
                "or auto, or backend tensorrt",
            )
        )
    if backend == "tensorrt" and ENGINE_INT_MAX_CC <= cc < ENGINE_INT_BELOW_CC:
        if precision in ENGINE_INT_FORMATS:
            problems.append(
                Problem(
                    "spec.precision",
                    reasons.PRECISION_UNSUPPORTED,
                    f"the tensorrt backend rejects INT8/INT4 formats such as {precision} on SM 10.x-11.x "
                    f'("INT8/INT4 quantization is not supported on SM>=100."); {_gpu_phrase(cc, gpu)} — '
                    "use fp8 or nvfp4 on Blackwell, or backend pytorch",
                )
            )
        if kv_cache_dtype == "int8":
            problems.append(
                Problem(
                    "spec.kvCacheDtype",
                    reasons.PRECISION_UNSUPPORTED,
                    f"the tensorrt backend rejects INT8 quantization (including an INT8 KV cache) "
                    f"on SM 10.x-11.x; "
                    f"{_gpu_phrase(cc, gpu)} — use kvCacheDtype fp8 on Blackwell",
                )
            )
    return problems


def supported_precisions(backend: str, cc: ComputeCapability) -> list[str]:
    """Precisions that have no problem on ``cc`` with ``backend`` (KV dtype auto)."""
    return [p for p in PRECISION_MIN_CC if not compatibility_problems(p, "auto", backend, cc)]
