"""The chart's RBAC, proven on the real API server: enough for the operator, nothing more.

The chart is rendered cluster-wide (``helm template``); its ServiceAccount, ClusterRole and
ClusterRoleBinding are applied into a fresh ``trtllm-system-<random>`` namespace; a token is minted for
the ServiceAccount and written into a kubeconfig for the same API server. With that token the API
server itself answers: SelfSubjectAccessReviews (may it do X?), a SelfSubjectRulesReview (everything it
may do, compared with an unbound ServiceAccount's), and finally the real operator process, which runs as
that ServiceAccount against a TRTEngine, a TRTEngine with a claim template and an InferenceService, and
must write their status, create their children and post events without a single 403.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from tests.support import Kube, OperatorProcess, wait_for
from tests.unit.test_chart import CLUSTER_SCOPED, LEADER_ELECTION, NAMESPACED, helm_template, one
from trtllm_operator.api import constants as c
from trtllm_operator.dev.cluster import LocalCluster

pytestmark = pytest.mark.cluster

Triple = tuple[str, str, str]


@dataclass(frozen=True)
class Identity:
    """A ServiceAccount and a kubeconfig that authenticates as it with a bound token."""

    namespace: str
    name: str
    kubeconfig: Path

    def client(self) -> client.ApiClient:
        return config.new_client_from_config(str(self.kubeconfig))


def token_kubeconfig(kube: Kube, cluster: LocalCluster, namespace: str, name: str, path: Path) -> Identity:
    """Mint a token for ``namespace/name``; write a kubeconfig using it (server and CA from the admin's)."""
    request = {"spec": {"expirationSeconds": 3600}}
    token = kube.core.create_namespaced_service_account_token(name, namespace, request).status.token
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(x["context"] for x in admin["contexts"] if x["name"] == admin["current-context"])
    server = next(x["cluster"] for x in admin["clusters"] if x["name"] == context["cluster"])
    user = f"system:serviceaccount:{namespace}:{name}"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {
                    "server": server["server"],
                    "certificate-authority-data": server["certificate-authority-data"],
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "local", "user": user}}],
        "current-context": "sa",
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(kubeconfig))
    return Identity(namespace, name, path)


