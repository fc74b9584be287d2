"""Deterministic child names, labels and the build-config hash.

Children are named from the engine name and the hash of the engine-relevant spec, never with
``generateName``: after a crash the operator finds (and adopts) what it created instead of
duplicating it, and a spec change that doesn't change the engine doesn't start a new build.
"""

from __future__ import annotations

import hashlib
import json

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import TRTEngineSpec

#: Spec fields that change the engine files (or the gates that decide whether they are promoted).
#: Pod placement and lifecycle knobs (resources, nodeSelector, tolerations, priorityClassName,
#: activeDeadlineSeconds, backoffLimit, deletionPolicy, storage) are deliberately absent.
HASHED_FIELDS: frozenset[str] = frozenset(
    {
        "model",
        "backend",
        "image",
        "precision",
        "kvCacheDtype",
        "calibration",
        "parallelism",
        "target",
        "build",
        "validation",
    }
)
#: Inside spec.model, a Secret reference names credentials, not weights: rotating it is no rebuild.
_UNHASHED_MODEL_FIELDS: frozenset[str] = frozenset({"tokenSecretRef"})

APP_NAME = "trtllm-engine"


def build_config_hash(spec: TRTEngineSpec) -> str:
    """8 hex chars of sha256 over canonical JSON of the engine-relevant spec fields.

    Defaults are filled in before hashing, so spelling out a default doesn't change the hash, and
    unset optional fields are dropped, so adding a new optional API field keeps old hashes stable.
    """
    data = spec.model_dump(mode="json", include=set(HASHED_FIELDS), exclude_none=True)
    data["model"] = {k: v for k, v in data["model"].items() if k not in _UNHASHED_MODEL_FIELDS}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def job_name(engine: str, config_hash: str) -> str:
    return f"{engine}-build-{config_hash}"


def plan_configmap_name(engine: str, config_hash: str) -> str:
    return f"{engine}-plan-{config_hash}"


def claim_name(engine: str) -> str:
    """The PVC the operator creates when ``spec.storage.claim`` is set."""
    return f"{engine}-engines"


def labels(engine: str, revision: int, config_hash: str) -> dict[str, str]:
    """Labels on every build child, so ``kubectl get all -l trtllm.dev/engine=NAME`` finds them."""
    return {
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_NAME: APP_NAME,
        c.LABEL_COMPONENT: c.COMPONENT_BUILD,
        c.LABEL_ENGINE: engine,
        c.LABEL_REVISION: str(revision),
        c.LABEL_CONFIG_HASH: config_hash,
    }
