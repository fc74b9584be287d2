"""Render the build plan: every step the build pod runs, with its exact command line.

The plan is the contract with the builder (``api/plan.py``): it is mounted into the build pod as
JSON, and ``trtllm-operator render`` shows it to reviewers before anything runs. Two backends:

* ``tensorrt`` (TensorRT-LLM ≤ 1.2): quantize.py or convert_checkpoint.py → trtllm-build → verify.
* ``pytorch`` (TensorRT-LLM ≥ 1.3, which removed the engine path): ModelOpt PTQ to a quantized Hugging
  Face checkpoint (``trtllm-operator-ptq``) → verify.

Both then run the configured gates (trtllm-bench, trtllm-eval, our perplexity evaluator).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Final, Protocol

from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import AccuracyTask, TRTEngineSpec
from trtllm_operator.api.plan import (
    BuildPlan,
    PlanCalibration,
    PlanModelSource,
    PlanPaths,
    PlanStep,
)
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.render.names import claim_name
from trtllm_operator.render.presets import build_flags, flags_argv
from trtllm_operator.trtllm.cli_tables import CONVERT_FAMILY, CONVERT_NO_PP, tables_for

DEFAULT_BUILDER_IMAGE: Final = "ghcr.io/trtllm-operator/trtllm-operator:0.1.0"
DEFAULT_EXAMPLES_DIR: Final = "/app/tensorrt_llm/examples"
#: Env var the build pod gets the Hugging Face token in (a name, not a secret: the value comes from a Secret).
TOKEN_ENV: Final = "HF_TOKEN"  # noqa: S105

#: quantize.py / ModelOpt --qformat per spec.precision (fp16/bf16 only quantize a KV cache: full_prec).
QFORMAT: Final[dict[str, str]] = {
    "fp8": "fp8",
    "int8_sq": "int8_sq",
    "int4_awq": "int4_awq",
    "w4a8_awq": "w4a8_awq",
    "nvfp4": "nvfp4",
    "int8_wo": "int8_wo",
    "int4_wo": "int4_wo",
    "fp16": "full_prec",
    "bf16": "full_prec",
}
TORCH_DTYPE: Final[dict[str, str]] = {"fp16": "float16", "bf16": "bfloat16"}
AWQ_FORMATS: Final = frozenset({"int4_awq", "w4a8_awq"})
AWQ_CALIB_CAP: Final = 32
_UNQUANTIZED_KV: Final = frozenset({"auto", "fp16"})


class TargetLike(Protocol):
    """What rendering needs of the chosen placement (``reconcile.placement.Placement`` has it)."""

    @property
    def cc(self) -> ComputeCapability: ...

    @property
    def product(self) -> str | None: ...

    @property
    def gpus(self) -> int: ...


@dataclass(frozen=True)
class RenderConfig:
    """Operator-level settings that are not part of a TRTEngine."""

    builder_image: str = DEFAULT_BUILDER_IMAGE
    examples_dir: str = DEFAULT_EXAMPLES_DIR
    #: activeDeadlineSeconds of the engine-files cleanup Job: past it, the deletion finishes anyway.
    cleanup_deadline_seconds: int = 600


def split_pvc(uri: str) -> tuple[str, str]:
    """``pvc://claim/some/path`` -> ("claim", "some/path"); the path may be empty."""
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    return claim, path.strip("/")


def pvc_local_dir(uri: str) -> str:
    """Where a pvc:// source is mounted read-only in the build pod: /models/<claim>/<path>."""
    claim, path = split_pvc(uri)
    return posixpath.join(c.MODELS_MOUNT, claim, path) if path else posixpath.join(c.MODELS_MOUNT, claim)


def engine_claim(name: str, spec: TRTEngineSpec) -> str:
    return spec.storage.existingClaim or claim_name(name)


def source_claims(plan: BuildPlan) -> list[str]:
    """PVCs the plan reads from (model, calibration data, evaluation data), sorted and deduplicated."""
    uris = [plan.model.source]
    if plan.calibration is not None:
        uris.append(plan.calibration.dataset)
    if plan.accuracy is not None:
        uris.extend(task.dataset for task in plan.accuracy.tasks if task.dataset)
    return sorted({split_pvc(uri)[0] for uri in uris if uri.startswith("pvc://")})


