"""GitOps verdicts and least privilege, on the real API server (issue #13).

- kstatus: the operator's InferenceService status, written through the status subresource of a live
  object, is judged by the real ``sigs.k8s.io/cli-utils/pkg/kstatus/status`` (hack/kstatus, built by
  hack/build-binaries.sh), not a re-implementation: a service on a stalled engine and a partially
  served service are Failed, never InProgress forever.
- The chart's ValidatingAdmissionPolicy: as the operator's ServiceAccount (a real bound token), the
  escalation "a Job in kube-system running as a controller's ServiceAccount" is denied, and so are
  unlabelled objects and hostPath volumes, while a Job shaped like the operator's is admitted.
- Helm: ``helm install`` over CRDs that already exist (``kubectl apply -f crds/``, as the cluster
  fixture installs them) works, upgrade works, uninstall keeps the CRDs.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client, utils

from tests.integration.test_rbac import Identity, token_kubeconfig
from tests.support import Kube, wait_for
from tests.unit.test_chart import CHART, helm_template, tool
from trtllm_operator.api import constants as c
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.reconcile.service import ServiceObservation, reconcile_service

pytestmark = pytest.mark.cluster

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def kstatus(obj: dict[str, Any]) -> dict[str, str]:
    """The verdict of the real kstatus library on ``obj``."""
    result = subprocess.run(
        [tool("kstatus")], input=json.dumps(obj), capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    verdict: dict[str, str] = json.loads(result.stdout)
    return verdict


# ------------------------------------------------------------------ kstatus on live objects
def _engine(kube: Kube, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.ENGINE_KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"source": "pvc://models/llama"},
            "image": "img:1.2.0",
            "precision": "fp16",
            "storage": {"existingClaim": "engines"},
        },
    }
    created = kube.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, body
    )
    status = {**status, "observedGeneration": created["metadata"]["generation"]}
    patched: dict[str, Any] = kube.custom.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, name, {"status": status}
    )
    return patched


def _conditions(reason: str, stalled: bool) -> list[dict[str, str]]:
    values = {"Ready": "False", "Reconciling": "False", "Stalled": "True"} if stalled else {"Ready": "True"}
    return [
        {
            "type": t,
            "status": v,
            "reason": reason,
            "message": reason,
            "lastTransitionTime": "2026-11-26T11:00:00Z",
        }
        for t, v in values.items()
    ]


def _served_engine_status(name: str, validated: bool) -> dict[str, Any]:
    return {
        "phase": "Ready",
        "revision": 1,
        "conditions": _conditions("EnginePromoted", stalled=False),
        "engine": {
            "revision": 1,
            "uri": f"pvc://engines/engines/{name}/h1",
            "sha256": "a" * 64,
            "computeCapability": "9.0",
            "validated": validated,
        },
    }


def _service_verdict(
    kube: Kube, namespace: str, refs: list[str], deployments: dict[str, Any]
) -> dict[str, Any]:
    """Create the InferenceService, write the status the operator's reconcile decides, read it back live."""
    spec = {"engineRefs": [{"name": n} for n in refs]}
    body = {"apiVersion": c.API_VERSION, "kind": c.SERVICE_KIND, "metadata": {"name": "chat"}, "spec": spec}
    live = kube.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.SERVICE_PLURAL, body)
    engines = {
        n: kube.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, n)
        for n in refs
    }
    obs = ServiceObservation(
        namespace,
        "chat",
        live["metadata"]["uid"],
        live["metadata"]["generation"],
        spec,
        {},
        engines,
        deployments,
    )
    status = reconcile_service(obs, NOW).status.model_dump(mode="json", exclude_none=True)
    kube.custom.patch_namespaced_custom_object_status(
        c.GROUP, c.VERSION, namespace, c.SERVICE_PLURAL, "chat", {"status": status}
    )
    fetched: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.SERVICE_PLURAL, "chat"
    )
    return fetched


def test_kstatus_fails_a_service_on_a_stalled_engine(kube: Kube, namespace: str) -> None:
    engine = _engine(
        kube,
        namespace,
        "llama",
        {"phase": "Stalled", "conditions": _conditions("NoCompatibleNodes", stalled=True)},
    )
    assert kstatus(engine)["status"] == "Failed"
    service = _service_verdict(kube, namespace, ["llama"], {})
    verdict = kstatus(service)
    assert verdict["status"] == "Failed", verdict  # InProgress forever would hang `flux ... --wait`
    assert "stalled" in verdict["message"]


