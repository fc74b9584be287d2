"""InferenceService: serves a Ready TRTEngine NIM-style (trtllm-serve, OpenAI-compatible).

Serving pods mount the promoted engine and are pinned to the GPU architecture it was built for: an
engine built on 9.0 must never land on an 8.9 node.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trtllm_operator.api.common import (
    DNS_LABEL,
    ApiModel,
    EngineRef,
    IntOrPercent,
    ResourceRequirements,
    Toleration,
    cel,
    defaults_of,
    node_selector_schema,
    validations,
)
from trtllm_operator.api.conditions import Condition
from trtllm_operator.api.constants import SERVICE_NAME_MAX
from trtllm_operator.api.security import PodSecurityContext, SecurityContext

#: What the HorizontalPodAutoscaler scales on (docs/metrics.md says why RequestsInFlight is the default).
AutoscalingMetric = Literal["RequestsInFlight", "KVCacheUtilization", "GenerationTokensPerSecond", "CPU"]


class AutoscalingSpec(ApiModel):
    """HorizontalPodAutoscaler settings (one HPA per Deployment); when set, it owns spec.replicas."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.minReplicas <= self.maxReplicas",
                "spec.autoscaling.minReplicas must be ≤ spec.autoscaling.maxReplicas",
            ),
            cel(
                "!has(self.metric) || self.metric != 'GenerationTokensPerSecond' || "
                "has(self.targetGenerationTokensPerSecond)",
                "spec.autoscaling: metric GenerationTokensPerSecond needs targetGenerationTokensPerSecond "
                "(the tokens/s one replica should carry)",
            ),
        )
    }

    minReplicas: int = Field(
        default=1,
        description="Lower bound, at least 1 (a HorizontalPodAutoscaler cannot scale to zero).",
        ge=1,
        le=1000,
    )
    maxReplicas: int = Field(description="Upper bound.", ge=1, le=1000)
    metric: AutoscalingMetric = Field(
        default="RequestsInFlight",
        description="What to scale on, per replica: RequestsInFlight (running + queued requests, against "
        "the engine's max batch size), KVCacheUtilization, GenerationTokensPerSecond, or CPU. The first "
        "three are custom metrics (custom.metrics.k8s.io: Prometheus + Prometheus Adapter); where the "
        "cluster serves none, the operator scales on CPU and says so (AutoscalingDegraded).",
    )
    targetRequestsInFlight: int | None = Field(
        default=None,
        description="RequestsInFlight: average running + queued requests per replica to aim for; default "
        "80% of the engine's max batch size (TensorRT-LLM's default 2048 when the engine sets none).",
        ge=1,
        le=1048576,
    )
    targetKVCacheUtilizationPercent: int | None = Field(
        default=None,
        description="KVCacheUtilization: average KV-cache use per replica to aim for (80 when absent).",
        ge=1,
        le=100,
    )
    targetGenerationTokensPerSecond: int | None = Field(
        default=None,
        description="GenerationTokensPerSecond: generated tokens/s per replica to aim for.",
        ge=1,
        le=100000000,
    )
    targetCPUUtilizationPercentage: int | None = Field(
        default=None,
        description="CPU (and the fallback without custom metrics): target average CPU utilization of the "
        "serving pods (80 when absent); needs spec.resources.requests.cpu.",
        ge=1,
        le=100,
    )
    scaleDownStabilizationSeconds: int = Field(
        default=300,
        description="Scale down only to the highest recommendation of this window (HPA behavior).",
        ge=0,
        le=3600,
    )
    scaleUpStabilizationSeconds: int = Field(
        default=0,
        description="Scale up only to the lowest recommendation of this window (HPA behavior).",
        ge=0,
        le=3600,
    )


