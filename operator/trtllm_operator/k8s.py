"""The only module that talks to the API server.

Everything above it works on plain dicts. Creation treats 409 AlreadyExists as success (the name is
deterministic, so what exists IS what we wanted: adopt it); status writes go to the status subresource
as merge patches; reads of children go by label, so a restarted operator finds what it made.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from kubernetes import client, config
from kubernetes.watch import watch as _watch

from trtllm_operator.api import constants as c
from trtllm_operator.informer import ExpiredError

log = structlog.get_logger(__name__)
Obj = dict[str, Any]
T = TypeVar("T")

# The typed seam to the kubernetes client. Its generated API classes are typed, but ``kubernetes.config``
# and ``ApiClient.sanitize_for_serialization`` are not: each gets its signature once, here. Bodies are
# plain dicts throughout (the client accepts them wherever its signatures name a V1 model): ``as_body``
# says so once per call instead of an ignore per call.


def load_api_client() -> client.ApiClient:
    """In-cluster config when running in a pod, else the current kubeconfig."""
    load_incluster: Callable[[], None] = config.load_incluster_config
    load_kubeconfig: Callable[[], None] = config.load_kube_config
    try:
        load_incluster()
    except config.ConfigException:
        load_kubeconfig()
    return client.ApiClient()


def new_api_client(kubeconfig: str | os.PathLike[str]) -> client.ApiClient:
    """A client for one kubeconfig file; the process-wide default configuration is left alone."""
    new_client: Callable[[str], client.ApiClient] = config.new_client_from_config
    return new_client(str(kubeconfig))


def as_body(obj: Mapping[str, Any]) -> Any:
    """A plain-dict request body, passed where the client's signature names a V1 model (it accepts both)."""
    return obj


def required(value: T | None, what: str) -> T:
    """A field the API server always sets on what it returns (metadata, spec, status...), or a clear error."""
    if value is None:
        raise ValueError(f"API object without {what}")
    return value


def _json_object(data: object, what: str) -> Obj:
    if not isinstance(data, dict):
        raise TypeError(f"{what}: expected a JSON object from the API server, got {type(data).__name__}")
    return data


def is_api_error(error: BaseException) -> bool:
    """The API server answered with an error status (as opposed to a bug in our code)."""
    return isinstance(error, client.ApiException)


def is_not_found(error: BaseException) -> bool:
    """The API answered 404: the object, or the whole resource (a CRD not installed), does not exist."""
    return isinstance(error, client.ApiException) and error.status == 404


def describe_error(error: BaseException) -> str:
    """A short, stable description of a failed call: the API's code, reason and message, no headers.

    ``str(ApiException)`` embeds the response headers (Audit-Id, Date) that change on every attempt; a
    status written from it would change every retry and wake the object again.
    """
    if isinstance(error, client.ApiException):
        message = ""
        try:
            body = json.loads(error.body or "{}")
            message = str(body.get("message") or "") if isinstance(body, dict) else ""
        except (TypeError, ValueError):
            message = ""
        return f"{error.status} {error.reason or ''}: {message or 'no message'}".strip()[:600]
    return f"{type(error).__name__}: {error}"[:600]


