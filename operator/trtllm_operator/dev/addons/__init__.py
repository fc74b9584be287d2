"""Optional ecosystem parts of the local cluster, started on request (never by a plain ``cluster up``).

Each add-on is a module here with ``start(cluster)``, ``stop(cluster, quiet)`` and
``running(cluster) -> bool``; ``LocalCluster.ensure_addons(...)`` starts the ones not running and
waits until they are usable, ``LocalCluster.down`` stops them all.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from trtllm_operator.dev.cluster import LocalCluster

#: name -> module (under trtllm_operator.dev.addons)
ADDONS: dict[str, str] = {"lws": "trtllm_operator.dev.addons.lws"}


class Addon(Protocol):
    def start(self, cluster: LocalCluster) -> None: ...
    def stop(self, cluster: LocalCluster, quiet: bool) -> None: ...
    def running(self, cluster: LocalCluster) -> bool: ...


def addon(name: str) -> Addon:
    """The add-on module called ``name``; KeyError names the known ones."""
    if name not in ADDONS:
        raise KeyError(f"unknown cluster add-on {name!r}; known: {', '.join(sorted(ADDONS))}")
    module: ModuleType = importlib.import_module(ADDONS[name])
    return cast(Addon, module)
