"""The API module's pure parts: request verbs, error descriptions, rendered hashes, quantities."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from kubernetes import client

from trtllm_operator import k8s


class Response:
    """What the client's REST layer hands an ApiException (urllib3's response, reduced)."""

    def __init__(self, status: int, reason: str, body: dict[str, Any] | str) -> None:
        self.status, self.reason = status, reason
        self.data = (json.dumps(body) if isinstance(body, dict) else body).encode()
        self.headers = {
            "Audit-Id": "5b0c1f3e-0d6e-4e0a-9d1e-7f3c2b1a0e9d",
            "Date": "Thu, 26 Nov 2026 12:00:00 GMT",
            "Content-Type": "application/json",
        }


def api_error(status: int, reason: str, body: dict[str, Any] | str) -> client.ApiException:
    return client.ApiException(http_resp=Response(status, reason, body))


@pytest.mark.parametrize(
    ("method", "url", "verb"),
    [
        ("GET", "https://h/api/v1/namespaces/ns/pods?limit=500&labelSelector=a%3Db", "list"),
        ("GET", "https://h/api/v1/namespaces/ns/pods?limit=500&continue=abc", "list"),
        ("GET", "https://h/api/v1/pods?watch=true&resourceVersion=5&allowWatchBookmarks=true", "watch"),
        ("GET", "https://h/api/v1/pods?watch=True", "watch"),
        ("GET", "https://h/apis/coordination.k8s.io/v1/namespaces/ns/leases/op", "get"),
        ("POST", "https://h/apis/batch/v1/namespaces/ns/jobs", "create"),
        ("PUT", "https://h/apis/coordination.k8s.io/v1/namespaces/ns/leases/op", "update"),
        ("PATCH", "https://h/apis/trtllm.dev/v1alpha1/namespaces/ns/trtengines/x/status", "patch"),
        ("DELETE", "https://h/apis/batch/v1/namespaces/ns/jobs/j", "delete"),
        ("HEAD", "https://h/api/v1", "head"),
    ],
)
def test_request_verb_names_the_kubernetes_verb(method: str, url: str, verb: str) -> None:
    assert k8s.request_verb(method, url) == verb


def test_describe_error_keeps_code_reason_and_message_but_never_headers() -> None:
    error = api_error(
        500,
        "Internal Server Error",
        {"kind": "Status", "message": "etcdserver: request timed out", "reason": "InternalError"},
    )
    assert "Audit-Id" in str(error)  # what a status written from str(error) would carry
    described = k8s.describe_error(error)
    assert described == "500 Internal Server Error: etcdserver: request timed out"
    again = api_error(
        500,
        "Internal Server Error",
        {"kind": "Status", "message": "etcdserver: request timed out", "reason": "InternalError"},
    )
    again.headers = {"Audit-Id": "another", "Date": "later"}
    assert k8s.describe_error(again) == described  # stable from one attempt to the next


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json <html>", "503 Service Unavailable: no message"),
        ({"kind": "Status"}, "503 Service Unavailable: no message"),
        ("[1, 2]", "503 Service Unavailable: no message"),
    ],
)
def test_describe_error_tolerates_bodies_that_are_not_a_status(body: Any, expected: str) -> None:
    assert k8s.describe_error(api_error(503, "Service Unavailable", body)) == expected


def test_describe_error_of_other_exceptions_and_length_cap() -> None:
    assert k8s.describe_error(ValueError("bad")) == "ValueError: bad"
    long = api_error(422, "Unprocessable Entity", {"message": "x" * 5000})
    assert len(k8s.describe_error(long)) == 600
    assert k8s.is_api_error(long)
    assert not k8s.is_api_error(ValueError("bad"))


def deployment(image: str = "img:1", **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "chat", "namespace": "ns", "labels": {"a": "1"}, "annotations": annotations},
        "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}},
    }


def test_rendered_hash_is_stable_and_ignores_key_order_and_its_own_annotation() -> None:
    a = deployment()
    reordered = json.loads(json.dumps(a, sort_keys=True))
    reordered["metadata"] = dict(reversed(list(reordered["metadata"].items())))
    assert k8s.rendered_hash(a) == k8s.rendered_hash(reordered)
    stamped = k8s.with_rendered_hash(a)
    assert k8s.rendered_hash(stamped) == k8s.rendered_hash(a)
    assert stamped["metadata"]["annotations"][k8s.SPEC_HASH_ANNOTATION] == k8s.rendered_hash(a)
    assert k8s.SPEC_HASH_ANNOTATION not in a["metadata"]["annotations"]  # the input is not mutated
    assert k8s.rendered_hash(deployment(image="img:2")) != k8s.rendered_hash(a)
    assert k8s.rendered_hash(deployment(note="x")) != k8s.rendered_hash(a)


def test_up_to_date_compares_the_cached_childs_hash_with_the_rendering() -> None:
    desired = deployment()
    cached = copy.deepcopy(k8s.with_rendered_hash(desired))
    # The server adds fields of its own; only our annotation says what it was rendered from.
    cached["metadata"].update(resourceVersion="42", uid="u", managedFields=[{}])
    cached["status"] = {"readyReplicas": 2}
    cached["spec"]["replicas"] = 5  # an HPA scaled it: not drift of ours
    assert k8s.up_to_date(desired, cached)
    assert not k8s.up_to_date(deployment(image="img:2"), cached)
    assert not k8s.up_to_date(desired, None)
    assert not k8s.up_to_date(desired, deployment())  # never applied by us: no annotation


def test_stringify_quantities_turns_limits_and_requests_into_strings_only() -> None:
    pod = {
        "spec": {
            "replicas": 3,
            "containers": [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": 4, "memory": "8Gi"}}},
                {"name": "b", "resources": {"requests": {"cpu": 0.5}}},
            ],
        }
    }
    before = copy.deepcopy(pod)
    out = k8s.stringify_quantities(pod)
    assert out["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4", "memory": "8Gi"}
    assert out["spec"]["containers"][1]["resources"]["requests"] == {"cpu": "0.5"}
    assert out["spec"]["replicas"] == 3
    assert pod == before


def test_resource_paths() -> None:
    assert k8s.PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert k8s.PODS.path(None) == "/api/v1/pods"
    assert k8s.JOBS.path("ns") == "/apis/batch/v1/namespaces/ns/jobs"
    assert k8s.NODES.path("ns") == "/api/v1/nodes"  # cluster-scoped: the namespace is ignored
    assert k8s.ENGINES.path("ns").endswith("/namespaces/ns/trtengines")


def test_merge_patch_to_removes_what_became_unset_in_nested_objects() -> None:
    stored = {
        "canary": {"revision": 2, "bakingSince": "t0", "judgeAt": "t1", "stable": {"requests": 5}},
        "engineRevision": 2,
        "autoscaling": [{"metric": "x"}],
    }
    wanted = {"canary": {"revision": 3, "stable": {"requests": 0, "revision": 2}}, "engineRevision": 2}
    patch = k8s.merge_patch_to(stored, wanted)
    assert patch == {
        "canary": {
            "revision": 3,
            "bakingSince": None,
            "judgeAt": None,
            "stable": {"requests": 0, "revision": 2},
        },
        "engineRevision": 2,
        "autoscaling": None,
    }
    assert k8s.merge_patch_to(None, wanted) == wanted
    assert k8s.merge_patch_to("garbage", {"a": {"b": 1}}) == {"a": {"b": 1}}
    assert k8s.merge_patch_to({"a": "x"}, {"a": {"b": 1}}) == {"a": {"b": 1}}