def needs_quantization(spec: TRTEngineSpec) -> bool:
    """Quantized weights, or an fp8/int8 KV cache on fp16/bf16 weights (qformat full_prec)."""
    return spec.precision not in TORCH_DTYPE or spec.kvCacheDtype not in _UNQUANTIZED_KV


def _paths(name: str, spec: TRTEngineSpec, build_hash: str) -> PlanPaths:
    root = posixpath.join(c.ENGINES_MOUNT, spec.storage.path, name)
    return PlanPaths(
        root=root,
        engine=f"{root}/{build_hash}",
        staging=f"{root}/.{build_hash}.partial",
        checkpoint=f"{root}/.{build_hash}.checkpoint",
        uri=f"pvc://{engine_claim(name, spec)}/{spec.storage.path}/{name}/{build_hash}",
    )


def _model(spec: TRTEngineSpec, paths: PlanPaths) -> tuple[PlanModelSource, PlanStep | None]:
    """Where the checkpoint is in the pod, and the download step that puts it there (if any)."""
    model = spec.model
    source = model.source
    download: PlanStep | None = None
    if source.startswith("pvc://"):
        local_dir = pvc_local_dir(source)
    else:
        local_dir = f"{paths.root}/.model"
        if source.startswith("hf://"):
            revision = ["--revision", model.revision] if model.revision else []
            argv = [
                "huggingface-cli",
                "download",
                source.removeprefix("hf://"),
                *revision,
                "--local-dir",
                local_dir,
            ]
        else:
            argv = ["aws", "s3", "cp", "--recursive", source, local_dir]
        download = PlanStep(name="download", argv=argv)
    plan_model = PlanModelSource(
        source=source,
        revision=model.revision,
        architecture=model.architecture,
        domain=model.domain,
        local_dir=local_dir,
        token_env=TOKEN_ENV if model.tokenSecretRef is not None else None,
    )
    return plan_model, download


def _calibration(spec: TRTEngineSpec) -> PlanCalibration | None:
    if not needs_quantization(spec):
        return None
    calib = spec.calibration
    local = pvc_local_dir(calib.dataset) if calib.dataset.startswith("pvc://") else None
    return PlanCalibration(
        dataset=calib.dataset,
        local_dir=local,
        size=calib.size,
        max_seq_length=calib.maxSeqLength,
        seed=calib.seed,
    )


def _calib_argv(calib: PlanCalibration) -> list[str]:
    return [
        "--calib_dataset",
        calib.local_dir or calib.dataset,
        "--calib_size",
        str(calib.size),
        "--calib_max_seq_length",
        str(calib.max_seq_length),
    ]


def _kv_argv(spec: TRTEngineSpec) -> list[str]:
    return ["--kv_cache_dtype", spec.kvCacheDtype] if spec.kvCacheDtype in ("fp8", "int8") else []


def _tensorrt_checkpoint_step(
    spec: TRTEngineSpec,
    model: PlanModelSource,
    calib: PlanCalibration | None,
    paths: PlanPaths,
    cfg: RenderConfig,
) -> tuple[PlanStep, list[str]]:
    """quantize.py for quantized weights or KV cache, else the family's convert_checkpoint.py."""
    tp, pp = str(spec.parallelism.tensor), str(spec.parallelism.pipeline)
    if calib is not None:
        argv = [
            "python3",
            f"{cfg.examples_dir}/quantization/quantize.py",
            "--model_dir",
            model.local_dir,
            "--output_dir",
            paths.checkpoint,
            "--qformat",
            QFORMAT[spec.precision],
            *_kv_argv(spec),
            *_calib_argv(calib),
            "--tp_size",
            tp,
            "--pp_size",
            pp,
            "--seed",
            str(calib.seed),
            "--dtype",
            TORCH_DTYPE.get(spec.precision, "auto"),
        ]
        return PlanStep(name="quantize", argv=argv), []
    architecture = spec.model.architecture
    family = CONVERT_FAMILY.get(architecture or "")
    notes = []
    if family is None:
        family = "llama"
        notes.append(
            f"no convert_checkpoint.py family known for architecture {architecture or '(not set)'}: using "
            "llama's; set spec.model.architecture (LlamaForCausalLM, Qwen2ForCausalLM, ...) if it is wrong"
        )
    script = f"{cfg.examples_dir}/models/core/{family}/convert_checkpoint.py"
    argv = ["python3", script, "--model_dir", model.local_dir, "--output_dir", paths.checkpoint]
    argv += ["--dtype", TORCH_DTYPE[spec.precision]]
    if family in CONVERT_NO_PP and spec.parallelism.pipeline > 1:
        notes.append(
            f"{family}'s convert_checkpoint.py has no pipeline parallelism (gemma's has no --pp_size, "
            f"phi's asserts pp_size == 1): pipeline={pp} will not convert as asked"
        )
    if family == "gemma":  # its own spellings: a checkpoint type, --world-size (TP), no --pp_size
        argv += ["--ckpt-type", "hf", "--world-size", tp]
    else:
        argv += ["--tp_size", tp, "--pp_size", pp]
    return PlanStep(name="convert", argv=argv), notes


