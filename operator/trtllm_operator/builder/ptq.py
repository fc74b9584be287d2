"""``trtllm-operator-ptq``: post-training quantization with NVIDIA ModelOpt for the PyTorch backend.

TensorRT-LLM 1.3+ removed the engine path (``quantize.py``/``trtllm-build``): the artifact the
PyTorch backend serves is a Hugging Face checkpoint quantized by ModelOpt and exported in its
"unified" format (``config.json`` with ``quantization_config.quant_method = "modelopt"``,
``hf_quant_config.json``, safetensors). This CLI is the build step that produces it, following
ModelOpt's ``examples/llm_ptq/hf_ptq.py``: load the model on the GPU, calibrate with
``mtq.quantize(model, cfg, forward_loop)``, ``export_hf_checkpoint``, save the tokenizer.

Torch, transformers and modelopt are imported lazily (they exist in the TensorRT-LLM image, not in
the operator's environment). What can be checked without a GPU is pure and unit-tested: the
qformat/KV-cache -> ModelOpt config mapping, merging the KV-cache quantizer into the config (both
the dict layout of ModelOpt ≤ 0.3x and the list layout of newer releases), and calibration text
loading, seeded sampling and hashing (recorded in ``calibration.json`` for the engine manifest).

Known pitfall handled here: ``from_pretrained(..., torch_dtype="bfloat16")`` (a string) breaks
ModelOpt's export with "Invalid device string: 'bfloat16'"; a ``torch.dtype`` object is passed, to
the loader and to ``export_hf_checkpoint``.

``--save_modelopt_state`` (or ``TRTLLM_PTQ_SAVE_MODELOPT_STATE=1``) also writes
``modelopt_state.pth`` next to the export: ``mto.save`` of the calibrated fake-quant model (ModelOpt
state + state dict, taken *before* the export rewrites the weights in place). Without TensorRT-LLM,
``trtllm-operator-eval`` can only measure the quantized model by restoring it from that file into
ModelOpt's fake-quant PyTorch modules. It holds a second, unquantized-dtype copy of the weights, so
it is off by default (the TensorRT-LLM image evaluates the export itself).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

QFORMATS: Final = ("fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "int8_wo", "int4_wo", "full_prec")
KV_DTYPES: Final = ("fp8", "int8", "none")
#: qformat -> ModelOpt config constant (``modelopt.torch.quantization``), as in hf_ptq's QUANT_CFG_CHOICES.
QFORMAT_CONFIGS: Final[dict[str, str | None]] = {
    "fp8": "FP8_DEFAULT_CFG",
    "int8_sq": "INT8_SMOOTHQUANT_CFG",
    "int4_awq": "INT4_AWQ_CFG",
    "w4a8_awq": "W4A8_AWQ_BETA_CFG",
    "nvfp4": "NVFP4_DEFAULT_CFG",
    "int8_wo": "INT8_WEIGHT_ONLY_CFG",
    "int4_wo": "INT4_BLOCKWISE_WEIGHT_ONLY_CFG",
    "full_prec": None,
}
#: KV-cache dtype -> ModelOpt KV config constant, as hf_ptq's KV_QUANT_CFG_CHOICES.
KV_CONFIGS: Final[dict[str, str | None]] = {"fp8": "FP8_KV_CFG", "none": None}
#: Seen with ModelOpt 0.47 on an H200: export_hf_checkpoint asserts "Invalid KV cache quantization
#: format." for an INT8 KV cache (the unified export knows FP8 and NVFP4 KV caches only), so it is
#: refused before the model is loaded rather than after calibration.
INT8_KV_UNSUPPORTED: Final = (
    "kv_cache_dtype int8 cannot be exported by ModelOpt's unified Hugging Face checkpoint (only FP8/NVFP4 "
    "KV caches): use kv_cache_dtype fp8, or the tensorrt backend (quantize.py) for an INT8 KV cache"
)
#: AWQ calibration is slow; ModelOpt's examples and quantize.py cap it at 32 samples.
AWQ_FORMATS: Final = frozenset({"int4_awq", "w4a8_awq"})
AWQ_CALIB_CAP: Final = 32
#: Formats that need no activation statistics (weight-only), when the KV cache is not quantized.
NO_CALIBRATION: Final = frozenset({"full_prec", "int8_wo", "int4_wo"})
CALIBRATION_FILE: Final = "calibration.json"
#: ``mto.save`` of the calibrated fake-quant model, for evaluation without TensorRT-LLM.
MODELOPT_STATE: Final = "modelopt_state.pth"
SAVE_STATE_ENV: Final = "TRTLLM_PTQ_SAVE_MODELOPT_STATE"
TEXT_SUFFIXES: Final = (".txt", ".jsonl", ".json")


@dataclass(frozen=True)
class Recipe:
    """Which ModelOpt configs make up the quantization, by name (resolved on ``mtq`` at run time)."""

    weights: str | None
    kv_config: str | None

    @property
    def quantizes(self) -> bool:
        return self.weights is not None or self.kv_config is not None


def recipe_for(qformat: str, kv_cache_dtype: str) -> Recipe:
    """Pure mapping of the CLI choice to ModelOpt config names."""
    if qformat not in QFORMAT_CONFIGS:
        raise ValueError(f"unknown qformat {qformat!r}; choose one of {', '.join(QFORMATS)}")
    if kv_cache_dtype == "int8":
        raise ValueError(INT8_KV_UNSUPPORTED)
    if kv_cache_dtype not in KV_CONFIGS:
        raise ValueError(f"unknown kv_cache_dtype {kv_cache_dtype!r}; choose one of {', '.join(KV_DTYPES)}")
    return Recipe(QFORMAT_CONFIGS[qformat], KV_CONFIGS[kv_cache_dtype])


def needs_calibration(qformat: str, kv_cache_dtype: str) -> bool:
    return qformat not in NO_CALIBRATION or kv_cache_dtype != "none"


def effective_calib_size(qformat: str, requested: int) -> int:
    return min(requested, AWQ_CALIB_CAP) if qformat in AWQ_FORMATS else requested


# --- ModelOpt config assembly (pure over plain dicts) ---------------------------------------------


def _is_list_layout(config: dict[str, Any] | None) -> bool:
    return config is not None and isinstance(config.get("quant_cfg"), list)


def kv_only_base(kv_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """ "Quantize nothing", in the layout of ``kv_cfg``, for full_prec weights with a quantized KV cache."""
    if _is_list_layout(kv_cfg):
        return {"quant_cfg": [{"quantizer_name": "*", "enable": False}], "algorithm": "max"}
    return {"quant_cfg": {"*": {"enable": False}}, "algorithm": "max"}


def _kv_entries(kv_cfg: dict[str, Any]) -> dict[str, Any]:
    """KV quantizer settings as ``{pattern: attributes}``, from either ModelOpt layout."""
    raw = kv_cfg.get("quant_cfg", {})
    if isinstance(raw, dict):
        return {k: v for k, v in raw.items() if k not in {"default", "*"}}
    entries: dict[str, Any] = {}
    for entry in raw:
        name = entry.get("quantizer_name")
        if name and name != "*":
            entries[name] = {k: v for k, v in entry.items() if k != "quantizer_name"}
    return entries


def merge_kv_config(base: dict[str, Any], kv_cfg: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with the KV-cache quantizers of ``kv_cfg`` added (hf_ptq's merge).

    ModelOpt configs are ``{"quant_cfg": ..., "algorithm": ...}`` where ``quant_cfg`` is a dict of
    ``pattern -> attributes`` (releases up to 0.3x) or a list of ``{"quantizer_name": pattern, ...}``
    entries (newer releases, e.g. 0.47); the two must not be mixed, so ``base`` and ``kv_cfg``
    are expected in the same layout (they come from the same library).
    """
    if _is_list_layout(base) != _is_list_layout(kv_cfg):
        raise ValueError("ModelOpt weight and KV-cache configs use different quant_cfg layouts")
    merged = copy.deepcopy(base)
    entries = copy.deepcopy(_kv_entries(kv_cfg))
    if isinstance(merged.get("quant_cfg"), list):
        kept = [entry for entry in merged["quant_cfg"] if entry.get("quantizer_name") not in entries]
        merged["quant_cfg"] = kept + [{"quantizer_name": name, **attrs} for name, attrs in entries.items()]
    else:
        merged.setdefault("quant_cfg", {}).update(entries)
    merged.setdefault("algorithm", "max")
    return merged