def stringify_quantities(node: Any) -> Any:
    """Resource quantities as strings.

    The client's models reject ``nvidia.com/gpu: 4`` although the API takes it.
    """
    if isinstance(node, list):
        return [stringify_quantities(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in ("limits", "requests") and isinstance(value, dict):
            out[key] = {name: str(quantity) for name, quantity in value.items()}
        else:
            out[key] = stringify_quantities(value)
    return out


#: Called once per HTTP request with (verb, code): verb is get/list/watch/create/update/patch/delete,
#: code the HTTP status or "error" when no response came. The operator's metrics count these.
RequestObserver = Callable[[str, str], None]
#: Annotation on every child we apply: the hash of what we rendered, so an unchanged child is not
#: written again (a reconcile compares it with the cached child instead of sending an apply).
SPEC_HASH_ANNOTATION = "trtllm.dev/rendered-hash"


def request_verb(method: str, url: str) -> str:
    """The Kubernetes verb of a request, as the API server's metrics name it."""
    query = urlsplit(url).query
    if method == "GET":
        if "watch=true" in query or "watch=True" in query:
            return "watch"
        return "list" if "limit=" in query else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
        method, method.lower()
    )


def _count_requests(api: client.ApiClient, observe: RequestObserver) -> None:
    """Wrap the client's one HTTP entry point so every request is counted by verb and code."""
    rest = api.rest_client
    original: Callable[..., Any] = rest.request

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        code = "error"
        try:
            response = original(method, url, *args, **kwargs)
            code = str(response.status)
            return response
        finally:
            observe(request_verb(method, url), code)

    setattr(rest, "request", counted)  # noqa: B010 - mypy forbids assigning to a method


def merge_patch_to(stored: Any, wanted: Mapping[str, Any]) -> Obj:
    """The JSON merge patch (RFC 7386) that turns ``stored`` into ``wanted``: ``wanted`` plus ``null`` for
    every key ``stored`` has and ``wanted`` has not, in nested objects too. A merge patch keeps what it
    does not mention, so a status field that became unset (written with ``exclude_none``) would otherwise
    stay behind, e.g. a finished canary's ``bakingSince`` read back by the next canary."""
    old = stored if isinstance(stored, Mapping) else {}
    patch: Obj = {k: None for k in old if k not in wanted}
    for key, value in wanted.items():
        before = old.get(key)
        nested = isinstance(value, Mapping) and isinstance(before, Mapping)
        patch[key] = merge_patch_to(before, value) if nested else value
    return patch


def rendered_hash(obj: Mapping[str, Any]) -> str:
    """A stable digest of a rendered child (without our own hash annotation)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != SPEC_HASH_ANNOTATION}
    body = {**obj, "metadata": {**meta, "annotations": annotations}}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]


def with_rendered_hash(obj: Mapping[str, Any]) -> Obj:
    meta = dict(obj.get("metadata") or {})
    annotations = {**(meta.get("annotations") or {}), SPEC_HASH_ANNOTATION: rendered_hash(obj)}
    return {**obj, "metadata": {**meta, "annotations": annotations}}


def up_to_date(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    """The cached child was applied from exactly this rendering."""
    if observed is None:
        return False
    annotations = (observed.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(SPEC_HASH_ANNOTATION) == rendered_hash(desired))


@dataclass(frozen=True)
class Resource:
    """A listable resource: its API path prefix and plural (namespaced or not)."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


ENGINES = Resource(c.GROUP, c.VERSION, c.ENGINE_PLURAL)
SERVICES = Resource(c.GROUP, c.VERSION, c.SERVICE_PLURAL)
JOBS = Resource("batch", "v1", "jobs")
PODS = Resource("", "v1", "pods")
DEPLOYMENTS = Resource("apps", "v1", "deployments")
CORE_SERVICES = Resource("", "v1", "services")
#: Only the operator's own (label-selected): multi-node SSH identities (handlers/mpissh.py).
SECRETS = Resource("", "v1", "secrets")
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers")
LEADER_WORKER_SETS = Resource(c.LWS_GROUP, c.LWS_VERSION, c.LWS_PLURAL)
NODES = Resource("", "v1", "nodes", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", namespaced=False)
#: Whether the cluster serves custom.metrics.k8s.io (autoscaling on inference load, else CPU).
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", namespaced=False)


class RawListWatch:
    """LIST (paginated) and WATCH (with bookmarks) of one resource as plain JSON, for an Informer."""

    def __init__(
        self,
        kube: Kube,
        resource: Resource,
        namespace: str | None = None,
        label_selector: str | None = None,
        page: int = 500,
        watch_timeout: int = 300,
    ) -> None:
        self.kube, self.resource, self.namespace = kube, resource, namespace
        self.selector, self.page, self.watch_timeout = label_selector, page, watch_timeout

    def _query(self, **params: str) -> list[tuple[str, str]]:
        query = [(k, v) for k, v in params.items()]
        if self.selector:
            query.append(("labelSelector", self.selector))
        return query

    def list(self) -> tuple[list[Obj], str]:
        items: list[Obj] = []
        token = ""
        while True:
            params = {"limit": str(self.page)}
            if token:
                params["continue"] = token
            body = json.loads(
                self.kube.raw_get(self.resource.path(self.namespace), self._query(**params)).read()
            )
            for item in body.get("items") or []:
                item.setdefault("apiVersion", body.get("apiVersion"))  # LIST items carry neither
                item.setdefault("kind", str(body.get("kind") or "").removesuffix("List"))
                items.append(item)
            meta = body.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    def watch(self, resource_version: str) -> Iterator[Obj]:
        # The server ends the stream after timeoutSeconds (jittered, as client-go's reflector does);
        # the client's read timeout is a little longer, so a silent dead connection is noticed too.
        timeout = int(self.watch_timeout * random.uniform(1.0, 1.2))  # noqa: S311 - jitter only
        query = self._query(
            watch="true",
            resourceVersion=resource_version,
            allowWatchBookmarks="true",
            timeoutSeconds=str(timeout),
        )
        try:
            response = self.kube.raw_get(
                self.resource.path(self.namespace), query, timeout=(10, timeout + 30)
            )
        except client.ApiException as error:
            if error.status == 410:
                raise ExpiredError(str(error.reason)) from error
            raise
        try:
            iter_lines: Callable[[Any], Iterator[str]] = _watch.iter_resp_lines
            for line in iter_lines(response.response):
                if line:
                    event: Obj = json.loads(line)
                    yield event
        finally:
            response.response.release_conn()


class ConflictError(Exception):
    """A write lost an optimistic-concurrency race (HTTP 409): requeue and decide again from the cache."""


class Kube:
    def __init__(self, api: client.ApiClient | None = None, observe: RequestObserver | None = None) -> None:
        self.api = api or load_api_client()
        if observe is not None:
            _count_requests(self.api, observe)
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    # ------------------------------------------------------------ raw reads (informers only)
    def raw_get(
        self, path: str, query: list[tuple[str, str]], timeout: float | tuple[float, float] = 60
    ) -> Any:
        """A GET whose JSON body the caller reads (``.read()``) or streams (``.response``)."""
        serialize: Callable[..., tuple[str, str, dict[str, str], Any, Any]] = self.api.param_serialize
        method, url, headers, _, _ = serialize(
            "GET",
            path,
            query_params=query,
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        call: Callable[..., Any] = self.api.call_api
        response = call(method, url, header_params=headers, _request_timeout=timeout)
        if not 200 <= response.status < 300:
            response.read()
            raise client.ApiException(http_resp=response)
        return response

    def list_watch(
        self, resource: Resource, namespace: str | None, selector: str | None = None
    ) -> RawListWatch:
        return RawListWatch(self, resource, namespace, selector)

    def _dict(self, obj: Any) -> Obj:
        sanitize: Callable[[Any], Obj] = self.api.sanitize_for_serialization
        return sanitize(obj)

    # ------------------------------------------------------------ custom resources
    def patch_custom_status(
        self, plural: str, namespace: str, name: str, status: Obj, resource_version: str | None = None
    ) -> str | None:
        """Merge-patch the status subresource; with ``resource_version`` only over that version.

        Returns the object's new resourceVersion (None when it is gone).
        """
        body: Obj = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            result = self.custom.patch_namespaced_custom_object_status(
                c.GROUP, c.VERSION, namespace, plural, name, body
            )
        except client.ApiException as error:
            if error.status == 409:
                raise ConflictError(f"{plural} {namespace}/{name} changed since it was read") from error
            if error.status != 404:  # deleted meanwhile: nothing to write
                raise
            return None
        updated = _json_object(result, f"{plural} {namespace}/{name}")
        return str((updated.get("metadata") or {}).get("resourceVersion") or "") or None

    def set_finalizer(self, plural: str, obj: Obj, finalizer: str, present: bool) -> str | None:
        """Add or remove ``finalizer`` over the object's resourceVersion; returns the new resourceVersion."""
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        wanted = [f for f in current if f != finalizer] + ([finalizer] if present else [])
        if wanted == current:
            return str(meta.get("resourceVersion") or "") or None
        patch = {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}}
        try:
            result = self.custom.patch_namespaced_custom_object(
                c.GROUP, c.VERSION, meta["namespace"], plural, meta["name"], patch
            )
        except client.ApiException as error:
            if error.status == 409:
                raise ConflictError(
                    f"{plural} {meta['namespace']}/{meta['name']} changed since it was read"
                ) from error
            if error.status != 404:
                raise
            return None
        updated = _json_object(result, f"{plural} {meta['namespace']}/{meta['name']}")
        return str((updated.get("metadata") or {}).get("resourceVersion") or "") or None

    # ------------------------------------------------------------ children
    def create(self, obj: Obj) -> bool:
        """Create a child; False when it already existed (adopted, not duplicated)."""
        namespace, kind = obj["metadata"]["namespace"], obj["kind"]
        creators: dict[str, Callable[..., object]] = {
            "Job": self.batch.create_namespaced_job,
            "ConfigMap": self.core.create_namespaced_config_map,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "Deployment": self.apps.create_namespaced_deployment,
            "Service": self.core.create_namespaced_service,
            "Secret": self.core.create_namespaced_secret,
            "HorizontalPodAutoscaler": self.autoscaling.create_namespaced_horizontal_pod_autoscaler,
        }
        creator = creators[kind]
        try:
            creator(namespace, as_body(stringify_quantities(obj)))
            log.info("created", kind=kind, namespace=namespace, name=obj["metadata"]["name"])
            return True
        except client.ApiException as error:
            if error.status == 409:
                return False
            raise

    def apply(self, obj: Obj) -> None:
        """Server-side apply of an owned child (Deployment/Service/HPA), stamped with its rendered hash.

        Converges drift, keeps others' fields (an HPA's replicas). Callers apply only when the cached
        child's hash differs (``up_to_date``), so an unchanged child costs no request.
        """
        body = with_rendered_hash(obj)
        kind, meta = body["kind"], body["metadata"]
        patchers: dict[str, Callable[..., Any]] = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "Service": self.core.patch_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
            c.LWS_KIND: self._patch_leader_worker_set,
        }
        patchers[kind](
            meta["name"],
            meta["namespace"],
            as_body(stringify_quantities(body)),
            field_manager=c.MANAGED_BY,
            force=True,
            _content_type="application/apply-patch+yaml",
        )
        log.info("applied", kind=kind, namespace=meta["namespace"], name=meta["name"])

    def delete(self, kind: str, namespace: str, name: str) -> None:
        deleters: dict[str, Callable[..., Any]] = {
            "Job": self.batch.delete_namespaced_job,
            "HorizontalPodAutoscaler": self.autoscaling.delete_namespaced_horizontal_pod_autoscaler,
            "Deployment": self.apps.delete_namespaced_deployment,
            c.LWS_KIND: self._delete_leader_worker_set,
        }
        try:
            deleters[kind](name, namespace, propagation_policy="Background")
            log.info("deleted", kind=kind, namespace=namespace, name=name)
        except client.ApiException as error:
            if error.status != 404:
                raise

    # LeaderWorkerSets (a CRD: the custom-objects API) with the typed APIs' (name, namespace, ...) order.
    def _patch_leader_worker_set(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any:
        return self.custom.patch_namespaced_custom_object(
            c.LWS_GROUP, c.LWS_VERSION, namespace, c.LWS_PLURAL, name, body, **kwargs
        )

    def _delete_leader_worker_set(self, name: str, namespace: str, **kwargs: Any) -> Any:
        return self.custom.delete_namespaced_custom_object(
            c.LWS_GROUP, c.LWS_VERSION, namespace, c.LWS_PLURAL, name, **kwargs
        )

    # ------------------------------------------------------------ leases (leader election)
    def get_lease(self, namespace: str, name: str) -> Obj | None:
        try:
            return self._dict(self.coordination.read_namespaced_lease(name, namespace))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def create_lease(self, namespace: str, name: str, spec: Obj) -> Obj | None:
        """The created Lease, or None when another candidate created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name},
            "spec": spec,
        }
        try:
            return self._dict(self.coordination.create_namespaced_lease(namespace, as_body(body)))
        except client.ApiException as error:
            if error.status == 409:
                return None
            raise

    def update_lease(self, namespace: str, name: str, resource_version: str, spec: Obj) -> Obj | None:
        """The updated Lease, or None when it changed since ``resource_version`` (someone else wrote it)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": resource_version},
            "spec": spec,
        }
        try:
            return self._dict(self.coordination.replace_namespaced_lease(name, namespace, as_body(body)))
        except client.ApiException as error:
            if error.status == 409:
                return None
            raise

    # ------------------------------------------------------------ events
    def post_event(self, involved: Obj, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on ``involved``; the name is derived from the content so retries don't pile up."""
        meta = involved["metadata"]
        digest = hashlib.sha256(f"{meta.get('uid')}{reason}{message}".encode()).hexdigest()[:10]
        now = datetime.now(UTC)
        event = {
            "metadata": {"name": f"{meta['name']}.{digest}", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": c.MANAGED_BY},
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
            "reportingComponent": c.MANAGED_BY,
            "reportingInstance": c.MANAGED_BY,
        }
        try:
            self.core.create_namespaced_event(meta["namespace"], as_body(event))
        except client.ApiException as error:
            if error.status == 403:
                log.warning("cannot post events (RBAC: events create)", reason=reason, object=meta["name"])
            elif error.status not in (409, 404):
                raise