def _pytorch_checkpoint_step(
    spec: TRTEngineSpec, model: PlanModelSource, calib: PlanCalibration | None, paths: PlanPaths
) -> PlanStep:
    """ModelOpt PTQ into the checkpoint directory (reused by a retry once verified); an in-process ``export``
    step then links it into staging. Unquantized models are copied as they are."""
    if calib is None:
        return PlanStep(name="export", argv=["cp", "-a", f"{model.local_dir}/.", paths.staging])
    argv = ["trtllm-operator-ptq", "--model_dir", model.local_dir, "--output_dir", paths.checkpoint]
    argv += [
        "--qformat",
        QFORMAT[spec.precision],
        *_kv_argv(spec),
        *_calib_argv(calib),
        "--seed",
        str(calib.seed),
    ]
    return PlanStep(name="quantize", argv=argv)


def _bench_steps(
    spec: TRTEngineSpec, model: PlanModelSource, paths: PlanPaths, build_hash: str, cfg: RenderConfig
) -> tuple[list[PlanStep], list[str]]:
    bench = spec.validation.benchmark if spec.validation else None
    if bench is None:
        return [], []
    # trtllm-bench wants a model *name* (it refuses a path); the local files go in --model_path.
    name = (
        model.source.removeprefix("hf://")
        if model.source.startswith("hf://")
        else posixpath.basename(model.local_dir.rstrip("/"))
    )
    dataset = f"{paths.root}/.{build_hash}.bench-dataset.jsonl"
    dist = ["--input-mean", str(bench.inputLength), "--output-mean", str(bench.outputLength)]
    dist += ["--input-stdev", "0", "--output-stdev", "0", "--num-requests", str(bench.numRequests)]
    if tables_for(spec.backend, spec.image).line == "1.2":
        script = posixpath.join(
            posixpath.dirname(cfg.examples_dir.rstrip("/")), "benchmarks/cpp/prepare_dataset.py"
        )
        prepare = ["python3", script, "--stdout", "--tokenizer", model.local_dir, "token-norm-dist", *dist]
        dataset_step = PlanStep(name="dataset", argv=prepare, stdout=dataset)
        notes = [f"benchmark dataset script {script} is inferred from the image layout (UNVERIFIED)"]
    else:
        # 1.3+: benchmarks/cpp/prepare_dataset.py is gone; trtllm-bench prepare-dataset writes --output
        # (no --stdout) and takes the tokenizer from trtllm-bench's --model/--model_path.
        prepare = ["trtllm-bench", "--model", name, "--model_path", model.local_dir, "prepare-dataset"]
        prepare += ["--output", dataset, "token-norm-dist", *dist]
        dataset_step, notes = PlanStep(name="dataset", argv=prepare), []
    run = ["trtllm-bench", "--model", name]
    if spec.backend == "tensorrt":
        run += [
            "--model_path",
            model.local_dir,
            "throughput",
            "--engine_dir",
            paths.staging,
            "--backend",
            "tensorrt",
        ]
    else:
        run += ["--model_path", paths.staging, "throughput", "--backend", "pytorch"]
    run += [
        "--dataset",
        dataset,
        "--concurrency",
        str(bench.concurrency),
        "--num_requests",
        str(bench.numRequests),
    ]
    run += ["--report_json", f"{paths.root}/.{build_hash}.bench.json", "--streaming"]
    return [dataset_step, PlanStep(name="benchmark", argv=run)], notes


