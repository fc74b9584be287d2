"""The Helm chart and the plain manifests rendered from it: lint, least-privilege RBAC, the Deployment's
contract with the operator (settings env, liveness, one Recreate replica), CRD copies, and no drift.

``manifests/operator/trtllm-operator.yaml`` is ``helm template`` with default values; regenerate it with
``python -m tests.unit.test_chart --write`` after changing the chart (the test says so when it drifts).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO
from trtllm_operator.settings import OperatorSettings

CHART = REPO / "charts" / "trtllm-operator"
MANIFESTS = REPO / "manifests" / "operator"
RENDERED = MANIFESTS / "trtllm-operator.yaml"
RELEASE, NAMESPACE = "trtllm-operator", "trtllm-system"
RENDERED_HEADER = """\
# GENERATED: `helm template trtllm-operator charts/trtllm-operator --namespace trtllm-system` (default
# values). Regenerate with `python -m tests.unit.test_chart --write`; tests/unit/test_chart.py fails
# when this file and the chart drift apart. Install with `kubectl apply --server-side -k manifests/operator`.
"""

Obj = dict[str, Any]


@cache
def bin_dir() -> Path | None:
    """The project's pinned helm/kubectl (hack/build-binaries.sh; instant when cached), else None."""
    override = os.environ.get("TRTLLM_OPERATOR_BIN")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "build-binaries.sh")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    return Path(lines[-1]) if result.returncode == 0 and lines else None


def tool(name: str) -> str:
    pinned = bin_dir()
    if pinned is not None and (pinned / name).exists():
        return str(pinned / name)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: run `make binaries` (hack/build-binaries.sh)", pytrace=False)
    return found