def build_quant_config(mtq: Any, recipe: Recipe) -> dict[str, Any]:
    """The config passed to ``mtq.quantize``, resolved on the ``modelopt.torch.quantization`` module.

    ModelOpt's own ``mtq.utils.update_quant_cfg_with_kv_cache_quant`` (what hf_ptq calls) is used when
    the library has it; :func:`merge_kv_config` does the same for older releases.
    """
    kv_cfg: dict[str, Any] | None = getattr(mtq, recipe.kv_config) if recipe.kv_config else None
    base: dict[str, Any] = getattr(mtq, recipe.weights) if recipe.weights else kv_only_base(kv_cfg)
    if kv_cfg is None:
        return copy.deepcopy(base)
    helper = getattr(getattr(mtq, "utils", None), "update_quant_cfg_with_kv_cache_quant", None)
    if helper is not None and _is_list_layout(kv_cfg):
        merged: dict[str, Any] = helper(base, kv_cfg["quant_cfg"])
        return merged
    return merge_kv_config(base, kv_cfg)


# --- calibration texts (pure) ----------------------------------------------------------------------


def _json_texts(data: Any) -> Iterator[str]:
    items = data if isinstance(data, list) else [data]
    for item in items:
        text = item.get("text") if isinstance(item, dict) else item
        if isinstance(text, str) and text.strip():
            yield text
        elif isinstance(text, list):
            yield from _json_texts(text)


