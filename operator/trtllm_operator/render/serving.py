"""Serving objects for an InferenceService: one Deployment per engine (pinned to the architecture the
engine was built on), one Service in front of them, and an HPA when autoscaling is on. Pure."""

from __future__ import annotations

from typing import Any

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.api.service import InferenceServiceSpec
from trtllm_operator.gpu.knowledge import parse_cc
from trtllm_operator.gpu.labels import GFD
from trtllm_operator.render.security import HOME, container_security_context, pod_security_context

#: Loading a large engine takes minutes: allow 10 minutes before liveness applies.
STARTUP_FAILURES, PROBE_PERIOD = 60, 10
#: A stopping server keeps answering this long (preStop sleep, the kubelet's own action: no binary needed
#: in the image) while the EndpointSlice drops it and every kube-proxy / load balancer stops sending to
#: it; only then is it sent SIGTERM. In-flight requests get the rest of the grace period to finish.
DRAIN_SECONDS, FINISH_SECONDS = 10, 30


def deployment_name(service: str, engine: EngineStatus) -> str:
    cc = engine.computeCapability.replace(".", "")
    return f"{service}-sm{cc}"


def selector_labels(service: str) -> dict[str, str]:
    return {c.LABEL_SERVICE: service, c.LABEL_COMPONENT: c.COMPONENT_SERVER}


def _volume_path(uri: str) -> tuple[str, str]:
    """pvc://claim/some/path -> (claim, some/path)."""
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    return claim, path


def _tokenizer(engine_name: str, spec: TRTEngineSpec) -> tuple[str, str | None]:
    """Where the tokenizer is inside the pod, and the model claim to mount (None: on the engine volume)."""
    source = spec.model.source
    if source.startswith("pvc://"):
        claim, path = _volume_path(source)
        return f"{c.MODELS_MOUNT}/{claim}/{path}".rstrip("/"), claim
    return f"{c.ENGINES_MOUNT}/{spec.storage.path}/{engine_name}/.model", None


def serving_image(svc: InferenceServiceSpec, engine: EngineStatus, engine_spec: TRTEngineSpec) -> str:
    """spec.image, else the image that built the engine."""
    return svc.image or engine.image or engine_spec.image


#: Where the engine is mounted a second time, under the name clients send (see served_model_dir).
SERVED_MOUNT = "/served"


def served_model_name(service: str, svc: InferenceServiceSpec) -> str:
    """The OpenAI model name: spec.servedModelName, else the InferenceService name."""
    return svc.servedModelName or service


def served_model_dir(model_name: str) -> str:
    """trtllm-serve (1.2 and 1.3) has no served-model-name option: OpenAIServer answers to the basename of
    its MODEL directory (tensorrt_llm/serve/openai_server.py, ``self.model = model_dir.name``). So the
    engine directory is mounted (subPath) at /served/<name> and that path is MODEL."""
    return f"{SERVED_MOUNT}/{model_name}"


def serve_args(
    svc: InferenceServiceSpec,
    engine_name: str,
    engine_spec: TRTEngineSpec,
    engine: EngineStatus,
    model_name: str | None = None,
) -> list[str]:
    tokenizer, _ = _tokenizer(engine_name, engine_spec)
    argv = [
        "trtllm-serve",
        served_model_dir(model_name or engine_name),
        "--host",
        "0.0.0.0",  # noqa: S104 - serve on the pod IP: the Service routes to it
        "--port",
        str(svc.port),
        "--backend",
        engine_spec.backend,
        "--tp_size",
        str(engine_spec.parallelism.tensor),
        "--pp_size",
        str(engine_spec.parallelism.pipeline),
    ]
    if engine_spec.backend == "tensorrt":
        argv += ["--tokenizer", tokenizer]
    if engine_spec.build.maxBatchSize:
        argv += ["--max_batch_size", str(engine_spec.build.maxBatchSize)]
    if engine_spec.build.maxNumTokens:
        argv += ["--max_num_tokens", str(engine_spec.build.maxNumTokens)]
    return argv + list(svc.serve.extraArgs)


