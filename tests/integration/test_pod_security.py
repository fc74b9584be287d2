"""Build, cleanup and serving pods pass Pod Security "restricted", judged by the real admission plugin.

Every test namespace here carries ``pod-security.kubernetes.io/enforce=restricted``. The rendered pod
templates are dry-run created as Pods (PSA enforces on pods; for Jobs and Deployments it only warns);
a real engine builds to Ready there (the Job controller's pods are admitted); and a per-CR override
that breaks "restricted" is refused by PSA, which the engine's Stalled condition explains, until the
spec is fixed and the pod-less Job is replaced.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from tests.unit.test_reconcile_engine import NOW
from tests.unit.test_reconcile_service import engine
from tests.unit.test_reconcile_service import observe as observe_service
from tests.unit.test_render import job_of, make_spec
from trtllm_operator.api import reasons as r
from trtllm_operator.reconcile.service import reconcile_service
from trtllm_operator.render.cleanup import render_cleanup_job

pytestmark = pytest.mark.cluster
ENFORCE = {"pod-security.kubernetes.io/enforce": "restricted"}


def _restrict(kube: Kube, namespace: str) -> None:
    kube.core.patch_namespace(namespace, {"metadata": {"labels": ENFORCE}})


def _templates(namespace: str, **overrides: Any) -> dict[str, dict[str, Any]]:
    """The pod templates render/ produces for a build, a cleanup and a serving Deployment."""
    build = job_of(make_spec(**overrides))["spec"]["template"]
    cleanup = render_cleanup_job(namespace, "llama", make_spec(**overrides))["spec"]["template"]
    decision = reconcile_service(
        observe_service({"engineRef": {"name": "llama"}, **overrides}, {"llama": engine()}), NOW
    )
    serving = next(o for o in decision.apply if o["kind"] == "Deployment")["spec"]["template"]
    return {"build": build, "cleanup": cleanup, "serving": serving}


def _dry_run_pod(kube: Kube, namespace: str, name: str, template: dict[str, Any]) -> str:
    """Create ``template`` as a Pod with a server-side dry run: '' when admitted, else the refusal."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **template["metadata"]}}
    pod["spec"] = template["spec"]
    for container in [*pod["spec"].get("initContainers", []), *pod["spec"]["containers"]]:
        for bound in (container.get("resources") or {}).values():  # the typed client wants strings
            bound.update({k: str(v) for k, v in bound.items()})
    try:
        kube.core.create_namespaced_pod(namespace, pod, dry_run="All")
    except client.ApiException as error:
        return str(error.body)
    return ""


def test_every_rendered_pod_template_passes_restricted(kube: Kube, namespace: str) -> None:
    _restrict(kube, namespace)
    for kind, template in _templates(namespace).items():
        assert _dry_run_pod(kube, namespace, f"probe-{kind}", template) == "", kind
    # ...and the judge is awake: the root override is refused, naming the rule it breaks
    root = {"podSecurityContext": {"runAsUser": 0, "runAsNonRoot": False}}
    for kind, template in _templates(namespace, **root).items():
        refusal = _dry_run_pod(kube, namespace, f"probe-root-{kind}", template)
        assert (
            'violates PodSecurity \\"restricted' in refusal or 'violates PodSecurity "restricted' in refusal
        )
        assert "runAsNonRoot" in refusal, (kind, refusal)


def test_engine_builds_to_ready_in_a_restricted_namespace(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    _restrict(kube, engines.namespace)
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}))
    engines.wait_condition("llama", "Ready", "True", timeout=120)
    pod = engines.pods("llama")[0].spec
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.fs_group == 1000


def _failed_create(kube: Kube, namespace: str, job: str) -> str:
    events = [e for e in kube.events_for(namespace, job) if e.reason == "FailedCreate"]
    return events[-1].message if events else ""


def test_an_override_that_breaks_restricted_is_refused_and_explained(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    _restrict(kube, engines.namespace)
    root = {"podSecurityContext": {"runAsUser": 0, "runAsNonRoot": False}}
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}, **root))
    stalled = engines.wait_condition("llama", "Stalled", "True", r.POD_SECURITY_VIOLATION, timeout=60)
    assert "spec.podSecurityContext.runAsUser must not be 0" in stalled["message"]
    assert 'enforces Pod Security "restricted"' in stalled["message"]
    (job,) = engines.jobs("llama")
    # what the Job itself reports: PSA refused every pod it tried to create
    refusal = wait_for(lambda: _failed_create(kube, engines.namespace, job.metadata.name), 30)
    assert 'violates PodSecurity "restricted' in refusal
    assert "runAsUser=0" in refusal
    assert engines.pods("llama") == []
    # fixing the spec replaces the pod-less Job, and the engine builds
    engines.kube.custom.patch_namespaced_custom_object(
        "trtllm.dev",
        "v1alpha1",
        engines.namespace,
        "trtengines",
        "llama",
        {"spec": {"podSecurityContext": None}},
    )
    engines.wait_condition("llama", "Ready", "True", timeout=120)
