"""Simulated GPU fleets: node pools declared in YAML, rendered as Node objects KWOK keeps alive.

A fleet file lists pools (name, count, GPU facts, capacity, extra labels, taints). GPU pools get the
labels NVIDIA GPU Feature Discovery writes, ``nvidia.com/gpu`` capacity and the
``nvidia.com/gpu:NoSchedule`` taint, exactly like a real GPU node, so the operator can't tell the
difference from the API. ``generate_fleet`` makes large fleets for scale tests.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from trtllm_operator.gpu.labels import GFD

KWOK_ANNOTATION = "kwok.x-k8s.io/node"
POOL_LABEL = "trtllm.dev/sim-pool"
DRIVER = ("550", "127", "05")
CUDA_RUNTIME = ("12", "4")


class GpuFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: str
    major: int
    minor: int
    count: int = Field(ge=1)
    memoryMiB: int = Field(ge=1)
    family: str


class Taint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    value: str | None = None
    effect: str = "NoSchedule"


class Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    count: int = Field(ge=0)
    gpu: GpuFacts | None = None
    capacity: dict[str, str] = Field(default_factory=lambda: {"cpu": "16", "memory": "64Gi", "pods": "110"})
    labels: dict[str, str] = Field(default_factory=dict)
    taints: list[Taint] | None = None


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pools: list[Pool]


def gfd_labels(gpu: GpuFacts) -> dict[str, str]:
    return {
        GFD.PRESENT: "true",
        GFD.PRODUCT: gpu.product,
        GFD.COMPUTE_MAJOR: str(gpu.major),
        GFD.COMPUTE_MINOR: str(gpu.minor),
        GFD.COUNT: str(gpu.count),
        GFD.MEMORY: str(gpu.memoryMiB),
        GFD.FAMILY: gpu.family,
        GFD.MACHINE: "DGX-SIMULATED",
        GFD.DRIVER_MAJOR: DRIVER[0],
        GFD.DRIVER_MINOR: DRIVER[1],
        GFD.DRIVER_REVISION: DRIVER[2],
        GFD.DRIVER_FULL: ".".join(DRIVER),
        GFD.RUNTIME_MAJOR: CUDA_RUNTIME[0],
        GFD.RUNTIME_MINOR: CUDA_RUNTIME[1],
        GFD.RUNTIME_FULL: ".".join(CUDA_RUNTIME),
        GFD.MIG_STRATEGY: "none",
    }


def pool_nodes(pool: Pool, start: int = 0) -> list[dict[str, Any]]:
    """Node objects for one pool: ``sim-<pool>-<i>``."""
    nodes = []
    for index in range(start, start + pool.count):
        name = f"sim-{pool.name}-{index}"
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "kwok",
            POOL_LABEL: pool.name,
            **pool.labels,
        }
        capacity = dict(pool.capacity)
        taints: list[dict[str, Any]] = [t.model_dump(exclude_none=True) for t in pool.taints or []]
        if pool.gpu is not None:
            labels.update(gfd_labels(pool.gpu))
            capacity[GFD.RESOURCE] = str(pool.gpu.count)
            if pool.taints is None:
                taints = [{"key": GFD.TAINT_KEY, "effect": "NoSchedule"}]
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": {KWOK_ANNOTATION: "fake"}},
                "spec": {"taints": taints} if taints else {},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "nodeInfo": {
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                        "kubeletVersion": "kwok",
                        "kubeProxyVersion": "kwok",
                        "containerRuntimeVersion": "kwok",
                    },
                },
            }
        )
    return nodes


READY_CONDITION = {
    "type": "Ready",
    "status": "True",
    "reason": "KubeletReady",
    "message": "kubelet is posting ready status",
}


def fleet_nodes(fleet: Fleet, *, ready: bool = False) -> list[dict[str, Any]]:
    """The fleet's Node objects.

    ``ready``: include a Ready condition, as ``kubectl get nodes -o yaml`` shows a healthy fleet (for
    offline render); nodes registered in the local cluster get theirs from KWOK.
    """
    nodes = [node for pool in fleet.pools for node in pool_nodes(pool)]
    if ready:
        for node in nodes:
            node["status"]["conditions"] = [dict(READY_CONDITION)]
    return nodes


def load_fleet(path: str | Path) -> Fleet:
    return Fleet.model_validate(yaml.safe_load(Path(path).read_text()))


def builtin_fleet(name: str = "default") -> Fleet:
    """A fleet shipped with the package: ``default`` or ``a100-only``."""
    text = resources.files("trtllm_operator.dev").joinpath(f"data/fleet-{name}.yaml").read_text()
    return Fleet.model_validate(yaml.safe_load(text))


def resolve_fleet(name_or_path: str) -> Fleet:
    """A builtin fleet name, or a path to a fleet YAML file."""
    if Path(name_or_path).is_file():
        return load_fleet(name_or_path)
    return builtin_fleet(name_or_path)


def default_nodes() -> list[dict[str, Any]]:
    """Node objects of the default simulated fleet, healthy (the `render` CLI's default node list)."""
    return fleet_nodes(builtin_fleet("default"), ready=True)


#: GPU pools the large-fleet generator cycles through (same facts as the default fleet).
_SCALE_POOLS = builtin_fleet("default").pools


def generate_fleet(nodes: int, system_fraction: float = 0.1) -> Fleet:
    """A fleet of ``nodes`` nodes for scale tests, mixing the default fleet's GPU types."""
    gpu_pools = [p for p in _SCALE_POOLS if p.gpu is not None]
    system = max(1, int(nodes * system_fraction))
    per_pool, extra = divmod(nodes - system, len(gpu_pools))
    pools = [
        p.model_copy(update={"name": f"scale-{p.name}", "count": per_pool + (1 if i < extra else 0)})
        for i, p in enumerate(gpu_pools)
    ]
    pools.append(Pool(name="scale-system", count=system))
    return Fleet(pools=pools)