class ProbePrompt(ApiModel):
    """One prompt of the live accuracy probe and the answer it must contain."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.expect) != has(self.expectRegex)",
                "spec.rollout.canary.accuracyProbe.prompts[]: set exactly one of expect (a substring) or "
                "expectRegex (a regular expression)",
            )
        )
    }

    prompt: str = Field(
        description="Sent as a chat message to each canary pod.", min_length=1, max_length=4096
    )
    expect: str | None = Field(
        default=None,
        description="The answer passes when it contains this text.",
        min_length=1,
        max_length=256,
    )
    expectRegex: str | None = Field(
        default=None,
        description="The answer passes when this regular expression (Python syntax) matches part of it.",
        min_length=1,
        max_length=256,
    )


class AccuracyProbe(ApiModel):
    """A live accuracy check: prompts sent to the canary pods, scored against expected answers."""

    prompts: list[ProbePrompt] = Field(
        description="Prompts with expected answers.", min_length=1, max_length=50
    )
    minScore: float = Field(
        default=1.0, description="Share of prompts (0-1) whose answer must match.", ge=0.0, le=1.0
    )
    maxTokens: int = Field(default=64, description="max_tokens of each probe request.", ge=1, le=4096)


class CanaryGates(ApiModel):
    """What the canary must meet on live metrics (Prometheus) to be promoted."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.maxErrorRate) || has(self.maxP95LatencySeconds) || has(self.maxP95LatencyRatio) "
                "|| has(self.minTokensPerSecondRatio)",
                "spec.rollout.canary.gates: set at least one of maxErrorRate, maxP95LatencySeconds, "
                "maxP95LatencyRatio or minTokensPerSecondRatio",
            )
        )
    }

    maxErrorRate: float | None = Field(
        default=None,
        description="Highest share of failed requests (trtllm_request_error / all requests), 0-1.",
        ge=0.0,
        le=1.0,
    )
    maxP95LatencySeconds: float | None = Field(
        default=None,
        description="Highest p95 end-to-end request latency (trtllm_e2e_request_latency_seconds), seconds.",
        gt=0.0,
        le=3600.0,
    )
    maxP95LatencyRatio: float | None = Field(
        default=None,
        description="Highest canary p95 latency as a multiple of the stable revision's, e.g. 1.2.",
        ge=1.0,
        le=100.0,
    )
    minTokensPerSecondRatio: float | None = Field(
        default=None,
        description="Lowest canary generated tokens/s per replica (trtllm_generation_tokens) as a share of "
        "the stable revision's, e.g. 0.9.",
        gt=0.0,
        le=10.0,
    )
    minRequests: int = Field(
        default=20,
        description="Requests each track must have answered in the bake window before it is judged: no "
        "judging on no data (the judgement is deferred by another bakeSeconds, at most 3 times, then the "
        "canary is rolled back).",
        ge=1,
        le=1_000_000,
    )


class CanarySpec(ApiModel):
    """Serve a newly promoted engine revision to a slice first, judge it live, then promote or roll back."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!(has(self.replicas) && has(self.trafficPercent))",
                "spec.rollout.canary: set replicas or trafficPercent, not both",
            )
        )
    }

    replicas: int | None = Field(
        default=None, description="Canary pods (default: 1 when trafficPercent is not set).", ge=1, le=100
    )
    trafficPercent: int | None = Field(
        default=None,
        description="Share of traffic for the canary, 1-99. The Service spreads requests by endpoints, so "
        "the share is canary pods / all pods: the operator picks the canary replicas closest to it (at "
        "least 1) and reports the real share in status.canary.trafficPercent.",
        ge=1,
        le=99,
    )
    bakeSeconds: int = Field(
        default=300,
        description="How long the canary serves (counted from when it is available) before it is judged.",
        ge=10,
        le=86400,
    )
    gates: CanaryGates = Field(description="Live-metric gates, compared with the stable revision.")
    accuracyProbe: AccuracyProbe | None = Field(
        default=None, description="Optional prompts with expected answers sent to the canary pods."
    )


class RolloutSpec(ApiModel):
    """How serving pods are replaced when the engine revision changes."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!(has(self.maxSurge) && string(self.maxSurge).matches('^0+%?$') && "
                "has(self.maxUnavailable) && string(self.maxUnavailable).matches('^0+%?$'))",
                "spec.rollout: maxSurge and maxUnavailable may not both be 0 (the rollout could never "
                "replace a pod); set maxSurge to 1 to keep full capacity",
            )
        )
    }

    maxSurge: IntOrPercent = Field(
        default="25%", description="Extra pods during a rollout (count or percent)."
    )
    maxUnavailable: IntOrPercent = Field(
        default=0, description="Pods that may be unavailable during a rollout; 0 keeps full capacity."
    )
    canary: CanarySpec | None = Field(
        default=None,
        description="Canary by engine revision: a new promoted revision first serves from a canary "
        "Deployment behind the same Service and is judged on live metrics from Prometheus (the operator's "
        "--prometheus-url) against the serving revision before it replaces it.",
    )


