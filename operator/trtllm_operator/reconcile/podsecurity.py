"""Why Pod Security admission refuses a pod the operator renders. Pure.

Pod Security admission judges pods, not the Jobs that create them: a build Job whose pod violates the
namespace's ``pod-security.kubernetes.io/enforce`` level just has no pods, and the refusal is only a
FailedCreate event on the Job, which the operator doesn't watch. So when a build Job has no pod, the
reconcile asks this module whether the pod the spec renders breaks the namespace's level and, if so,
says which field to change. API server's verdict stays authoritative (the Job is always created); this
only explains a refusal. It checks the fields a CR can change (the security contexts); everything else
the operator renders already meets ``restricted``.
"""

from __future__ import annotations

from typing import Any, Final

ENFORCE_LABEL: Final = "pod-security.kubernetes.io/enforce"


def enforce_level(namespace: Any) -> str | None:
    """A Namespace object's Pod Security enforce level (its label), None when unset or unreadable."""
    meta = namespace.get("metadata") if isinstance(namespace, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    level = labels.get(ENFORCE_LABEL) if isinstance(labels, dict) else None
    return level if isinstance(level, str) else None


#: Capabilities the baseline level allows adding (Pod Security Standards, "Capabilities").
BASELINE_CAPABILITIES: Final = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
POD_FIELD: Final = "spec.podSecurityContext"
CONTAINER_FIELD: Final = "spec.securityContext"

Obj = dict[str, Any]


def _seccomp(sc: Obj) -> str | None:
    profile = sc.get("seccompProfile") or {}
    return str(profile["type"]) if "type" in profile else None


def _baseline(pod: Obj, container: Obj) -> list[str]:
    problems = []
    added = set((container.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
    if added:
        problems.append(f"{CONTAINER_FIELD}.capabilities.add has {', '.join(sorted(added))}")
    for field, sc in ((POD_FIELD, pod), (CONTAINER_FIELD, container)):
        if _seccomp(sc) == "Unconfined":
            problems.append(f"{field}.seccompProfile.type is Unconfined")
    return problems


def _restricted(pod: Obj, container: Obj) -> list[str]:
    problems = []
    if container.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{CONTAINER_FIELD}.allowPrivilegeEscalation must be false")
    capabilities = container.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(f'{CONTAINER_FIELD}.capabilities.drop must include "ALL"')
    added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
    if added:
        extra = ", ".join(sorted(added))
        problems.append(f"{CONTAINER_FIELD}.capabilities.add may only have NET_BIND_SERVICE, not {extra}")
    non_root = container.get("runAsNonRoot", pod.get("runAsNonRoot"))
    if non_root is not True:
        problems.append(f"{POD_FIELD}.runAsNonRoot (or {CONTAINER_FIELD}.runAsNonRoot) must be true")
    for field, sc in ((POD_FIELD, pod), (CONTAINER_FIELD, container)):
        if sc.get("runAsUser") == 0:
            problems.append(f"{field}.runAsUser must not be 0")
    if (_seccomp(container) or _seccomp(pod)) not in ("RuntimeDefault", "Localhost"):
        problems.append(f"{POD_FIELD}.seccompProfile.type must be RuntimeDefault or Localhost")
    return problems


def violations(level: str | None, pod: Obj, container: Obj) -> list[str]:
    """What in the rendered pod/container security contexts breaks ``level`` (baseline or restricted)."""
    if level not in ("baseline", "restricted"):
        return []
    problems = _baseline(pod, container)
    if level == "restricted":
        problems += [p for p in _restricted(pod, container) if p not in problems]
    return problems
