"""The canary Deployment of an engine-revision canary: the stable Deployment's twin serving the new
revision, with the same Service selector labels, its own selector (track=canary) and its own replicas.
Pure."""

from __future__ import annotations

import copy
from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.api.service import CanarySpec

CANARY_SUFFIX = "-canary"


def canary_deployment_name(stable: str) -> str:
    return f"{stable}{CANARY_SUFFIX}"


def canary_replicas(spec: CanarySpec, stable_replicas: int) -> tuple[int, float]:
    """(canary pods, the real traffic share in percent). The Service spreads requests by endpoints, so
    the share is canary pods / all pods: for trafficPercent p the canary gets the pod count closest to
    p% of all pods, at least 1."""
    stable = max(0, stable_replicas)
    if spec.trafficPercent is not None:
        p = spec.trafficPercent
        pods = max(1, round(p * stable / (100 - p)))
    else:
        pods = spec.replicas or 1
    return pods, round(100.0 * pods / (pods + stable), 1)


def render_canary(stable_rendered: dict[str, Any], replicas: int) -> dict[str, Any]:
    """The canary twin of a rendered stable Deployment (rendered for the new revision)."""
    dep = copy.deepcopy(stable_rendered)
    meta, spec = dep["metadata"], dep["spec"]
    meta["name"] = canary_deployment_name(meta["name"])
    meta["labels"] = {**meta.get("labels", {}), c.LABEL_TRACK: c.TRACK_CANARY}
    spec["selector"]["matchLabels"] = {**spec["selector"]["matchLabels"], c.LABEL_TRACK: c.TRACK_CANARY}
    spec["template"]["metadata"]["labels"][c.LABEL_TRACK] = c.TRACK_CANARY
    spec["replicas"] = replicas
    return dep
