"""Stand-in for TensorRT-LLM's ``examples/quantization/quantize.py`` (ModelOpt PTQ -> checkpoint).

Flags, defaults and choices are exactly the real parser's (``trtllm/cli_tables.py``);
abbreviated flags are rejected (stricter than argparse's default, so a caller cannot come to rely on
a prefix that a later release makes ambiguous). Behaviour that matters to the builder is enforced:

* ``--device cuda`` needs a GPU: ``OSError: GPU is required for inference.`` otherwise;
* FP8 (``fp8``, ``fp8_pc_pt``, ``--kv_cache_dtype fp8``) needs SM >= 89, ``w4a8_awq`` SM >= 89,
  ``nvfp4`` SM >= 100, bfloat16 SM >= 80 (``_rules.check_precision``);
* calibration: a dataset name needs the Hub (fails when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is
  set); a local directory is read (``*.txt`` lines, ``*.jsonl``/``*.json`` ``text`` fields) and the
  samples used are hashed; ``calib_size`` is capped at 32 for AWQ formats. Weight-only formats
  without a quantized KV cache need no calibration, as in the real script.

Output: the checkpoint layout of ``_artifacts.write_checkpoint`` plus a stand-in extension in
``config.json``: ``calibration`` = ``{dataset, size, max_seq_length, sha256}`` (``null`` when no
calibration ran) so the caller can record what was used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import (
    checkpoint_config,
    load_hf_model,
    make_mapping,
    resolve_dtype,
    write_checkpoint,
)
from trtllm_operator.dev.standins._common import ToolError, hub_offline, require_gpus, run_tool, say, step
from trtllm_operator.dev.standins._rules import check_precision
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import QUANTIZE_12

TOOL: Final = "quantize.py"
QUANT_ALGOS: Final[dict[str, str | None]] = {
    "nvfp4": "NVFP4",
    "fp8": "FP8",
    "fp8_pc_pt": "FP8_PER_CHANNEL_PER_TOKEN",
    "int8_sq": "W8A8_SQ_PER_CHANNEL",
    "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ",
    "int8_wo": "W8A16",
    "int4_wo": "W4A16",
    "full_prec": None,
}
KV_CACHE_ALGOS: Final = {"int8": "INT8", "fp8": "FP8"}
NAMED_CALIB_DATASETS: Final = ("cnn_dailymail", "pileval", "scienceqa")
AWQ_FORMATS: Final = frozenset({"int4_awq", "w4a8_awq"})
AWQ_CALIB_CAP: Final = 32
NO_CALIBRATION_FORMATS: Final = frozenset({"full_prec", "int8_wo", "int4_wo"})


def build_parser() -> argparse.ArgumentParser:
    """Exactly the real quantize.py's options (``cli_tables.QUANTIZE_12``)."""
    return to_argparse(QUANTIZE_12, description=__doc__.splitlines()[0])


def needs_calibration(qformat: str, kv_cache_dtype: str | None) -> bool:
    return qformat not in NO_CALIBRATION_FORMATS or kv_cache_dtype is not None


def effective_calib_size(qformat: str, requested: int) -> int:
    if qformat in AWQ_FORMATS and requested > AWQ_CALIB_CAP:
        say(
            f"AWQ calibration could take longer with calib_size = {requested}, "
            f"Using calib_size={AWQ_CALIB_CAP} instead"
        )
        return AWQ_CALIB_CAP
    return requested


def _json_texts(path: Path) -> Iterator[str]:
    """A ``*.json`` file: a list of strings or of ``{"text": ...}`` objects, or ``{"text": [...]}``."""
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = data.get("text", [])
    for item in data if isinstance(data, list) else [data]:
        text = item.get("text") if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            yield text


def _jsonl_texts(path: Path) -> Iterator[str]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            text = record.get("text") if isinstance(record, dict) else None
            if isinstance(text, str) and text.strip():
                yield text


