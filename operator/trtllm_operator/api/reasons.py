"""Condition types and reasons: CamelCase constants, the only place they are spelled.

Condition polarity follows Kubernetes API conventions and kstatus: ``Ready`` / ``Reconciling`` /
``Stalled`` are the three generic ones that kstatus and Argo CD read; the rest are domain
conditions that say which step of the optimization pass is where.
"""

from typing import Final

# Condition types.
READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"
GPU_COMPATIBLE: Final = "GPUCompatible"
SCHEDULED: Final = "Scheduled"
BUILT: Final = "Built"
VALIDATED: Final = "Validated"
ENGINE_READY: Final = "EngineReady"
AVAILABLE: Final = "Available"
# Warning conditions (True means the warning applies).
CALIBRATION_DOMAIN_MISMATCH: Final = "CalibrationDomainMismatch"
INFLIGHT_BATCHING_DISABLED: Final = "InflightBatchingDisabled"
UNVALIDATED_ENGINE: Final = "UnvalidatedEngine"
EXTRA_ARGS_IGNORED: Final = "ExtraArgsIgnored"
#: InferenceService: its autoscaling does not do what spec.autoscaling asks (CPU fallback, HPA trouble).
AUTOSCALING_DEGRADED: Final = "AutoscalingDegraded"
#: InferenceService: some of the engines asked for are not served (a warning that Ready=False carries too).
DEGRADED: Final = "Degraded"

