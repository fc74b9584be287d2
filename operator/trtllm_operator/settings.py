"""Operator settings, read once from the environment (the Helm chart and manifests set them)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _selector(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


@dataclass(frozen=True)
class OperatorSettings:
    #: Cluster-wide limit on build Jobs running at once (0: unlimited); further builds wait as Queued.
    max_concurrent_builds: int = 4
    #: Image of the operator, whose Python package the build pod's init container copies in.
    builder_image: str = "ghcr.io/trtllm-operator/trtllm-operator:0.1.0"
    #: Only nodes with these labels count as GPU capacity, and build/serving pods are pinned to them.
    node_selector: dict[str, str] = field(default_factory=dict)
    #: Every engine is reconciled at least this often even without events (level-based safety net).
    resync_seconds: float = 60.0
    #: Worker threads reconciling different objects concurrently.
    workers: int = 4

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorSettings:
        source = os.environ if env is None else env
        return cls(
            max_concurrent_builds=int(source.get("TRTLLM_MAX_CONCURRENT_BUILDS", "4")),
            builder_image=source.get("TRTLLM_BUILDER_IMAGE", cls.builder_image),
            node_selector=_selector(source.get("TRTLLM_NODE_SELECTOR", "")),
            resync_seconds=float(source.get("TRTLLM_RESYNC_SECONDS", "60")),
            workers=int(source.get("TRTLLM_WORKERS", "4")),
        )
