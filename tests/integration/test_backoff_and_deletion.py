"""Errors back off and deletion always finishes, end to end on the real control plane (issue #13).

- A write the CRD accepts but the API server refuses (a ResourceQuota forbids Jobs): the engine says
  ApplyFailed in a short message without HTTP headers, the operator's error reconciles and status
  writes stay within its backoff (counted from its own /metrics, not timed), and removing the quota
  lets the build go on.
- Deleting a namespace full of ``deletionPolicy: Delete`` engines completes (the namespace goes).
- A cleanup pod that can never schedule shows in the engine's condition, and the deletion still
  finishes once the cleanup Job's deadline passes.
- An engine whose spec the operator can't parse is deletable.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.support import REPO, Engines, Kube, OperatorProcess, engine_manifest, wait_for
from trtllm_operator.api import reasons as r

pytestmark = pytest.mark.cluster
RECONCILE = "trtllm_operator_reconcile_total"
REQUESTS = "trtllm_operator_api_requests_total"
#: The work queue's backoff (0.1 s doubling, see workqueue.Backoff) allows about 9 failed reconciles in
#: 30 s; a hot loop would make hundreds. The bound leaves room for the jitter and a resync.
ERRORS_IN_30S = 14


def _quota(kube: Kube, namespace: str) -> None:
    quota = {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    kube.core.create_namespaced_resource_quota(namespace, quota)

    def enforced() -> bool:  # the quota controller fills status.hard before admission uses it
        status = kube.core.read_namespaced_resource_quota("no-jobs", namespace).status
        return bool(status and status.hard)

    wait_for(enforced, 30, what="ResourceQuota status")


def test_a_refused_write_backs_off_reads_well_and_recovers(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    _quota(kube, engines.namespace)
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}))
    failed = engines.wait_condition("llama", "Ready", "False", r.APPLY_FAILED, timeout=60)
    message = failed["message"]
    assert "403" in message
    assert "exceeded quota" in message
    for header in ("Audit-Id", "Date", "HTTP response headers", "Content-Type"):
        assert header not in message
    assert len(message) < 600
    assert engines.condition("llama", "Reconciling")["status"] == "True"  # kstatus: InProgress, retrying

    errors = operator.metric_sum(RECONCILE, kind="TRTEngine", result="error")
    patches = operator.metric_sum(REQUESTS, verb="patch")
    refused = operator.metric_sum(REQUESTS, verb="create", code="403")
    time.sleep(30)  # a window to count in; nothing here asserts how long anything took
    errors_in_window = operator.metric_sum(RECONCILE, kind="TRTEngine", result="error") - errors
    assert 1 <= errors_in_window <= ERRORS_IN_30S, errors_in_window
    assert operator.metric_sum(REQUESTS, verb="create", code="403") - refused <= ERRORS_IN_30S
    # the message is stable, so a retry writes no status (only the first ApplyFailed did)
    assert operator.metric_sum(REQUESTS, verb="patch") - patches == 0

    kube.core.delete_namespaced_resource_quota("no-jobs", engines.namespace)
    engines.wait_condition("llama", "Ready", "True", timeout=420)  # the backoff (≤ 5 min) ends, it builds


# ------------------------------------------------------------------ deletion always finishes
def _gone(read: Any) -> bool:
    try:
        read()
    except client.ApiException as error:
        return error.status == 404
    return False


def _has_finalizer(engines: Engines, name: str) -> bool:
    return "trtllm.dev/engine-files" in (engines.get(name)["metadata"].get("finalizers") or [])


# The Lease must not live in the namespace being deleted (as deployed: it is in the operator's own).
@pytest.mark.operator_env(
    TRTLLM_LEADER_ELECTION_NAMESPACE="default", TRTLLM_LEADER_ELECTION_NAME="trtllm-ns-deletion-test"
)
def test_deleting_a_namespace_full_of_delete_engines_finishes(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    names = ["a", "b", "c"]
    for name in names:
        engines.create(engine_manifest(name, target={"computeCapability": "9.0"}, deletionPolicy="Delete"))
    engines.wait_condition("a", "Ready", "True", timeout=120)  # one with files to delete, two mid-way
    for name in names:
        wait_for(lambda n=name: _has_finalizer(engines, n), 30, what=f"{name} finalizer")
    kube.core.delete_namespace(engines.namespace)
    wait_for(
        lambda: _gone(lambda: kube.core.read_namespace(engines.namespace)),
        180,
        what=f"namespace {engines.namespace} deleted (finalizers released)",
    )


@pytest.mark.operator_env(TRTLLM_CLEANUP_DEADLINE_SECONDS="20")
def test_a_cleanup_pod_that_never_schedules_shows_and_the_deletion_still_finishes(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}, deletionPolicy="Delete"))
    engines.wait_condition("llama", "Ready", "True", timeout=120)
    # nodeSelector is a placement knob (no rebuild); no node has this label, so the cleanup pod can't run
    engines.patch_spec("llama", {"nodeSelector": {"example.com/nowhere": "true"}})
    engines.kube.custom.delete_namespaced_custom_object(
        "trtllm.dev", "v1alpha1", engines.namespace, "trtengines", "llama"
    )
    deleting = engines.wait_condition(
        "llama", "Reconciling", "True", r.DELETING_ENGINE_FILES, timeout=60, contains="can't be scheduled"
    )
    assert "deadline 20 s" in deleting["message"]
    assert "llama-cleanup" in deleting["message"]
    wait_for(
        lambda: _gone(lambda: engines.get("llama")),
        120,
        what="the TRTEngine gone once the cleanup Job passed its deadline",
    )
    warnings = [e for e in kube.events_for(engines.namespace, "llama") if e.reason == r.CLEANUP_FAILED]
    assert warnings, "a Warning names the files left behind"
    assert "pvc://llama-engines/engines/llama" in warnings[-1].message


ENGINE_CRD = "trtengines.trtllm.dev"


def _replace_engine_crd(kube: Kube, crd: dict[str, Any]) -> None:
    current = kube.ext.read_custom_resource_definition(ENGINE_CRD)
    crd["metadata"]["resourceVersion"] = current.metadata.resource_version
    kube.ext.replace_custom_resource_definition(ENGINE_CRD, crd)


def _engine_crd() -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load((REPO / "crds" / "trtllm.dev_trtengines.yaml").read_text())
    return crd


def _loosen_engine_schema(kube: Kube) -> None:
    """Let the API server store any TRTEngine spec (as an older, looser CRD version might have)."""
    loose = _engine_crd()
    for version in loose["spec"]["versions"]:
        version["schema"]["openAPIV3Schema"]["properties"]["spec"] = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
    _replace_engine_crd(kube, loose)


def test_an_engine_with_a_spec_the_operator_cannot_parse_is_deletable(
    kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    """An operator newer than its CRD (Helm skips CRDs that exist): the API server stores a spec the
    operator's models refuse. The finalizer must not keep such an engine forever.

    (A stored spec that breaks the *current* CRD schema is another matter: the API server then refuses
    every write to the object, status and finalizers included, even kubectl's, until the spec is
    fixed; docs/deploy.md says so.)"""
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}, deletionPolicy="Delete"))
    wait_for(lambda: _has_finalizer(engines, "llama"), 30, what="finalizer")
    _loosen_engine_schema(kube)
    try:

        def patched() -> bool:  # the loosened schema takes effect within a moment
            try:
                engines.patch_spec("llama", {"precision": "fp3", "storage": "not-an-object"})
            except client.ApiException as error:
                if error.status == 422:
                    return False
                raise
            return True

        wait_for(patched, 30, what="the unparseable spec stored")
        stalled = engines.wait_condition("llama", "Stalled", "True", r.INVALID_SPEC, timeout=60)
        assert "spec." in stalled["message"]
        engines.kube.custom.delete_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", engines.namespace, "trtengines", "llama"
        )
        wait_for(
            lambda: _gone(lambda: engines.get("llama")), 60, what="the TRTEngine gone (finalizer released)"
        )
    finally:
        _replace_engine_crd(kube, _engine_crd())  # the checked-in schema again
    skipped = [e for e in kube.events_for(engines.namespace, "llama") if e.reason == r.CLEANUP_SKIPPED]
    assert skipped, "a Warning says no files were deleted"
