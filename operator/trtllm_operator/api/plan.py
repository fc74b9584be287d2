"""The contract between the operator and the builder: the build plan in, the build result out.

The operator renders a :class:`BuildPlan` (pure) into a ConfigMap the build pod mounts; it carries the
exact argv of every TensorRT-LLM step, so ``trtllm-operator render`` shows reviewers what will run.
The builder writes a :class:`BuildResult` (< 4 KiB) to the termination-message path; the operator
reads it from the pod status. The build pod never needs API access.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trtllm_operator.api.constants import RESULT_MAX_BYTES
from trtllm_operator.api.engine import (
    AccuracyValidation,
    Backend,
    BenchmarkValidation,
    Domain,
    KvCacheDtype,
    Precision,
)

StepName = Literal[
    "download", "quantize", "convert", "build", "verify", "dataset", "accuracy", "benchmark", "export"
]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanStep(PlanModel):
    """One step: a name and, for TensorRT-LLM tools, the exact command line."""

    name: StepName
    argv: list[str] = Field(default_factory=list, description="Exact command; empty for in-process steps.")
    stdout: str | None = Field(
        default=None,
        description="When set, the step's standard output (only) is written to this file, e.g. the "
        "dataset prepare_dataset.py --stdout prints; stderr is still logged.",
    )


class PlanModelSource(PlanModel):
    source: str
    revision: str | None = None
    architecture: str | None = None
    domain: Domain = "general"
    local_dir: str = Field(description="Where the HF checkpoint is (or is downloaded to) inside the pod.")
    token_env: str | None = Field(
        default=None, description="Env var holding the HF token, when one is referenced."
    )


class PlanCalibration(PlanModel):
    dataset: str
    local_dir: str | None = Field(default=None, description="Local path when the dataset is on a volume.")
    size: int
    max_seq_length: int
    seed: int


class PlanPaths(PlanModel):
    """Directories on the engine volume. The engine is built in ``staging`` and renamed to ``engine``."""

    root: str
    engine: str
    staging: str
    checkpoint: str
    uri: str = Field(description="pvc://claim/path of ``engine``, recorded in status.")


class BuildPlan(PlanModel):
    """Everything the builder needs; rendered by the operator, mounted as JSON."""

    schema_version: Literal[1] = 1
    namespace: str
    engine_name: str
    revision: int
    build_config_hash: str
    backend: Backend
    image: str
    precision: Precision
    kv_cache_dtype: KvCacheDtype
    tensor: int
    pipeline: int
    #: GPUs of the build pod when fewer than tensor x pipeline (a multi-node engine built on one node).
    build_gpus: int | None = None
    target_cc: str
    target_product: str | None = None
    model: PlanModelSource
    calibration: PlanCalibration | None = None
    paths: PlanPaths
    build_flags: dict[str, str] = Field(
        default_factory=dict, description="Final trtllm-build flags (preset + overrides)."
    )
    accept_inflight_batching_disabled: bool = False
    steps: list[PlanStep]
    accuracy: AccuracyValidation | None = None
    benchmark: BenchmarkValidation | None = None
    model_params_billions: float | None = None
    notes: list[str] = Field(
        default_factory=list,
        description="Renderer notes for reviewers: flags left out and why, unverified paths.",
    )

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True)


class ResultEngine(PlanModel):
    uri: str
    sha256: str
    size: int
    files: int
    trtllm: str
    gpu: str
    cc: str
    manifest: str


class ResultBenchmark(PlanModel):
    out_tps: float
    sim: bool | None = None  # True: the report came from a simulator (never a real trtllm-bench)
    tool: str | None = None  # what produced a simulated report
    total_tps: float | None = None
    rps: float | None = None
    ttft_p50: float | None = None
    ttft_p99: float | None = None
    itl_p50: float | None = None
    itl_p99: float | None = None
    isl: int
    osl: int
    conc: int


class ResultAccuracy(PlanModel):
    task: str
    metric: str
    score: float


class BuildResult(PlanModel):
    """What the builder reports on exit (the termination message). Compact keys: it must stay < 4 KiB."""

    ok: bool
    reason: str
    message: str = ""
    revision: int = 0
    hash: str = ""
    step: str | None = None
    engine: ResultEngine | None = None
    bench: ResultBenchmark | None = None
    acc: list[ResultAccuracy] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    def to_message(self) -> str:
        """Serialize within the kubelet's 4 KiB limit, shortening the message first if needed."""
        data = self.model_dump(mode="json", exclude_none=True)
        text = json.dumps(data, separators=(",", ":"))
        overflow = len(text.encode()) - RESULT_MAX_BYTES
        if overflow > 0:
            data["message"] = data["message"][: max(0, len(data["message"]) - overflow - 16)] + "…"
            text = json.dumps(data, separators=(",", ":"))
        return text

    @classmethod
    def from_message(cls, text: str) -> BuildResult | None:
        """Parse a termination message; None when it isn't one of ours (e.g. a crash before reporting)."""
        try:
            return cls.model_validate_json(text)
        except ValueError:
            return None
