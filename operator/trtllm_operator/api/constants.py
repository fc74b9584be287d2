"""Names that are part of the public contract: API group, kinds, labels, annotations, exit codes."""

from typing import Final

GROUP: Final = "trtllm.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
CATEGORY: Final = "trtllm"

ENGINE_KIND: Final = "TRTEngine"
ENGINE_PLURAL: Final = "trtengines"
ENGINE_SINGULAR: Final = "trtengine"
ENGINE_SHORT: Final = "trte"
SERVICE_KIND: Final = "InferenceService"
SERVICE_PLURAL: Final = "inferenceservices"
SERVICE_SINGULAR: Final = "inferenceservice"
SERVICE_SHORT: Final = "trtis"

#: Longest TRTEngine name: "<name>-build-<hash8>" must stay a 63-character DNS label.
ENGINE_NAME_MAX: Final = 48
#: Longest InferenceService name: Deployment, Service and HPA share it; "-<hash>" suffixes need room.
SERVICE_NAME_MAX: Final = 52

# Labels on every child, so `kubectl get pods -l trtllm.dev/engine=NAME` finds every pod of an engine.
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "trtllm-operator"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_COMPONENT: Final = "trtllm.dev/component"
LABEL_ENGINE: Final = "trtllm.dev/engine"
LABEL_REVISION: Final = "trtllm.dev/revision"
LABEL_CONFIG_HASH: Final = "trtllm.dev/build-config-hash"
LABEL_SERVICE: Final = "trtllm.dev/inference-service"
#: Serving pods: "stable" on the Deployment that serves the promoted revision, "canary" on the canary's.
LABEL_TRACK: Final = "trtllm.dev/track"
TRACK_STABLE: Final = "stable"
TRACK_CANARY: Final = "canary"
#: Serving pod-template annotations naming the engine served (read back to keep a stable revision).
ANNOTATION_ENGINE_URI: Final = "trtllm.dev/engine-uri"
ANNOTATION_ENGINE_SHA: Final = "trtllm.dev/engine-sha256"
COMPONENT_BUILD: Final = "build"
COMPONENT_SERVER: Final = "server"
COMPONENT_CLEANUP: Final = "cleanup"
#: Worker pods of a multi-node group (LeaderWorkerSet): not selected by the Service, which reaches
#: the group's leader (component=server) only.
COMPONENT_SERVER_WORKER: Final = "server-worker"
#: The SSH identity Secret of a multi-node group (render/mpissh.py).
COMPONENT_MPI_SSH: Final = "mpi-ssh"

# LeaderWorkerSet (sigs.k8s.io/lws), for engines whose tensor x pipeline exceeds one node's GPUs.
LWS_GROUP: Final = "leaderworkerset.x-k8s.io"
LWS_VERSION: Final = "v1"
LWS_API_VERSION: Final = f"{LWS_GROUP}/{LWS_VERSION}"
LWS_KIND: Final = "LeaderWorkerSet"
LWS_PLURAL: Final = "leaderworkersets"
#: The controller release this operator is tested with (hack/build-binaries.sh LWS_VERSION).
LWS_TESTED_RELEASE: Final = "v0.8.0"
LWS_LABEL_GROUP_INDEX: Final = "leaderworkerset.sigs.k8s.io/group-index"
LWS_LABEL_WORKER_INDEX: Final = "leaderworkerset.sigs.k8s.io/worker-index"
LWS_LABEL_NAME: Final = "leaderworkerset.sigs.k8s.io/name"

FINALIZER: Final = "trtllm.dev/engine-files"

# Builder exit codes. The Job's podFailurePolicy fails the Job at once on the deterministic ones.
EXIT_OK: Final = 0
EXIT_TRANSIENT: Final = 1
EXIT_INCOMPATIBLE_GPU: Final = 10
EXIT_INVALID_PLAN: Final = 11
EXIT_VERIFY_FAILED: Final = 12
EXIT_GATE_FAILED: Final = 13
EXIT_NO_GPU: Final = 14
FATAL_EXIT_CODES: Final = (
    EXIT_INCOMPATIBLE_GPU,
    EXIT_INVALID_PLAN,
    EXIT_VERIFY_FAILED,
    EXIT_GATE_FAILED,
    EXIT_NO_GPU,
)

#: Where the build pod finds its plan and writes its result.
PLAN_MOUNT: Final = "/etc/trtllm/plan"
PLAN_FILE: Final = "plan.json"
ENGINES_MOUNT: Final = "/engines"
MODELS_MOUNT: Final = "/models"
TERMINATION_LOG: Final = "/dev/termination-log"
RESULT_MAX_BYTES: Final = 4096
