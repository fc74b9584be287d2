"""Start the operator: kopf's watch machinery plus our reconcile workers."""

from __future__ import annotations

import asyncio
import logging

import kopf


def run_operator(
    namespace: list[str] | None = None, liveness: str | None = None, verbose: bool = False
) -> int:
    """Run until interrupted. ``namespace``: watch only these namespaces (nodes are always cluster-wide)."""
    from trtllm_operator.handlers import watch  # registers the handlers

    del watch
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=not namespace,
            namespaces=namespace or (),
            liveness_endpoint=liveness,
        )
    )
    return 0
