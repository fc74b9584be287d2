"""Pure GPU knowledge: compute capabilities, precision support and NVIDIA GFD node labels.

Table-driven from ``shared/reference/trtllm.md``. The operator (scheduling decisions), the CRD's
CEL rules (tested against these tables) and the build pod's pynvml preflight all ask the same
function, :func:`compatibility_problems`, so the three can never disagree.
"""

from trtllm_operator.gpu.knowledge import (
    ARCH_NAMES,
    GPU_PRODUCTS,
    KV_MIN_CC,
    PRECISION_MIN_CC,
    ComputeCapability,
    Problem,
    arch_name,
    compatibility_problems,
    parse_cc,
    product_cc,
    supported_precisions,
)
from trtllm_operator.gpu.labels import GFD, GpuNodeFacts, facts_from_node

__all__ = [
    "ARCH_NAMES",
    "GFD",
    "GPU_PRODUCTS",
    "KV_MIN_CC",
    "PRECISION_MIN_CC",
    "ComputeCapability",
    "GpuNodeFacts",
    "Problem",
    "arch_name",
    "compatibility_problems",
    "facts_from_node",
    "parse_cc",
    "product_cc",
    "supported_precisions",
]