def render_deployment(
    owner: dict[str, Any],
    namespace: str,
    service: str,
    svc: InferenceServiceSpec,
    engine_name: str,
    engine_spec: TRTEngineSpec,
    engine: EngineStatus,
) -> dict[str, Any]:
    cc = parse_cc(engine.computeCapability)
    gpus = str(engine_spec.parallelism.tensor * engine_spec.parallelism.pipeline)
    engine_claim, _ = _volume_path(engine.uri)
    _, model_claim = _tokenizer(engine_name, engine_spec)
    labels = {**selector_labels(service), c.LABEL_MANAGED_BY: c.MANAGED_BY, c.LABEL_ENGINE: engine_name}
    pod_labels = {**labels, c.LABEL_REVISION: str(engine.revision), c.LABEL_TRACK: c.TRACK_STABLE}
    terms = [
        {"key": GFD.COMPUTE_MAJOR, "operator": "In", "values": [str(cc.major)]},
        {"key": GFD.COMPUTE_MINOR, "operator": "In", "values": [str(cc.minor)]},
    ]
    if engine_spec.target and engine_spec.target.gpuProduct:
        terms.append({"key": GFD.PRODUCT, "operator": "In", "values": [engine_spec.target.gpuProduct]})
    resources: dict[str, Any] = svc.resources.model_dump(exclude_none=True) if svc.resources else {}
    resources.setdefault("limits", {})[GFD.RESOURCE] = gpus
    resources.setdefault("requests", {})[GFD.RESOURCE] = gpus
    volumes: list[dict[str, Any]] = [
        {"name": "engine", "persistentVolumeClaim": {"claimName": engine_claim, "readOnly": True}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    model_name = served_model_name(service, svc)
    _, engine_path = _volume_path(engine.uri)
    mounts = [
        {"name": "engine", "mountPath": c.ENGINES_MOUNT, "readOnly": True},
        {
            "name": "engine",
            "mountPath": served_model_dir(model_name),
            "subPath": engine_path,
            "readOnly": True,
        },
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    if model_claim and model_claim != engine_claim:
        volumes.append(
            {"name": "model", "persistentVolumeClaim": {"claimName": model_claim, "readOnly": True}}
        )
        mounts.append({"name": "model", "mountPath": f"{c.MODELS_MOUNT}/{model_claim}", "readOnly": True})
    probe = {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": PROBE_PERIOD}
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {**selector_labels(service), c.LABEL_ENGINE: engine_name}},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": svc.rollout.maxSurge, "maxUnavailable": svc.rollout.maxUnavailable},
        },
        "progressDeadlineSeconds": STARTUP_FAILURES * PROBE_PERIOD + 300,
        "template": {
            "metadata": {
                "labels": pod_labels,
                "annotations": {
                    c.ANNOTATION_ENGINE_URI: engine.uri,
                    c.ANNOTATION_ENGINE_SHA: engine.sha256,
                },
            },
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security_context(svc.podSecurityContext),
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": terms}]
                        }
                    }
                },
                "tolerations": [
                    {"key": GFD.TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
                    *[t.model_dump(exclude_none=True) for t in svc.tolerations or []],
                ],
                "containers": [
                    {
                        "name": "server",
                        "image": serving_image(svc, engine, engine_spec),
                        "args": serve_args(svc, engine_name, engine_spec, engine, model_name),
                        "ports": [{"name": "http", "containerPort": svc.port}],
                        "env": [{"name": "HOME", "value": HOME}],
                        "securityContext": container_security_context(svc.securityContext),
                        "resources": resources,
                        "volumeMounts": mounts,
                        "readinessProbe": probe,
                        "livenessProbe": {**probe, "failureThreshold": 3},
                        "startupProbe": {**probe, "failureThreshold": STARTUP_FAILURES},
                        "lifecycle": {"preStop": {"sleep": {"seconds": DRAIN_SECONDS}}},
                    }
                ],
                "terminationGracePeriodSeconds": DRAIN_SECONDS + FINISH_SECONDS,
                "volumes": volumes,
            },
        },
    }
    if svc.nodeSelector:
        spec["template"]["spec"]["nodeSelector"] = dict(svc.nodeSelector)
    if svc.autoscaling is None:
        spec["replicas"] = svc.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(service, engine),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
        },
        "spec": spec,
    }


def render_service(
    owner: dict[str, Any], namespace: str, service: str, svc: InferenceServiceSpec
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service,
            "namespace": namespace,
            "labels": {**selector_labels(service), c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "ownerReferences": [owner],
        },
        "spec": {
            "selector": selector_labels(service),
            "ports": [{"name": "http", "port": svc.port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def render_hpa(
    owner: dict[str, Any],
    namespace: str,
    deployment: str,
    svc: InferenceServiceSpec,
    metrics: list[dict[str, Any]] | None = None,
    behavior: dict[str, Any] | None = None,
    *,
    kind: str = "Deployment",
) -> dict[str, Any]:
    """autoscaling/v2 HPA of one Deployment (``kind="LeaderWorkerSet"``: of a multi-node group set,
    through LWS's scale subresource, whose pod selector picks the leaders only): ``metrics``
    (reconcile/autoscaling.py plan_hpa; CPU utilization when None) and ``behavior`` (the stabilization
    windows)."""
    scaling = svc.autoscaling
    assert scaling is not None
    if metrics is None:
        metrics = [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": scaling.targetCPUUtilizationPercentage or 80,
                    },
                },
            }
        ]
    spec: dict[str, Any] = {
        "scaleTargetRef": {
            "apiVersion": c.LWS_API_VERSION if kind == c.LWS_KIND else "apps/v1",
            "kind": kind,
            "name": deployment,
        },
        "minReplicas": max(1, scaling.minReplicas),
        "maxReplicas": scaling.maxReplicas,
        "metrics": metrics,
    }
    if behavior is not None:
        spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {
            "name": deployment,
            "namespace": namespace,
            "labels": {c.LABEL_MANAGED_BY: c.MANAGED_BY},
            "ownerReferences": [owner],
        },
        "spec": spec,
    }
