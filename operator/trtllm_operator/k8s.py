"""The only module that talks to the API server.

Everything above it works on plain dicts. Creation treats 409 AlreadyExists as success (the name is
deterministic, so what exists IS what we wanted: adopt it); status writes go to the status subresource
as merge patches; reads of children go by label, so a restarted operator finds what it made.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from kubernetes import client, config

from trtllm_operator.api import constants as c

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


class Kube:
    def __init__(self, api: client.ApiClient | None = None) -> None:
        self.api = api or load_api_client()
        self.core = client.CoreV1Api(self.api)
        self.batch = client.BatchV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.autoscaling = client.AutoscalingV2Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def _dict(self, obj: Any) -> Obj:
        sanitize: Callable[[Any], Obj] = self.api.sanitize_for_serialization
        return sanitize(obj)

    # ------------------------------------------------------------ custom resources
    def get_custom(self, plural: str, namespace: str, name: str) -> Obj | None:
        try:
            obj = self.custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, plural, name)
            return _json_object(obj, f"{plural} {namespace}/{name}")
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_custom_status(self, plural: str, namespace: str, name: str, status: Obj) -> None:
        self.custom.patch_namespaced_custom_object_status(
            c.GROUP, c.VERSION, namespace, plural, name, {"status": status}
        )

    def set_finalizer(self, plural: str, obj: Obj, finalizer: str, present: bool) -> None:
        meta = obj["metadata"]
        current = list(meta.get("finalizers") or [])
        wanted = [f for f in current if f != finalizer] + ([finalizer] if present else [])
        if wanted == current:
            return
        patch = {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}}
        try:
            self.custom.patch_namespaced_custom_object(
                c.GROUP, c.VERSION, meta["namespace"], plural, meta["name"], patch
            )
        except client.ApiException as error:
            if error.status not in (404, 409):  # gone, or changed meanwhile: the next reconcile retries
                raise

    # ------------------------------------------------------------ children
    def list_jobs(self, namespace: str, selector: str) -> list[Obj]:
        return [
            self._dict(j) for j in self.batch.list_namespaced_job(namespace, label_selector=selector).items
        ]

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return [
            self._dict(p) for p in self.core.list_namespaced_pod(namespace, label_selector=selector).items
        ]

    def list_deployments(self, namespace: str, selector: str) -> list[Obj]:
        return [
            self._dict(d)
            for d in self.apps.list_namespaced_deployment(namespace, label_selector=selector).items
        ]

    def get_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return self._dict(self.batch.read_namespaced_job(name, namespace))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def get(self, kind: str, namespace: str, name: str) -> Obj | None:
        reader = {
            "Deployment": self.apps.read_namespaced_deployment,
            "Service": self.core.read_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
            "Job": self.batch.read_namespaced_job,
        }[kind]
        try:
            return self._dict(reader(name, namespace))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def create(self, obj: Obj) -> bool:
        """Create a child; False when it already existed (adopted, not duplicated)."""
        namespace, kind = obj["metadata"]["namespace"], obj["kind"]
        creators: dict[str, Callable[..., object]] = {
            "Job": self.batch.create_namespaced_job,
            "ConfigMap": self.core.create_namespaced_config_map,
            "PersistentVolumeClaim": self.core.create_namespaced_persistent_volume_claim,
            "Deployment": self.apps.create_namespaced_deployment,
            "Service": self.core.create_namespaced_service,
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

    def replace_spec(self, obj: Obj) -> None:
        """Server-side apply of an owned child (Deployment/Service/HPA).

        Converges drift, keeps others' fields.
        """
        kind, meta = obj["kind"], obj["metadata"]
        patcher = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "Service": self.core.patch_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        }[kind]
        patcher(
            meta["name"],
            meta["namespace"],
            as_body(stringify_quantities(obj)),
            field_manager=c.MANAGED_BY,
            force=True,
            _content_type="application/apply-patch+yaml",
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        deleter = {
            "Job": self.batch.delete_namespaced_job,
            "HorizontalPodAutoscaler": self.autoscaling.delete_namespaced_horizontal_pod_autoscaler,
            "Deployment": self.apps.delete_namespaced_deployment,
        }[kind]
        try:
            deleter(name, namespace, propagation_policy="Background")
            log.info("deleted", kind=kind, namespace=namespace, name=name)
        except client.ApiException as error:
            if error.status != 404:
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