# Reasons.
INVALID_SPEC: Final = "InvalidSpec"
#: No Available custom.metrics.k8s.io APIService: the HPA scales on CPU instead.
CUSTOM_METRICS_UNAVAILABLE: Final = "CustomMetricsUnavailable"
#: The HPA says ScalingActive=False or AbleToScale=False (its own reason follows in the message).
HPA_NOT_SCALING: Final = "HorizontalPodAutoscalerNotScaling"
#: The build pod breaks the namespace's Pod Security level (pod-security.kubernetes.io/enforce).
POD_SECURITY_VIOLATION: Final = "PodSecurityViolation"
#: A build Job that never started a pod is replaced because spec security contexts changed.
JOB_REPLACED: Final = "JobReplaced"
COMPATIBLE: Final = "Compatible"
NO_COMPATIBLE_NODES: Final = "NoCompatibleNodes"
#: A multi-node engine (tensor x pipeline over several nodes) with benchmark/accuracy gates.
MULTI_NODE_VALIDATION_UNSUPPORTED: Final = "MultiNodeValidationUnsupported"
#: An InferenceService needs a LeaderWorkerSet but the LeaderWorkerSet API is not installed.
LEADER_WORKER_SET_MISSING: Final = "LeaderWorkerSetNotInstalled"
#: A multi-node engine whose ranks can't be split evenly over the nodes of its architecture.
NO_MULTI_NODE_SPLIT: Final = "NoMultiNodeSplit"
#: The multi-node group's SSH identity Secret (<service>-mpi-ssh) is not what the operator wrote.
MPI_SSH_SECRET_INVALID: Final = "MpiSshSecretInvalid"  # noqa: S105 (a reason, not a password)
PRECISION_UNSUPPORTED: Final = "PrecisionUnsupported"
INSUFFICIENT_GPUS: Final = "InsufficientGPUs"
INSUFFICIENT_MEMORY: Final = "InsufficientGPUMemory"
UNKNOWN_GPU_PRODUCT: Final = "UnknownGPUProduct"
QUEUED: Final = "Queued"
JOB_CREATED: Final = "JobCreated"
POD_PENDING: Final = "PodPending"
UNSCHEDULABLE: Final = "Unschedulable"
POD_SCHEDULED: Final = "PodScheduled"
BUILDING: Final = "Building"
VALIDATING: Final = "Validating"
BUILD_SUCCEEDED: Final = "BuildSucceeded"
BUILD_FAILED: Final = "BuildFailed"
BUILD_RETRYING: Final = "BuildRetrying"
JOB_MISSING: Final = "JobMissing"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
INCOMPATIBLE_GPU: Final = "IncompatibleGPU"
NO_GPU_VISIBLE: Final = "NoGPUVisible"
INSUFFICIENT_GPU_MEMORY: Final = "InsufficientGPUMemory"
STEP_FAILED: Final = "StepFailed"
VERIFICATION_FAILED: Final = "VerificationFailed"
INVALID_PLAN: Final = "InvalidPlan"
ENGINE_PROMOTED: Final = "EnginePromoted"
NEW_REVISION: Final = "NewRevision"
ACCURACY_REGRESSION: Final = "AccuracyRegression"
THROUGHPUT_BELOW_TARGET: Final = "ThroughputBelowTarget"
LATENCY_ABOVE_TARGET: Final = "LatencyAboveTarget"
GATES_PASSED: Final = "GatesPassed"
NOT_VALIDATED: Final = "NotValidated"
NOT_CONFIGURED: Final = "NotConfigured"
DOMAIN_MISMATCH: Final = "DomainMismatch"
DOMAIN_MATCH: Final = "DomainMatch"
OVERRIDE_DISABLES_IFB: Final = "OverrideDisablesInflightBatching"
IFB_ENABLED: Final = "InflightBatchingEnabled"
STORAGE_PENDING: Final = "StoragePending"
# InferenceService.
ENGINE_NOT_FOUND: Final = "EngineNotFound"
ENGINE_NOT_READY: Final = "EngineNotReady"
ENGINE_NOT_VALIDATED: Final = "EngineNotValidated"
#: The serving image's TensorRT-LLM version differs from the engine's (its plan would not deserialize).
RUNTIME_VERSION_MISMATCH: Final = "RuntimeVersionMismatch"
#: Warning condition type and reason: the serving image's version cannot be told from its tag.
RUNTIME_VERSION_UNKNOWN: Final = "RuntimeVersionUnknown"
# Engine-revision canary (condition types Canary and RolledBack).
CANARY: Final = "Canary"
ROLLED_BACK: Final = "RolledBack"
CANARY_STARTING: Final = "CanaryStarting"
CANARY_BAKING: Final = "CanaryBaking"
CANARY_PROMOTING: Final = "CanaryPromoting"
CANARY_PROMOTED: Final = "CanaryPromoted"
CANARY_FAILED: Final = "CanaryFailed"
CANARY_ROLLED_BACK: Final = "CanaryRolledBack"
CANARY_SKIPPED: Final = "CanarySkipped"
METRICS_UNAVAILABLE: Final = "MetricsUnavailable"
INSUFFICIENT_DATA: Final = "InsufficientData"
DEPLOYMENT_AVAILABLE: Final = "DeploymentAvailable"
DEPLOYMENT_PROGRESSING: Final = "DeploymentProgressing"
ROLLOUT_STALLED: Final = "RolloutStalled"
# Builder (termination-message reasons that only the build pod reports).
BUILDER_CRASHED: Final = "BuilderCrashed"
BUILD_INTERRUPTED: Final = "BuildInterrupted"
ENGINE_DIRECTORY_CONFLICT: Final = "EngineDirectoryConflict"
APPLY_FAILED: Final = "ApplyFailed"
# Untrusted input and deletion.
INVALID_BUILD_RESULT: Final = "InvalidBuildResult"
INVALID_ENGINE_STATUS: Final = "InvalidEngineStatus"
ENGINE_STALLED: Final = "EngineStalled"
PARTIALLY_SERVED: Final = "PartiallyServed"
DUPLICATE_ARCHITECTURE: Final = "DuplicateArchitecture"
DELETING_ENGINE_FILES: Final = "DeletingEngineFiles"
CLEANUP_FAILED: Final = "CleanupFailed"
CLEANUP_SKIPPED: Final = "CleanupSkipped"
