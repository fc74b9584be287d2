"""Stand-ins for ``trtllm-operator-ptq`` and ``trtllm-operator-eval`` (no torch/ModelOpt/GPU needed).

The real CLIs (``trtllm_operator.builder.ptq`` / ``.evaluate``) run in the TensorRT-LLM image on a
GPU. On the simulated cluster these stand-ins take their place: the *same* argument parsers (so a
flag the real tool would reject fails here too), the same recipe checks, calibration text loading,
seeded sampling and hashing, and the output layout of ModelOpt's unified Hugging Face export as
seen with ModelOpt 0.47 (torch 2.11, transformers 5.17) on an H200:

* ``config.json`` — the model's config, ``torch_dtype`` set, and for quantized formats
  ``quantization_config = {quant_method: "modelopt", quant_algo, ..., ignore}``;
* ``hf_quant_config.json`` — ``{producer: {name: modelopt, version}, quantization: {quant_algo,
  kv_cache_quant_algo, exclude_modules: ["lm_head", "model.embed_tokens"], ...}}`` (absent when
  nothing is quantized); INT4 weight-only is exported as ``W4A16_AWQ``;
* ``model.safetensors`` — a small, genuine, deterministic safetensors file;
* the tokenizer files of the source model, and ``calibration.json`` when calibration ran.

Like the real tool (ModelOpt calibrates with fake quantization), it applies no compute-capability
rule: refusing FP8 on Ampere or NVFP4 before Blackwell is the builder's preflight's job.

The evaluator stand-in prints the real one's JSON line with a deterministic perplexity that grows
with the quantization's aggressiveness; ``TRTLLM_SIM_EVAL='{"perplexity": 7.5}'`` overrides it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from trtllm_operator.builder import evaluate, ptq
from trtllm_operator.dev.standins._artifacts import (
    HFModel,
    _safetensors_bytes,
    deterministic_bytes,
    load_hf_model,
    read_json,
    write_json,
)
from trtllm_operator.dev.standins._common import (
    ToolError,
    hub_offline,
    require_gpus,
    run_tool,
    say,
    step,
)
from trtllm_operator.dev.standins._rules import load_runnable_engine
from trtllm_operator.dev.standins.quantize import KV_CACHE_ALGOS, QUANT_ALGOS

PTQ_TOOL: Final = "trtllm-operator-ptq"
EVAL_TOOL: Final = "trtllm-operator-eval"
ENV_EVAL: Final = "TRTLLM_SIM_EVAL"
MODELOPT_VERSION: Final = "0.47.0"
#: quant_algo per qformat in ModelOpt's export: quantize.py's names, INT4 weight-only AWQ-shaped.
MODELOPT_QUANT_ALGOS: Final[dict[str, str | None]] = {**QUANT_ALGOS, "int4_wo": "W4A16_AWQ"}
AWQ_SHAPED: Final = frozenset({"int4_awq", "w4a8_awq", "int4_wo"})
EXCLUDED_MODULES: Final = ["lm_head", "model.embed_tokens"]
TOKENIZER_FILES: Final = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "generation_config.json",
)
#: Perplexity multiplier per quant_algo: more aggressive formats lose more.
PPL_FACTORS: Final[dict[str | None, float]] = {
    None: 1.0,
    "W8A16": 1.005,
    "FP8": 1.01,
    "W8A8_SQ_PER_CHANNEL": 1.02,
    "W4A16_AWQ": 1.04,
    "W4A8_AWQ": 1.05,
    "NVFP4": 1.06,
    "W4A16": 1.08,
}
KV_PPL_FACTORS: Final[dict[str | None, float]] = {None: 1.0, "FP8": 1.005, "INT8": 1.01}


# --- trtllm-operator-ptq ---------------------------------------------------------------------------


def quantization_block(args: argparse.Namespace) -> dict[str, Any]:
    kv = KV_CACHE_ALGOS.get(args.kv_cache_dtype)
    block: dict[str, Any] = {
        "quant_algo": MODELOPT_QUANT_ALGOS[args.qformat],
        "kv_cache_quant_algo": kv,
        "exclude_modules": list(EXCLUDED_MODULES),
    }
    if args.qformat in AWQ_SHAPED:
        block |= {"group_size": 128, "has_zero_point": False, "pre_quant_scale": True}
    elif args.qformat == "nvfp4":
        block["group_size"] = 16
    return block


def simulate_calibration(args: argparse.Namespace) -> dict[str, Any] | None:
    """The real flow's calibration choices (local dir: seeded sample + hash; name: needs the Hub)."""
    if not ptq.needs_calibration(args.qformat, args.kv_cache_dtype):
        return None
    size = ptq.effective_calib_size(args.qformat, args.calib_size)
    source = Path(args.calib_dataset)
    if source.is_dir():
        try:
            samples = ptq.select_samples(ptq.read_texts(source), size, args.seed)
        except ValueError as exc:
            raise ToolError(str(exc), "ValueError") from exc
        step(f"Calibrating on {len(samples)} samples from {source} (max length {args.calib_max_seq_length})")
        return ptq.calibration_record(args, samples, size)
    if hub_offline("HF_DATASETS_OFFLINE"):
        raise ToolError(
            f"Couldn't reach '{args.calib_dataset}' on the Hub (offline mode is enabled)", "ConnectionError"
        )
    step(f"Calibrating on {size} samples of {args.calib_dataset} from the Hub (simulated)")
    return ptq.calibration_record(args, None, size)


