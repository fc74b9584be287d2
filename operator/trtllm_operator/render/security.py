"""The security contexts of every pod the operator renders (build, cleanup, serving). Pure.

Defaults meet the ``restricted`` Pod Security Standard: runAsNonRoot with UID/GID 1000, fsGroup 1000
(the kubelet makes the engine volume group-writable for the builder; OnRootMismatch skips the
recursive re-own of a large volume that is already right), seccomp RuntimeDefault, and per container
no privilege escalation and every capability dropped. HOME points at /tmp: a UID without a passwd
entry gets HOME=/, where caches (Hugging Face, Triton, torch) can't be written.

A CR's ``podSecurityContext`` / ``securityContext`` override field by field: a set field replaces the
default, an unset one keeps it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

from trtllm_operator.api.security import PodSecurityContext, SecurityContext

DEFAULT_UID: Final = 1000
HOME: Final = "/tmp"
#: Job annotation: which security contexts the Job's pod template carries (a pod-less Job whose
#: settings no longer match the spec is replaced, see reconcile/engine.py).
SECURITY_ANNOTATION: Final = "trtllm.dev/pod-security-sha256"

Obj = dict[str, Any]


def pod_security_context(override: PodSecurityContext | None) -> Obj:
    defaults: Obj = {
        "runAsNonRoot": True,
        "runAsUser": DEFAULT_UID,
        "runAsGroup": DEFAULT_UID,
        "fsGroup": DEFAULT_UID,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {**defaults, **(override.model_dump(mode="json", exclude_none=True) if override else {})}


def container_security_context(override: SecurityContext | None) -> Obj:
    defaults: Obj = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return {**defaults, **(override.model_dump(mode="json", exclude_none=True) if override else {})}


def security_hash(pod: PodSecurityContext | None, container: SecurityContext | None) -> str:
    """16 hex chars identifying the rendered security contexts."""
    data = {"pod": pod_security_context(pod), "container": container_security_context(container)}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
