"""The Job that removes an engine's files when a TRTEngine with ``deletionPolicy: Delete`` is deleted."""

from __future__ import annotations

from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.render import names
from trtllm_operator.render.security import HOME, container_security_context, pod_security_context


def cleanup_job_name(engine: str) -> str:
    return f"{engine}-cleanup"


def render_cleanup_job(
    namespace: str, name: str, spec: TRTEngineSpec, deadline_seconds: int = 600
) -> dict[str, Any]:
    """A short Job mounting the engine volume and deleting ``<path>/<engine>``; no ownerReference, since
    it must outlive the TRTEngine it cleans up after (ttlSecondsAfterFinished removes it).

    ``activeDeadlineSeconds`` bounds it: a pod that can never schedule fails the Job (DeadlineExceeded)
    instead of blocking the TRTEngine's deletion silently."""
    claim = spec.storage.existingClaim or names.claim_name(name)
    target = f"{c.ENGINES_MOUNT}/{spec.storage.path}/{name}"
    labels = {c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_ENGINE: name, c.LABEL_COMPONENT: c.COMPONENT_CLEANUP}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": cleanup_job_name(name), "namespace": namespace, "labels": labels},
        "spec": {
            "backoffLimit": 2,
            "activeDeadlineSeconds": deadline_seconds,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    # Same placement freedom as the build: GPU-only clusters have only tainted nodes.
                    "tolerations": [
                        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                        *[t.model_dump(exclude_none=True) for t in spec.tolerations or []],
                    ],
                    **({"nodeSelector": dict(spec.nodeSelector)} if spec.nodeSelector else {}),
                    "automountServiceAccountToken": False,
                    # The builder's UID/fsGroup: the files to remove are the ones it wrote.
                    "securityContext": pod_security_context(spec.podSecurityContext),
                    "containers": [
                        {
                            "name": "cleanup",
                            "image": spec.image,
                            "command": ["rm", "-rf", "--one-file-system", target],
                            "volumeMounts": [{"name": "engines", "mountPath": c.ENGINES_MOUNT}],
                            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            "env": [{"name": "HOME", "value": HOME}],
                            "securityContext": container_security_context(spec.securityContext),
                        }
                    ],
                    "volumes": [{"name": "engines", "persistentVolumeClaim": {"claimName": claim}}],
                },
            },
        },
    }