@pytest.fixture(scope="module")
def operator_identity(
    kube: Kube, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Identity]:
    """The chart's ServiceAccount + ClusterRole + ClusterRoleBinding, applied; removed afterwards."""
    suffix = uuid.uuid4().hex[:6]
    namespace, release = f"trtllm-system-{suffix}", f"trtllm-operator-rbac-{suffix}"
    objs = helm_template(release=release, namespace=namespace)
    sa, role, binding = (one(objs, kind) for kind in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding"))
    lease_role, lease_binding = (one(objs, kind) for kind in ("Role", "RoleBinding"))  # leader election
    rbac = client.RbacAuthorizationV1Api(kube.api)
    kube.core.create_namespace({"metadata": {"name": namespace, "labels": {"trtllm.dev/test": "true"}}})
    try:
        kube.core.create_namespaced_service_account(namespace, sa)
        rbac.create_cluster_role(role)
        rbac.create_cluster_role_binding(binding)
        rbac.create_namespaced_role(namespace, lease_role)
        rbac.create_namespaced_role_binding(namespace, lease_binding)
        identity = token_kubeconfig(
            kube,
            cluster,
            namespace,
            sa["metadata"]["name"],
            tmp_path_factory.mktemp("rbac") / "operator.kubeconfig",
        )
        reviews = client.AuthorizationV1Api(identity.client())
        wait_for(lambda: allowed(reviews, "list", "nodes"), 30, what="the ClusterRoleBinding to take effect")
        yield identity
    finally:
        for delete in (
            lambda: rbac.delete_cluster_role_binding(binding["metadata"]["name"]),
            lambda: rbac.delete_cluster_role(role["metadata"]["name"]),
            lambda: kube.core.delete_namespace(namespace, propagation_policy="Background"),
        ):
            try:
                delete()
            except client.ApiException as error:
                if error.status != 404:
                    raise


@pytest.fixture(scope="module")
def reviews(operator_identity: Identity) -> client.AuthorizationV1Api:
    return client.AuthorizationV1Api(operator_identity.client())


def allowed(
    api: client.AuthorizationV1Api,
    verb: str,
    resource: str,
    group: str = "",
    namespace: str | None = None,
    subresource: str | None = None,
) -> bool:
    attributes = {"verb": verb, "resource": resource, "group": group}
    if namespace:
        attributes["namespace"] = namespace
    if subresource:
        attributes["subresource"] = subresource
    review = api.create_self_subject_access_review({"spec": {"resourceAttributes": attributes}})
    return bool(review.status.allowed)


# (verb, group, resource, subresource, namespaced)
MAY = [
    ("create", "batch", "jobs", None, True),
    ("list", "batch", "jobs", None, True),
    ("watch", "batch", "jobs", None, True),
    ("delete", "batch", "jobs", None, True),
    ("list", "", "pods", None, True),
    ("watch", "", "pods", None, True),
    ("create", "", "configmaps", None, True),
    ("create", "", "persistentvolumeclaims", None, True),
    ("create", "apps", "deployments", None, True),
    ("patch", "apps", "deployments", None, True),
    ("list", "apps", "deployments", None, True),
    ("watch", "apps", "deployments", None, True),
    ("watch", "", "services", None, True),
    ("watch", "autoscaling", "horizontalpodautoscalers", None, True),
    ("delete", "apps", "deployments", None, True),
    ("list", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    ("watch", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    ("create", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    ("patch", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    ("delete", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    # Multi-node SSH identities (handlers/mpissh.py): created once, read through a label-selected watch.
    ("create", "", "secrets", None, True),
    ("list", "", "secrets", None, True),
    ("watch", "", "secrets", None, True),
    ("create", "", "services", None, True),
    ("patch", "", "services", None, True),
    ("create", "autoscaling", "horizontalpodautoscalers", None, True),
    ("patch", "autoscaling", "horizontalpodautoscalers", None, True),
    ("delete", "autoscaling", "horizontalpodautoscalers", None, True),
    ("create", "", "events", None, True),
    ("watch", "trtllm.dev", "trtengines", None, True),
    ("patch", "trtllm.dev", "trtengines", None, True),
    ("patch", "trtllm.dev", "trtengines", "status", True),
    ("patch", "trtllm.dev", "inferenceservices", "status", True),
    ("list", "trtllm.dev", "inferenceservices", None, True),
    ("list", "", "nodes", None, False),
    ("watch", "", "nodes", None, False),
    ("list", "apiregistration.k8s.io", "apiservices", None, False),
    ("watch", "apiregistration.k8s.io", "apiservices", None, False),
]
MAY_NOT = [
    # Secrets: only the multi-node SSH identities, created and watched (label-selected), nothing else.
    ("get", "", "secrets", None, True),
    ("update", "", "secrets", None, True),
    ("patch", "", "secrets", None, True),
    ("delete", "", "secrets", None, True),
    ("delete", "", "nodes", None, False),
    ("patch", "", "nodes", None, False),
    ("create", "", "pods", None, True),
    ("create", "", "pods", "exec", True),
    ("create", "", "serviceaccounts", "token", True),
    ("create", "rbac.authorization.k8s.io", "clusterroles", None, False),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", None, False),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", None, False),
    ("create", "rbac.authorization.k8s.io", "roles", None, True),
    ("create", "rbac.authorization.k8s.io", "rolebindings", None, True),
    ("impersonate", "", "serviceaccounts", None, True),
    ("create", "trtllm.dev", "trtengines", None, True),
    ("update", "trtllm.dev", "trtengines", None, True),
    ("delete", "trtllm.dev", "trtengines", None, True),
    ("patch", "trtllm.dev", "inferenceservices", None, True),
    ("get", "", "configmaps", None, True),
    ("delete", "", "configmaps", None, True),
    ("delete", "", "persistentvolumeclaims", None, True),
    ("get", "apps", "deployments", None, True),
    ("get", "leaderworkerset.x-k8s.io", "leaderworkersets", None, True),
    ("delete", "", "services", None, True),
    ("delete", "", "namespaces", None, False),
    ("create", "apiregistration.k8s.io", "apiservices", None, False),
    ("get", "apiregistration.k8s.io", "apiservices", None, False),
    ("create", "apiextensions.k8s.io", "customresourcedefinitions", None, False),
    # Every read is served from the watch caches: no GETs.
    ("get", "batch", "jobs", None, True),
    ("get", "trtllm.dev", "trtengines", None, True),
]


def _id(case: tuple[str, str, str, str | None, bool]) -> str:
    verb, group, resource, sub, _ = case
    return f"{verb}-{resource}{'/' + sub if sub else ''}{'.' + group if group else ''}"


@pytest.mark.parametrize("case", MAY, ids=_id)
def test_may(reviews: client.AuthorizationV1Api, operator_identity: Identity, case: Any) -> None:
    verb, group, resource, sub, namespaced = case
    namespace = "some-team" if namespaced else None  # cluster-wide: any namespace
    assert allowed(reviews, verb, resource, group, namespace, sub)


def test_lease_only_in_the_release_namespace(
    reviews: client.AuthorizationV1Api, operator_identity: Identity
) -> None:
    for verb in ("get", "create", "update"):
        assert allowed(reviews, verb, "leases", "coordination.k8s.io", operator_identity.namespace)
    assert not allowed(reviews, "delete", "leases", "coordination.k8s.io", operator_identity.namespace)
    for verb in ("get", "create", "update"):
        assert not allowed(reviews, verb, "leases", "coordination.k8s.io", "some-team")


@pytest.mark.parametrize("case", MAY_NOT, ids=_id)
def test_may_not(reviews: client.AuthorizationV1Api, operator_identity: Identity, case: Any) -> None:
    verb, group, resource, sub, namespaced = case
    for namespace in ("some-team", operator_identity.namespace) if namespaced else (None,):
        assert not allowed(reviews, verb, resource, group, namespace, sub)


def effective_rules(identity: Identity, namespace: str) -> set[Triple]:
    api = client.AuthorizationV1Api(identity.client())
    review = api.create_self_subject_rules_review({"spec": {"namespace": namespace}})
    assert not review.status.incomplete, review.status.evaluation_error
    out: set[Triple] = set()
    for rule in review.status.resource_rules:
        assert not rule.resource_names, rule
        out |= {(g, r, v) for g in rule.api_groups for r in rule.resources for v in rule.verbs}
    return out


def test_effective_permissions_are_exactly_the_charts(
    kube: Kube, cluster: LocalCluster, operator_identity: Identity, tmp_path: Path
) -> None:
    """All the token may do, minus what any ServiceAccount may do, is the chart's rule set: no more."""
    baseline = token_kubeconfig(
        kube, cluster, operator_identity.namespace, "default", tmp_path / "default.kubeconfig"
    )
    extra = effective_rules(operator_identity, operator_identity.namespace) - effective_rules(
        baseline, operator_identity.namespace
    )
    assert extra == CLUSTER_SCOPED | NAMESPACED | LEADER_ELECTION  # the Lease: its own namespace only
    assert not {t for t in extra if "*" in t}


def test_operator_pod_passes_restricted_pod_security(kube: Kube, namespace: str) -> None:
    """The chart's pod, dry-run created where Pod Security admission enforces "restricted"."""
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    kube.core.patch_namespace(namespace, {"metadata": {"labels": labels}})
    template = one(helm_template(namespace=namespace), "Deployment")["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator", **template["metadata"]},
        "spec": {**template["spec"], "serviceAccountName": "default"},
    }
    kube.core.create_namespaced_pod(namespace, pod, dry_run="All")  # a violation is a 403 from admission
    pod["spec"]["containers"][0]["securityContext"] = {}
    with pytest.raises(client.ApiException) as rejected:
        kube.core.create_namespaced_pod(namespace, pod, dry_run="All")
    assert rejected.value.status == 403
    assert "violates PodSecurity" in rejected.value.body


# ------------------------------------------------------------------ the operator itself, as that identity
IMAGE = "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"


def engine(name: str, storage: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.ENGINE_KIND,
        "metadata": {"name": name},
        "spec": {
            "model": {"source": "pvc://models/x"},
            "image": IMAGE,
            "precision": "fp16",
            "storage": storage,
            **spec,
        },
    }


def observed(kube: Kube, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    obj: dict[str, Any] = kube.custom.get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, plural, name
    )
    status = obj.get("status") or {}
    return obj if status.get("observedGeneration") == obj["metadata"]["generation"] else None


def test_operator_runs_as_its_service_account(
    kube: Kube, operator_identity: Identity, namespace: str, tmp_path: Path
) -> None:
    create = kube.custom.create_namespaced_custom_object
    create(
        c.GROUP,
        c.VERSION,
        namespace,
        c.ENGINE_PLURAL,
        engine("rbac-probe", {"existingClaim": "engines"}, deletionPolicy="Delete"),
    )
    create(c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, engine("rbac-claim", {"claim": {"size": "1Gi"}}))
    create(
        c.GROUP,
        c.VERSION,
        namespace,
        c.SERVICE_PLURAL,
        {
            "apiVersion": c.API_VERSION,
            "kind": c.SERVICE_KIND,
            "metadata": {"name": "rbac-probe"},
            "spec": {"engineRef": {"name": "rbac-probe"}},
        },
    )
    operator = OperatorProcess(
        operator_identity.kubeconfig,
        namespace,
        tmp_path / "operator.log",
        # The Lease where the chart puts it: the release namespace, where its Role grants it.
        {"TRTLLM_LEADER_ELECTION_NAMESPACE": operator_identity.namespace},
    )
    started = time.monotonic()
    operator.start()
    try:
        for plural, name in (
            (c.ENGINE_PLURAL, "rbac-probe"),
            (c.ENGINE_PLURAL, "rbac-claim"),
            (c.SERVICE_PLURAL, "rbac-probe"),
        ):
            wait_for(
                lambda p=plural, n=name: observed(kube, p, namespace, n),
                60,
                what=f"{plural}/{name} status written",
            )
        probe = observed(kube, c.ENGINE_PLURAL, namespace, "rbac-probe") or {}
        wait_for(
            lambda: (
                c.FINALIZER
                in (
                    kube.custom.get_namespaced_custom_object(
                        c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, "rbac-probe"
                    )["metadata"].get("finalizers")
                    or []
                )
            ),
            30,
            what="the engine-files finalizer (a patch of the TRTEngine)",
        )
        jobs = wait_for(
            lambda: (
                kube.batch.list_namespaced_job(
                    namespace, label_selector=f"{c.LABEL_COMPONENT}={c.COMPONENT_BUILD}"
                ).items
            ),
            30,
            what="build Jobs",
        )
        assert {j.metadata.labels[c.LABEL_ENGINE] for j in jobs} <= {"rbac-probe", "rbac-claim"}
        wait_for(
            lambda: (
                kube.core.list_namespaced_config_map(
                    namespace, label_selector=f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
                ).items
            ),
            30,
            what="a build plan ConfigMap",
        )
        wait_for(
            lambda: (
                kube.core.list_namespaced_persistent_volume_claim(
                    namespace, label_selector=f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
                ).items
            ),
            30,
            what="the engine PVC",
        )
        # post_event swallows 403s, so only the Events themselves prove the permission.
        wait_for(
            lambda: [
                e for e in kube.events_for(namespace, "rbac-probe") if e.source.component == c.MANAGED_BY
            ],
            30,
            what="an Event posted by the operator",
        )
        assert probe["status"]["conditions"], probe["status"]
        # Deleting walks the finalizer path: get the cleanup Job, create it (its pod can't run here).
        kube.custom.delete_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, "rbac-probe"
        )
        wait_for(
            lambda: (
                kube.batch.list_namespaced_job(
                    namespace, label_selector=f"{c.LABEL_ENGINE}=rbac-probe,{c.LABEL_COMPONENT}=cleanup"
                ).items
            ),
            30,
            what="the cleanup Job",
        )
        time.sleep(max(0.0, 10.0 - (time.monotonic() - started)))  # a few resyncs and build polls more
        assert operator.process is not None
        assert operator.process.poll() is None, operator.output()[-4000:]
    except BaseException:
        print(f"--- operator log ---\n{operator.output()[-20000:]}")
        raise
    finally:
        operator.stop()
        _drop_finalizers(kube, namespace)
    output = operator.output()
    assert "Forbidden" not in output, output[-6000:]
    assert not re.search(r"\b403\b", output), output[-6000:]
    assert "Not enough permissions" not in output, output[-6000:]


def _drop_finalizers(kube: Kube, namespace: str) -> None:
    """The cleanup Job can't finish here (no engine volume); let the namespace go."""
    for item in kube.custom.list_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL)[
        "items"
    ]:
        if item["metadata"].get("finalizers"):
            kube.custom.patch_namespaced_custom_object(
                c.GROUP,
                c.VERSION,
                namespace,
                c.ENGINE_PLURAL,
                item["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )
