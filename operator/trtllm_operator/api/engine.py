"""TRTEngine: a model + precision + parallelism + target GPU, built into a versioned engine.

These models are the single source of truth: ``trtllm-operator crds`` generates ``crds/`` from them,
and their descriptions are what ``kubectl explain trtengine.spec`` prints. CEL rules stop invalid
requests at admission with a message that names the field and the fix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from trtllm_operator.api.common import (
    DNS_LABEL,
    ApiModel,
    EngineRef,
    PositiveQuantity,
    ResourceRequirements,
    SecretKeyRef,
    Toleration,
    cel,
    defaults_of,
    no_dotdot_rule,
    node_selector_schema,
    object_name_rule,
    validations,
)
from trtllm_operator.api.conditions import Condition
from trtllm_operator.api.constants import ENGINE_NAME_MAX
from trtllm_operator.api.security import PodSecurityContext, SecurityContext
from trtllm_operator.trtllm import sm_rules
from trtllm_operator.trtllm.cli_tables import CONVERT_NO_PP_ARCHITECTURES, EVAL_TASKS

Backend = Literal["tensorrt", "pytorch"]
Precision = Literal["fp16", "bf16", "fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "int8_wo", "int4_wo"]
KvCacheDtype = Literal["auto", "fp16", "fp8", "int8"]
Domain = Literal["general", "code", "math", "chat", "multilingual"]
Preset = Literal["throughput", "latency", "none"]
#: Stalled whenever the Stalled condition is True; Failed is no longer written (kept so that objects written
#: by older operators stay valid until their next reconcile).
Phase = Literal["Pending", "Queued", "Building", "Validating", "Ready", "Stalled", "Failed"]

SOURCE_RULE = r"^(hf://[A-Za-z0-9][-A-Za-z0-9_.]*/[-A-Za-z0-9_.]+|pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^/\s][^\s]*)?|s3://[a-z0-9][-a-z0-9.]{1,61}[a-z0-9](/[^\s]*)?)$"
PVC_URI_RULE = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/[^\s]*)?$"
NAMED_CALIBRATION_DATASETS = ("cnn_dailymail", "pileval", "scienceqa")


class ModelSpec(ApiModel):
    """Where the model comes from and what it is."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"self.source.matches(r'{SOURCE_RULE}')",
                "spec.model.source must be hf://org/name, pvc://claim/path or s3://bucket/path "
                "(e.g. hf://meta-llama/Llama-3.3-70B-Instruct)",
                field_path=".source",
            ),
            cel(
                no_dotdot_rule("self.source"),
                "spec.model.source must not contain '..' path segments: name the directory inside the claim "
                "or bucket directly",
                field_path=".source",
            ),
            cel(
                "!has(self.revision) || self.source.startsWith('hf://')",
                "spec.model.revision applies to hf:// sources only; pin pvc:// and s3:// sources by path",
                field_path=".revision",
            ),
        )
    }

    source: str = Field(
        description="Model location: hf://org/name (Hugging Face Hub), pvc://claim/path (a PVC in this "
        "namespace) or s3://bucket/path.",
        min_length=6,
        max_length=512,
    )
    revision: str | None = Field(
        default=None,
        description="Hub revision (commit, tag or branch) to pin for hf:// sources; a commit SHA makes "
        "the build reproducible.",
        max_length=128,
        pattern=r"^[A-Za-z0-9._/-]+$",
    )
    architecture: str | None = Field(
        default=None,
        description="Hugging Face architecture, e.g. LlamaForCausalLM. Decides which build flags apply "
        "(reduce fusion needs a Llama-family model); read from the checkpoint when absent.",
        max_length=128,
        pattern=r"^[A-Za-z][A-Za-z0-9]*$",
    )
    domain: Domain = Field(
        default="general",
        description="What the model is for: general, code, math, chat or multilingual. The operator warns "
        "(CalibrationDomainMismatch) when the calibration data is from another domain.",
    )
    parametersBillions: float | None = Field(
        default=None,
        description="Model size in billions of parameters (e.g. 70). Lets the operator check that the "
        "target GPUs have memory for the weights before scheduling.",
        gt=0,
        le=10000,
    )
    tokenSecretRef: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding a Hugging Face token for gated models; passed to the build pod "
        "only through secretKeyRef, never copied.",
    )