def test_kstatus_fails_a_partially_served_service(kube: Kube, namespace: str) -> None:
    _engine(kube, namespace, "h100", _served_engine_status("h100", validated=True))
    _engine(kube, namespace, "a100", _served_engine_status("a100", validated=False))
    ready = {
        "metadata": {"name": "chat-sm90", "generation": 1},
        "spec": {"replicas": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": 1,
            "readyReplicas": 1,
            "updatedReplicas": 1,
            "availableReplicas": 1,
        },
    }
    service = _service_verdict(kube, namespace, ["h100", "a100"], {"chat-sm90": ready})
    assert service["status"]["engines"] == "h100 r1, a100 (not served)"  # the ENGINES column, live
    degraded = next(x for x in service["status"]["conditions"] if x["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "PartiallyServed")
    assert kstatus(service)["status"] == "Failed"


# ------------------------------------------------------------------ the chart's admission policy
@pytest.fixture(scope="module")
def confined_operator(
    kube: Kube, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Identity]:
    """The chart's ServiceAccount, RBAC and ValidatingAdmissionPolicy (+ binding), applied."""
    suffix = uuid.uuid4().hex[:6]
    namespace, release = f"trtllm-system-{suffix}", f"trtllm-vap-{suffix}"
    objs = helm_template(release=release, namespace=namespace)
    kinds = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    wanted = [
        o
        for o in objs
        if o["kind"] in (*kinds, "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    ]
    kube.core.create_namespace({"metadata": {"name": namespace, "labels": {"trtllm.dev/test": "true"}}})
    created: list[dict[str, Any]] = []
    try:
        for obj in wanted:
            utils.create_from_dict(kube.api, obj, namespace=namespace)
            created.append(obj)
        sa = next(o for o in wanted if o["kind"] == "ServiceAccount")
        yield token_kubeconfig(
            kube, cluster, namespace, sa["metadata"]["name"], tmp_path_factory.mktemp("vap") / "sa.kubeconfig"
        )
    finally:
        admission = client.AdmissionregistrationV1Api(kube.api)
        rbac = client.RbacAuthorizationV1Api(kube.api)
        deleters = {
            "ValidatingAdmissionPolicyBinding": admission.delete_validating_admission_policy_binding,
            "ValidatingAdmissionPolicy": admission.delete_validating_admission_policy,
            "ClusterRoleBinding": rbac.delete_cluster_role_binding,
            "ClusterRole": rbac.delete_cluster_role,
        }
        for obj in created:
            if obj["kind"] in deleters:
                deleters[obj["kind"]](obj["metadata"]["name"])
        kube.core.delete_namespace(namespace, propagation_policy="Background")


def _job(namespace: str, *, labelled: bool = True, **pod: Any) -> dict[str, Any]:
    labels = {c.LABEL_MANAGED_BY: c.MANAGED_BY} if labelled else {}
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "containers": [{"name": "x", "image": "busybox", "command": ["true"]}],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        **pod,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}", "namespace": namespace, "labels": labels},
        "spec": {"template": {"metadata": {"labels": labels}, "spec": spec}},
    }


def _dry_run_create(identity: Identity, job: dict[str, Any]) -> tuple[int, str]:
    """Create ``job`` as the operator's ServiceAccount with a server-side dry run: (HTTP status, message)."""
    api = client.BatchV1Api(identity.client())
    try:
        api.create_namespaced_job(job["metadata"]["namespace"], job, dry_run="All")
    except client.ApiException as error:
        return error.status, str(error.body)
    return 201, ""


def test_admission_policy_denies_the_kube_system_escalation(
    confined_operator: Identity, namespace: str
) -> None:
    escalation = _job("kube-system", serviceAccountName="clusterrole-aggregation-controller")

    def denied() -> bool:  # the policy takes effect once the API server has compiled it
        return _dry_run_create(confined_operator, escalation)[0] in (403, 422)

    wait_for(denied, 30, what="the ValidatingAdmissionPolicy to deny the escalation")
    status, message = _dry_run_create(confined_operator, escalation)
    assert "default ServiceAccount" in message, message
    for bad, why in (
        (_job(namespace, labelled=False), "app.kubernetes.io/managed-by"),
        (_job(namespace, volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "hostPath"),
        (_job(namespace, automountServiceAccountToken=True), "token"),
        (
            _job(
                namespace, containers=[{"name": "x", "image": "b", "securityContext": {"privileged": True}}]
            ),
            "privileged",
        ),
    ):
        status, message = _dry_run_create(confined_operator, bad)
        assert status in (403, 422), f"{why}: admitted"
        assert why in message, message
    assert _dry_run_create(confined_operator, _job(namespace)) == (201, "")


# ------------------------------------------------------------------ helm over pre-existing CRDs
def _helm(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("helm"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def test_helm_installs_over_existing_crds_upgrades_and_uninstalls(kube: Kube, cluster: LocalCluster) -> None:
    """The cluster fixture applied crds/ with kubectl-style creates: they belong to no release."""
    extensions = client.ApiextensionsV1Api(kube.api)
    crd = f"{c.ENGINE_PLURAL}.{c.GROUP}"
    before = extensions.read_custom_resource_definition(crd).metadata.uid
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"trtllm-helm-{suffix}", f"trtllm-helm-{suffix}"
    common = ["-n", namespace, "--set", "admissionPolicy.enabled=false"]
    try:
        installed = _helm(cluster, "install", release, str(CHART), "--create-namespace", *common)
        assert installed.returncode == 0, installed.stderr  # no "invalid ownership metadata"
        upgraded = _helm(cluster, "upgrade", release, str(CHART), *common, "--set", "settings.workers=2")
        assert upgraded.returncode == 0, upgraded.stderr
        bad = _helm(cluster, "upgrade", release, str(CHART), *common, "--set", "settings.workers=abc")
        assert bad.returncode != 0
        assert "workers" in bad.stderr
    finally:
        removed = _helm(cluster, "uninstall", release, "-n", namespace)
        kube.core.delete_namespace(namespace, propagation_policy="Background")
    assert removed.returncode == 0, removed.stderr
    after = extensions.read_custom_resource_definition(crd)
    assert after.metadata.uid == before  # skipped, never adopted nor deleted
    assert "meta.helm.sh/release-name" not in (after.metadata.annotations or {})
    wait_for(lambda: _gone(kube, namespace), 60, what=f"namespace {namespace} deleted")


def _gone(kube: Kube, namespace: str) -> bool:
    try:
        kube.core.read_namespace(namespace)
    except client.ApiException as error:
        return error.status == 404
    return False
