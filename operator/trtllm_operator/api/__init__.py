"""The public API: TRTEngine and InferenceService (trtllm.dev/v1alpha1), the build plan and result.

Pydantic models are the single source of truth; ``crds/*.yaml`` is generated from them.
"""

from trtllm_operator.api.conditions import Condition, set_condition
from trtllm_operator.api.engine import TRTEngine, TRTEngineSpec, TRTEngineStatus
from trtllm_operator.api.plan import BuildPlan, BuildResult
from trtllm_operator.api.service import InferenceService, InferenceServiceSpec, InferenceServiceStatus

__all__ = [
    "BuildPlan",
    "BuildResult",
    "Condition",
    "InferenceService",
    "InferenceServiceSpec",
    "InferenceServiceStatus",
    "TRTEngine",
    "TRTEngineSpec",
    "TRTEngineStatus",
    "set_condition",
]
