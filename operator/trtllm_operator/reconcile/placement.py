"""Choose the GPU architecture (and product) an engine is built for, from the nodes the cluster has.

An engine runs only on the compute capability it was built on, so the build must land on the GPU
type that will serve it. This module decides which one, or explains — with the numbers an admin
needs — why no node can take the build. Pure: nodes come in as :class:`GpuNodeFacts`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from trtllm_operator.api import reasons
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.gpu import (
    KV_MIN_CC,
    PRECISION_MIN_CC,
    ComputeCapability,
    GpuNodeFacts,
    arch_name,
    compatibility_problems,
    parse_cc,
    product_cc,
    supported_precisions,
)
from trtllm_operator.gpu.knowledge import ENGINE_INT_BELOW_CC, ENGINE_INT_FORMATS, ENGINE_INT_MAX_CC

#: Bytes per weight parameter by precision (weights only; activations and KV cache come on top).
BYTES_PER_PARAM: Final[dict[str, float]] = {
    "fp16": 2,
    "bf16": 2,
    "fp8": 1,
    "int8_sq": 1,
    "int8_wo": 1,
    "int4_wo": 0.5,
    "int4_awq": 0.5,
    "w4a8_awq": 0.5,
    "nvfp4": 0.5,
}
#: Headroom on top of the raw weights (embeddings kept in higher precision, scales, runtime buffers).
WEIGHT_OVERHEAD: Final = 1.2
_GIB: Final = 1024**3
_MIB: Final = 1024**2
NO_GPU_NODES: Final = "no GPU nodes with GFD labels (nvidia.com/gpu.compute.major/minor)"


@dataclass(frozen=True)
class Placement:
    """The chosen target: what the build pod requires and why it was chosen."""

    cc: ComputeCapability
    product: str | None
    gpus: int  # GPUs of the build pod (a multi-node engine's: one node's share)
    candidate_nodes: int
    reason: str
    #: Pods per serving replica: 1, or more when tensor x pipeline exceeds one node's GPUs (multi-node).
    group_size: int = 1


@dataclass(frozen=True)
class NoFit:
    """No node can take the build: a CamelCase reason (api.reasons) and an actionable message."""

    reason: str
    message: str


@dataclass(frozen=True)
class _Need:
    precision: str
    kv_cache_dtype: str
    backend: str
    gpus: int
    cc: ComputeCapability | None
    product: str | None
    weight_bytes: float | None  # None: model size unknown, not checked


# Why a node doesn't fit, in the order they are checked (the first one is reported).
_ARCH = "arch"
_PRODUCT = "product"
_PRECISION = "precision"
_COUNT = "count"
_MEMORY = "memory"
_UNUSABLE = "unusable"


def _need(spec: TRTEngineSpec) -> _Need:
    target = spec.target
    params = spec.model.parametersBillions
    return _Need(
        precision=spec.precision,
        kv_cache_dtype=spec.kvCacheDtype,
        backend=spec.backend,
        gpus=spec.parallelism.tensor * spec.parallelism.pipeline,
        cc=parse_cc(target.computeCapability) if target and target.computeCapability else None,
        product=target.gpuProduct if target else None,
        weight_bytes=params * 1e9 * BYTES_PER_PARAM[spec.precision] * WEIGHT_OVERHEAD if params else None,
    )


def _node_gpus(node: GpuNodeFacts) -> int:
    """GPUs a pod can get on the node: the GFD count, capped by what the kubelet advertises."""
    return min(node.gpu_count, node.allocatable) if node.allocatable > 0 else node.gpu_count


def _blocker(need: _Need, node: GpuNodeFacts) -> str | None:
    if need.cc is not None and node.cc != need.cc:
        return _ARCH
    if need.product is not None and node.product.removesuffix("-SHARED") != need.product:
        return _PRODUCT
    if compatibility_problems(need.precision, need.kv_cache_dtype, need.backend, node.cc, node.product):
        return _PRECISION
    if _node_gpus(node) < need.gpus:
        return _COUNT
    if (
        need.weight_bytes is not None
        and node.memory_mib
        and need.gpus * node.memory_mib * _MIB < need.weight_bytes
    ):
        return _MEMORY
    if not node.usable:
        return _UNUSABLE
    return None


def _precision_phrase(need: _Need) -> str:
    kv_extra = need.kv_cache_dtype not in ("auto", "fp16", need.precision)
    name = f"{need.precision} with KV cache {need.kv_cache_dtype}" if kv_extra else need.precision
    low = max(PRECISION_MIN_CC[need.precision], KV_MIN_CC[need.kv_cache_dtype])
    engine_int = need.backend == "tensorrt" and (
        need.precision in ENGINE_INT_FORMATS or need.kv_cache_dtype == "int8"
    )
    high = (
        f" and outside {ENGINE_INT_MAX_CC}-{ENGINE_INT_BELOW_CC} exclusive (tensorrt backend)"
        if engine_int
        else ""
    )
    return f"{name} needs compute capability ≥ {low}{high}"


def _pin(need: _Need) -> str:
    """The explicit target in words ("9.0 (Hopper)", "NVIDIA-H100-80GB-HBM3"), empty when none."""
    cc = f"{need.cc} ({arch_name(need.cc)})" if need.cc is not None else ""
    return " ".join(p for p in (need.product or "", cc) if p)


def _needs_sentence(need: _Need) -> str:
    gpus = f"{need.gpus} GPU{'s' if need.gpus != 1 else ''} per node"
    pinned = f", on a {_pin(need)} node as spec.target asks" if _pin(need) else ""
    return f"{_precision_phrase(need)} and {gpus}{pinned}"


def summarize_fleet(nodes: Sequence[GpuNodeFacts]) -> str:
    """The GPU nodes grouped by product, highest compute capability first.

    Each group gives the node count, the product, its compute capability and its GPUs per node.
    """
    if not nodes:
        return NO_GPU_NODES
    groups = Counter((n.cc, n.product, _node_gpus(n)) for n in nodes)
    ordered = sorted(
        groups.items(), key=lambda item: (-item[0][0].major, -item[0][0].minor, item[0][1], -item[0][2])
    )
    return ", ".join(
        f"{count} × {product} ({cc}, {gpus} GPU{'s' if gpus != 1 else ''})"  # noqa: RUF001
        for (cc, product, gpus), count in ordered
    )


def _why_unusable(node: GpuNodeFacts) -> str:
    if not node.schedulable:
        return f"{node.name} is cordoned (kubectl uncordon {node.name})"
    if not node.ready:
        return f"{node.name} is NotReady"
    return (
        f"{node.name} advertises no allocatable nvidia.com/gpu (is the NVIDIA device plugin running there?)"
    )


def _gib(value: float) -> str:
    return f"{value / _GIB:.0f} GiB"


def _count_sentence(need: _Need, nodes: list[GpuNodeFacts]) -> str:
    best = max(_node_gpus(n) for n in nodes)
    products = ", ".join(sorted({n.product for n in nodes}))
    return (
        f"Nodes that can run {need.precision} ({products}) have at most {_plural(best, 'GPU')} "
        f"but tensor × pipeline = {need.gpus}: lower spec.parallelism to {best} or fewer GPUs, or add nodes "  # noqa: RUF001
        f"with {need.gpus} GPUs."
    )


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _memory_sentence(need: _Need, spec: TRTEngineSpec, nodes: list[GpuNodeFacts]) -> str:
    assert need.weight_bytes is not None
    biggest = max(nodes, key=lambda n: n.memory_mib)
    each = biggest.memory_mib * _MIB
    gpus_needed = max(need.gpus, int(-(-need.weight_bytes // each)))
    formula = (
        f"{spec.model.parametersBillions:g}B parameters at {BYTES_PER_PARAM[need.precision]:g} bytes "
        f"({need.precision}) plus {WEIGHT_OVERHEAD - 1:.0%} overhead"
    )
    return (
        f"The weights need about {_gib(need.weight_bytes)} ({formula}) but {_plural(need.gpus, 'GPU')} of "
        f"{biggest.product} hold {_gib(need.gpus * each)} ({_gib(each)} each): raise spec.parallelism.tensor "
        f"to at least {gpus_needed} or choose a smaller precision (e.g. fp8 or int4_awq)."
    )


def _fix_sentence(need: _Need, by_blocker: dict[str, list[GpuNodeFacts]]) -> str:
    """What to change when nodes are ruled out by target or precision (not by size or state)."""
    nodes = [n for group in by_blocker.values() for n in group]
    if not nodes:
        return (
            "Install GPU Feature Discovery (NVIDIA GPU Operator or device plugin with GFD) so GPU nodes get "
            "these labels, or add GPU nodes."
        )
    if _pin(need) and not by_blocker.keys() - {_ARCH, _PRODUCT}:
        return f"No node is a {_pin(need)}: add such nodes, or change or remove spec.target."
    top = max(n.cc for n in nodes)
    options = ", ".join(supported_precisions(need.backend, top))
    return f"Add nodes that meet this, or use a precision the newest GPUs here ({top}) support: {options}."


def _no_fit_message(need: _Need, spec: TRTEngineSpec, nodes: Sequence[GpuNodeFacts]) -> str:
    by_blocker: dict[str, list[GpuNodeFacts]] = {}
    for node in nodes:
        by_blocker.setdefault(_blocker(need, node) or "", []).append(node)
    sentences = [f"{_needs_sentence(need)}; this cluster has {summarize_fleet(nodes)}."]
    if unusable := by_blocker.get(_UNUSABLE):
        sentences.append(
            "These nodes would fit but can't take pods now: "
            + "; ".join(_why_unusable(n) for n in unusable)
            + "."
        )
    if too_small := by_blocker.get(_MEMORY):
        sentences.append(_memory_sentence(need, spec, too_small))
    if too_few := by_blocker.get(_COUNT):
        sentences.append(_count_sentence(need, too_few))
    if not (by_blocker.keys() & {_UNUSABLE, _MEMORY, _COUNT}):
        sentences.append(_fix_sentence(need, by_blocker))
    return " ".join(sentences)


def _target_problem(need: _Need) -> NoFit | None:
    """The explicit target itself can't run the precision / KV dtype / backend."""
    cc = need.cc or (product_cc(need.product) if need.product else None)
    if cc is None:
        return None
    if need.cc is not None and need.product is not None:
        pinned = product_cc(need.product)
        if pinned is not None and pinned != need.cc:
            return NoFit(
                reasons.INVALID_SPEC,
                f"spec.target.gpuProduct {need.product} is compute capability {pinned} but "
                f"spec.target.computeCapability is {need.cc}: fix one of them or drop computeCapability",
            )
    problems = compatibility_problems(need.precision, need.kv_cache_dtype, need.backend, cc, need.product)
    if not problems:
        return None
    return NoFit(reasons.PRECISION_UNSUPPORTED, "; ".join(p.message for p in problems))