class ServeSpec(ApiModel):
    """trtllm-serve settings."""

    extraArgs: list[str] = Field(
        default_factory=list,
        description='Extra trtllm-serve arguments, e.g. ["--kv_cache_free_gpu_memory_fraction", "0.85"].',
        max_length=64,
        json_schema_extra={"items": {"type": "string", "maxLength": 256}},
    )


class InferenceServiceSpec(ApiModel):
    """Desired serving deployment."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.engineRef) != has(self.engineRefs)",
                "spec: set exactly one of engineRef (one engine) or engineRefs "
                "(one engine per GPU architecture)",
            ),
            cel(
                "!has(self.engineRefs) || "
                "self.engineRefs.all(a, self.engineRefs.exists_one(b, b.name == a.name))",
                "spec.engineRefs: each engine may be listed once",
                field_path=".engineRefs",
            ),
            cel(
                "!has(self.rollout) || !has(self.rollout.canary) || has(self.engineRef)",
                "spec.rollout.canary works with one engine (spec.engineRef): remove spec.rollout.canary or "
                "serve one engine",
                field_path=".rollout.canary",
            ),
            cel(
                "!has(self.autoscaling) || !has(self.autoscaling.metric) || self.autoscaling.metric != 'CPU' "
                "|| has(self.resources) && has(self.resources.requests) && 'cpu' in self.resources.requests",
                "spec.autoscaling.metric CPU scales on CPU utilization, which needs a CPU request: set "
                "spec.resources.requests.cpu",
                field_path=".resources",
            ),
        )
    }

    engineRef: EngineRef | None = Field(default=None, description="The TRTEngine to serve.")
    engineRefs: list[EngineRef] | None = Field(
        default=None,
        description="Several TRTEngines of the same model, one per GPU architecture, behind one Service; "
        "each gets its own Deployment pinned to its architecture.",
        min_length=1,
        max_length=8,
    )
    replicas: int = Field(default=1, description="Serving pods (per engine).", ge=0, le=1000)
    image: str | None = Field(
        default=None,
        description="Serving image; defaults to the engine's build image "
        "(runtime and builder versions must match).",
        max_length=512,
        pattern=r"^[^\s]+$",
    )
    port: int = Field(
        default=8000,
        description="Container and Service port of the OpenAI-compatible API.",
        ge=1024,
        le=65535,
    )
    servedModelName: str | None = Field(
        default=None,
        description="Model name clients send (the OpenAI 'model' field); defaults to the InferenceService "
        "name. trtllm-serve has no served-model-name option: it answers to the basename of its MODEL "
        "directory, so the engine is mounted at /served/<servedModelName>; hence one path segment, no '/'. "
        "status.modelName repeats the name to send.",
        max_length=253,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    )
    allowUnvalidatedEngines: bool = Field(
        default=False,
        description="Serve engines that were promoted without validation gates. Off by default; when on, "
        "the UnvalidatedEngine warning condition says so.",
    )
    resources: ResourceRequirements | None = Field(default=None, description="CPU/memory for serving pods.")
    autoscaling: AutoscalingSpec | None = Field(
        default=None, description="Autoscaling; replaces spec.replicas."
    )
    rollout: RolloutSpec = Field(
        default_factory=RolloutSpec,
        json_schema_extra={"default": defaults_of(RolloutSpec)},
        description="Rolling-update settings.",
    )
    nodeSelector: dict[str, str] | None = Field(
        default=None,
        description="Extra node labels for serving pods.",
        max_length=32,
        json_schema_extra=node_selector_schema(),
    )
    tolerations: list[Toleration] | None = Field(
        default=None, description="Extra tolerations.", max_length=32
    )
    podSecurityContext: PodSecurityContext | None = Field(
        default=None,
        description="Overrides of the serving pods' security context (default: non-root UID/GID 1000, "
        "fsGroup 1000, seccomp RuntimeDefault; meets Pod Security 'restricted').",
    )
    securityContext: SecurityContext | None = Field(
        default=None,
        description="Overrides of the serving container's security context (default: no privilege "
        "escalation, all capabilities dropped).",
    )
    serve: ServeSpec = Field(
        default_factory=ServeSpec,
        json_schema_extra={"default": defaults_of(ServeSpec)},
        description="trtllm-serve settings.",
    )


class ArchitectureStatus(ApiModel):
    """The serving pods of one GPU architecture (one Deployment, or one LeaderWorkerSet when the engine
    needs more GPUs than one node has)."""

    computeCapability: str = Field(description="Compute capability the pods are pinned to.", max_length=5)
    deployment: str = Field(
        description="The Deployment (or LeaderWorkerSet, when groupSize is set).", max_length=253
    )
    engine: str = Field(default="", description="TRTEngine served (empty: retiring).", max_length=253)
    revision: int | None = Field(default=None, description="Engine revision served.")
    replicas: int = Field(default=0, description="Pods that exist.")
    readyReplicas: int = Field(
        default=0,
        description="Pods that are ready (multi-node: groups whose leader and every worker are ready).",
    )
    groupSize: int | None = Field(
        default=None,
        description=(
            "Multi-node: pods per replica (a LeaderWorkerSet group: one leader running trtllm-serve over "
            "MPI, the rest workers); replicas and readyReplicas then count groups."
        ),
        ge=2,
    )
    retiring: bool = Field(
        default=False,
        description="No longer wanted: kept serving until every wanted Deployment is ready, then deleted.",
    )


class TrackMeasurement(ApiModel):
    """Live numbers of one track over the bake window, from Prometheus (the servers' own metrics)."""

    revision: int = Field(description="Engine revision of the track.")
    replicas: int = Field(default=0, description="Pods that reported metrics in the window.")
    requests: float = Field(default=0.0, description="Requests answered (successes + errors) in the window.")
    errorRate: float | None = Field(default=None, description="Failed requests / all requests.")
    p95LatencySeconds: float | None = Field(default=None, description="p95 end-to-end request latency.")
    tokensPerSecondPerReplica: float | None = Field(
        default=None, description="Generated tokens per second per pod."
    )
    simulated: bool | None = Field(
        default=None,
        description="True when the numbers come from the simulation's stand-in servers, not real ones.",
    )


class CanaryStatus(ApiModel):
    """The canary in progress or last judged."""

    engine: str = Field(description="TRTEngine whose revision is canaried.", max_length=253)
    revision: int = Field(description="Engine revision on the canary.")
    baselineRevision: int = Field(description="Engine revision on the stable Deployment.")
    phase: str = Field(
        description="Baking, Promoting, Promoted, RolledBack or Cancelled (spec.rollout.canary removed).",
        max_length=16,
    )
    generation: int = Field(default=0, description="metadata.generation the canary started or ended at.")
    deployment: str = Field(default="", description="The canary Deployment.", max_length=253)
    replicas: int = Field(default=0, description="Canary pods asked for.")
    trafficPercent: float | None = Field(
        default=None, description="Real share of pods (and so of requests) on the canary, percent."
    )
    startedAt: str | None = Field(default=None, description="When the canary was created.", max_length=32)
    bakingSince: str | None = Field(
        default=None, description="When the canary became available (the bake window starts).", max_length=32
    )
    judgeAt: str | None = Field(default=None, description="When the next judgement is due.", max_length=32)
    deferrals: int = Field(
        default=0, description="Judgements deferred (too little data, metrics unreachable)."
    )
    stable: TrackMeasurement | None = Field(default=None, description="The stable track's numbers.")
    canary: TrackMeasurement | None = Field(default=None, description="The canary track's numbers.")
    accuracyScore: float | None = Field(default=None, description="Live accuracy probe score (0-1).")
    verdict: str = Field(default="", description="The judgement with its numbers.", max_length=2048)


class AutoscalingStatus(ApiModel):
    """One HorizontalPodAutoscaler (one per Deployment), as it reports itself."""

    name: str = Field(description="The HorizontalPodAutoscaler (named after its Deployment).", max_length=253)
    metric: str = Field(
        description="What it scales on: a custom metric name (pods/…) or cpu.", max_length=128
    )
    target: str = Field(description="Target per replica.", max_length=64)
    current: str | None = Field(
        default=None, description="Current value per replica, when the HPA reports one.", max_length=64
    )
    currentReplicas: int | None = Field(default=None, description="Replicas the HPA last saw.")
    desiredReplicas: int | None = Field(default=None, description="Replicas the HPA asks for.")
    fallback: bool = Field(
        default=False, description="Scaling on CPU because the cluster serves no custom metrics."
    )


class InferenceServiceStatus(ApiModel):
    """Observed state of an InferenceService; written only by the operator."""

    observedGeneration: int | None = Field(default=None, description="metadata.generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled, EngineReady, Available and warnings.",
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    url: str | None = Field(
        default=None, description="In-cluster URL of the OpenAI-compatible API.", max_length=512
    )
    replicas: int = Field(default=0, description="Serving pods that exist.")
    readyReplicas: int = Field(default=0, description="Serving pods that are ready.")
    engines: str | None = Field(
        default=None,
        description="One-line summary of the engines asked for: 'name rN' for each engine served at its "
        "promoted revision N, 'name (not served)' for one that is not (the ENGINES column).",
        max_length=1024,
    )
    engineRevision: int | None = Field(
        default=None,
        description="Promoted revision (status.engine.revision of the TRTEngine) of the first engine served.",
    )
    engineUri: str | None = Field(default=None, description="Engine being served.", max_length=1024)
    modelName: str | None = Field(
        default=None,
        description="The model name to send in OpenAI requests (what trtllm-serve answers to).",
        max_length=253,
    )
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (scale subresource).", max_length=1024
    )
    architectures: list[ArchitectureStatus] = Field(
        default_factory=list,
        description="Serving pods per GPU architecture, including a retiring one during a switch.",
        max_length=16,
    )
    canary: CanaryStatus | None = Field(
        default=None, description="The engine-revision canary in progress or last judged."
    )
    autoscaling: list[AutoscalingStatus] = Field(
        default_factory=list,
        description="Each HorizontalPodAutoscaler: metric, target, current value, current/desired replicas.",
        max_length=16,
    )


class InferenceService(ApiModel):
    """An OpenAI-compatible endpoint serving a TRTEngine on the GPU architecture it was built for."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"self.metadata.name.size() <= {SERVICE_NAME_MAX} && "
                f"self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                f"metadata.name must start with a letter and be a DNS label of at most {SERVICE_NAME_MAX} "
                "characters: it names the Service and Deployment",
                field_path=".metadata.name",
            )
        )
    }

    apiVersion: str = Field(default="trtllm.dev/v1alpha1", description="trtllm.dev/v1alpha1")
    kind: str = Field(default="InferenceService", description="InferenceService")
    spec: InferenceServiceSpec = Field(description="Desired serving deployment.")
    status: InferenceServiceStatus | None = Field(default=None, description="Observed state.")


__all__ = ["DNS_LABEL", "InferenceService", "InferenceServiceSpec", "InferenceServiceStatus"]
