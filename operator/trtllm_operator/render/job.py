"""Render the children of a TRTEngine revision: the engine PVC, the plan ConfigMap and the build Job.

The Job is pinned to the chosen GPU architecture by required node affinity on the GFD labels, asks
for exactly tensor x pipeline GPUs, and fails at once (podFailurePolicy) on the builder's
deterministic exit codes instead of burning retries; node disruptions don't count as failures. The
build pod has no API access (no service-account token): it reports through its termination message.
"""

from __future__ import annotations

import hashlib
import shlex
from typing import Any, Final

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import BuildPlan
from trtllm_operator.gpu import GFD
from trtllm_operator.render.names import claim_name, job_name, labels, plan_configmap_name
from trtllm_operator.render.plan import RenderConfig, TargetLike, engine_claim, source_claims
from trtllm_operator.render.security import (
    HOME,
    SECURITY_ANNOTATION,
    container_security_context,
    pod_security_context,
    security_hash,
)

BUILDER_CONTAINER: Final = "builder"
INSTALL_CONTAINER: Final = "install-builder"
BUILDER_DIR: Final = "/opt/trtllm-operator"
BUILDER_SITE: Final = "/app/site/."
PLAN_ANNOTATION: Final = "trtllm.dev/plan-sha256"
STEPS_FILE: Final = "steps.sh"

Obj = dict[str, Any]


def owner_reference(obj: Obj) -> Obj:
    """A controller ownerReference to ``obj`` (a TRTEngine as the API returns it)."""
    meta = obj["metadata"]
    return {
        "apiVersion": obj.get("apiVersion", c.API_VERSION),
        "kind": obj.get("kind", c.ENGINE_KIND),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(name: str, namespace: str, plan: BuildPlan, owner: Obj | None) -> Obj:
    meta: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": labels(plan.engine_name, plan.revision, plan.build_config_hash),
    }
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def plan_sha256(plan: BuildPlan) -> str:
    return hashlib.sha256(plan.to_json().encode()).hexdigest()


def steps_script(plan: BuildPlan) -> str:
    """Every step's command, shell-quoted, one per line: for human reviewers (the builder reads plan.json)."""
    lines = [
        f"# Build plan of TRTEngine {plan.namespace}/{plan.engine_name}, revision {plan.revision}, "
        f"build-config hash {plan.build_config_hash}",
        f"# target: compute capability {plan.target_cc}"
        + (f", {plan.target_product}" if plan.target_product else "")
        + f", {plan.tensor * plan.pipeline} GPU(s); image {plan.image}",
        "# For review only: the builder runs plan.json, not this file.",
        *(f"# note: {note}" for note in plan.notes),
    ]
    for step in plan.steps:
        if not step.argv:
            lines.append(f"# {step.name}: done by the builder itself")
            continue
        redirect = f" > {shlex.quote(step.stdout)}" if step.stdout else ""
        lines.append(f"# {step.name}")
        lines.append(shlex.join(step.argv) + redirect)
    return "\n".join(lines) + "\n"


def render_claim(
    namespace: str, name: str, spec: TRTEngineSpec, plan: BuildPlan, owner: Obj | None
) -> Obj | None:
    """The engine PVC when spec.storage.claim asks for one. Owned only with deletionPolicy Delete."""
    template = spec.storage.claim
    if template is None:
        return None
    meta = _meta(claim_name(name), namespace, plan, owner if spec.deletionPolicy == "Delete" else None)
    meta["labels"] = {
        k: v for k, v in meta["labels"].items() if k not in (c.LABEL_REVISION, c.LABEL_CONFIG_HASH)
    }
    claim_spec: Obj = {
        "accessModes": list(template.accessModes),
        "resources": {"requests": {"storage": template.size}},
    }
    if template.storageClassName:
        claim_spec["storageClassName"] = template.storageClassName
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": claim_spec}


def render_plan_configmap(namespace: str, plan: BuildPlan, owner: Obj | None) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(
            plan_configmap_name(plan.engine_name, plan.build_config_hash), namespace, plan, owner
        ),
        "data": {c.PLAN_FILE: plan.to_json(), STEPS_FILE: steps_script(plan)},
    }