def local_calibration_samples(directory: Path) -> list[str]:
    """Every calibration text of a local dataset dir, in a stable (sorted path) order."""
    samples: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        try:
            if path.suffix == ".txt":
                samples += [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            elif path.suffix == ".jsonl":
                samples += list(_jsonl_texts(path))
            elif path.suffix == ".json":
                samples += list(_json_texts(path))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ToolError(f"cannot read calibration file {path}: {exc}", "ValueError") from exc
    return samples


def samples_sha256(samples: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.encode("utf-8") + b"\0")
    return digest.hexdigest()


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve and "run" calibration; returns the ``calibration`` block of the output config."""
    if args.calib_size < 1:
        raise ToolError(f"calib_size must be positive, got {args.calib_size}", "ValueError")
    size = effective_calib_size(args.qformat, args.calib_size)
    source = Path(args.calib_dataset)
    digest: str | None = None
    if source.is_dir():
        samples = local_calibration_samples(source)
        if not samples:
            raise ToolError(
                f"no calibration text found in {source} (*.txt, *.jsonl/*.json 'text')", "ValueError"
            )
        used = samples[:size]
        size, digest = len(used), samples_sha256(used)
        step(f"Loaded {len(samples)} calibration samples from {source}; using {size}")
    elif args.calib_dataset in NAMED_CALIB_DATASETS:
        if hub_offline("HF_DATASETS_OFFLINE"):
            raise ToolError(
                f"Couldn't reach '{args.calib_dataset}' on the Hub (offline mode is enabled)",
                "ConnectionError",
            )
        step(f"Loading calibration dataset {args.calib_dataset} from the Hugging Face Hub (simulated)")
    else:
        raise ToolError(
            f"Unsupported dataset name or local repo directory: {args.calib_dataset}.", "NotImplementedError"
        )
    batches = -(-size // max(args.batch_size, 1))
    for done in sorted({batches * quarter // 4 for quarter in range(1, 5)}):
        step(f"Calibrating: {done}/{batches} batches (max_seq_length {args.calib_max_seq_length})")
    return {
        "dataset": args.calib_dataset,
        "size": size,
        "max_seq_length": args.calib_max_seq_length,
        "sha256": digest,
    }


def quantization_block(args: argparse.Namespace) -> dict[str, Any]:
    quant_algo = QUANT_ALGOS[args.qformat]
    block: dict[str, Any] = {
        "quant_algo": quant_algo,
        "kv_cache_quant_algo": KV_CACHE_ALGOS.get(args.kv_cache_dtype) if args.kv_cache_dtype else None,
    }
    if args.qformat in AWQ_FORMATS:
        block["group_size"] = args.awq_block_size
        block["has_zero_point"] = False
        block["pre_quant_scale"] = True
    return block


def execute(args: argparse.Namespace) -> None:
    if args.model_dir is None:  # the real script's last branch (a NeMo checkpoint is not simulated)
        raise ToolError(
            "One of source checkpoint (model_dir, nemo_ckpt_path) must be specified", "ValueError"
        )
    # The real script checks torch.cuda.is_available() before anything else.
    gpu = require_gpus("GPU is required for inference.", "OSError")[0] if args.device == "cuda" else None
    hf = load_hf_model(args.model_dir)
    dtype = resolve_dtype(args.dtype, hf.torch_dtype)
    mapping = make_mapping(args.tp_size, args.pp_size, args.cp_size)
    quantization = quantization_block(args)
    if gpu is not None:
        step(f"Using GPU 0: {gpu.name} (compute capability {gpu.compute_capability})")
        check_precision(gpu.sm, quantization["quant_algo"], quantization["kv_cache_quant_algo"], dtype)
    step(f"Loading {hf.architecture} from {hf.path} as {dtype}")
    calibration = calibrate(args) if needs_calibration(args.qformat, args.kv_cache_dtype) else None
    step(f"Quantizing with qformat={args.qformat} kv_cache_dtype={args.kv_cache_dtype}")
    config = checkpoint_config(hf, dtype, mapping, quantization)
    config["calibration"] = calibration
    write_checkpoint(Path(args.output_dir), config)
    say(f"Quantized model exported to {args.output_dir}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(TOOL, lambda: execute(args))
