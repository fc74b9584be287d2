"""``k8s.Kube`` and ``k8s.RawListWatch`` against the real API server: pagination, watch and resume, 410,
adopt-on-409, optimistic concurrency on status, finalizers and Leases, and the request observer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import Kube as SupportKube
from tests.support import engine_manifest, wait_for
from trtllm_operator import k8s
from trtllm_operator.api import constants as c
from trtllm_operator.dev.cluster import LocalCluster
from trtllm_operator.informer import ExpiredError, Informer, Obj

pytestmark = pytest.mark.cluster

CONFIGMAPS = k8s.Resource("", "v1", "configmaps")
SET = "trtllm.dev/test-set"


class Requests:
    """The observer a Kube calls once per HTTP request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, verb: str, code: str) -> None:
        self.seen.append((verb, code))

    def take(self) -> list[tuple[str, str]]:
        seen, self.seen = self.seen, []
        return seen


@pytest.fixture
def observed(cluster: LocalCluster) -> Iterator[tuple[k8s.Kube, Requests]]:
    """A Kube on its own ApiClient, so the observer sees exactly this test's requests."""
    requests = Requests()
    api = k8s.new_api_client(cluster.kubeconfig)
    yield k8s.Kube(api, observe=requests), requests
    api.close()


def configmap(namespace: str, name: str, **data: str) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {SET: "a"}},
        "data": data,
    }


def until(events: Iterator[Obj], stop: str, name: str) -> list[tuple[str, str, str]]:
    """Read a watch until ``stop`` for ``name``; (type, name, resourceVersion) without bookmarks."""
    seen = []
    for event in events:
        if event["type"] == "BOOKMARK":
            continue
        meta = event["object"]["metadata"]
        seen.append((event["type"], meta["name"], meta["resourceVersion"]))
        if event["type"] == stop and meta["name"] == name:
            break
    return seen


def test_list_pages_through_every_object_with_the_selector(
    observed: tuple[k8s.Kube, Requests], namespace: str
) -> None:
    kube, requests = observed
    for index in range(5):
        assert kube.create(configmap(namespace, f"cm-{index}"))
    kube.create({**configmap(namespace, "other"), "metadata": {"name": "other", "namespace": namespace}})
    requests.take()
    source = k8s.RawListWatch(kube, CONFIGMAPS, namespace, f"{SET}=a", page=2)
    items, resource_version = source.list()
    assert sorted(i["metadata"]["name"] for i in items) == [f"cm-{i}" for i in range(5)]
    assert {(i["apiVersion"], i["kind"]) for i in items} == {("v1", "ConfigMap")}
    assert int(resource_version) > 0
    assert requests.take() == [("list", "200")] * 3  # pages of 2, 2 and 1


def test_watch_sees_added_modified_deleted_and_resumes_from_a_resource_version(
    observed: tuple[k8s.Kube, Requests], namespace: str
) -> None:
    kube, requests = observed
    source = k8s.RawListWatch(kube, CONFIGMAPS, namespace, f"{SET}=a", watch_timeout=5)
    _, listed = source.list()
    kube.create(configmap(namespace, "w", v="1"))
    kube.core.patch_namespaced_config_map("w", namespace, {"data": {"v": "2"}})
    kube.core.delete_namespaced_config_map("w", namespace)
    seen = until(source.watch(listed), "DELETED", "w")
    assert [(t, n) for t, n, _ in seen] == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    modified_at = seen[1][2]
    resumed = until(source.watch(modified_at), "DELETED", "w")
    assert resumed == [seen[2]]  # exactly what came after, nothing replayed
    assert [r for r in requests.take() if r[0] in ("list", "watch")] == [
        ("list", "200"),
        ("watch", "200"),
        ("watch", "200"),
    ]


def test_an_informer_follows_the_real_watch(observed: tuple[k8s.Kube, Requests], namespace: str) -> None:
    kube, _ = observed
    kube.create(configmap(namespace, "before"))
    informer = Informer(
        "configmaps", [(k8s.RawListWatch(kube, CONFIGMAPS, namespace, f"{SET}=a"), namespace)]
    )
    stop = threading.Event()
    informer.run(stop)
    try:
        assert informer.synced.wait(10)
        assert informer.get(namespace, "before") is not None
        kube.create(configmap(namespace, "after"))
        kube.core.delete_namespaced_config_map("before", namespace)
        wait_for(
            lambda: informer.object_keys() == [(namespace, "after")],
            10,
            what="the informer followed the watch",
        )
    finally:
        stop.set()


