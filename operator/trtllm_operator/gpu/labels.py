"""NVIDIA GPU Feature Discovery (GFD) node labels, and the GPU facts the operator reads from a Node.

Route on ``nvidia.com/gpu.compute.major/minor`` — never on ``gpu.family`` (older GFD reports 8.9 as
"ampere") and never on ``nvidia.com/cuda.compute.*`` (GFD does not emit it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from trtllm_operator.gpu.knowledge import ComputeCapability

#: Only ASCII digits: str.isdigit() also accepts "²", which int() then refuses.
_ASCII_DIGITS: Final = re.compile(r"[0-9]+")


class GFD:
    """Label keys exactly as GPU Feature Discovery (k8s-device-plugin v0.20) writes them."""

    PRODUCT: Final = "nvidia.com/gpu.product"
    COMPUTE_MAJOR: Final = "nvidia.com/gpu.compute.major"
    COMPUTE_MINOR: Final = "nvidia.com/gpu.compute.minor"
    COUNT: Final = "nvidia.com/gpu.count"
    MEMORY: Final = "nvidia.com/gpu.memory"
    FAMILY: Final = "nvidia.com/gpu.family"
    MACHINE: Final = "nvidia.com/gpu.machine"
    PRESENT: Final = "nvidia.com/gpu.present"
    DRIVER_MAJOR: Final = "nvidia.com/cuda.driver-version.major"
    DRIVER_MINOR: Final = "nvidia.com/cuda.driver-version.minor"
    DRIVER_REVISION: Final = "nvidia.com/cuda.driver-version.revision"
    DRIVER_FULL: Final = "nvidia.com/cuda.driver-version.full"
    RUNTIME_MAJOR: Final = "nvidia.com/cuda.runtime-version.major"
    RUNTIME_MINOR: Final = "nvidia.com/cuda.runtime-version.minor"
    RUNTIME_FULL: Final = "nvidia.com/cuda.runtime-version.full"
    MIG_STRATEGY: Final = "nvidia.com/mig.strategy"
    RESOURCE: Final = "nvidia.com/gpu"
    TAINT_KEY: Final = "nvidia.com/gpu"


@dataclass(frozen=True)
class GpuNodeFacts:
    """What one Node offers for GPU work, as read from its labels, allocatable, spec and conditions."""

    name: str
    product: str
    cc: ComputeCapability
    gpu_count: int
    allocatable: int
    memory_mib: int
    schedulable: bool
    ready: bool
    taints: tuple[tuple[str, str], ...] = field(default=())  # (key, effect)

    @property
    def usable(self) -> bool:
        return self.schedulable and self.ready and self.allocatable > 0


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def facts_from_node(node: Mapping[str, Any]) -> GpuNodeFacts | None:
    """GPU facts of a Node object (a dict as the API returns it); None when it carries no usable GFD labels.

    Malformed labels never raise: a node whose compute labels are missing or not numbers is not a GPU
    node for scheduling purposes (GFD labels are missing while the driver installs).
    """
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    major, minor = labels.get(GFD.COMPUTE_MAJOR), labels.get(GFD.COMPUTE_MINOR)
    if major is None or minor is None:
        return None
    if not _ASCII_DIGITS.fullmatch(str(major)) or not _ASCII_DIGITS.fullmatch(str(minor)):
        return None
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    allocatable = _int((status.get("allocatable") or {}).get(GFD.RESOURCE))
    conditions = status.get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    taints = tuple((str(t.get("key", "")), str(t.get("effect", ""))) for t in spec.get("taints") or [])
    return GpuNodeFacts(
        name=str(meta.get("name", "")),
        product=str(labels.get(GFD.PRODUCT, "unknown")),
        cc=ComputeCapability(int(major), int(minor)),
        gpu_count=_int(labels.get(GFD.COUNT), allocatable),
        allocatable=allocatable,
        memory_mib=_int(labels.get(GFD.MEMORY)),
        schedulable=not spec.get("unschedulable", False),
        ready=ready,
        taints=taints,
    )