def _accuracy_step(
    task: AccuracyTask, spec: TRTEngineSpec, model: PlanModelSource, paths: PlanPaths
) -> PlanStep:
    local = pvc_local_dir(task.dataset) if task.dataset else None
    if task.name == "perplexity":
        argv = ["trtllm-operator-eval", "--model", paths.staging, "--backend", spec.backend]
        argv += ["--task", "perplexity", "--dataset", local or ""]
        if spec.backend == "tensorrt":  # an engine directory has no tokenizer
            argv += ["--tokenizer", model.local_dir]
        return PlanStep(name="accuracy", argv=argv)
    argv = [
        "trtllm-eval",
        "--model",
        paths.staging,
        "--backend",
        spec.backend,
        "--tokenizer",
        model.local_dir,
    ]
    argv.append(task.name)
    if local:
        argv += ["--dataset_path", local]
    if task.numSamples:
        argv += ["--num_samples", str(task.numSamples)]
    return PlanStep(name="accuracy", argv=argv)


def render_plan(
    namespace: str,
    name: str,
    spec: TRTEngineSpec,
    revision: int,
    build_hash: str,
    placement: TargetLike,
    cfg: RenderConfig,
) -> BuildPlan:
    """The build plan of one revision: paths, exact argv of every step, final build flags."""
    paths = _paths(name, spec, build_hash)
    world = spec.parallelism.tensor * spec.parallelism.pipeline
    model, download = _model(spec, paths)
    calib = _calibration(spec)
    steps = [download] if download else []
    notes: list[str] = []
    flags: dict[str, str] = {}
    if spec.backend == "tensorrt":
        checkpoint_step, notes = _tensorrt_checkpoint_step(spec, model, calib, paths, cfg)
        decision = build_flags(spec, placement.cc, spec.model.architecture)
        flags, notes = decision.flags, [*notes, *decision.notes]
        workers = [] if "workers" in flags else ["--workers", str(placement.gpus)]
        build = [
            "trtllm-build",
            "--checkpoint_dir",
            paths.checkpoint,
            "--output_dir",
            paths.staging,
            *workers,
        ]
        steps += [checkpoint_step, PlanStep(name="build", argv=[*build, *flags_argv(flags)])]
    else:
        step = _pytorch_checkpoint_step(spec, model, calib, paths)
        steps += [step] if step.name == "export" else [step, PlanStep(name="export")]
    steps.append(PlanStep(name="verify"))
    bench_steps, bench_notes = _bench_steps(spec, model, paths, build_hash, cfg)
    steps += bench_steps
    accuracy = spec.validation.accuracy if spec.validation else None
    steps += [_accuracy_step(task, spec, model, paths) for task in (accuracy.tasks if accuracy else [])]
    if calib is not None and spec.precision in AWQ_FORMATS and calib.size > AWQ_CALIB_CAP:
        notes.append(
            f"quantize uses at most {AWQ_CALIB_CAP} calibration samples for AWQ formats, not {calib.size}"
        )
    return BuildPlan(
        namespace=namespace,
        engine_name=name,
        revision=revision,
        build_config_hash=build_hash,
        backend=spec.backend,
        image=spec.image,
        precision=spec.precision,
        kv_cache_dtype=spec.kvCacheDtype,
        tensor=spec.parallelism.tensor,
        pipeline=spec.parallelism.pipeline,
        build_gpus=placement.gpus if placement.gpus < world else None,
        target_cc=str(placement.cc),
        target_product=placement.product,
        model=model,
        calibration=calib,
        paths=paths,
        build_flags=flags,
        accept_inflight_batching_disabled=spec.build.acceptInflightBatchingDisabled,
        steps=steps,
        accuracy=accuracy,
        benchmark=spec.validation.benchmark if spec.validation else None,
        model_params_billions=spec.model.parametersBillions,
        notes=[*notes, *bench_notes],
    )
