"""Fixtures for the real local control plane.

The cluster fixture reuses a healthy cluster (``make cluster-up``) or starts one; when it cannot, the
test FAILS with the launcher's error — cluster tests never skip.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from tests.support import REPO, Engines, Kube, OperatorProcess, make_model_claim, wait_for
from trtllm_operator.dev.cluster import ClusterError, LocalCluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[LocalCluster]:
    local = LocalCluster()
    started_here = not local.healthy()
    try:
        local.up()
    except ClusterError as error:
        pytest.fail(f"the local cluster could not start (cluster tests never skip): {error}", pytrace=False)
    _install_crds(local.kubeconfig)
    yield local
    if started_here and os.environ.get("TRTLLM_KEEP_CLUSTER") != "1":
        local.down(quiet=True)


def _install_crds(kubeconfig: Path) -> None:
    api = client.ApiextensionsV1Api(config.new_client_from_config(str(kubeconfig)))
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        name = crd["metadata"]["name"]
        try:
            existing = api.read_custom_resource_definition(name)
            crd["metadata"]["resourceVersion"] = existing.metadata.resource_version
            api.replace_custom_resource_definition(name, crd)
        except client.ApiException as error:
            if error.status != 404:
                raise
            api.create_custom_resource_definition(crd)

    def established() -> bool:
        crds = [
            api.read_custom_resource_definition(p.stem.split("_", 1)[1].split(".")[0] + ".trtllm.dev")
            for p in (REPO / "crds").glob("*.yaml")
        ]
        return all(
            any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
            for crd in crds
        )

    wait_for(established, 30, what="CRDs Established")
    time.sleep(1.0)  # the discovery/openapi caches of the apiserver catch up with a new schema


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> Kube:
    return Kube(config.new_client_from_config(str(cluster.kubeconfig)))


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (the namespace controller really deletes)."""
    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"trtllm.dev/test": "true"}}})

    def default_sa() -> bool:
        try:
            kube.core.read_namespaced_service_account("default", name)
            return True
        except client.ApiException:
            return False

    wait_for(default_sa, 30, what=f"default ServiceAccount in {name}")
    yield name
    try:
        kube.core.delete_namespace(name, propagation_policy="Background")
    except client.ApiException as error:
        if error.status != 404:  # a test may have deleted it already
            raise


@pytest.fixture(scope="session")
def metrics_cluster(cluster: LocalCluster) -> LocalCluster:
    """The cluster with the "metrics" add-on (Prometheus + adapter); it stays up until `cluster down`."""
    try:
        cluster.ensure_addons("metrics")
    except ClusterError as error:
        pytest.fail(f"the metrics add-on could not start (cluster tests never skip): {error}", pytrace=False)
    return cluster


@pytest.fixture
def operator(
    cluster: LocalCluster, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[OperatorProcess]:
    """The real operator (a subprocess, so tests can SIGKILL it) watching the test's namespace."""
    marker = request.node.get_closest_marker("operator_env")
    env = dict(marker.kwargs) if marker else {}
    if env.pop("private_fleet", False):
        env["TRTLLM_NODE_SELECTOR"] = f"trtllm.dev/fleet={namespace}"
    env.setdefault("TRTLLM_RESYNC_SECONDS", "10")
    # Leader election stays on (as deployed) with short leases, so a killed operator's successor
    # takes over within seconds; the Lease lives in the test's namespace.
    env.setdefault("TRTLLM_LEASE_DURATION_SECONDS", "4")
    env.setdefault("TRTLLM_RENEW_DEADLINE_SECONDS", "3")
    env.setdefault("TRTLLM_RETRY_PERIOD_SECONDS", "0.5")
    process = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log", env).start()
    yield process
    process.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(f"--- operator log ({process.log}) ---\n{process.output()[-20000:]}")


@pytest.fixture
def engines(kube: Kube, namespace: str) -> Engines:
    make_model_claim(kube, namespace)
    return Engines(kube, namespace)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


class PrivateFleet:
    """Nodes only this test's operator sees.

    The operator runs with TRTLLM_NODE_SELECTOR=trtllm.dev/fleet=<namespace>.
    """

    def __init__(self, kube: Kube, cluster: LocalCluster, namespace: str) -> None:
        self.kube, self.cluster, self.namespace = kube, cluster, namespace
        self.label = {"trtllm.dev/fleet": namespace}

    def add(self, pool: str, count: int = 1, actual_gpus: list[dict[str, object]] | None = None) -> list[str]:
        """Add ``count`` nodes like the default fleet's ``pool`` (h100, a100, l40s, b200)."""
        import json

        from trtllm_operator.dev.cluster import apply_nodes
        from trtllm_operator.dev.fleet import builtin_fleet, pool_nodes

        template = next(p for p in builtin_fleet("default").pools if p.name == pool)
        existing = len(
            self.kube.core.list_node(
                label_selector=f"trtllm.dev/fleet={self.namespace},trtllm.dev/sim-pool={self.namespace[:30]}-{pool}"
            ).items
        )
        spec = template.model_copy(
            update={
                "name": f"{self.namespace[:30]}-{pool}",
                "count": count,
                "labels": {**template.labels, **self.label},
            }
        )
        nodes = pool_nodes(spec, start=existing)
        for node in nodes:
            if actual_gpus is not None:
                node["metadata"]["annotations"]["sim.trtllm.dev/actual-gpus"] = json.dumps(actual_gpus)
        return apply_nodes(self.cluster.kubeconfig, nodes)

    def delete(self) -> None:
        self.kube.core.delete_collection_node(label_selector=f"trtllm.dev/fleet={self.namespace}")


@pytest.fixture
def private_fleet(kube: Kube, cluster: LocalCluster, namespace: str) -> Iterator[PrivateFleet]:
    fleet = PrivateFleet(kube, cluster, namespace)
    yield fleet
    fleet.delete()
