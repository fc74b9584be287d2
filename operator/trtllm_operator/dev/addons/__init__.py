"""Cluster add-ons: ecosystem parts the local cluster starts only on request.

``LocalCluster.ensure_addons("metrics", "lws")`` (or ``cluster up --addons metrics,lws``) starts the
named ones; ``cluster down`` stops every add-on that runs. Each add-on is a module here with three
functions: ``start(cluster)`` (start it and wait until it is usable; raise ``ClusterError`` with the log
tail when it can't), ``stop(cluster, quiet)`` (stop exactly the processes it started) and
``running(cluster) -> bool``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from trtllm_operator.dev.cluster import LocalCluster

#: name -> module under trtllm_operator.dev.addons
REGISTRY: dict[str, str] = {
    "metrics": "trtllm_operator.dev.addons.metrics",
    "lws": "trtllm_operator.dev.addons.lws",
}


class Addon(Protocol):
    def start(self, cluster: LocalCluster) -> None: ...
    def stop(self, cluster: LocalCluster, quiet: bool) -> None: ...
    def running(self, cluster: LocalCluster) -> bool: ...


def names() -> list[str]:
    """Add-ons whose module is present on this branch."""
    return [name for name in REGISTRY if _find(name) is not None]


def _find(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(REGISTRY[name])
    except ModuleNotFoundError:
        return None


def get(name: str) -> Addon:
    """The add-on called ``name``; ValueError names the known ones."""
    module = _find(name) if name in REGISTRY else None
    if module is None:
        raise ValueError(f"unknown cluster add-on {name!r}; known: {', '.join(names())}")
    return cast("Addon", module)


def parse(text: str | None) -> list[str]:
    """'metrics,lws' -> ['metrics', 'lws'] (blank entries dropped)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]