class CalibrationSpec(ApiModel):
    """Post-training quantization calibration data."""

    dataset: str = Field(
        default="cnn_dailymail",
        description="Calibration data: a named dataset (cnn_dailymail, pileval, scienceqa; needs the Hub) "
        "or pvc://claim/path to text files. Pick data from the model's domain: news summaries "
        "calibrate a code or math model badly.",
        min_length=1,
        max_length=512,
        json_schema_extra=validations(
            cel(
                f"self in {list(NAMED_CALIBRATION_DATASETS)} || self.matches(r'{PVC_URI_RULE}')",
                "spec.calibration.dataset must be one of "
                + ", ".join(NAMED_CALIBRATION_DATASETS)
                + " or pvc://claim/path (text files on a PVC in this namespace)",
            ),
            cel(
                no_dotdot_rule("self"),
                "spec.calibration.dataset must not contain '..' path segments: name the directory inside "
                "the claim directly",
            ),
        ),
    )
    size: int = Field(
        default=512,
        description="Number of calibration samples (AWQ formats use at most 32).",
        ge=1,
        le=65536,
    )
    maxSeqLength: int = Field(default=512, description="Tokens per calibration sample.", ge=16, le=131072)
    seed: int = Field(default=1234, description="Random seed for sample selection.", ge=0, le=2147483647)


class ParallelismSpec(ApiModel):
    """Model parallelism; the build pod gets tensor × pipeline GPUs on one node."""  # noqa: RUF002

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "[1, 2, 4, 8, 16, 32, 64].exists(n, n == self.tensor * self.pipeline)",
                "spec.parallelism: tensor × pipeline must be a power of two ≤ 64 (1, 2, 4, 8, 16, 32 or 64), "  # noqa: RUF001
                "e.g. tensor 4 and pipeline 1 for four GPUs",
            )
        )
    }

    tensor: int = Field(
        default=1, description="Tensor-parallel size (GPUs a layer is split across).", ge=1, le=64
    )
    pipeline: int = Field(default=1, description="Pipeline-parallel size (stages of layers).", ge=1, le=64)


class TargetSpec(ApiModel):
    """The GPU the engine is built for and will be served on.

    Engines are not portable across architectures.
    """

    computeCapability: str | None = Field(
        default=None,
        description='CUDA compute capability "major.minor", e.g. "9.0" (H100/H200), "8.0" (A100), '
        '"8.9" (L40S), "10.0" (B200). When absent the operator chooses from the cluster and records '
        "the choice in status.gpu.",
        pattern=r"^[0-9]{1,2}\.[0-9]$",
        max_length=5,
    )
    gpuProduct: str | None = Field(
        default=None,
        description="GFD product label value (nvidia.com/gpu.product), e.g. NVIDIA-H100-80GB-HBM3, to "
        "pin one product of an architecture.",
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    )


class BuildSpec(ApiModel):
    """trtllm-build settings (tensorrt backend) and the tuning preset."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.maxInputLen) || !has(self.maxSeqLen) || self.maxInputLen <= self.maxSeqLen",
                "spec.build.maxInputLen must be ≤ spec.build.maxSeqLen (the sequence holds the input and the "
                "output): raise maxSeqLen or lower maxInputLen",
                field_path=".maxInputLen",
            )
        )
    }

    preset: Preset = Field(
        default="throughput",
        description="Tuned flags per GPU architecture and precision: throughput (NVIDIA's tuning guide: "
        "FP8 GEMM/SwiGLU, reduce fusion, user buffers where they apply), latency, or none (TensorRT-LLM "
        "defaults). See docs/presets.md.",
    )
    maxBatchSize: int | None = Field(
        default=None, description="--max_batch_size (default 2048).", ge=1, le=65536
    )
    maxNumTokens: int | None = Field(
        default=None, description="--max_num_tokens (default 8192).", ge=1, le=1048576
    )
    maxInputLen: int | None = Field(
        default=None, description="--max_input_len (default 1024).", ge=1, le=1048576
    )
    maxSeqLen: int | None = Field(
        default=None, description="--max_seq_len (default: from the model).", ge=1, le=1048576
    )
    extraArgs: list[str] = Field(
        default_factory=list,
        description='Extra trtllm-build arguments, e.g. ["--multiple_profiles", "enable"]; they override '
        "the preset. Overrides that disable in-flight batching raise the InflightBatchingDisabled warning.",
        max_length=64,
        json_schema_extra={"items": {"type": "string", "maxLength": 256}},
    )
    acceptInflightBatchingDisabled: bool = Field(
        default=False,
        description="Accept an engine without in-flight batching (GPT attention plugin, packed input and "
        "paged KV cache). Off by default: verification fails such an engine.",
    )


AccessMode = Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"]


def _default_access_modes() -> list[AccessMode]:
    return ["ReadWriteMany"]


class ClaimTemplate(ApiModel):
    """A PersistentVolumeClaim the operator creates for engines."""

    size: PositiveQuantity = Field(description="Requested capacity, e.g. 200Gi.")
    storageClassName: str | None = Field(
        default=None,
        description="StorageClass; the cluster default when absent.",
        max_length=253,
        json_schema_extra=validations(
            object_name_rule("spec.storage.claim.storageClassName", "StorageClass")
        ),
    )
    accessModes: list[AccessMode] = Field(
        default_factory=_default_access_modes,
        json_schema_extra={
            "default": ["ReadWriteMany"],
            "x-kubernetes-list-type": "set",
            **validations(
                cel(
                    "!self.exists(m, m == 'ReadWriteOncePod') || size(self) == 1",
                    "spec.storage.claim.accessModes: ReadWriteOncePod cannot be combined with other access "
                    "modes; list it alone",
                )
            ),
        },
        description="Access modes; ReadWriteMany lets serving pods on several nodes mount the engine.",
        min_length=1,
        max_length=4,
    )


class StorageSpec(ApiModel):
    """Where engines are written: an existing PVC, or a claim the operator creates (exactly one)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.existingClaim) != has(self.claim)",
                "spec.storage: set exactly one of existingClaim (a PVC you made) or claim (the operator "
                "creates <name>-engines)",
            )
        )
    }

    existingClaim: str | None = Field(
        default=None,
        description="Name of an existing PVC in this namespace.",
        max_length=253,
        pattern=DNS_LABEL,
    )
    claim: ClaimTemplate | None = Field(
        default=None, description="Create a PVC named <engine>-engines with these settings."
    )
    path: str = Field(
        default="engines",
        description="Directory inside the volume; engines go to <path>/<engine>/<build-config-hash>.",
        max_length=128,
        pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$",
        json_schema_extra=validations(
            cel(
                no_dotdot_rule("self"),
                "spec.storage.path must not contain '..' segments: it must stay inside the volume (a "
                "cleanup Job deletes <path>/<engine>)",
            )
        ),
    )