def _file_texts(path: Path) -> list[str]:
    content = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [line for line in content.splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        return [
            text for line in content.splitlines() if line.strip() for text in _json_texts(json.loads(line))
        ]
    return list(_json_texts(json.loads(content)))


def read_texts(directory: Path) -> list[str]:
    """Every text of a local dataset dir in sorted-path order.

    ``*.txt``: one text per non-empty line; ``*.jsonl``: the ``text`` field of each record;
    ``*.json``: a list of strings or of ``{"text": ...}`` objects (or one such object).
    """
    if not directory.is_dir():
        raise ValueError(f"dataset directory {directory} does not exist")
    texts: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES):
        try:
            texts += _file_texts(path)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read {path}: {exc}") from exc
    if not texts:
        raise ValueError(f"no text found in {directory} (*.txt lines, 'text' of *.jsonl / *.json)")
    return texts


def select_samples(texts: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` texts chosen with ``random.Random(seed)``, kept in their original order."""
    if size >= len(texts):
        return list(texts)
    chosen = sorted(random.Random(seed).sample(range(len(texts)), size))  # noqa: S311 - not security
    return [texts[index] for index in chosen]


def samples_sha256(samples: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for sample in samples:
        digest.update(sample.encode("utf-8") + b"\0")
    return digest.hexdigest()


def calibration_record(args: argparse.Namespace, samples: Sequence[str] | None, size: int) -> dict[str, Any]:
    """What ``calibration.json`` says (the builder copies it into the engine manifest)."""
    return {
        "dataset": args.calib_dataset,
        "size": size if samples is None else len(samples),
        "max_seq_length": args.calib_max_seq_length,
        "seed": args.seed,
        "sha256": samples_sha256(samples) if samples is not None else None,
    }


def torch_dtype_name(config: dict[str, Any]) -> str:
    """The dtype to load the model in: float16 when the checkpoint is float16, else bfloat16."""
    raw = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16").removeprefix("torch.")
    return "float16" if raw in {"float16", "fp16", "half"} else "bfloat16"


def env_flag(value: str | None) -> bool:
    """``1``/``true``/``yes``/``on`` (any case) -> True; anything else, or unset -> False."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def dtype_kwargs(dtype: Any, transformers_version: str) -> dict[str, Any]:
    """The dtype keyword of ``from_pretrained``/``from_config``: ``dtype`` from transformers 4.56 on
    (``torch_dtype`` is deprecated there), ``torch_dtype`` before."""
    parts = [int(part) if part.isdigit() else 0 for part in transformers_version.split(".")[:2]]
    major, minor = [*parts, 0, 0][:2]
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtllm-operator-ptq", allow_abbrev=False, description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model_dir", required=True, help="Hugging Face checkpoint directory")
    parser.add_argument("--output_dir", required=True, help="where the unified HF checkpoint is exported")
    parser.add_argument("--qformat", required=True, choices=QFORMATS)
    parser.add_argument("--kv_cache_dtype", default="none", choices=KV_DTYPES)
    parser.add_argument(
        "--calib_dataset", default="cnn_dailymail", help="dataset name (Hub) or local directory"
    )
    parser.add_argument("--calib_size", type=int, default=512)
    parser.add_argument("--calib_max_seq_length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument(
        "--save_modelopt_state",
        action="store_true",
        default=env_flag(os.environ.get(SAVE_STATE_ENV)),
        help=f"also write {MODELOPT_STATE} (mto.save of the fake-quant model) for evaluation without "
        f"TensorRT-LLM (default: ${SAVE_STATE_ENV})",
    )
    return parser


# --- GPU flow (lazy imports; exercised on a GPU machine, not in unit tests) ------------------------


def say(message: str) -> None:
    print(f"[trtllm-operator-ptq] {message}", flush=True)


def load_model(model_dir: str) -> tuple[Any, Any]:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    dtype = getattr(torch, torch_dtype_name(config))
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, device_map="cuda", **dtype_kwargs(dtype, transformers.__version__)
    )
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def local_batches(tokenizer: Any, samples: Sequence[str], args: argparse.Namespace, device: Any) -> list[Any]:
    batches = []
    for start in range(0, len(samples), args.batch_size):
        encoded = tokenizer(
            list(samples[start : start + args.batch_size]),
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=args.calib_max_seq_length,
        )
        batches.append({key: value.to(device) for key, value in encoded.items()})
    return batches


def hub_batches(tokenizer: Any, args: argparse.Namespace, size: int, device: Any) -> list[Any]:
    """A named dataset through ModelOpt's own loader (needs the Hub, as in hf_ptq)."""
    from modelopt.torch.utils.dataset_utils import get_dataset_dataloader

    loader = get_dataset_dataloader(
        dataset_name=args.calib_dataset,
        tokenizer=tokenizer,
        batch_size=args.batch_size,
        num_samples=size,
        max_sample_length=args.calib_max_seq_length,
        device=device,
    )
    return list(loader)


def calibration_batches(
    tokenizer: Any, args: argparse.Namespace, device: Any
) -> tuple[list[Any], dict[str, Any]]:
    size = effective_calib_size(args.qformat, args.calib_size)
    if size != args.calib_size:
        say(f"AWQ calibration: using calib_size={size} instead of {args.calib_size}")
    source = Path(args.calib_dataset)
    if source.is_dir():
        samples = select_samples(read_texts(source), size, args.seed)
        return local_batches(tokenizer, samples, args, device), calibration_record(args, samples, size)
    return hub_batches(tokenizer, args, size, device), calibration_record(args, None, size)


def quantize(model: Any, tokenizer: Any, args: argparse.Namespace) -> tuple[bool, dict[str, Any] | None]:
    """Quantize ``model`` in place; returns (quantized?, calibration record)."""
    import modelopt.torch.quantization as mtq
    import torch

    recipe = recipe_for(args.qformat, args.kv_cache_dtype)
    if not recipe.quantizes:
        say("full_prec without KV-cache quantization: exporting the model unquantized")
        return False, None
    batches: list[Any] = []
    record: dict[str, Any] | None = None
    if needs_calibration(args.qformat, args.kv_cache_dtype):
        batches, record = calibration_batches(tokenizer, args, model.device)

    def forward_loop(loop_model: Any) -> None:
        with torch.no_grad():
            for index, batch in enumerate(batches):
                loop_model(**batch)
                if index % 16 == 0:
                    say(f"calibrating: batch {index + 1}/{len(batches)}")

    say(f"quantizing with {recipe.weights or 'no weight quantization'}, KV cache {args.kv_cache_dtype}")
    mtq.quantize(model, build_quant_config(mtq, recipe), forward_loop if batches else None)
    mtq.print_quant_summary(model)
    return True, record


def save_modelopt_state(model: Any, output_dir: Path) -> None:
    """``mto.save`` of the calibrated model; must run before the export, which rewrites the weights."""
    import modelopt.torch.opt as mto

    output_dir.mkdir(parents=True, exist_ok=True)
    mto.save(model, str(output_dir / MODELOPT_STATE))
    say(f"saved the fake-quant model's ModelOpt state to {output_dir / MODELOPT_STATE}")


def export(
    model: Any,
    tokenizer: Any,
    output_dir: Path,
    quantized: bool,
    record: dict[str, Any] | None,
    save_state: bool = False,
) -> None:
    import torch
    from modelopt.torch.export import export_hf_checkpoint

    output_dir.mkdir(parents=True, exist_ok=True)
    if quantized and save_state:
        save_modelopt_state(model, output_dir)
    with torch.inference_mode():
        if quantized:
            # A torch.dtype object: ModelOpt otherwise reads the dtype from the config, where it can be
            # a string ("Invalid device string: 'bfloat16'" for INT4-AWQ / NVFP4).
            export_hf_checkpoint(model, dtype=model.dtype, export_dir=str(output_dir))
        else:
            model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    if record is not None:
        (output_dir / CALIBRATION_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def run(args: argparse.Namespace) -> None:
    started = time.monotonic()
    recipe_for(args.qformat, args.kv_cache_dtype)  # refuse an impossible recipe before loading the model
    say(f"loading {args.model_dir}")
    model, tokenizer = load_model(args.model_dir)
    quantized, record = quantize(model, tokenizer, args)
    say(f"exporting to {args.output_dir}")
    export(model, tokenizer, Path(args.output_dir), quantized, record, args.save_modelopt_state)
    say(f"done in {time.monotonic() - started:.0f}s")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