def _chosen(need: _Need, fitting: list[GpuNodeFacts]) -> Placement:
    by_cc = Counter(n.cc for n in fitting)
    cc, count = max(by_cc.items(), key=lambda item: (item[0], item[1]))
    if _pin(need):
        verb = "fits" if count == 1 else "fit"
        reason = (
            f"spec.target pins {need.product or cc} ({cc}, {arch_name(cc)}): {_plural(count, 'node')} {verb}"
        )
    else:
        nodes = _plural(count, "node")
        reason = f"highest compute capability with a fitting node: {cc} ({arch_name(cc)}), {nodes}"
        others = [
            f"{other} ({_plural(n, 'node')})"
            for other, n in sorted(by_cc.items(), reverse=True)
            if other != cc
        ]
        if others:
            reason += f"; also fits: {', '.join(others)}"
    return Placement(cc=cc, product=need.product, gpus=need.gpus, candidate_nodes=count, reason=reason)


#: Why a multi-node engine builds on one node (cited in docs/serving.md): trtllm-build's
#: ``parallel_build`` builds every rank's engine in one process tree, rank after rank on the visible
#: GPUs (``build_and_save(rank, rank % workers, ...)``), so no second node is needed to compile a
#: TP8xPP2 engine (see MULTI_NODE_BUILD_SOURCE).
#: The gates are different: trtllm-bench and trtllm-eval load the engine with one MPI rank per GPU,
#: which needs the whole world on several nodes; a multi-node build Job is not supported yet.
MULTI_NODE_BUILD_SOURCE: Final = (
    "NVIDIA/TensorRT-LLM tensorrt_llm/commands/build.py @ 65f1d1536e18aea3380e6e270e00895a709333eb"
)