def helm_text(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> str:
    argv = [tool("helm"), "template", release, str(CHART), "--namespace", namespace, *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
    return result.stdout


def helm_template(*args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[Obj]:
    """Rendered objects (``--set``-style args pass through)."""
    return [doc for doc in yaml.safe_load_all(helm_text(*args, release=release, namespace=namespace)) if doc]


def one(objs: list[Obj], kind: str, namespace: str | None = None) -> Obj:
    found = [
        o
        for o in objs
        if o["kind"] == kind and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def rules_of(role: Obj) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a Role/ClusterRole grants."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def grants(group: str, verbs: str, *resources: str) -> set[tuple[str, str, str]]:
    return {(group, resource, verb) for resource in resources for verb in verbs.split()}


# Exactly what k8s.py + handlers/ call (see templates/_helpers.tpl).
CLUSTER_SCOPED = grants("", "list watch", "nodes", "namespaces") | grants(
    "apiregistration.k8s.io", "list watch", "apiservices"
)
NAMESPACED = (
    grants("trtllm.dev", "list watch patch", "trtengines")
    | grants("trtllm.dev", "list watch", "inferenceservices")
    | grants("trtllm.dev", "patch", "trtengines/status", "inferenceservices/status")
    | grants("trtllm.dev", "update", "trtengines/finalizers", "inferenceservices/finalizers")
    | grants("batch", "list watch create delete", "jobs")
    | grants("", "list watch", "pods")
    | grants("", "create", "configmaps", "persistentvolumeclaims")
    | grants("apps", "list watch create patch delete", "deployments")
    | grants("leaderworkerset.x-k8s.io", "list watch create patch delete", "leaderworkersets")
    | grants("", "list watch create", "secrets")
    | grants("", "list watch create patch", "services")
    | grants("autoscaling", "list watch create patch delete", "horizontalpodautoscalers")
    | grants("", "create", "events")
)
LEADER_ELECTION = grants("coordination.k8s.io", "get create update", "leases")


# ------------------------------------------------------------------ lint and render
def test_helm_lint() -> None:
    result = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "watchNamespaces={ml,team-b}", "--set", "installCRDs=false"],
        ["--set", "serviceAccount.create=false", "--set", "rbac.create=false"],
    ],
)
def test_helm_lint_with_values(values: list[str]) -> None:
    result = subprocess.run(
        [tool("helm"), "lint", "--strict", str(CHART), *values], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_app_version_matches_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', project, re.MULTILINE)
    assert version is not None
    assert chart["appVersion"] == version.group(1)


# ------------------------------------------------------------------ RBAC
def test_cluster_wide_rbac_is_exactly_what_the_operator_uses() -> None:
    objs = helm_template()
    role = one(objs, "ClusterRole")
    assert rules_of(role) == CLUSTER_SCOPED | NAMESPACED
    # The only Role is the Lease's (leader election), in the release namespace.
    assert [o["metadata"]["name"] for o in objs if o["kind"] in ("Role", "RoleBinding")] == [
        f"{RELEASE}-leader-election"
    ] * 2
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    sa = one(objs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]


def test_rbac_has_no_wildcards_secret_reads_or_escalation_paths() -> None:
    for role in [
        o
        for o in helm_template("--set", "watchNamespaces={ml}") + helm_template()
        if o["kind"] in ("Role", "ClusterRole")
    ]:
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
            assert not rule.get("resourceNames")
            assert not rule.get("nonResourceURLs")
        triples = rules_of(role)
        assert not {t for t in triples if t[1] in ("serviceaccounts", "serviceaccounts/token")}
        # Secrets: the multi-node SSH identities only — created, watched (label-selected), never read
        # one by one, changed or deleted.
        assert {t for t in triples if t[1] == "secrets"} <= {
            ("", "secrets", "list"),
            ("", "secrets", "watch"),
            ("", "secrets", "create"),
        }
        assert not {t for t in triples if t[0] == "rbac.authorization.k8s.io"}
        assert not {t for t in triples if t[2] in ("escalate", "bind", "impersonate", "deletecollection")}
        assert ("", "pods", "create") not in triples
        assert not {t for t in triples if t[1] == "nodes" and t[2] not in ("list", "watch")}


def test_watch_namespaces_uses_roles_and_keeps_cluster_scoped_rules_in_the_cluster_role() -> None:
    objs = helm_template("--set", "watchNamespaces={ml,team-b}")
    assert rules_of(one(objs, "ClusterRole")) == CLUSTER_SCOPED
    for namespace in ("ml", "team-b"):
        role, binding = one(objs, "Role", namespace), one(objs, "RoleBinding", namespace)
        assert rules_of(role) == NAMESPACED
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
    args = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=ml" in args
    assert "--namespace=team-b" in args


def test_rbac_and_service_account_can_be_left_out() -> None:
    objs = helm_template(
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=mine",
    )
    assert not [
        o
        for o in objs
        if o["kind"] in ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    assert one(objs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"


# ------------------------------------------------------------------ the Deployment
def container(objs: list[Obj]) -> Obj:
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    result: Obj = pod["containers"][0]
    return result


def test_deployment_is_two_replicas_rolled_out_surge_first_and_spread() -> None:
    objs = helm_template()
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    anti = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    term = anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert not [o for o in helm_template("--set", "replicaCount=1") if o["kind"] == "PodDisruptionBudget"]


def test_leader_election_lease_role_in_the_release_namespace_and_settings() -> None:
    objs = helm_template()
    role = next(o for o in objs if o["kind"] == "Role" and o["metadata"]["name"].endswith("leader-election"))
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(role) == LEADER_ELECTION
    binding = next(
        o for o in objs if o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith("leader-election")
    )
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    env = {e["name"]: e for e in container(objs)["env"]}
    assert env["TRTLLM_LEADER_ELECTION"]["value"] == "true"
    assert env["TRTLLM_LEADER_ELECTION_NAMESPACE"]["value"] == NAMESPACE
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    off = helm_template("--set", "leaderElection.enabled=false")
    assert not [o for o in off if o["metadata"]["name"].endswith("leader-election")]


def test_deployment_runs_the_operator_with_health_readiness_and_metrics() -> None:
    c = container(helm_template())
    assert c["command"] == ["trtllm-operator"]
    assert c["args"] == ["run", "--health-addr=:8080", "--metrics-addr=:8081"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert {"name": "health", "containerPort": 8080, "protocol": "TCP"} in c["ports"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in c["ports"]


def test_metrics_service_and_optional_service_monitor() -> None:
    objs = helm_template()
    service = next(o for o in objs if o["kind"] == "Service" and o["metadata"]["name"].endswith("-metrics"))
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert not [o for o in objs if o["kind"] == "ServiceMonitor"]
    monitored = helm_template(
        "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prom"
    )
    monitor = one(monitored, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    assert not [
        o for o in helm_template("--set", "metrics.enabled=false") if o["kind"] in ("ServiceMonitor",)
    ]


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    objs = helm_template()
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    c = container(objs)["securityContext"]
    assert c == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def settings_env_names() -> set[str]:
    source = (REPO / "operator" / "trtllm_operator" / "settings.py").read_text()
    return set(re.findall(r'"(TRTLLM_[A-Z_]+)"', source))


def test_every_operator_setting_is_in_the_chart_and_parses() -> None:
    objs = helm_template(
        "--set",
        "settings.maxConcurrentBuilds=2",
        "--set",
        "settings.workers=8",
        "--set",
        "settings.resyncSeconds=30",
        "--set",
        "settings.builderImage=reg/builder:1",
        "--set",
        "settings.nodeSelector.nvidia\\.com/gpu\\.present=true",
        "--set",
        "settings.nodeSelector.pool=gpu",
    )
    env = {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}
    assert settings_env_names() <= set(env)
    settings = OperatorSettings.from_env(env)
    assert settings == OperatorSettings(
        max_concurrent_builds=2,
        builder_image="reg/builder:1",
        node_selector={"nvidia.com/gpu.present": "true", "pool": "gpu"},
        resync_seconds=30.0,
        workers=8,
        lease_namespace=NAMESPACE,
        lease_name=RELEASE,
    )


def test_default_settings_match_the_operator_defaults_and_build_with_the_operator_image() -> None:
    objs = helm_template()
    env = {e["name"]: e["value"] for e in container(objs)["env"] if "value" in e}
    settings = OperatorSettings.from_env(env)
    assert settings == OperatorSettings(
        builder_image=container(objs)["image"], lease_namespace=NAMESPACE, lease_name=RELEASE
    )


# ------------------------------------------------------------------ CRDs
def repo_crds() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((REPO / "crds").glob("*.yaml"))}


def test_chart_crd_copies_equal_the_repo_crds() -> None:
    copies = {p.name: p.read_text() for p in sorted((CHART / "files" / "crds").glob("*.yaml"))}
    assert copies == repo_crds(), (
        "charts/trtllm-operator/files/crds/ is stale: cp crds/*.yaml charts/trtllm-operator/files/crds/"
    )


def test_rendered_crds_are_the_repo_crds_kept_on_uninstall() -> None:
    rendered = {o["metadata"]["name"]: o for o in helm_template() if o["kind"] == "CustomResourceDefinition"}
    expected = {crd["metadata"]["name"]: crd for crd in (yaml.safe_load(t) for t in repo_crds().values())}
    assert set(rendered) == set(expected)
    for name, crd in rendered.items():
        assert crd["spec"] == expected[name]["spec"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] == "-1"
        assert expected[name]["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert not [
        o for o in helm_template("--set", "installCRDs=false") if o["kind"] == "CustomResourceDefinition"
    ]


def test_helm_crds_dir_is_not_used() -> None:
    """CRDs are templates (upgradable, switchable); a crds/ dir too would make Helm install them twice."""
    assert not (CHART / "crds").exists()


# ------------------------------------------------------------------ manifests/operator (kubectl apply -k)
def render_manifests() -> str:
    return RENDERED_HEADER + helm_text()


def key(obj: Obj) -> tuple[str, str, str]:
    return (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])


def test_plain_manifests_equal_helm_template() -> None:
    on_disk = [d for d in yaml.safe_load_all(RENDERED.read_text()) if d]
    rendered = helm_template()
    assert sorted(on_disk, key=key) == sorted(rendered, key=key), (
        "manifests/operator/trtllm-operator.yaml is stale: run `python -m tests.unit.test_chart --write`"
    )
    assert RENDERED.read_text().startswith(RENDERED_HEADER)


def test_kustomization_builds_the_namespace_and_the_rendered_chart() -> None:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(MANIFESTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    built = {key(o): o for o in yaml.safe_load_all(result.stdout) if o}
    expected = {key(o): o for o in helm_template()}
    namespace = built.pop(("Namespace", "", NAMESPACE))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert built == expected


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        RENDERED.write_text(render_manifests())
        print(f"wrote {RENDERED}")
    else:
        print("usage: python -m tests.unit.test_chart --write", file=sys.stderr)
        sys.exit(2)
