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
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, utils

from tests.integration.test_rbac import Identity, token_kubeconfig
from tests.support import REPO, Kube, wait_for
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
    """Create ``job`` (a Job, Secret or LeaderWorkerSet) as the operator's ServiceAccount with a
    server-side dry run: (HTTP status, message)."""
    namespace = job["metadata"]["namespace"]
    try:
        if job["kind"] == "Secret":
            client.CoreV1Api(identity.client()).create_namespaced_secret(namespace, job, dry_run="All")
        elif job["kind"] == c.LWS_KIND:
            client.CustomObjectsApi(identity.client()).create_namespaced_custom_object(
                c.LWS_GROUP, c.LWS_VERSION, namespace, c.LWS_PLURAL, job, dry_run="All"
            )
        else:
            client.BatchV1Api(identity.client()).create_namespaced_job(namespace, job, dry_run="All")
    except client.ApiException as error:
        return error.status, str(error.body)
    return 201, ""


def _escalation(**pod: Any) -> dict[str, Any]:
    return _job("kube-system", **pod)


#: One case per rule of the policy: (a Job only that rule refuses, a phrase only that rule's message has).
#: test_each_admission_rule_is_needed drops each rule in turn and watches its case get through; the
#: rule is the one whose expression mentions RULE_MARKERS[rule].
RULE_MARKERS = {
    "managed-by label": "app.kubernetes.io/managed-by",
    "serviceAccountName": "serviceAccountName",
    "token": "automountServiceAccountToken",
    "volumes": "persistentVolumeClaim",
    "host namespaces": "hostPID",
    "privileged": "privileged",
    "secrets": "object.type",
}
RULE_CASES: dict[str, tuple[Any, str]] = {
    "managed-by label": (lambda ns: _job(ns, labelled=False), "app.kubernetes.io/managed-by"),
    "serviceAccountName": (
        lambda ns: _escalation(serviceAccountName="clusterrole-aggregation-controller"),
        "not clusterrole-aggregation-controller",
    ),
    "token": (lambda ns: _job(ns, automountServiceAccountToken=True), "never mount a ServiceAccount token"),
    "volumes": (lambda ns: _job(ns, volumes=[{"name": "root", "hostPath": {"path": "/"}}]), "hostPath"),
    "host namespaces": (lambda ns: _job(ns, hostPID=True), "host namespaces"),
    "privileged": (
        lambda ns: _job(
            ns,
            initContainers=[{"name": "i", "image": "b", "securityContext": {"privileged": True}}],
        ),
        "never privileged",
    ),
    # A Secret other than a multi-node SSH identity (render/mpissh.py): e.g. one named like another's.
    "secrets": (lambda ns: _secret(ns, name="kube-root-ca"), "multi-node SSH identities"),
}


def _secret(namespace: str, *, name: str = "chat-mpi-ssh", **labels: str) -> dict[str, Any]:
    """A Secret as the operator's SSH identity is labelled (handlers/mpissh.py)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                c.LABEL_MANAGED_BY: c.MANAGED_BY,
                c.LABEL_COMPONENT: c.COMPONENT_MPI_SSH,
                c.LABEL_SERVICE: "chat",
                **labels,
            },
        },
        "stringData": {"authorized_keys": "restrict ssh-ed25519 AAAA"},
    }


def _wait_denied(identity: Identity, job: dict[str, Any]) -> None:
    def denied() -> bool:  # the policy takes effect once the API server has compiled it
        return _dry_run_create(identity, job)[0] in (403, 422)

    wait_for(denied, 30, what="the ValidatingAdmissionPolicy to deny")


def test_admission_policy_denies_the_kube_system_escalation(
    confined_operator: Identity, namespace: str
) -> None:
    _wait_denied(confined_operator, _escalation(serviceAccountName="clusterrole-aggregation-controller"))
    for rule, (make, phrase) in RULE_CASES.items():
        status, message = _dry_run_create(confined_operator, make(namespace))
        assert status in (403, 422), f"{rule}: admitted"
        assert phrase in message, (rule, message)
    # the deprecated spelling alone: the API server copies it to serviceAccountName before admission,
    # so the serviceAccountName rule (its message names the account) refuses it too
    status, message = _dry_run_create(
        confined_operator, _escalation(serviceAccount="clusterrole-aggregation-controller")
    )
    assert status in (403, 422)
    assert "not clusterrole-aggregation-controller" in message, message
    for host in ("hostNetwork", "hostIPC"):
        assert _dry_run_create(confined_operator, _job(namespace, **{host: True}))[0] in (403, 422), host
    privileged = [{"name": "x", "image": "b", "securityContext": {"privileged": True}}]
    assert _dry_run_create(confined_operator, _job(namespace, containers=privileged))[0] in (403, 422)
    assert _dry_run_create(confined_operator, _job(namespace)) == (201, "")
    assert _dry_run_create(confined_operator, _secret(namespace)) == (201, "")  # an SSH identity
    for wrong in (_secret(namespace, **{c.LABEL_COMPONENT: "other"}), {**_secret(namespace), "type": "x/y"}):
        assert _dry_run_create(confined_operator, wrong)[0] in (403, 422), wrong


def _policy_api(kube: Kube) -> client.AdmissionregistrationV1Api:
    return client.AdmissionregistrationV1Api(kube.api)


def _confine_policy(kube: Kube) -> Any:
    policies = _policy_api(kube).list_validating_admission_policy().items
    return next(p for p in policies if p.metadata.name.endswith("-confine"))


def _set_rules(kube: Kube, name: str, rules: list[dict[str, Any]]) -> None:
    """Merge-patch the policy's validations (a list: replaced whole; no resourceVersion, as the API
    server writes the policy's status after each change)."""
    _policy_api(kube).patch_validating_admission_policy(name, {"spec": {"validations": rules}})


def test_each_admission_rule_is_needed(kube: Kube, confined_operator: Identity, namespace: str) -> None:
    """Drop each rule in turn: its own case gets through, so no rule is dead weight or untested."""
    policy = _confine_policy(kube)
    name = policy.metadata.name
    rules: list[dict[str, Any]] = kube.api.sanitize_for_serialization(policy)["spec"]["validations"]
    assert len(rules) == len(RULE_CASES), "a rule without a case in RULE_CASES"
    try:
        for rule, (make, _) in RULE_CASES.items():
            case = make(namespace)
            _wait_denied(confined_operator, case)
            owner = [x for x in rules if RULE_MARKERS[rule] in x["expression"]]
            assert len(owner) == 1, f"{rule}: {len(owner)} rules mention {RULE_MARKERS[rule]}"
            _set_rules(kube, name, [x for x in rules if x is not owner[0]])
            wait_for(
                lambda c=case: _dry_run_create(confined_operator, c) == (201, ""),
                30,
                what=f"the {rule} case admitted once its rule is gone",
            )
            _set_rules(kube, name, rules)
    finally:
        _set_rules(kube, name, rules)


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


def _chart_with_crd(root: Path, group: str, extra_property: str | None) -> Path:
    """A copy of the chart whose only CRD is TRTEngine's under ``group`` (so the shared CRDs of the test
    cluster are untouched), optionally with one more spec property: a CRD change between versions."""
    chart = root / "chart"
    shutil.copytree(CHART, chart)
    crds = chart / "files" / "crds"
    for path in crds.glob("*.yaml"):
        path.unlink()
    crd = yaml.safe_load((REPO / "crds" / "trtllm.dev_trtengines.yaml").read_text())
    crd["spec"]["group"] = group
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
    if extra_property:
        for version in crd["spec"]["versions"]:
            spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
            spec["properties"][extra_property] = {"type": "string", "maxLength": 63}
    (crds / f"{group}_trtengines.yaml").write_text(yaml.safe_dump(crd))
    return chart


def test_helm_upgrade_updates_a_changed_crd(
    kube: Kube, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    suffix = uuid.uuid4().hex[:6]
    group, release, namespace = f"u{suffix}.trtllm.test", f"trtllm-crd-{suffix}", f"trtllm-crd-{suffix}"
    name = f"{c.ENGINE_PLURAL}.{group}"
    old = _chart_with_crd(tmp_path_factory.mktemp("old"), group, None)
    new = _chart_with_crd(tmp_path_factory.mktemp("new"), group, "upgradedField")
    common = ["-n", namespace, "--set", "admissionPolicy.enabled=false"]

    def spec_properties() -> dict[str, Any]:
        crd = kube.ext.read_custom_resource_definition(name)
        properties: dict[str, Any] = (
            crd.spec.versions[0].var_schema.open_apiv3_schema.properties["spec"].properties
        )
        return properties

    try:
        installed = _helm(cluster, "install", release, str(old), "--create-namespace", *common)
        assert installed.returncode == 0, installed.stderr
        assert "upgradedField" not in spec_properties()
        upgraded = _helm(cluster, "upgrade", release, str(new), *common)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "upgradedField" in spec_properties()  # the release owns its CRD and upgrades it
        crd = kube.ext.read_custom_resource_definition(name)
        assert crd.metadata.annotations["meta.helm.sh/release-name"] == release
        assert crd.metadata.annotations["helm.sh/resource-policy"] == "keep"
    finally:
        removed = _helm(cluster, "uninstall", release, "-n", namespace)
        kube.core.delete_namespace(namespace, propagation_policy="Background")
    assert removed.returncode == 0, removed.stderr
    assert "upgradedField" in spec_properties()  # "keep": uninstall leaves the CRD (and the objects)
    kube.ext.delete_custom_resource_definition(name)
