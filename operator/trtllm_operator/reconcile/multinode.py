"""Multi-node serving decisions, pure: does an engine need a LeaderWorkerSet, in what shape, and how
far along is one.

An engine needs ``tensor x pipeline`` GPUs. When that exceeds the GPUs of one node of the
architecture it was built for (GFD's ``nvidia.com/gpu.count``, capped by allocatable, of the Nodes in
the cache), it is served by a LeaderWorkerSet of ``ceil(tp*pp / gpus per node)`` pods per replica
(evened out: TP8xPP2 on 8-GPU nodes -> 2 pods of 8 GPUs).

Readiness: LWS v0.8.0 counts a group in ``status.readyReplicas`` when its leader pod is Running and
Ready and its worker StatefulSet ``StatefulsetReady`` — which only compares ``spec.replicas`` with
``status.replicas`` and the current with the update revision, *not* the workers' readiness
(pkg/controllers/leaderworkerset_controller.go and pkg/utils/statefulset/statefulset_utils.go @
v0.8.0). A group with an unready worker would count as ready. So the operator also reads the worker
pods (from its pod cache) and counts a group ready only when LWS does *and* all ``size - 1`` of its
workers are Ready; the service is Ready only when every wanted group is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.gpu import GpuNodeFacts
from trtllm_operator.gpu.knowledge import parse_cc
from trtllm_operator.reconcile.placement import group_split


@dataclass(frozen=True)
class GroupShape:
    """One serving replica of a multi-node engine: ``size`` pods of ``gpus_per_pod`` GPUs."""

    size: int
    gpus_per_pod: int
    gpus_per_node: int


@dataclass(frozen=True)
class ShapeProblem:
    """Multi-node, but the ranks can't be split evenly over the nodes: the message says why."""

    message: str


def _node_gpus(node: GpuNodeFacts) -> int:
    return min(node.gpu_count, node.allocatable) if node.allocatable > 0 else node.gpu_count


def serving_shape(
    engine_spec: TRTEngineSpec, engine: EngineStatus, nodes: Sequence[GpuNodeFacts]
) -> GroupShape | ShapeProblem | None:
    """None: one pod holds the engine (a Deployment); else the group shape or why there is none.

    Nodes of the engine's compute capability (and spec.target.gpuProduct, when pinned) decide; with no
    such node in the cache nothing can be told and the engine is served as today (a Deployment whose
    pods wait for a node)."""
    world = engine_spec.parallelism.tensor * engine_spec.parallelism.pipeline
    try:
        cc = parse_cc(engine.computeCapability)
    except ValueError:
        return None
    product = engine_spec.target.gpuProduct if engine_spec.target else None
    same = [
        n for n in nodes if n.cc == cc and (product is None or n.product.removesuffix("-SHARED") == product)
    ]
    if not same:
        return None
    per_node = max(_node_gpus(n) for n in same)
    if world <= per_node:
        return None
    split = group_split(world, per_node)
    if split is None:
        return ShapeProblem(
            f"tensor × pipeline = {world} can't be split evenly over nodes of {per_node} GPUs "  # noqa: RUF001
            f"({engine.computeCapability}): choose a parallelism that divides into equal per-node shares"
        )
    return GroupShape(size=split[0], gpus_per_pod=split[1], gpus_per_node=per_node)


def _pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        isinstance(x, dict) and x.get("type") == "Ready" and x.get("status") == "True"
        for x in status.get("conditions") or []
    )


def groups_with_ready_workers(workers: list[dict[str, Any]], size: int) -> set[str]:
    """Group indexes (label) whose ``size - 1`` workers all exist and are Ready."""
    by_group: dict[str, list[bool]] = {}
    for pod in workers:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        group = str((meta.get("labels") or {}).get(c.LWS_LABEL_GROUP_INDEX, ""))
        by_group.setdefault(group, []).append(_pod_ready(pod))
    return {g for g, ready in by_group.items() if g and len(ready) >= size - 1 and all(ready)}


def lws_rollout(
    lws: dict[str, Any] | None, wanted: int | None, workers: list[dict[str, Any]] | None = None
) -> tuple[bool, bool, str, int, int]:
    """(done, stalled, message, replicas, ready) for one LeaderWorkerSet; replicas count groups, and a
    group is ready when LWS says so and every one of its workers is Ready."""
    if lws is None:
        return False, False, "LeaderWorkerSet not created yet", 0, 0
    meta, st = lws.get("metadata") or {}, lws.get("status") or {}
    spec = lws.get("spec") or {}
    size = int((spec.get("leaderWorkerTemplate") or {}).get("size") or 1)

    def number(value: Any) -> int:
        try:
            return int(value or 0)
        except (TypeError, ValueError):
            return 0

    replicas, ready, updated = (
        number(st.get("replicas")),
        number(st.get("readyReplicas")),
        number(st.get("updatedReplicas")),
    )
    if size > 1:
        ready = min(ready, len(groups_with_ready_workers(workers or [], size)))
    desired = number(spec.get("replicas")) if wanted is None else wanted
    conditions = {x.get("type"): x.get("status") for x in st.get("conditions") or [] if isinstance(x, dict)}
    done = (
        ready >= desired
        and updated >= desired
        and conditions.get("Available") == "True"
        and conditions.get("UpdateInProgress") != "True"
    )
    message = (
        f"{meta.get('name')}: {ready}/{desired} groups ready (a group is ready when all {size} of its "
        f"pods are), {updated} updated"
    )
    return done, False, message, replicas, ready