class Baseline(ApiModel):
    """The score to compare against: a number, or another TRTEngine (e.g. the same model at bf16)."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "has(self.value) != has(self.engineRef)",
                "baseline: set exactly one of value (a number) or engineRef (a reference TRTEngine)",
            )
        )
    }

    value: float | None = Field(default=None, description="Baseline score.")
    engineRef: EngineRef | None = Field(
        default=None,
        description="A TRTEngine in this namespace whose measured score on the same task is the baseline.",
    )


#: trtllm-eval's tasks at 1.2 and 1.3 (``trtllm/cli_tables.py`` EVAL_TASKS: a unit test keeps them equal) and
#: our own perplexity evaluator. There is no humaneval in trtllm-eval at any version.
AccuracyTaskName = Literal[
    "mmlu",
    "gsm8k",
    "gpqa_diamond",
    "gpqa_main",
    "gpqa_extended",
    "cnn_dailymail",
    "json_mode_eval",
    "mmmu",
    "perplexity",
]
#: Tasks the tensorrt backend's evaluator has (trtllm-eval 1.2; mmmu came with the 1.3 line).
TENSORRT_EVAL_TASKS: tuple[str, ...] = (*EVAL_TASKS["1.2"], "perplexity")
Metric = Literal["accuracy", "exact_match", "pass_at_1", "rouge1", "perplexity"]
#: The metric each built-in task reports when ``metric`` is not set (the builder and the gates both use it).
DEFAULT_METRIC: dict[str, str] = {
    "mmlu": "accuracy",
    "gsm8k": "exact_match",
    "gpqa_diamond": "accuracy",
    "cnn_dailymail": "rouge1",
    "gpqa_main": "accuracy",
    "gpqa_extended": "accuracy",
    "json_mode_eval": "accuracy",
    "mmmu": "accuracy",
    "perplexity": "perplexity",
}
#: Metrics where a lower score is better; for them a "drop" is an increase.
LOWER_IS_BETTER: frozenset[str] = frozenset({"perplexity"})


class AccuracyTask(ApiModel):
    """One accuracy evaluation."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.name != 'perplexity' || has(self.dataset)",
                "validation.accuracy.tasks[].dataset is required for perplexity: "
                "pvc://claim/path to text files",
            ),
            cel(
                "!has(self.maxDropMode) || self.maxDropMode != 'relative' || self.maxDrop <= 1.0",
                "validation.accuracy.tasks[].maxDrop is a fraction (≤ 1.0) when maxDropMode is relative",
            ),
        )
    }

    name: AccuracyTaskName = Field(
        description="A trtllm-eval task (mmlu, gsm8k, gpqa_diamond, gpqa_main, gpqa_extended, cnn_dailymail, "
        "json_mode_eval; mmmu with backend pytorch) or perplexity on your own dataset (our evaluator: the "
        "gate for code models, e.g. on held-out code)."
    )
    dataset: str | None = Field(
        default=None,
        description="pvc://claim/path of your own evaluation data.",
        max_length=512,
        pattern=PVC_URI_RULE,
        json_schema_extra=validations(
            cel(
                no_dotdot_rule("self"),
                "validation.accuracy.tasks[].dataset must not contain '..' path segments: name the directory "
                "inside the claim directly",
            )
        ),
    )
    metric: Metric | None = Field(
        default=None, description="Metric to gate on; the task's usual metric when absent."
    )
    numSamples: int | None = Field(
        default=None, description="Evaluate on this many samples.", ge=1, le=1000000
    )
    baseline: Baseline = Field(description="What the score is compared with.")
    maxDrop: float = Field(description="Largest acceptable loss against the baseline.", ge=0)
    maxDropMode: Literal["absolute", "relative"] = Field(
        default="absolute", description="absolute: score units; relative: a fraction of the baseline."
    )


class AccuracyValidation(ApiModel):
    """Accuracy gate: every task must stay within maxDrop of its baseline."""

    tasks: list[AccuracyTask] = Field(description="Tasks to evaluate.", min_length=1, max_length=8)


class BenchmarkValidation(ApiModel):
    """Benchmark gate run with trtllm-bench at the production input/output mix."""

    inputLength: int = Field(
        default=128, description="Input sequence length (ISL) in tokens.", ge=1, le=1048576
    )
    outputLength: int = Field(
        default=128, description="Output sequence length (OSL) in tokens.", ge=1, le=1048576
    )
    concurrency: int = Field(default=64, description="Concurrent requests.", ge=1, le=65536)
    numRequests: int = Field(default=512, description="Requests to send.", ge=1, le=1000000)
    minOutputTokensPerSecond: float | None = Field(
        default=None, description="Floor on output tokens/s.", gt=0
    )
    maxTtftP99Ms: float | None = Field(
        default=None, description="Ceiling on p99 time to first token (ms).", gt=0
    )
    maxItlP99Ms: float | None = Field(
        default=None, description="Ceiling on p99 inter-token latency (ms).", gt=0
    )


class ValidationSpec(ApiModel):
    """Gates an engine must pass before it is promoted.

    Absent: promoted after build + verify, marked unvalidated.
    """

    accuracy: AccuracyValidation | None = Field(default=None, description="Accuracy evaluation gate.")
    benchmark: BenchmarkValidation | None = Field(default=None, description="Throughput/latency gate.")


_CC = "double(self.target.computeCapability)"
#: Every rule that converts the compute capability guards with this: a malformed value ("abc") gets the
#: pattern error only, never a CEL "type conversion error".
_HAS_CC = (
    "has(self.target) && has(self.target.computeCapability) && "
    "self.target.computeCapability.matches(r'^[0-9]{1,2}\\.[0-9]$')"
)


#: ``builder.build()``'s INT8/INT4 refusal range (``trtllm/sm_rules.py``), as a CEL condition.
_ENGINE_INT_RANGE = (
    f"{_CC} >= {sm_rules.sm_to_cc(sm_rules.ENGINE_INT_SM[0])} && "
    f"{_CC} < {sm_rules.sm_to_cc(sm_rules.ENGINE_INT_SM[1])}"
)


class TRTEngineSpec(ApiModel):
    """Desired engine: what to build, for which GPU, and how to check it."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"!({_HAS_CC}) || !(self.precision in ['fp8', 'w4a8_awq']) || {_CC} >= 8.9",
                message_expression="'spec.precision ' + self.precision + ' needs compute capability ≥ 8.9 "
                "(Ada, Hopper, Blackwell) but spec.target.computeCapability is ' + "
                "self.target.computeCapability + ': use int8_sq or int4_awq for this GPU, "
                "or target 8.9 or newer'",
                field_path=".precision",
            ),
            cel(
                f"!({_HAS_CC}) || self.precision != 'nvfp4' || {_CC} >= 10.0",
                message_expression="'spec.precision nvfp4 needs compute capability ≥ 10.0 (Blackwell) but "
                "spec.target.computeCapability is ' + self.target.computeCapability + ': use fp8 on "
                "Ada/Hopper, or target 10.0'",
                field_path=".precision",
            ),
            cel(
                f"!({_HAS_CC}) || self.precision != 'bf16' && !(self.precision in ['int8_sq', 'int8_wo', "
                f"'int4_wo', 'int4_awq']) || {_CC} >= 8.0",
                message_expression="'spec.precision ' + self.precision + ' needs compute capability ≥ 8.0 "
                "but spec.target.computeCapability is ' + self.target.computeCapability + ': use fp16 on "
                "this GPU'",
                field_path=".precision",
            ),
            cel(
                f"!({_HAS_CC}) || {_CC} >= 7.0",
                "spec.target.computeCapability must be 7.0 or newer (Volta+); "
                "TensorRT-LLM does not run on older GPUs",
                field_path=".target.computeCapability",
            ),
            cel(
                f"!({_HAS_CC}) || self.kvCacheDtype != 'fp8' || {_CC} >= 8.9",
                message_expression="'spec.kvCacheDtype fp8 needs compute capability ≥ 8.9 but "
                "spec.target.computeCapability is ' + self.target.computeCapability + "
                "': use kvCacheDtype ' + "
                f"({_CC} >= 8.0 ? 'int8 or auto' : 'auto or fp16') + ' for this GPU'",
                field_path=".kvCacheDtype",
            ),
            cel(
                f"!({_HAS_CC}) || self.kvCacheDtype != 'int8' || {_CC} >= 8.0",
                message_expression="'spec.kvCacheDtype int8 needs compute capability ≥ 8.0 but "
                "spec.target.computeCapability is ' + self.target.computeCapability + ': use kvCacheDtype "
                "auto or fp16 for this GPU'",
                field_path=".kvCacheDtype",
            ),
            cel(
                f"!({_HAS_CC}) || self.backend != 'tensorrt' || !({_ENGINE_INT_RANGE}) || "
                f"!(self.precision in {sorted(sm_rules.ENGINE_INT_PRECISIONS)})",
                message_expression="'spec.precision ' + self.precision + ': the tensorrt backend rejects "
                "INT8/INT4 formats on SM 10.x-11.x (spec.target.computeCapability ' + "
                "self.target.computeCapability + '): use fp8 or nvfp4, or spec.backend pytorch'",
                field_path=".precision",
            ),
            cel(
                f"!({_HAS_CC}) || self.backend != 'tensorrt' || !({_ENGINE_INT_RANGE}) || "
                "self.kvCacheDtype != 'int8'",
                "spec.kvCacheDtype int8: the tensorrt backend rejects INT8 quantization on SM 10.x-11.x; use "
                "kvCacheDtype fp8 on Blackwell",
                field_path=".kvCacheDtype",
            ),
            cel(
                "self.backend != 'tensorrt' || !has(self.model.architecture) || "
                f"!(self.model.architecture in {list(CONVERT_NO_PP_ARCHITECTURES)}) || "
                "!has(self.parallelism) || !has(self.parallelism.pipeline) || self.parallelism.pipeline == 1",
                "spec.parallelism.pipeline must be 1 for spec.model.architecture "
                f"{' / '.join(CONVERT_NO_PP_ARCHITECTURES)} with the tensorrt backend: their "
                "convert_checkpoint.py has no pipeline parallelism (gemma: no --pp_size; phi: asserts "
                "pp_size == 1); use pipeline 1 with more tensor parallelism, or spec.backend pytorch",
                field_path=".parallelism.pipeline",
            ),
            cel(
                "self.backend != 'pytorch' || self.kvCacheDtype != 'int8'",
                "spec.kvCacheDtype int8: the pytorch backend has no INT8 KV cache (ModelOpt's Hugging Face "
                "export refuses it); use kvCacheDtype fp8 (compute capability ≥ 8.9) or auto, or backend "
                "tensorrt",
                field_path=".kvCacheDtype",
            ),
            cel(
                "self.backend != 'tensorrt' || !has(self.validation) || !has(self.validation.accuracy) || "
                f"self.validation.accuracy.tasks.all(t, t.name in {list(TENSORRT_EVAL_TASKS)})",
                "spec.validation.accuracy.tasks: trtllm-eval 1.2 (backend tensorrt) has only "
                + ", ".join(TENSORRT_EVAL_TASKS)
                + "; use one of those, or backend pytorch (TensorRT-LLM 1.3+) for mmmu",
                field_path=".validation.accuracy.tasks",
            ),
            cel(
                "self.backend != 'tensorrt' || !self.image.matches(r':v?1\\.([3-9]|[1-9][0-9])\\.[0-9]+')",
                "spec.image: TensorRT-LLM 1.3 and later removed the TensorRT engine path (trtllm-build); use "
                "an image of the 1.2 line for backend tensorrt, or backend pytorch",
                field_path=".image",
            ),
            cel(
                "self.backend != 'pytorch' || !has(self.build) || !has(self.build.extraArgs) || "
                "size(self.build.extraArgs) == 0",
                "spec.build.extraArgs are trtllm-build flags and apply to backend tensorrt only; remove them "
                "for backend pytorch",
                field_path=".build.extraArgs",
            ),
        )
    }

    model: ModelSpec = Field(description="The model to build.")
    backend: Backend = Field(
        default="tensorrt",
        description="tensorrt: a TensorRT engine built with trtllm-build (TensorRT-LLM ≤ 1.2). pytorch: a "
        "ModelOpt-quantized Hugging Face checkpoint served by the PyTorch backend (TensorRT-LLM ≥ 1.3, "
        "which removed the engine path).",
    )
    image: str = Field(
        description="TensorRT-LLM container image, e.g. nvcr.io/nvidia/tensorrt-llm/release:1.2.0. The "
        "same image serves the engine: runtime and builder versions must match.",
        min_length=1,
        max_length=512,
        pattern=r"^[^\s]+$",
    )
    precision: Precision = Field(
        description="Weight/activation precision: fp16, bf16, fp8 (≥ 8.9), int8_sq (SmoothQuant), "
        "int4_awq (W4A16), w4a8_awq (≥ 8.9), nvfp4 (≥ 10.0), int8_wo, int4_wo (weight-only). The engine "
        "path rejects INT8/INT4 formats on SM 10.x-11.x (SM 12.x is allowed)."
    )
    kvCacheDtype: KvCacheDtype = Field(
        default="auto",
        description="KV-cache dtype: auto (the model dtype), fp16, fp8 (≥ 8.9; frees memory for larger "
        "batches) or int8.",
    )
    calibration: CalibrationSpec = Field(
        default_factory=CalibrationSpec,
        json_schema_extra={"default": defaults_of(CalibrationSpec)},
        description="Calibration data. Used only for quantized precisions (fp8, int8_sq, int4_awq, w4a8_awq, "
        "nvfp4, int8_wo, int4_wo) or a quantized KV cache (kvCacheDtype fp8 or int8); fp16 and bf16 engines "
        "with kvCacheDtype auto or fp16 ignore it (the default is still filled in).",
    )
    parallelism: ParallelismSpec = Field(
        default_factory=ParallelismSpec,
        json_schema_extra={"default": defaults_of(ParallelismSpec)},
        description="Tensor and pipeline parallelism.",
    )
    target: TargetSpec | None = Field(
        default=None, description="The GPU architecture (and optionally product) to build for."
    )
    build: BuildSpec = Field(
        default_factory=BuildSpec,
        json_schema_extra={"default": defaults_of(BuildSpec)},
        description="Build settings and tuning preset.",
    )
    storage: StorageSpec = Field(description="Where the engine files are written.")
    validation: ValidationSpec | None = Field(
        default=None, description="Accuracy and benchmark gates before promotion."
    )
    deletionPolicy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain keeps engine files when the TRTEngine is deleted; Delete removes them.",
    )
    resources: ResourceRequirements | None = Field(default=None, description="CPU/memory for the build pod.")
    nodeSelector: dict[str, str] | None = Field(
        default=None,
        description="Extra node labels the build pod requires.",
        max_length=32,
        json_schema_extra=node_selector_schema(),
    )
    tolerations: list[Toleration] | None = Field(
        default=None,
        description="Extra tolerations (the nvidia.com/gpu taint is always tolerated).",
        max_length=32,
    )
    priorityClassName: str | None = Field(
        default=None,
        description="PriorityClass of the build pod.",
        max_length=253,
        json_schema_extra=validations(object_name_rule("spec.priorityClassName", "PriorityClass")),
    )
    podSecurityContext: PodSecurityContext | None = Field(
        default=None,
        description="Overrides of the build and cleanup pods' security context (default: non-root UID/GID "
        "1000, fsGroup 1000, seccomp RuntimeDefault; meets Pod Security 'restricted').",
    )
    securityContext: SecurityContext | None = Field(
        default=None,
        description="Overrides of every build/cleanup container's security context (default: no "
        "privilege escalation, all capabilities dropped).",
    )
    activeDeadlineSeconds: int = Field(
        default=14400, description="Wall-clock limit of a build (all attempts), in seconds.", ge=60, le=604800
    )
    backoffLimit: int = Field(
        default=2, description="Retries of a transiently failed build pod.", ge=0, le=10
    )


class GpuStatus(ApiModel):
    """The GPU target actually chosen."""

    computeCapability: str = Field(description="Chosen compute capability.", max_length=5)
    architecture: str = Field(default="", description="Architecture name, e.g. Hopper.", max_length=32)
    gpuProduct: str | None = Field(default=None, description="Chosen product, when pinned.", max_length=63)
    gpus: int = Field(default=1, description="GPUs per build pod (tensor × pipeline).")  # noqa: RUF001
    candidateNodes: int = Field(default=0, description="Nodes that can run the build now.")
    reason: str = Field(default="", description="How the target was chosen.", max_length=512)


class EngineStatus(ApiModel):
    """A built, verified engine artifact."""

    revision: int = Field(description="Spec revision it was built from.")
    uri: str = Field(description="pvc://claim/path of the engine directory.", max_length=1024)
    sha256: str = Field(
        default="",
        description="sha256 of engine-manifest.json (which lists every file's sha256).",
        max_length=64,
    )
    sizeBytes: int = Field(default=0, description="Total size of the engine files.")
    trtllmVersion: str = Field(default="", description="TensorRT-LLM version that built it.", max_length=64)
    image: str = Field(default="", description="Image that built it (and must serve it).", max_length=512)
    buildConfigHash: str = Field(default="", description="Hash of the build-relevant spec.", max_length=64)
    manifest: str = Field(
        default="", description="Path of engine-manifest.json inside the volume.", max_length=1024
    )
    precision: str = Field(default="", description="Precision built.", max_length=16)
    kvCacheDtype: str = Field(default="", description="KV-cache dtype built.", max_length=16)
    computeCapability: str = Field(
        default="", description="Compute capability of the GPU it was built on.", max_length=5
    )
    gpuProduct: str = Field(default="", description="GPU it was built on.", max_length=128)
    validated: bool = Field(default=False, description="Whether configured gates ran and passed.")
    builtAt: str | None = Field(default=None, description="When the build finished.", max_length=32)


class Percentiles(ApiModel):
    """Latency percentiles in milliseconds."""

    p50: float | None = Field(default=None, description="Median.")
    p99: float | None = Field(default=None, description="99th percentile.")


class BenchmarkStatus(ApiModel):
    """trtllm-bench results of the current revision."""

    outputTokensPerSecond: float = Field(description="System output throughput (tokens/s).")
    totalTokensPerSecond: float | None = Field(default=None, description="Input + output tokens/s.")
    requestsPerSecond: float | None = Field(default=None, description="Request throughput.")
    ttftMs: Percentiles | None = Field(default=None, description="Time to first token.")
    itlMs: Percentiles | None = Field(default=None, description="Inter-token latency.")
    isl: int = Field(description="Input sequence length.")
    osl: int = Field(description="Output sequence length.")
    concurrency: int = Field(description="Concurrency.")
    revision: int | None = Field(default=None, description="Revision measured.")
    measuredAt: str | None = Field(default=None, description="When.", max_length=32)
    passed: bool | None = Field(default=None, description="Whether it met the configured floors/ceilings.")
    tool: str = Field(
        default="trtllm-bench",
        description='What produced the figures: trtllm-bench, or "trtllm-bench (simulated stand-in)" on a '
        "cluster without GPUs.",
        max_length=64,
    )
    simulated: bool = Field(
        default=False, description="True when the figures are a simulator's estimate, not a measurement."
    )
    display: str = Field(
        default="",
        description='Output throughput as the Bench printer column shows it: "1234 tok/s" measured, '
        '"~1234 tok/s (sim)" simulated.',
        max_length=64,
    )


class AccuracyStatus(ApiModel):
    """One accuracy task's result."""

    task: str = Field(description="Task name.", max_length=64)
    metric: str = Field(default="", description="Metric.", max_length=32)
    score: float = Field(description="Measured score.")
    baseline: float | None = Field(default=None, description="Baseline score.")
    drop: float | None = Field(default=None, description="Loss against the baseline, in maxDropMode's unit.")
    maxDrop: float | None = Field(default=None, description="Allowed loss.")
    passed: bool = Field(description="Whether the task passed.")
    revision: int | None = Field(default=None, description="Revision measured.")