def group_split(total: int, per_node: int) -> tuple[int, int] | None:
    """(pods, GPUs per pod) for ``total`` GPUs on nodes of ``per_node`` GPUs: the fewest pods that
    share the ranks evenly (TP8xPP2 on 8-GPU nodes: 2 pods of 8). None when there is no even split."""
    if per_node <= 0:
        return None
    pods = -(-total // per_node)
    while pods <= total:
        if total % pods == 0 and total // pods <= per_node:
            return pods, total // pods
        pods += 1
    return None


def _multi_node_fit(need: _Need, node: GpuNodeFacts, per_pod: int) -> bool:
    """The node can hold one pod of a multi-node engine: only its GPU count kept it from the whole."""
    if _blocker(need, node) != _COUNT or _node_gpus(node) < per_pod or not node.usable:
        return False
    return not (
        need.weight_bytes is not None
        and node.memory_mib
        and need.gpus * node.memory_mib * _MIB < need.weight_bytes
    )


def _multi_node(need: _Need, spec: TRTEngineSpec, nodes: Sequence[GpuNodeFacts]) -> Placement | NoFit | None:
    """tensor x pipeline exceeds every node: build on one node, serve across several (LeaderWorkerSet).

    None when no architecture has enough nodes for one group (the single-node message then explains)."""
    options: list[tuple[ComputeCapability, int, int, int]] = []  # (cc, pods, per pod, nodes)
    for cc in sorted({n.cc for n in nodes}, reverse=True):
        same = [n for n in nodes if n.cc == cc and _blocker(need, n) == _COUNT]
        if not same:
            continue
        split = group_split(need.gpus, max(_node_gpus(n) for n in same))
        if split is None:
            continue
        pods, per_pod = split
        fitting = sum(1 for n in same if _multi_node_fit(need, n, per_pod))
        if fitting >= pods:
            options.append((cc, pods, per_pod, fitting))
    if not options:
        return None
    validation = spec.validation
    if validation is not None and (validation.benchmark is not None or validation.accuracy is not None):
        cc, pods, per_pod, _ = options[0]
        return NoFit(
            reasons.MULTI_NODE_VALIDATION_UNSUPPORTED,
            f"tensor × pipeline = {need.gpus} needs {pods} nodes of {per_pod} GPUs ({cc}): the engine "  # noqa: RUF001
            "can be built on one node and served across nodes (LeaderWorkerSet), but its gates "
            "(spec.validation.benchmark / accuracy) would have to run the engine on several nodes, and a "
            "multi-node build Job is not supported yet. Remove spec.validation.benchmark and "
            "spec.validation.accuracy (and serve it with allowUnvalidatedEngines: true), or lower "
            "spec.parallelism to one node's GPUs.",
        )
    cc, pods, per_pod, fitting = options[0]
    reason = (
        f"multi-node: tensor × pipeline = {need.gpus} exceeds one node; {cc} ({arch_name(cc)}) has "  # noqa: RUF001
        f"{_plural(fitting, 'node')} with {per_pod}+ GPUs. The build Job runs on one node with {per_pod} "
        f"GPUs (trtllm-build compiles every rank there); serving takes {pods} pods of {per_pod} GPUs "
        "per replica (LeaderWorkerSet)"
    )
    return Placement(
        cc=cc, product=need.product, gpus=per_pod, candidate_nodes=fitting, reason=reason, group_size=pods
    )


def choose_target(spec: TRTEngineSpec, nodes: Sequence[GpuNodeFacts]) -> Placement | NoFit:
    """Where to build: the spec's explicit target if nodes can take it, else the newest GPU that can.

    A node fits when it is usable (schedulable, Ready, GPUs allocatable), matches spec.target, can
    run the precision / KV dtype / backend, has tensor * pipeline GPUs and — when the model size is
    known — memory for the weights. When no node has that many GPUs but enough nodes of one
    architecture share the ranks evenly, the engine is multi-node (``group_size`` > 1): built on one of
    them, served across ``group_size`` of them.
    """
    need = _need(spec)
    if problem := _target_problem(need):
        return problem
    fitting = [n for n in nodes if _blocker(need, n) is None]
    if not fitting:
        if multi := _multi_node(need, spec, nodes):
            return multi
        return NoFit(reasons.NO_COMPATIBLE_NODES, _no_fit_message(need, spec, nodes))
    return _chosen(need, fitting)
