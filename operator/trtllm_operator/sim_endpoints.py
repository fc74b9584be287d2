"""Simulation only: the local cluster's serving pods answer on loopback, not on their pod IPs. The sim
executor writes ``podIP:port`` -> ``127.0.0.1:port`` to a JSON file (``.cluster/serving-endpoints.json``);
the load generator and, when told by ``TRTLLM_SIM_ENDPOINTS_FILE``, the canary's accuracy probe read it."""

from __future__ import annotations

import json
from pathlib import Path


def read_mapping(path: Path) -> dict[str, str]:
    """The sim's ``podIP:port`` -> loopback map; missing, half-written or malformed means empty."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}