class BuildStatus(ApiModel):
    """The build Job of the current revision."""

    revision: int = Field(default=0, description="Revision being built.")
    buildConfigHash: str = Field(default="", description="Hash of the build-relevant spec.", max_length=64)
    jobName: str = Field(default="", description="Build Job name.", max_length=63)
    startedAt: str | None = Field(default=None, description="When the Job started.", max_length=32)
    completedAt: str | None = Field(default=None, description="When it finished.", max_length=32)
    attempts: int = Field(default=0, description="Pods started (1 + retries).")
    node: str | None = Field(default=None, description="Node the last build pod ran on.", max_length=253)


class TRTEngineStatus(ApiModel):
    """Observed state of a TRTEngine; written only by the operator."""

    observedGeneration: int | None = Field(default=None, description="metadata.generation last reconciled.")
    phase: Phase = Field(
        default="Pending",
        description="Pending, Queued, Building, Validating, Ready or Stalled (exactly when the Stalled "
        "condition is True).",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Reconciling, Stalled, GPUCompatible, Scheduled, Built, Validated and warnings.",
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    revision: int = Field(
        default=0, description="Current spec revision (increments when the build-relevant spec changes)."
    )
    buildConfigHash: str = Field(
        default="", description="Hash of the current build-relevant spec.", max_length=64
    )
    gpu: GpuStatus | None = Field(default=None, description="GPU target chosen for the current revision.")
    engine: EngineStatus | None = Field(
        default=None, description="The promoted engine (what InferenceServices serve)."
    )
    candidate: EngineStatus | None = Field(
        default=None,
        description="The current revision's engine while it is not yet promoted (gates pending or failed).",
    )
    benchmark: BenchmarkStatus | None = Field(default=None, description="Benchmark of the current revision.")
    accuracy: list[AccuracyStatus] | None = Field(
        default=None, description="Accuracy results of the current revision.", max_length=8
    )
    build: BuildStatus | None = Field(default=None, description="Build Job of the current revision.")


class TRTEngine(ApiModel):
    """A TensorRT-LLM engine built for a GPU architecture the cluster has."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": validations(
            cel(
                f"self.metadata.name.size() <= {ENGINE_NAME_MAX} && "
                f"self.metadata.name.matches('{DNS_LABEL}')",
                f"metadata.name must be a DNS label of at most {ENGINE_NAME_MAX} characters (lowercase "
                "letters, digits, '-'), so the build Job name <name>-build-<hash> stays within 63",
                field_path=".metadata.name",
            )
        )
    }

    apiVersion: str = Field(default="trtllm.dev/v1alpha1", description="trtllm.dev/v1alpha1")
    kind: str = Field(default="TRTEngine", description="TRTEngine")
    spec: TRTEngineSpec = Field(description="Desired engine.")
    status: TRTEngineStatus | None = Field(default=None, description="Observed state.")
