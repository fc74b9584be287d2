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

from tests.support import REPO, Kube, wait_for
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
        crds = [api.read_custom_resource_definition(p.stem.split("_", 1)[1].split(".")[0] + ".trtllm.dev")
                for p in (REPO / "crds").glob("*.yaml")]
        return all(any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
                   for crd in crds)

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
    kube.core.delete_namespace(name, propagation_policy="Background")
