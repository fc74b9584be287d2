"""Every pod the operator renders meets Pod Security "restricted" by default; CRs override per field.

The rendered fields are asserted directly here; tests/integration/test_pod_security.py has the real
Pod Security admission judge them.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_reconcile_engine import NOW, job_for, observe, spec
from tests.unit.test_reconcile_service import engine
from tests.unit.test_reconcile_service import observe as observe_service
from tests.unit.test_render import job_of, make_spec
from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.reconcile.engine import PodView, reconcile_engine
from trtllm_operator.reconcile.podsecurity import violations
from trtllm_operator.reconcile.service import reconcile_service
from trtllm_operator.render.cleanup import render_cleanup_job
from trtllm_operator.render.plan import RenderConfig
from trtllm_operator.render.security import security_hash

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "runAsGroup": 1000,
    "fsGroup": 1000,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def build_pod(**overrides: Any) -> dict[str, Any]:
    pod: dict[str, Any] = job_of(make_spec(**overrides))["spec"]["template"]["spec"]
    return pod


def cleanup_pod(**overrides: Any) -> dict[str, Any]:
    job = render_cleanup_job("ml", "llama", make_spec(**overrides))
    pod: dict[str, Any] = job["spec"]["template"]["spec"]
    return pod


def serving_pod(**overrides: Any) -> dict[str, Any]:
    decision = reconcile_service(
        observe_service({"engineRef": {"name": "llama"}, **overrides}, {"llama": engine()}), NOW
    )
    deployment = next(o for o in decision.apply if o["kind"] == "Deployment")
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


@pytest.mark.parametrize("render", [build_pod, cleanup_pod, serving_pod], ids=["build", "cleanup", "serving"])
def test_every_pod_is_restricted_by_default(render: Any) -> None:
    pod = render()
    assert pod["securityContext"] == RESTRICTED_POD
    for container in containers(pod):  # init containers too: PSA checks every one
        assert container["securityContext"] == RESTRICTED_CONTAINER, container["name"]
        assert {"name": "HOME", "value": "/tmp"} in container.get("env", []) or container["name"] == (
            "install-builder"
        )
    assert violations("restricted", pod["securityContext"], RESTRICTED_CONTAINER) == []


def test_build_pod_has_both_containers_confined() -> None:
    assert [c["name"] for c in containers(build_pod())] == ["install-builder", "builder"]


@pytest.mark.parametrize("render", [build_pod, cleanup_pod, serving_pod], ids=["build", "cleanup", "serving"])
def test_overrides_replace_only_the_fields_they_set(render: Any) -> None:
    pod = render(
        podSecurityContext={"runAsUser": 2000, "fsGroup": 3000},
        securityContext={
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        },
    )
    assert pod["securityContext"] == {**RESTRICTED_POD, "runAsUser": 2000, "fsGroup": 3000}
    for container in containers(pod):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
        }


def test_the_cleanup_pod_runs_as_the_builder_did() -> None:
    """It removes the files the builder wrote: same UID and fsGroup as the build pod."""
    overrides = {"podSecurityContext": {"runAsUser": 4242, "fsGroup": 4343}}
    assert cleanup_pod(**overrides)["securityContext"] == build_pod(**overrides)["securityContext"]


def test_build_job_records_its_security_contexts() -> None:
    engine_spec = make_spec(podSecurityContext={"runAsUser": 2000})
    job = job_of(engine_spec)
    wanted = security_hash(engine_spec.podSecurityContext, None)
    assert job["metadata"]["annotations"]["trtllm.dev/pod-security-sha256"] == wanted
    assert wanted != security_hash(None, None)


# ------------------------------------------------------------------ explaining a refusal
PENDING = PodView("p", "Pending", "2026-11-26T11:00:00Z")
ROOT = {"podSecurityContext": {"runAsUser": 0, "runAsNonRoot": False}}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            ROOT["podSecurityContext"],
            ["spec.podSecurityContext.runAsNonRoot", "spec.podSecurityContext.runAsUser must not be 0"],
        ),
        (
            {"seccompProfile": {"type": "Unconfined"}},
            ["spec.podSecurityContext.seccompProfile.type is Unconfined"],
        ),
    ],
)
def test_violations_name_the_field_to_fix(override: dict[str, Any], expected: list[str]) -> None:
    pod = build_pod(podSecurityContext=override)["securityContext"]
    found = violations("restricted", pod, RESTRICTED_CONTAINER)
    for text in expected:
        assert any(text in v for v in found), found


def test_container_violations() -> None:
    pod = build_pod()["securityContext"]
    container = {"allowPrivilegeEscalation": True, "capabilities": {"add": ["SYS_ADMIN"]}}
    found = violations("restricted", pod, container)
    assert "spec.securityContext.allowPrivilegeEscalation must be false" in found
    assert 'spec.securityContext.capabilities.drop must include "ALL"' in found
    assert "spec.securityContext.capabilities.add has SYS_ADMIN" in found  # baseline already refuses it
    assert violations("baseline", pod, container) == ["spec.securityContext.capabilities.add has SYS_ADMIN"]
    assert violations("privileged", pod, container) == violations(None, pod, container) == []


def test_a_podless_build_job_in_a_restricted_namespace_stalls_with_the_reason() -> None:
    raw = spec(**ROOT)
    job = job_for(raw, security_hash=_hash(raw))
    decision = reconcile_engine(
        observe(raw, jobs=(job,), pod_security_level="restricted"), RenderConfig(), NOW
    )
    stalled = next(c for c in decision.status.conditions if c.type == r.STALLED)
    assert (stalled.status, stalled.reason) == ("True", r.POD_SECURITY_VIOLATION)
    assert 'enforces Pod Security "restricted"' in stalled.message
    assert "spec.podSecurityContext.runAsUser must not be 0" in stalled.message
    assert decision.status.phase == "Stalled"
    assert [e.reason for e in decision.events] == [r.POD_SECURITY_VIOLATION]
    # the same Job elsewhere (no enforce label) or once it has a pod: no such claim
    for obs in (
        observe(raw, jobs=(job,)),
        observe(
            raw,
            jobs=(job_for(raw, pods=(PodView("p", "Pending", "2026-11-26T11:00:00Z"),)),),
            pod_security_level="restricted",
        ),
    ):
        reasons = {c.reason for c in reconcile_engine(obs, RenderConfig(), NOW).status.conditions}
        assert r.POD_SECURITY_VIOLATION not in reasons


def _hash(raw: dict[str, Any]) -> str:
    parsed = TRTEngineSpec.model_validate(raw)
    return security_hash(parsed.podSecurityContext, parsed.securityContext)


def test_a_podless_job_with_stale_security_contexts_is_replaced() -> None:
    raw = spec()  # fixed: the defaults again
    stale = job_for(raw, security_hash=_hash(spec(**ROOT)))
    decision = reconcile_engine(
        observe(raw, jobs=(stale,), pod_security_level="restricted"), RenderConfig(), NOW
    )
    assert decision.delete_jobs == [stale.name]
    assert decision.status.phase == "Building"
    current = job_for(raw, security_hash=_hash(raw))
    assert reconcile_engine(observe(raw, jobs=(current,)), RenderConfig(), NOW).delete_jobs == []