def _affinity(placement: TargetLike) -> Obj:
    expressions = [
        {"key": GFD.COMPUTE_MAJOR, "operator": "In", "values": [str(placement.cc.major)]},
        {"key": GFD.COMPUTE_MINOR, "operator": "In", "values": [str(placement.cc.minor)]},
    ]
    if placement.product:
        expressions.append({"key": GFD.PRODUCT, "operator": "In", "values": [placement.product]})
    required = {"nodeSelectorTerms": [{"matchExpressions": expressions}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": required}}


def _tolerations(spec: TRTEngineSpec) -> list[Obj]:
    extra = [t.model_dump(exclude_none=True) for t in spec.tolerations or []]
    return [{"key": GFD.TAINT_KEY, "operator": "Exists"}, *extra]


def _resources(spec: TRTEngineSpec, gpus: int) -> Obj:
    requests = dict(spec.resources.requests or {}) if spec.resources else {}
    limits = dict(spec.resources.limits or {}) if spec.resources else {}
    requests[GFD.RESOURCE] = gpus
    limits[GFD.RESOURCE] = gpus
    return {"requests": requests, "limits": limits}


def _volumes(name: str, spec: TRTEngineSpec, plan: BuildPlan) -> tuple[list[Obj], list[Obj]]:
    """Volumes and the builder's mounts: engines (rw), sources (ro, /models/<claim>), plan, shm, builder."""
    engines = engine_claim(name, spec)
    volumes: list[Obj] = [
        {"name": "engines", "persistentVolumeClaim": {"claimName": engines}},
        {"name": "plan", "configMap": {"name": plan_configmap_name(name, plan.build_config_hash)}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        {"name": "builder", "emptyDir": {}},
    ]
    mounts: list[Obj] = [
        {"name": "engines", "mountPath": c.ENGINES_MOUNT},
        {"name": "plan", "mountPath": c.PLAN_MOUNT, "readOnly": True},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {"name": "builder", "mountPath": BUILDER_DIR, "readOnly": True},
    ]
    for index, claim in enumerate(source_claims(plan)):
        volume = "engines" if claim == engines else f"source-{index}"
        if volume != "engines":
            volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": volume, "mountPath": f"{c.MODELS_MOUNT}/{claim}", "readOnly": True})
    return volumes, mounts


def _env(spec: TRTEngineSpec, plan: BuildPlan) -> list[Obj]:
    env: list[Obj] = [{"name": "PYTHONPATH", "value": BUILDER_DIR}, {"name": "HOME", "value": HOME}]
    ref = spec.model.tokenSecretRef
    if ref is not None and plan.model.token_env:
        secret = {"secretKeyRef": {"name": ref.name, "key": ref.key}}
        env.append({"name": plan.model.token_env, "valueFrom": secret})
    return env


def _pod_spec(
    name: str, spec: TRTEngineSpec, plan: BuildPlan, placement: TargetLike, cfg: RenderConfig
) -> Obj:
    volumes, mounts = _volumes(name, spec, plan)
    container_security = container_security_context(spec.securityContext)
    install = {
        "name": INSTALL_CONTAINER,
        "image": cfg.builder_image,
        "command": ["cp", "-a", BUILDER_SITE, f"{BUILDER_DIR}/"],
        "volumeMounts": [{"name": "builder", "mountPath": BUILDER_DIR}],
        "securityContext": dict(container_security),
    }
    builder = {
        "name": BUILDER_CONTAINER,
        "image": spec.image,
        "command": ["python3", "-m", "trtllm_operator.builder", "--plan", f"{c.PLAN_MOUNT}/{c.PLAN_FILE}"],
        "env": _env(spec, plan),
        "resources": _resources(spec, placement.gpus),
        "volumeMounts": mounts,
        "terminationMessagePath": c.TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": dict(container_security),
    }
    pod: Obj = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(spec.podSecurityContext),
        "affinity": _affinity(placement),
        "tolerations": _tolerations(spec),
        "initContainers": [install],
        "containers": [builder],
        "volumes": volumes,
    }
    if spec.nodeSelector:
        pod["nodeSelector"] = dict(spec.nodeSelector)
    if spec.priorityClassName:
        pod["priorityClassName"] = spec.priorityClassName
    return pod


def render_job(
    owner: Obj | None,
    namespace: str,
    name: str,
    spec: TRTEngineSpec,
    plan: BuildPlan,
    placement: TargetLike,
    cfg: RenderConfig,
) -> Obj:
    meta = _meta(job_name(name, plan.build_config_hash), namespace, plan, owner)
    meta["annotations"] = {SECURITY_ANNOTATION: security_hash(spec.podSecurityContext, spec.securityContext)}
    failure_policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": BUILDER_CONTAINER,
                    "operator": "In",
                    "values": list(c.FATAL_EXIT_CODES),
                },
            },
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]
    }
    template = {
        "metadata": {"labels": dict(meta["labels"]), "annotations": {PLAN_ANNOTATION: plan_sha256(plan)}},
        "spec": _pod_spec(name, spec, plan, placement, cfg),
    }
    job_spec = {
        "backoffLimit": spec.backoffLimit,
        "activeDeadlineSeconds": spec.activeDeadlineSeconds,
        "podFailurePolicy": failure_policy,
        "template": template,
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job_spec}


def render_engine_children(
    owner: Obj | None,
    namespace: str,
    name: str,
    spec: TRTEngineSpec,
    plan: BuildPlan,
    placement: TargetLike,
    cfg: RenderConfig,
) -> list[Obj]:
    """In creation order: the engine PVC (when spec.storage.claim), the plan ConfigMap, the build Job."""
    claim = render_claim(namespace, name, spec, plan, owner)
    children = [claim] if claim is not None else []
    children.append(render_plan_configmap(namespace, plan, owner))
    children.append(render_job(owner, namespace, name, spec, plan, placement, cfg))
    return children
