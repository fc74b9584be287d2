"""Path prefix rewriting of a build plan (``--remap SRC=DST``).

The operator renders plans with in-pod paths (``/engines/...``, ``/models/...``,
``/app/tensorrt_llm/examples/...``). The simulated cluster runs this very builder on the host, where
those directories live elsewhere; rewriting the prefixes is the *only* difference between the
simulated run and the real one, so the code under test is the code that ships.

A string is rewritten when it equals ``SRC`` or starts with ``SRC + "/"`` (so ``/engines`` never
rewrites ``/engines-old``). The rule applies to every string of the plan — the ``paths`` block,
``model.local_dir``, ``calibration.local_dir``, each argv element, and any path field added later —
except ``paths.uri``, which names the volume (``pvc://...``) and is reported, never opened.
Longer prefixes win, so ``/engines/a=/x`` and ``/engines=/y`` can be combined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trtllm_operator.api.plan import BuildPlan

Remap = tuple[str, str]


class RemapError(ValueError):
    """A ``--remap`` argument that is not ``SRC=DST`` with two absolute paths."""


def parse_remap(text: str) -> Remap:
    """``"/engines=/tmp/e"`` -> ``("/engines", "/tmp/e")`` (trailing slashes dropped)."""
    src, sep, dst = text.partition("=")
    src, dst = src.rstrip("/"), dst.rstrip("/") or "/"
    if not sep or not src.startswith("/") or not dst.startswith("/"):
        raise RemapError(f"--remap must be SRC=DST with absolute paths (SRC not /), got {text!r}")
    return src, dst


def remap_path(value: str, remaps: Sequence[Remap]) -> str:
    """``value`` with the longest matching ``SRC`` prefix replaced by its ``DST``."""
    for src, dst in sorted(remaps, key=lambda pair: len(pair[0]), reverse=True):
        if value == src:
            return dst
        if value.startswith(src + "/"):
            return dst.rstrip("/") + value[len(src) :]
    return value


def _remap_tree(node: Any, remaps: Sequence[Remap]) -> Any:
    if isinstance(node, str):
        return remap_path(node, remaps)
    if isinstance(node, dict):
        return {key: _remap_tree(value, remaps) for key, value in node.items()}
    if isinstance(node, list):
        return [_remap_tree(item, remaps) for item in node]
    return node


def remap_plan(plan: BuildPlan, remaps: Sequence[Remap]) -> BuildPlan:
    """A copy of ``plan`` with every path-like string rewritten (``paths.uri`` kept)."""
    if not remaps:
        return plan
    data = plan.model_dump(mode="json")
    uri = data["paths"]["uri"]
    remapped = _remap_tree(data, remaps)
    remapped["paths"]["uri"] = uri
    return BuildPlan.model_validate(remapped)