def export_checkpoint(hf: HFModel, out: Path, dtype: str, quant: dict[str, Any] | None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = dict(hf.config) | {"torch_dtype": dtype}
    if quant is not None:
        config["quantization_config"] = {"quant_method": "modelopt", **quant}
    metadata = {"format": "pt", "quant_algo": str(quant and quant["quant_algo"]), "dtype": dtype}
    fingerprint = json.dumps([config, metadata], sort_keys=True)
    (out / "model.safetensors").write_bytes(
        _safetensors_bytes(metadata, deterministic_bytes(fingerprint, 4096))
    )
    if quant is not None:
        producer = {"name": "modelopt", "version": MODELOPT_VERSION}
        write_json(out / "hf_quant_config.json", {"producer": producer, "quantization": quant})
    write_json(out / "config.json", config)
    for name in TOKENIZER_FILES:
        if (hf.path / name).is_file():
            shutil.copy2(hf.path / name, out / name)


def run_ptq(args: argparse.Namespace) -> None:
    try:
        recipe = ptq.recipe_for(args.qformat, args.kv_cache_dtype)
    except ValueError as exc:
        raise ToolError(str(exc), "ValueError") from exc
    gpu = require_gpus()[0]
    hf = load_hf_model(args.model_dir)
    dtype = ptq.torch_dtype_name(hf.config)
    quant = quantization_block(args)
    step(f"Loading {hf.architecture} from {hf.path} as torch.{dtype} on {gpu.name} (SM {gpu.sm})")
    record = simulate_calibration(args)
    step(f"mtq.quantize with {recipe.weights or 'no weight quantization'} (KV cache {args.kv_cache_dtype})")
    out = Path(args.output_dir)
    export_checkpoint(hf, out, dtype, quant if recipe.quantizes else None)
    if record is not None:
        write_json(out / ptq.CALIBRATION_FILE, record)
    say(f"Quantized model exported to {out}")


def main_ptq(argv: Sequence[str] | None = None) -> int:
    args = ptq.build_parser().parse_args(argv)
    return run_tool(PTQ_TOOL, lambda: run_ptq(args))


# --- trtllm-operator-eval --------------------------------------------------------------------------


def _quant_of(model: Path, backend: str) -> tuple[str | None, str | None]:
    if backend == "tensorrt":
        quant = (read_json(model / "config.json").get("pretrained_config") or {}).get("quantization") or {}
    elif (model / "hf_quant_config.json").is_file():
        quant = read_json(model / "hf_quant_config.json").get("quantization") or {}
    else:
        quant = {}
    return quant.get("quant_algo"), quant.get("kv_cache_quant_algo")


def simulated_perplexity(model: Path, backend: str, text: str) -> float:
    override = os.environ.get(ENV_EVAL, "").strip()
    if override:
        value = json.loads(override).get("perplexity")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    base = 6.0 + int(hashlib.sha256(text.encode()).hexdigest()[:4], 16) / 0xFFFF
    algo, kv = _quant_of(model, backend)
    return base * PPL_FACTORS.get(algo, 1.1) * KV_PPL_FACTORS.get(kv, 1.0)


def load_for_eval(model: Path, backend: str, tokenizer: str | None) -> None:
    gpus = require_gpus()
    if backend == "tensorrt":
        load_runnable_engine(model, gpus)
        if not tokenizer:
            raise ToolError(
                "--tokenizer is required when --model is a TensorRT engine directory", "ValueError"
            )
    else:
        load_hf_model(str(model))
    step(f"Loaded {model} ({backend}) on {gpus[0].name}")


def run_eval(args: argparse.Namespace) -> None:
    load_for_eval(args.model, args.backend, args.tokenizer)
    try:
        text = evaluate.corpus(args.dataset)
    except ValueError as exc:
        raise ToolError(str(exc), "ValueError") from exc
    ids = list(range(max(2, round(len(text.split()) * 1.3))))
    windows = evaluate.token_windows(ids, args.max_length, args.max_samples)
    tokens = sum(len(window) - 1 for window in windows)
    step(f"Scoring {len(windows)} windows ({tokens} tokens)")
    score = simulated_perplexity(args.model, args.backend, text)
    reference = None
    if args.reference is not None:
        load_for_eval(args.reference, "pytorch", None)
        reference = simulated_perplexity(args.reference, "pytorch", text)
    say(evaluate.result_line(score, tokens, len(windows), "standin", reference))


def main_eval(argv: Sequence[str] | None = None) -> int:
    args = evaluate.build_parser().parse_args(argv)
    return run_tool(EVAL_TOOL, lambda: run_eval(args))