def test_a_watch_from_a_too_old_resource_version_is_expired(
    observed: tuple[k8s.Kube, Requests], namespace: str
) -> None:
    kube, _ = observed
    # A custom resource: its watch cache began when the CRD was installed, long after revision 1 (the
    # core types' caches began with etcd, so "1" is still inside their window on a young cluster).
    source = k8s.RawListWatch(kube, k8s.ENGINES, namespace, watch_timeout=5)
    informer = Informer("trtengines", [])

    def follow() -> None:
        for event in source.watch("1"):
            informer.apply_event(event)

    with pytest.raises(ExpiredError):  # a 410 answer, or a 410 ERROR event in the stream
        follow()


def test_create_of_an_existing_child_adopts_it(observed: tuple[k8s.Kube, Requests], namespace: str) -> None:
    kube, requests = observed
    assert kube.create(configmap(namespace, "child", v="1")) is True
    assert kube.create(configmap(namespace, "child", v="2")) is False
    assert kube.core.read_namespaced_config_map("child", namespace).data == {"v": "1"}
    assert requests.take() == [("create", "201"), ("create", "409"), ("get", "200")]


def engine(test_kube: SupportKube, namespace: str) -> dict[str, Any]:
    created: dict[str, Any] = test_kube.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, engine_manifest("e")
    )
    return created


def test_patch_custom_status_over_a_resource_version(
    observed: tuple[k8s.Kube, Requests], kube: SupportKube, namespace: str
) -> None:
    api, requests = observed
    obj = engine(kube, namespace)
    current = obj["metadata"]["resourceVersion"]
    new = api.patch_custom_status(
        c.ENGINE_PLURAL, namespace, "e", {"phase": "Queued"}, resource_version=current
    )
    assert new is not None
    assert new != current
    with pytest.raises(k8s.ConflictError):
        api.patch_custom_status(
            c.ENGINE_PLURAL, namespace, "e", {"phase": "Building"}, resource_version=current
        )
    stored = kube.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, "e")
    assert stored["status"]["phase"] == "Queued"
    assert stored["metadata"]["resourceVersion"] == new
    assert api.patch_custom_status(c.ENGINE_PLURAL, namespace, "gone", {"phase": "Queued"}) is None
    assert requests.take() == [("patch", "200"), ("patch", "409"), ("patch", "404")]


def test_set_finalizer_over_a_resource_version(
    observed: tuple[k8s.Kube, Requests], kube: SupportKube, namespace: str
) -> None:
    api, requests = observed
    obj = engine(kube, namespace)
    stale = obj
    new = api.set_finalizer(c.ENGINE_PLURAL, obj, c.FINALIZER, True)
    assert new is not None
    assert new != obj["metadata"]["resourceVersion"]
    with pytest.raises(k8s.ConflictError):
        api.set_finalizer(
            c.ENGINE_PLURAL, {**stale, "metadata": {**stale["metadata"], "finalizers": []}}, "x/y", True
        )
    current = kube.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, "e")
    assert current["metadata"]["finalizers"] == [c.FINALIZER]
    assert (
        api.set_finalizer(c.ENGINE_PLURAL, current, c.FINALIZER, True) == new
    )  # nothing to change: no request
    assert api.set_finalizer(c.ENGINE_PLURAL, current, c.FINALIZER, False) not in (None, new)
    assert requests.take() == [("patch", "200"), ("patch", "409"), ("patch", "200")]


def test_lease_create_and_update_conflicts_return_none(
    observed: tuple[k8s.Kube, Requests], namespace: str
) -> None:
    api, requests = observed
    spec = {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}
    assert api.get_lease(namespace, "op") is None
    created = api.create_lease(namespace, "op", spec)
    assert created is not None
    assert created["spec"]["holderIdentity"] == "a"
    assert api.create_lease(namespace, "op", {**spec, "holderIdentity": "b"}) is None
    first = created["metadata"]["resourceVersion"]
    updated = api.update_lease(namespace, "op", first, {**spec, "holderIdentity": "b", "leaseTransitions": 1})
    assert updated is not None
    assert updated["spec"]["holderIdentity"] == "b"
    assert api.update_lease(namespace, "op", first, {**spec, "holderIdentity": "c"}) is None
    lease = api.get_lease(namespace, "op")
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "b"
    assert requests.take() == [
        ("get", "404"),
        ("create", "201"),
        ("create", "409"),
        ("update", "200"),
        ("update", "409"),
        ("get", "200"),
    ]
