#!/usr/bin/env python3
"""GPU validation of the builder's ``pytorch`` path and of the accuracy gate (issue 7).

Run by ``hack/gpu-validation.sh`` (``make gpu-validation``) on a machine with an NVIDIA GPU; not part
of CI. Every number comes from the repository's own code path:

1. preflight with real NVML: the GPU, its compute capability, memory and driver; ``preflight.check``
   on a rendered fp8 plan (accepted) and nvfp4 plan (refused), and the real builder entrypoint on the
   nvfp4 plan, which must exit 10 before any heavy work;
2. a small byte-level Llama trained here, offline, on this machine's own Python sources and English
   prose files (held-out splits by content hash), saved as a Hugging Face checkpoint;
3. for each precision x calibration domain (code = matched, prose = mismatched) x calibration seed,
   ``render_plan`` (backend pytorch, ``pvc://`` model and data) -> ``python -m trtllm_operator.builder
   --plan ... --remap /models=... --remap /engines=...``: preflight -> ``trtllm-operator-ptq``
   (ModelOpt) -> in-process export -> verify -> ``trtllm-operator-eval`` (code perplexity) ->
   manifest + atomic publish; the same for the bf16 reference;
4. ``reconcile.gates.evaluate_gates`` on each build's measured perplexity against the bf16 engine's,
   with a pre-registered ``maxDrop`` (``--thresholds``: run 1's single 0.02, or run 2's per-precision
   values calibrated on run 1), and seed statistics per precision and domain;
5. the ``tensorrt`` backend's build flow with the stand-in TensorRT-LLM tools (``hack/standins/bin``)
   but the *real* NVML preflight: a rendered fp8 TP1 plan through ``python -m trtllm_operator.builder``
   with no pynvml shim, the stand-ins told (``TRTLLM_SIM_GPUS``) about the GPU NVML reported.

Run 1 (docs/gpu-validation.md): ``--thresholds run1 --seeds 1,2,3,4``. Run 2, the confirmatory run
with thresholds pre-registered from run 1: ``--thresholds per-precision --seeds 5,6,7,8`` (the
defaults).

TensorRT-LLM is not installable here: the evaluator measures a quantized export through ModelOpt's
fake-quant PyTorch modules, restored from the ``modelopt_state.pth`` that ``trtllm-operator-ptq``
saves next to the export (``TRTLLM_PTQ_SAVE_MODELOPT_STATE=1``). A consistency stage compares the
exported FP8/INT8 weights with the fake-quant weights the evaluator used.

``--dry-run`` needs no GPU: it collects and splits the data, renders every plan, prints every
builder command and runs the gate arithmetic on made-up scores. ``--report FILE`` prints the
markdown tables of a results file.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

REPO: Final = Path(__file__).resolve().parents[1]
if str(REPO / "operator") not in sys.path:
    sys.path.insert(0, str(REPO / "operator"))

from trtllm_operator.api.engine import TRTEngineSpec  # noqa: E402
from trtllm_operator.api.plan import BuildPlan, ResultAccuracy  # noqa: E402
from trtllm_operator.gpu import ComputeCapability, parse_cc  # noqa: E402
from trtllm_operator.reconcile.gates import evaluate_gates  # noqa: E402
from trtllm_operator.render.names import build_config_hash  # noqa: E402
from trtllm_operator.render.plan import RenderConfig, render_plan  # noqa: E402

# --- the experiment, fixed before any run ---------------------------------------------------------

NAMESPACE: Final = "gpu-validation"
REFERENCE: Final = "tiny-llama-bf16"
MODEL_URI: Final = "pvc://models/tiny-llama-code"
EVAL_URI: Final = "pvc://evaldata/code"
CALIB_URI: Final = {"code": "pvc://calib/code", "prose": "pvc://calib/prose"}
ROLE: Final = {"code": "matched", "prose": "mismatched"}
PRECISIONS: Final = ("fp8", "int8_sq", "int4_awq")
#: Run 1's gate: code perplexity may rise by at most 0.02 (absolute) over the bf16 engine. Chosen from
#: the issue's single run before run 1 (INT4-AWQ +0.014 matched / +0.029 mismatched; INT8-SQ
#: +0.001 / +0.011; FP8 +0.003 / +0.005): the only pair with a gap wider than either value is INT4-AWQ,
#: and 0.02 sits inside it while leaving every matched result of that run room below. Not tuned after.
MAX_DROP_RUN1: Final = 0.02
MAX_DROP_MODE: Final = "absolute"
#: Run 1's measured code-perplexity increases over bf16 (1.7945), per calibration seed 1-4, as the
#: evaluator printed them (4 decimals): the calibration study run 2's thresholds come from.
RUN1_DELTAS: Final[dict[str, dict[str, tuple[float, ...]]]] = {
    "fp8": {"matched": (0.0013, 0.0015, 0.0013, 0.0014), "mismatched": (0.0014, 0.0012, 0.0013, 0.0014)},
    "int8_sq": {"matched": (0.0028, 0.0024, 0.0026, 0.0027), "mismatched": (0.0042, 0.0040, 0.0040, 0.0046)},
    "int4_awq": {"matched": (0.0081, 0.0086, 0.0082, 0.0085), "mismatched": (0.0088, 0.0088, 0.0095, 0.0091)},
}
#: How many matched standard deviations above the matched mean the threshold of a precision sits
#: when run 1 found no separation (fp8): it bounds the format's own cost, and separates nothing.
NO_SEPARATION_STDS: Final = 5
#: Run 2's gates, pre-registered (written here before run 2) from RUN1_DELTAS by ``derive_thresholds``,
#: rounded to 1e-5:
#:   int8_sq  (separated in run 1): midpoint (0.002625 + 0.004200) / 2 = 0.0034125 -> 0.00341;
#:   int4_awq (separated in run 1): midpoint (0.008350 + 0.009050) / 2 = 0.0087    -> 0.00870;
#:   fp8 (no separation in run 1): matched mean + 5 x matched std = 0.001375 + 5 x 0.0000957 -> 0.00185.
#: A per-TRTEngine maxDrop set from a calibration study like this is what a user would deploy.
THRESHOLDS: Final[dict[str, dict[str, float]]] = {
    "run1": {"fp8": MAX_DROP_RUN1, "int8_sq": MAX_DROP_RUN1, "int4_awq": MAX_DROP_RUN1},
    "per-precision": {"fp8": 0.00185, "int8_sq": 0.00341, "int4_awq": 0.00870},
}
RUN1_SEEDS: Final = "1,2,3,4"
RUN2_SEEDS: Final = "5,6,7,8"  # fresh calibration seeds for the confirmatory run
CALIB_SIZE: Final = 128  # AWQ formats use at most 32 (ModelOpt's cap, applied by trtllm-operator-ptq)
CALIB_MAX_SEQ: Final = 512
IMAGE: Final = "local/modelopt-0.47-pytorch:gpu-validation"

# --- data -----------------------------------------------------------------------------------------

CODE_TRAIN_BYTES: Final = 48_000_000
PROSE_TRAIN_BYTES: Final = 16_000_000
CALIB_POOL_BYTES: Final = 2_000_000
EVAL_BYTES: Final = 600_000
CHUNK_CHARS: Final = 2048
CODE_EVAL_BUCKETS: Final = range(0, 2)  # content-hash buckets (of 100) held out for evaluation
CODE_CALIB_BUCKETS: Final = range(2, 5)
PROSE_CALIB_BUCKETS: Final = range(0, 20)  # prose is scarcer than code on a GPU image
DATA_SEED: Final = 20251126
PROSE_ROOTS: Final = ("/usr/share/common-licenses", "/usr/share/doc", "/usr/share/licenses")
PROSE_NAMES: Final = re.compile(r"^(README|LICEN[CS]E|COPYING|NOTICE|AUTHORS|copyright|METADATA|PKG-INFO)")
PROSE_SUFFIXES: Final = (".txt", ".md", ".rst", "")
COMMON_WORDS: Final = frozenset(
    ["the", "and", "of", "to", "a", "in", "is", "that", "for", "this", "be", "or", "with", "by", "as", "are"]
)

# --- model ----------------------------------------------------------------------------------------

VOCAB: Final = 260  # 256 bytes + <s> </s> <pad> <unk>
SPECIALS: Final = ("<s>", "</s>", "<pad>", "<unk>")
MODEL_SHAPE: Final = {
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_hidden_layers": 6,
    "num_attention_heads": 8,
    "num_key_value_heads": 8,
    "max_position_embeddings": 1024,
}
SEQ_LEN: Final = 1024
BATCH: Final = 32
CODE_FRACTION: Final = 0.75
TRAIN_SEED: Final = 1234
PEAK_LR: Final = 1.5e-3
WARMUP: Final = 150

_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(f"[gpu-validation {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Context:
    work: Path
    out: Path
    args: argparse.Namespace
    started: float = field(default_factory=time.monotonic)
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def pvc(self) -> Path:
        return self.work / "pvc"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.results, indent=1, sort_keys=False, default=str)
        (self.out / "results.json").write_text(text + "\n", encoding="utf-8")


def local_path(uri: str, pvc: Path) -> Path:
    """Where a ``pvc://claim/path`` lives on this machine (the plan mounts it at /models/claim/path)."""
    return pvc / uri.removeprefix("pvc://")


# --- data collection (CPU) ------------------------------------------------------------------------


def bucket(text: str) -> int:
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100  # noqa: S324 - a split, not security


def read_text(path: Path, max_bytes: int) -> str | None:
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > max_bytes:
            return None
        raw = path.read_bytes()
        if b"\0" in raw:
            return None
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def usable_code(text: str) -> bool:
    lines = text.splitlines()
    return len(text) >= 1000 and bool(lines) and max(len(line) for line in lines) < 400


_FENCE = re.compile(r"```.*?```", re.DOTALL)
_LINKS = re.compile(r"https?://\S+|\]\([^)]*\)|<[^>\n]+>")


def prose_part(path: Path, text: str) -> str:
    """The prose of a file: a METADATA's description (after the headers), without fenced code blocks
    and indented/doctest lines."""
    if path.name in {"METADATA", "PKG-INFO"}:
        _, _, text = text.partition("\n\n")
    text = _LINKS.sub("", _FENCE.sub("", text))
    kept = [line for line in text.splitlines() if not line.startswith(("    ", "\t", ">>>", "$ ", "..."))]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def looks_like_prose(text: str) -> bool:
    if len(text) < 600:
        return False
    letters = sum(ch.isalpha() or ch in " \n.,;:'\"()-" for ch in text)
    words = re.findall(r"[A-Za-z']+", text.lower())
    common = sum(word in COMMON_WORDS for word in words)
    codeish = sum(ch in "{}[]=<>_#*|\\/" for ch in text)
    return (
        letters / len(text) > 0.85
        and bool(words)
        and common / len(words) > 0.1
        and codeish / len(text) < 0.04
    )


def walk_files(roots: Sequence[Path], accept: Callable[[Path], bool]) -> list[Path]:
    found: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in {"__pycache__", "tests", "test"})
            for name in files:
                path = Path(directory) / name
                if accept(path):
                    found.add(path)
    return sorted(found)


def python_roots() -> list[Path]:
    roots = {Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])}
    roots |= {
        Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages")) and Path(p).is_dir()
    }
    return sorted(roots)


def chunks(text: str, size: int = CHUNK_CHARS) -> Iterator[str]:
    """Pieces of about ``size`` characters cut at line ends."""
    piece: list[str] = []
    length = 0
    for line in text.splitlines(keepends=True):
        piece.append(line)
        length += len(line)
        if length >= size:
            yield "".join(piece).strip("\n")
            piece, length = [], 0
    if piece and "".join(piece).strip():
        yield "".join(piece).strip("\n")


@dataclass
class Split:
    train: list[str] = field(default_factory=list)
    calib: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=lambda: {"train": 0, "calib": 0, "eval": 0})
    files: dict[str, int] = field(default_factory=lambda: {"train": 0, "calib": 0, "eval": 0})

    def add(self, part: str, text: str, cap: int) -> None:
        if self.sizes[part] >= cap:
            return
        getattr(self, part).append(text)
        self.sizes[part] += len(text.encode("utf-8"))
        self.files[part] += 1


def collect(scale: float) -> tuple[Split, Split, dict[str, Any]]:
    """Code and prose texts of this machine, deduplicated and split by content hash."""
    started = time.monotonic()
    code_paths = walk_files(python_roots(), lambda p: p.suffix == ".py")
    random.Random(DATA_SEED).shuffle(code_paths)  # noqa: S311 - a reproducible order, not security
    code, seen = Split(), set()
    caps = {k: int(v * scale) for k, v in {"train": CODE_TRAIN_BYTES, "calib": CALIB_POOL_BYTES}.items()}
    caps["eval"] = EVAL_BYTES
    for path in code_paths:
        text = read_text(path, 200_000)
        if text is None or not usable_code(text) or text in seen:
            continue
        seen.add(text)
        slot = bucket(text)
        part = "eval" if slot in CODE_EVAL_BUCKETS else "calib" if slot in CODE_CALIB_BUCKETS else "train"
        code.add(part, text, caps[part])
        if all(code.sizes[k] >= caps[k] for k in caps):
            break

    def prose_candidate(path: Path) -> bool:
        return bool(PROSE_NAMES.match(path.name)) or (
            path.suffix in PROSE_SUFFIXES[:-1] and "dist-info" not in str(path)
        )

    prose_paths = walk_files([Path(p) for p in PROSE_ROOTS] + python_roots(), prose_candidate)
    random.Random(DATA_SEED + 1).shuffle(prose_paths)  # noqa: S311
    prose = Split()
    prose_caps = {"train": int(PROSE_TRAIN_BYTES * scale), "calib": int(CALIB_POOL_BYTES * scale), "eval": 0}
    for path in prose_paths:
        raw = read_text(path, 400_000)
        if raw is None:
            continue
        text = prose_part(path, raw)
        if not looks_like_prose(text) or text in seen:
            continue
        seen.add(text)
        part = "calib" if bucket(text) in PROSE_CALIB_BUCKETS else "train"
        prose.add(part, text, prose_caps[part])
        if all(prose.sizes[k] >= prose_caps[k] for k in ("train", "calib")):
            break
    stats = {
        "seconds": round(time.monotonic() - started, 1),
        "python_roots": [str(p) for p in python_roots()],
        "prose_roots": [*PROSE_ROOTS, "site-packages READMEs/LICENSEs/METADATA"],
        "code_candidates": len(code_paths),
        "prose_candidates": len(prose_paths),
        "code": {"bytes": code.sizes, "files": code.files},
        "prose": {"bytes": prose.sizes, "files": prose.files},
        "split": "sha1(content) % 100: code eval 0-1, code calibration 2-4, prose calibration 0-19, "
        "rest train",
    }
    return code, prose, stats


def write_jsonl(path: Path, texts: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"text": text}, ensure_ascii=False) for text in texts)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_data(ctx: Context, code: Split, prose: Split) -> dict[str, Any]:
    """Volumes as the plans see them: calibration pools (chunks), held-out code eval set, train streams."""
    pools = {
        "code": [c for t in code.calib for c in chunks(t)],
        "prose": [c for t in prose.calib for c in chunks(t)],
    }
    for domain, texts in pools.items():
        write_jsonl(local_path(CALIB_URI[domain], ctx.pvc) / f"{domain}.jsonl", texts)
    write_jsonl(local_path(EVAL_URI, ctx.pvc) / "code-eval.jsonl", code.eval)
    train = ctx.work / "train"
    train.mkdir(parents=True, exist_ok=True)
    (train / "code.bin").write_bytes("\n\n".join(code.train).encode("utf-8"))
    (train / "prose.bin").write_bytes("\n\n".join(prose.train).encode("utf-8"))
    return {
        "calibration_pool_samples": {k: len(v) for k, v in pools.items()},
        "eval_bytes": len("\n\n".join(code.eval).encode("utf-8")),
        "eval_files": len(code.eval),
    }


# --- model (GPU) -----------------------------------------------------------------------------------


def byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what tokenizers' ByteLevel pre-tokenizer emits)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_tokenizer() -> Any:
    """A byte-level tokenizer whose ids are the UTF-8 bytes themselves (ids 256-259: specials)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {char: byte for byte, char in byte_chars().items()}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(list(SPECIALS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",  # noqa: S106 - token names, not secrets
        eos_token="</s>",  # noqa: S106
        pad_token="<pad>",  # noqa: S106
        unk_token="<unk>",  # noqa: S106
    )


def lr_at(step: int, steps: int) -> float:
    if step < WARMUP:
        return PEAK_LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, steps - WARMUP)
    return PEAK_LR * (0.07 + 0.93 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def train(ctx: Context, steps: int, max_seconds: float) -> dict[str, Any]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(TRAIN_SEED)
    random.seed(TRAIN_SEED)
    torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device("cuda")
    streams = {}
    for name in ("code", "prose"):
        data = bytearray((ctx.work / "train" / f"{name}.bin").read_bytes())
        streams[name] = torch.frombuffer(data, dtype=torch.uint8).to(device)
    config = LlamaConfig(
        vocab_size=VOCAB,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
        **MODEL_SHAPE,
    )
    model = LlamaForCausalLM(config).to(device)
    params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=PEAK_LR, betas=(0.9, 0.95), weight_decay=0.1, fused=True
    )
    generator = torch.Generator(device=device).manual_seed(TRAIN_SEED)
    offsets = torch.arange(SEQ_LEN, device=device)
    n_code = round(BATCH * CODE_FRACTION)

    def batch() -> Any:
        rows = []
        for name, count in (("code", n_code), ("prose", BATCH - n_code)):
            stream = streams[name]
            start = torch.randint(
                0, stream.numel() - SEQ_LEN - 1, (count, 1), generator=generator, device=device
            )
            rows.append(stream[start + offsets])
        return torch.cat(rows).long()

    model.train()
    history: list[dict[str, float]] = []
    started = time.monotonic()
    done = 0
    loss_value = float("nan")
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps)
        ids = batch()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        done = step + 1
        if step % 100 == 0 or step == steps - 1:
            loss_value = float(loss.item())
            history.append(
                {"step": step, "loss": round(loss_value, 4), "seconds": round(time.monotonic() - started, 1)}
            )
            say(f"train step {step}/{steps}: loss {loss_value:.4f} ({time.monotonic() - started:.0f}s)")
        if time.monotonic() - started > max_seconds:
            say(f"training stopped at the time cap after {done} steps")
            break
    torch.cuda.synchronize()
    seconds = time.monotonic() - started
    model = model.to(torch.bfloat16).eval()
    model_dir = local_path(MODEL_URI, ctx.pvc)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    tokenizer = byte_tokenizer()
    tokenizer.save_pretrained(str(model_dir))
    config_path = model_dir / "config.json"
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    keys = [key for key in ("torch_dtype", "dtype") if key in saved] or ["dtype"]
    for key in keys:
        saved[key] = "bfloat16"
    config_path.write_text(json.dumps(saved, indent=2) + "\n", encoding="utf-8")
    sample = "def f(x):\n    return x  # ünïcode ✓\n"
    from transformers import AutoTokenizer

    reloaded = AutoTokenizer.from_pretrained(str(model_dir))
    roundtrip = list(reloaded(sample, add_special_tokens=False)["input_ids"]) == list(sample.encode("utf-8"))
    if not roundtrip:
        raise RuntimeError("the saved tokenizer does not map text to its UTF-8 bytes")
    streams.clear()
    del model, optimizer
    torch.cuda.empty_cache()
    return {
        "parameters": params,
        "shape": MODEL_SHAPE | {"vocab_size": VOCAB, "seq_len": SEQ_LEN, "batch": BATCH},
        "steps_planned": steps,
        "steps": done,
        "seconds": round(seconds, 1),
        "tokens": done * BATCH * SEQ_LEN,
        "tokens_per_second": round(done * BATCH * SEQ_LEN / seconds),
        "final_train_loss_nats_per_byte": round(loss_value, 4),
        "history": history,
        "lr": {"peak": PEAK_LR, "warmup": WARMUP, "schedule": "cosine to 7%"},
        "mix": {"code": CODE_FRACTION, "prose": 1 - CODE_FRACTION},
        "seed": TRAIN_SEED,
        "tokenizer_roundtrip_bytes": roundtrip,
        "files": sorted(p.name for p in model_dir.iterdir()),
        "config_dtype": {key: saved.get(key) for key in ("torch_dtype", "dtype")},
    }


# --- plans ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What render_plan needs of a placement."""

    cc: ComputeCapability
    product: str | None
    gpus: int = 1


@dataclass(frozen=True)
class Build:
    tag: str
    name: str
    precision: str
    domain: str | None
    seed: int | None
    spec: TRTEngineSpec
    plan: BuildPlan


def derive_thresholds(deltas: dict[str, dict[str, tuple[float, ...]]]) -> dict[str, dict[str, Any]]:
    """Per-precision maxDrop from a calibration study: the midpoint of the matched and mismatched mean
    increase where the study separated them (every mismatched seed worse than every matched one, and
    the difference of the means more than twice the larger seed std), else the matched mean plus
    NO_SEPARATION_STDS matched standard deviations."""
    derived: dict[str, dict[str, Any]] = {}
    for precision, parts in deltas.items():
        matched, mismatched = parts["matched"], parts["mismatched"]
        mean_m, mean_x = statistics.fmean(matched), statistics.fmean(mismatched)
        std_m, std_x = statistics.stdev(matched), statistics.stdev(mismatched)
        separated = min(mismatched) > max(matched) and mean_x - mean_m > 2 * max(std_m, std_x)
        value = (mean_m + mean_x) / 2 if separated else mean_m + NO_SEPARATION_STDS * std_m
        derived[precision] = {
            "matched_mean": mean_m,
            "matched_std": std_m,
            "mismatched_mean": mean_x,
            "mismatched_std": std_x,
            "separated": separated,
            "rule": "midpoint of the means" if separated else f"matched mean + {NO_SEPARATION_STDS} std",
            "max_drop": round(value, 5),
        }
    return derived


def engine_spec(
    precision: str, domain: str, seed: int, cc: str, params_billions: float, max_drop: float
) -> TRTEngineSpec:
    return TRTEngineSpec.model_validate(
        {
            "model": {
                "source": MODEL_URI,
                "architecture": "LlamaForCausalLM",
                "domain": "code",
                "parametersBillions": params_billions,
            },
            "backend": "pytorch",
            "image": IMAGE,
            "precision": precision,
            "kvCacheDtype": "auto",
            "calibration": {
                "dataset": CALIB_URI[domain],
                "size": CALIB_SIZE,
                "maxSeqLength": CALIB_MAX_SEQ,
                "seed": seed,
            },
            "target": {"computeCapability": cc},
            "storage": {"existingClaim": "engines"},
            "validation": {
                "accuracy": {
                    "tasks": [
                        {
                            "name": "perplexity",
                            "dataset": EVAL_URI,
                            "baseline": {"engineRef": {"name": REFERENCE}},
                            "maxDrop": max_drop,
                            "maxDropMode": MAX_DROP_MODE,
                        }
                    ]
                }
            },
        }
    )


def make_build(
    precision: str,
    domain: str,
    seed: int,
    target: Target,
    params_billions: float,
    thresholds: dict[str, float] | None = None,
) -> Build:
    max_drop = (thresholds or {}).get(precision, MAX_DROP_RUN1)
    spec = engine_spec(precision, domain, seed, str(target.cc), params_billions, max_drop)
    name = REFERENCE if precision == "bf16" else f"tiny-llama-{precision.replace('_', '-')}-{domain}-s{seed}"
    build_hash = build_config_hash(spec)
    plan = render_plan(NAMESPACE, name, spec, 1, build_hash, target, RenderConfig(builder_image=IMAGE))
    tag = "bf16" if precision == "bf16" else f"{precision}-{domain}-s{seed}"
    return Build(
        tag,
        name,
        precision,
        None if precision == "bf16" else domain,
        None if precision == "bf16" else seed,
        spec,
        plan,
    )


def matrix(
    target: Target,
    precisions: Sequence[str],
    seeds: Sequence[int],
    params_billions: float,
    thresholds: dict[str, float],
) -> list[Build]:
    builds = [make_build("bf16", "code", 0, target, params_billions, thresholds)]
    for precision in precisions:
        for domain in ("code", "prose"):
            builds += [
                make_build(precision, domain, seed, target, params_billions, thresholds) for seed in seeds
            ]
    return builds


def remaps(ctx: Context) -> list[str]:
    return ["--remap", f"/engines={ctx.work / 'engines'}", "--remap", f"/models={ctx.pvc}"]


def builder_argv(ctx: Context, build: Build) -> list[str]:
    plan_path = ctx.work / "plans" / f"{build.tag}.json"
    result_path = ctx.work / "results" / f"{build.tag}.json"
    return [
        sys.executable, "-m", "trtllm_operator.builder",
        "--plan", str(plan_path), "--result-file", str(result_path), *remaps(ctx),
    ]  # fmt: skip


def write_plan(ctx: Context, build: Build) -> Path:
    path = ctx.work / "plans" / f"{build.tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build.plan.to_json() + "\n", encoding="utf-8")
    return path


# --- running the real builder ---------------------------------------------------------------------


def dir_listing(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


def run_builder(ctx: Context, build: Build, timeout: float = 420) -> dict[str, Any]:
    write_plan(ctx, build)
    result_path = ctx.work / "results" / f"{build.tag}.json"
    result_path.parent.mkdir(parents=True, exist_ok=True)
    result_path.unlink(missing_ok=True)
    log_path = ctx.work / "logs" / f"{build.tag}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        try:
            done = subprocess.run(
                builder_argv(ctx, build), stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -9
    wall = time.monotonic() - started
    record: dict[str, Any] = {
        "tag": build.tag,
        "engine": build.name,
        "precision": build.precision,
        "domain": build.domain,
        "role": ROLE.get(build.domain or "", "reference"),
        "seed": build.seed,
        "build_config_hash": build.plan.build_config_hash,
        "exit": code,
        "wall_seconds": round(wall, 1),
    }
    try:
        record["result"] = json.loads(result_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        record["result_error"] = str(exc)
    engine_dir = ctx.work / "engines" / build.plan.paths.engine.removeprefix("/engines/")
    record["engine_dir_exists"] = engine_dir.is_dir()
    if engine_dir.is_dir():
        files = dir_listing(engine_dir)
        record["files"] = files
        record["total_bytes"] = sum(files.values())
        record["safetensors_bytes"] = sum(v for k, v in files.items() if k.endswith(".safetensors"))
        hf_quant = engine_dir / "hf_quant_config.json"
        if hf_quant.is_file():
            quant = json.loads(hf_quant.read_text(encoding="utf-8")).get("quantization", {})
            record["quant_algo"] = quant.get("quant_algo")
            record["kv_cache_quant_algo"] = quant.get("kv_cache_quant_algo")
            record["exclude_modules"] = quant.get("exclude_modules")
        manifest = engine_dir / "engine-manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            record["manifest"] = {
                k: data.get(k) for k in ("calibration", "verification", "measurements", "timings", "gpu")
            }
    if code != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        record["log_tail"] = tail
    say(
        f"build {build.tag}: exit {code} in {wall:.0f}s"
        + (f" score {score_of(record)}" if score_of(record) else "")
    )
    return record


def score_of(record: dict[str, Any]) -> float | None:
    acc = (record.get("result") or {}).get("acc") or []
    return float(acc[0]["score"]) if acc else None


# --- stages ---------------------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for module in (
        "torch",
        "transformers",
        "modelopt",
        "pydantic",
        "structlog",
        "tokenizers",
        "safetensors",
        "pynvml",
    ):
        try:
            imported = __import__(module)
            info[module] = getattr(imported, "__version__", "present")
        except Exception as exc:  # report, never fail
            info[module] = f"unavailable: {type(exc).__name__}"
    try:
        import torch

        info["torch_cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["torch_device"] = torch.cuda.get_device_name(0)
    except Exception as exc:
        info["torch_cuda"] = f"unavailable: {type(exc).__name__}"
    smi = shutil.which("nvidia-smi")
    if smi:
        query = "--query-gpu=name,driver_version,memory.total,compute_cap"
        done = subprocess.run(
            [smi, query, "--format=csv,noheader"], capture_output=True, text=True, check=False
        )
        info["nvidia_smi"] = done.stdout.strip()
    return info


def precompile() -> list[subprocess.Popen[bytes]]:
    """ModelOpt's CUDA extensions (~40 s of nvcc each), compiled in the background while the model trains."""
    procs = []
    for getter in ("get_cuda_ext", "get_cuda_ext_fp8"):
        module = "modelopt.torch.quantization.extensions"
        code = f"from {module} import {getter} as g; print(g(raise_if_failed=True))"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
    return procs


def preflight(ctx: Context, params_billions: float) -> tuple[dict[str, Any], Target]:
    from trtllm_operator.builder.preflight import check, probe

    inventory = probe()
    record: dict[str, Any] = {"inventory": inventory.to_json(), "error": inventory.error}
    if not inventory.gpus:
        raise RuntimeError(f"NVML sees no GPU: {inventory.error}")
    gpu = inventory.gpus[0]
    target = Target(gpu.cc, gpu.name.replace(" ", "-"))
    record["gpu"] = {
        "name": gpu.name,
        "compute_capability": str(gpu.cc),
        "memory_total_gib": round(gpu.memory_total / 1024**3, 1),
        "memory_free_gib": round(gpu.memory_free / 1024**3, 1),
        "driver": inventory.driver_version,
        "cuda_driver_version": inventory.cuda_driver_version,
    }
    verdicts = {}
    for precision in ("fp8", "nvfp4"):
        build = make_build(precision, "code", 1, target, params_billions)
        verdict = check(build.plan, inventory)
        failure = verdict.failure
        verdicts[precision] = {
            "accepted": failure is None,
            "reason": failure.reason if failure else None,
            "message": failure.message if failure else None,
            "exit_code": failure.exit_code if failure else 0,
            "warnings": verdict.warnings,
        }
    record["check"] = verdicts
    refused = make_build("nvfp4", "code", 1, target, params_billions)
    refused = Build("preflight-nvfp4", refused.name, "nvfp4", "code", 1, refused.spec, refused.plan)
    run = run_builder(ctx, refused, timeout=120)
    paths = refused.plan.paths
    touched = {
        key: (ctx.work / "engines" / getattr(paths, key).removeprefix("/engines/")).exists()
        for key in ("staging", "checkpoint", "engine")
    }
    log = (ctx.work / "logs" / "preflight-nvfp4.log").read_text(encoding="utf-8", errors="replace")
    record["builder_nvfp4"] = {
        "exit": run["exit"],
        "wall_seconds": run["wall_seconds"],
        "result": run.get("result"),
        "created": touched,
        "steps_started": steps_started(log),
        "argv": builder_argv(ctx, refused),
    }
    shutil.copy(ctx.work / "logs" / "preflight-nvfp4.log", ctx.out / "builder-nvfp4.log")
    return record, target


# --- the tensorrt backend's flow: stand-in TensorRT-LLM tools, real NVML preflight (issue 5) ---------

STANDIN_BIN: Final = REPO / "hack" / "standins" / "bin"
STANDIN_IMAGE: Final = "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"
STANDIN_ENGINE: Final = "tiny-llama-fp8-trt-standin"
EXAMPLES_DIR: Final = "/app/tensorrt_llm/examples"
#: The image's example scripts the tensorrt plan calls, and the stand-in each one is linked to.
STANDIN_EXAMPLES: Final = {
    "quantization/quantize.py": "quantize.py",
    "models/core/llama/convert_checkpoint.py": "convert_checkpoint.py",
}
MIB: Final = 1024**2


def sim_gpus(inventory: Any) -> list[dict[str, Any]]:
    """``TRTLLM_SIM_GPUS`` describing the GPUs NVML reported, so the stand-ins apply their SM rules
    to this machine's GPU."""
    return [
        {
            "index": gpu.index,
            "name": gpu.name,
            "major": gpu.cc.major,
            "minor": gpu.cc.minor,
            "memory_total_mib": gpu.memory_total // MIB,
            "memory_free_mib": gpu.memory_free // MIB,
            "uuid": gpu.uuid,
        }
        for gpu in inventory.gpus
    ]


def standin_env(inventory: Any, shim: bool) -> dict[str, str]:
    """The builder's environment: stand-in tools first on PATH, the GPU described to them from NVML's
    readings, and pynvml the real one (``shim`` only in ``--dry-run``, where no GPU exists)."""
    from trtllm_operator.dev.standins import SHIM_DIR

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRTLLM_SIM_")}
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != SHIM_DIR]
    if str(REPO / "operator") not in paths:
        paths.insert(0, str(REPO / "operator"))
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM_DIR), *paths] if shim else paths)
    env["PATH"] = f"{STANDIN_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TRTLLM_SIM_GPUS"] = json.dumps(sim_gpus(inventory))
    if inventory.driver_version:
        env["TRTLLM_SIM_DRIVER"] = inventory.driver_version
    if inventory.cuda_driver_version:
        env["TRTLLM_SIM_CUDA_DRIVER"] = str(inventory.cuda_driver_version)
    return env


def standin_plan(target: Target, params_billions: float) -> BuildPlan:
    """A tensorrt-backend fp8 (fp8 KV cache) TP1 plan of the trained model for ``target``."""
    spec = TRTEngineSpec.model_validate(
        {
            "model": {
                "source": MODEL_URI,
                "architecture": "LlamaForCausalLM",
                "domain": "code",
                "parametersBillions": params_billions,
            },
            "backend": "tensorrt",
            "image": STANDIN_IMAGE,
            "precision": "fp8",
            "kvCacheDtype": "fp8",
            "parallelism": {"tensor": 1},
            "calibration": {
                "dataset": CALIB_URI["code"],
                "size": CALIB_SIZE,
                "maxSeqLength": CALIB_MAX_SEQ,
                "seed": 1,
            },
            "target": {"computeCapability": str(target.cc)},
            "storage": {"existingClaim": "engines"},
        }
    )
    config = RenderConfig(builder_image=IMAGE, examples_dir=EXAMPLES_DIR)
    return render_plan(NAMESPACE, STANDIN_ENGINE, spec, 1, build_config_hash(spec), target, config)


def log_events(log: str) -> list[dict[str, Any]]:
    events = []
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def standin_tensorrt(ctx: Context, target: Target, params_billions: float, shim: bool) -> dict[str, Any]:
    """``python -m trtllm_operator.builder`` on a rendered tensorrt plan, with the stand-in
    quantize.py / trtllm-build and the real NVML preflight. Never raises: what failed is recorded."""
    from trtllm_operator.builder.preflight import probe

    record: dict[str, Any] = {"shim": shim}
    try:
        if shim:
            from trtllm_operator.dev.standins.shim import pynvml as shim_nvml

            inventory = probe(shim_nvml)
        else:
            inventory = probe()
        if not inventory.gpus:
            raise RuntimeError(f"NVML sees no GPU: {inventory.error}")
        env = standin_env(inventory, shim)
        record["TRTLLM_SIM_GPUS"] = json.loads(env["TRTLLM_SIM_GPUS"])
        which = subprocess.run(
            [sys.executable, "-c", "import pynvml; print(pynvml.__file__)"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        record["pynvml_module"] = which.stdout.strip() or which.stderr.strip()[-300:]
        tree = ctx.work / "standin-tensorrt" / "examples"
        for rel, tool in STANDIN_EXAMPLES.items():
            link = tree / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(STANDIN_BIN / tool)
        plan = standin_plan(target, params_billions)
        plan_path = ctx.work / "plans" / "standin-tensorrt.json"
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(plan.to_json() + "\n", encoding="utf-8")
        engine_dir = ctx.work / "engines" / plan.paths.engine.removeprefix("/engines/")
        shutil.rmtree(ctx.work / "engines" / plan.paths.root.removeprefix("/engines/"), ignore_errors=True)
        result_path = ctx.work / "results" / "standin-tensorrt.json"
        result_path.parent.mkdir(parents=True, exist_ok=True)
        result_path.unlink(missing_ok=True)
        argv = [
            sys.executable, "-m", "trtllm_operator.builder", "--plan", str(plan_path),
            "--result-file", str(result_path), *remaps(ctx), "--remap", f"{EXAMPLES_DIR}={tree}",
        ]  # fmt: skip
        record["plan"] = {
            "build_config_hash": plan.build_config_hash,
            "target_cc": plan.target_cc,
            "target_product": plan.target_product,
            "steps": [{"name": step.name, "argv": step.argv} for step in plan.steps],
            "notes": plan.notes,
        }
        record["argv"] = argv
        log_path = ctx.work / "logs" / "standin-tensorrt.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with log_path.open("w", encoding="utf-8") as log:
            done = subprocess.run(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120, check=False
            )
        record["exit"] = done.returncode
        record["wall_seconds"] = round(time.monotonic() - started, 1)
        text = log_path.read_text(encoding="utf-8", errors="replace")
        shutil.copy(log_path, ctx.out / "builder-standin-tensorrt.log")
        events = log_events(text)
        record["steps_started"] = [str(e.get("step")) for e in events if e.get("event") == "step started"]
        record["gpus_probed"] = next((e for e in events if e.get("event") == "gpus probed"), None)
        record["result"] = json.loads(result_path.read_text(encoding="utf-8"))
        manifest = engine_dir / "engine-manifest.json"
        record["engine_dir_exists"] = engine_dir.is_dir()
        if engine_dir.is_dir():
            record["files"] = dir_listing(engine_dir)
        if manifest.is_file():
            record["manifest"] = json.loads(manifest.read_text(encoding="utf-8"))
        say(
            f"stand-in tensorrt build: exit {record['exit']} in {record['wall_seconds']}s, "
            f"pynvml {record['pynvml_module']}, manifest gpu {(record.get('manifest') or {}).get('gpu')}"
        )
    except Exception:
        record["error"] = traceback.format_exc()[-3000:]
        say(f"stand-in tensorrt build failed: {record['error'].splitlines()[-1]}")
    return record


def steps_started(log: str) -> list[str]:
    """The builder's ``step started`` events (its log is JSON lines), in order."""
    steps = []
    for line in log.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == "step started":
            steps.append(str(event.get("step")))
    return steps


def run_pytest(ctx: Context) -> dict[str, Any]:
    log_path = ctx.out / "pytest.log"
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "tests/gpu",
        "-m",
        "gpu",
        "--noconftest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
    ]
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=420, check=False)
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    summary = next((line for line in reversed(lines) if re.search(r"\b(passed|failed|error)", line)), "")
    say(f"pytest -m gpu: exit {done.returncode}: {summary}")
    return {
        "exit": done.returncode,
        "summary": summary.strip("= "),
        "seconds": round(time.monotonic() - started, 1),
        "argv": argv,
    }


def run_matrix(ctx: Context, builds: Sequence[Build]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    deadline = ctx.args.deadline

    def one(build: Build) -> dict[str, Any]:
        if ctx.elapsed() > deadline:
            return {
                "tag": build.tag,
                "precision": build.precision,
                "domain": build.domain,
                "seed": build.seed,
                "skipped": f"deadline ({deadline:.0f}s) reached before it started",
            }
        return run_builder(ctx, build)

    with concurrent.futures.ThreadPoolExecutor(max_workers=ctx.args.parallel) as pool:
        for record in pool.map(one, builds):
            records.append(record)
            ctx.results["builds"] = records
            ctx.save()
    return records


def gate_all(
    builds: Sequence[Build], records: Sequence[dict[str, Any]], thresholds: dict[str, float]
) -> dict[str, Any]:
    """The operator's own gate on every build, with the bf16 engine's measured score as the baseline."""
    by_tag = {r["tag"]: r for r in records}
    reference = score_of(by_tag.get("bf16", {}))
    verdicts = {}
    for build in builds:
        record = by_tag.get(build.tag, {})
        measured = [ResultAccuracy.model_validate(a) for a in (record.get("result") or {}).get("acc") or []]
        verdict = evaluate_gates(build.spec, 1, None, measured, {REFERENCE: reference})
        status = verdict.accuracy[0] if verdict.accuracy else None
        verdicts[build.tag] = {
            "passed": verdict.passed,
            "reason": verdict.reason,
            "message": verdict.message,
            "score": status.score if status else None,
            "baseline": status.baseline if status else None,
            "drop": status.drop if status else None,
            "max_drop": status.maxDrop if status else None,
        }
    return {
        "reference_perplexity": reference,
        "max_drop": dict(thresholds),
        "mode": MAX_DROP_MODE,
        "verdicts": verdicts,
    }


def threshold_of(gates: dict[str, Any], precision: str) -> float | None:
    """The maxDrop a precision was gated with (run 1's results hold one number for all)."""
    value = gates.get("max_drop")
    return value.get(precision) if isinstance(value, dict) else value


def summarize(records: Sequence[dict[str, Any]], gates: dict[str, Any]) -> dict[str, Any]:
    """Per precision: mean ± std over seeds of the perplexity increase, matched vs mismatched."""
    reference = gates["reference_perplexity"]
    table: dict[str, Any] = {}
    if reference is None:
        return table
    for precision in sorted({r["precision"] for r in records if r.get("precision") not in (None, "bf16")}):
        row: dict[str, Any] = {}
        for domain in ("code", "prose"):
            deltas = [
                round(score - reference, 6)
                for r in records
                if r.get("precision") == precision
                and r.get("domain") == domain
                and (score := score_of(r)) is not None
            ]
            passed = [
                gates["verdicts"][r["tag"]]["passed"]
                for r in records
                if r.get("precision") == precision and r.get("domain") == domain and score_of(r) is not None
            ]
            row[ROLE[domain]] = {
                "deltas": deltas,
                "mean": round(statistics.fmean(deltas), 7) if deltas else None,
                "std": round(statistics.stdev(deltas), 7) if len(deltas) > 1 else None,
                "gate_passed": sum(passed),
                "gate_failed": len(passed) - sum(passed),
            }
        matched, mismatched = row["matched"]["deltas"], row["mismatched"]["deltas"]
        if matched and mismatched:
            diff = statistics.fmean(mismatched) - statistics.fmean(matched)
            spread = max(row["matched"]["std"] or 0.0, row["mismatched"]["std"] or 0.0)
            row["mismatched_minus_matched"] = round(diff, 7)
            row["largest_seed_std"] = round(spread, 7)
            row["difference_over_spread"] = round(diff / spread, 2) if spread else None
            row["no_overlap"] = min(mismatched) > max(matched)
            enough = len(matched) > 1 and len(mismatched) > 1
            row["exceeds_spread"] = enough and row["no_overlap"] and diff > 2 * spread
            row["gate_separates"] = (
                row["matched"]["gate_failed"] == 0 and row["mismatched"]["gate_passed"] == 0
            )
        row["max_drop"] = threshold_of(gates, precision)
        table[precision] = row
    return table


def export_consistency(
    ctx: Context, records: Sequence[dict[str, Any]], builds: Sequence[Build]
) -> dict[str, Any]:
    """Do the exported (served) weights equal the fake-quant weights the evaluator measured?

    For FP8 (e4m3 x per-tensor scale) and INT8-SQ (int8 x per-channel scale) the export dequantizes
    unambiguously; packed INT4 is not compared. Also a loader control: the bf16 reference built with
    ``from_config`` + its weights (the restore path's construction) gives the same logits as
    ``from_pretrained`` (the reference's loader).
    """
    import torch
    from safetensors.torch import load_file

    from trtllm_operator.builder.evaluate import load_pretrained, restore_fake_quant

    report: dict[str, Any] = {}
    by_tag = {b.tag: b for b in builds}
    ok = [r for r in records if r.get("exit") == 0]
    for precision in ("fp8", "int8_sq", "int4_awq"):
        record = next((r for r in ok if r.get("precision") == precision and r.get("domain") == "code"), None)
        if record is None:
            continue
        engine_dir = ctx.work / "engines" / by_tag[record["tag"]].plan.paths.engine.removeprefix("/engines/")
        if precision == "int4_awq":
            report[precision] = {
                "build": record["tag"],
                "compared_layers": 0,
                "note": "packed INT4 not compared",
            }
            continue
        try:
            model = restore_fake_quant(engine_dir)
            tensors: dict[str, Any] = {}
            for file in sorted(engine_dir.glob("*.safetensors")):
                tensors.update(load_file(str(file), device="cuda"))
            worst, compared, dtypes, differing, elements = 0.0, 0, set(), 0, 0
            for name, module in model.named_modules():
                quantizer = getattr(module, "weight_quantizer", None)
                weight_key, scale_key = f"{name}.weight", f"{name}.weight_scale"
                if quantizer is None or weight_key not in tensors or scale_key not in tensors:
                    continue
                stored, scale = tensors[weight_key], tensors[scale_key].float()
                dtypes.add(str(stored.dtype))
                if scale.numel() == stored.shape[0] and scale.numel() > 1:
                    scale = scale.reshape(-1, 1)
                dequantized = stored.float() * scale
                with torch.no_grad():
                    fake = quantizer(module.weight).float()
                error = (dequantized - fake).abs()
                worst = max(worst, float(error.max() / fake.abs().max().clamp_min(1e-12)))
                compared += 1
                # beyond bf16 rounding of the fake-quant product (2 ulps): a different quantized code
                beyond = error > 2.0**-7 * dequantized.abs() + 1e-8
                differing += int(beyond.sum())
                elements += beyond.numel()
            report[precision] = {
                "build": record["tag"],
                "compared_layers": compared,
                "stored_dtypes": sorted(dtypes),
                "max_error_relative_to_max_weight": worst,
                "elements": elements,
                "elements_beyond_bf16_rounding": differing,
            }
            del model, tensors
            torch.cuda.empty_cache()
        except Exception as exc:
            report[precision] = {"build": record["tag"], "error": f"{type(exc).__name__}: {exc}"[:600]}
    try:
        model_dir = local_path(MODEL_URI, ctx.pvc)
        reference = load_pretrained(model_dir, huggingface_checkpointing=False).eval()
        from transformers import AutoConfig, AutoModelForCausalLM

        rebuilt = AutoModelForCausalLM.from_config(
            AutoConfig.from_pretrained(str(model_dir)), dtype=torch.bfloat16
        )
        state = {}
        for file in sorted(model_dir.glob("*.safetensors")):
            state.update(load_file(str(file)))
        missing = rebuilt.load_state_dict(state, strict=False)
        rebuilt = rebuilt.to("cuda").eval()
        text = (local_path(EVAL_URI, ctx.pvc) / "code-eval.jsonl").read_text(encoding="utf-8")[:4000]
        ids = torch.tensor([list(text.encode("utf-8"))[:1024]], device="cuda")
        with torch.no_grad():
            difference = float((reference(input_ids=ids).logits - rebuilt(input_ids=ids).logits).abs().max())
        report["loader_control"] = {
            "max_abs_logit_difference": difference,
            "missing_keys": list(missing.missing_keys),
            "inv_freq_dtypes": sorted({str(b.dtype) for n, b in rebuilt.named_buffers() if "inv_freq" in n}),
        }
    except Exception as exc:
        report["loader_control"] = {"error": f"{type(exc).__name__}: {exc}"[:600]}
    return report


# --- report ---------------------------------------------------------------------------------------


def _cell(part: dict[str, Any]) -> str:
    std = part["std"] if part["std"] is not None else float("nan")
    deltas = ", ".join(f"{d:+.6f}" for d in part["deltas"])
    return f"{part['mean']:+.6f} ± {std:.6f} ({deltas})"


def _build_row(record: dict[str, Any], reference: float | None, verdicts: dict[str, Any]) -> str:
    timings = (record.get("result") or {}).get("timings") or {}
    score = score_of(record)
    delta = f"{score - reference:+.6f}" if score is not None and reference is not None else "-"
    verdict = verdicts.get(record["tag"], {})
    gate = "-" if record["tag"] == "bf16" else ("pass" if verdict.get("passed") else "FAIL")
    cells = [
        record["tag"],
        record.get("exit", record.get("skipped")),
        record.get("quant_algo") or "-",
        len(record.get("files") or {}),
        f"{(record.get('safetensors_bytes') or 0) / 1e6:.1f} MB",
        f"{(record.get('total_bytes') or 0) / 1e6:.1f} MB",
        timings.get("quantize", "-"),
        timings.get("accuracy", "-"),
        record.get("wall_seconds", "-"),
        f"{score:.6f}" if score is not None else "-",
        delta,
        gate,
    ]
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _summary_row(precision: str, row: dict[str, Any]) -> str:
    matched, mismatched = row["matched"], row["mismatched"]
    cells = [
        precision,
        _cell(matched),
        _cell(mismatched),
        f"{row.get('max_drop', float('nan')):g}",
        f"{row.get('mismatched_minus_matched', float('nan')):+.6f}",
        f"{row.get('largest_seed_std', float('nan')):.6f}",
        f"{row.get('difference_over_spread') or float('nan'):.1f}",
        "no" if row.get("no_overlap") else "yes",
        "yes" if row.get("exceeds_spread") else "no",
        f"{matched['gate_passed']}/{matched['gate_passed'] + matched['gate_failed']} pass, "
        f"{mismatched['gate_failed']}/{mismatched['gate_passed'] + mismatched['gate_failed']} fail",
        "yes" if row.get("gate_separates") else "no",
    ]
    return "| " + " | ".join(cells) + " |"


BUILD_HEADER: Final = (
    "build",
    "exit",
    "quant_algo",
    "files",
    "safetensors",
    "total",
    "quantize s",
    "accuracy s",
    "wall s",
    "code ppl",
    "Δ vs bf16",
    "gate",
)
SUMMARY_HEADER: Final = (
    "precision",
    "matched (code) Δppl mean ± std (per seed)",
    "mismatched (prose) Δppl mean ± std (per seed)",
    "maxDrop",
    "mismatched - matched",
    "largest seed std",
    "difference / spread",
    "seed ranges overlap",
    "difference exceeds spread",
    "gate: matched pass, mismatched fail",
    "gate separates",
)


def _header(names: Sequence[str]) -> list[str]:
    return ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]


def markdown(results: dict[str, Any]) -> str:
    """The tables of docs/gpu-validation.md, from a results file."""
    gates = results.get("gates") or {}
    verdicts, reference = gates.get("verdicts") or {}, gates.get("reference_perplexity")
    out = _header(BUILD_HEADER)
    out += [_build_row(record, reference, verdicts) for record in results.get("builds") or []]
    out += ["", *_header(SUMMARY_HEADER)]
    out += [_summary_row(precision, row) for precision, row in (results.get("summary") or {}).items()]
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--work", type=Path, default=Path(os.environ.get("GPU_VALIDATION_WORK", "/tmp/gpu-validation"))
    )
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "/tmp/gpu-validation/out"))
    parser.add_argument(
        "--dry-run", action="store_true", help="no GPU: data, plans, commands, gate arithmetic"
    )
    parser.add_argument("--pilot", action="store_true", help="short training, one seed (a smoke test)")
    parser.add_argument(
        "--seeds",
        default=RUN2_SEEDS,
        help=f"calibration seeds (run 1: {RUN1_SEEDS}; run 2, the default: {RUN2_SEEDS})",
    )
    parser.add_argument(
        "--thresholds",
        choices=sorted(THRESHOLDS),
        default="per-precision",
        help="the pre-registered maxDrop: run 1's single 0.02 ('run1') or run 2's per-precision values "
        "calibrated on run 1 ('per-precision', the default)",
    )
    parser.add_argument(
        "--skip-standin-tensorrt", action="store_true", help="skip the stand-in tensorrt build flow"
    )
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--train-steps", type=int, default=2800)
    parser.add_argument("--train-max-seconds", type=float, default=165.0)
    parser.add_argument("--parallel", type=int, default=13, help="builder processes at a time")
    parser.add_argument(
        "--deadline", type=float, default=430.0, help="start no build after this many seconds"
    )
    parser.add_argument("--skip-pytest", action="store_true")
    parser.add_argument(
        "--report", type=Path, default=None, help="print the markdown tables of a results file"
    )
    args = parser.parse_args(argv)
    if args.pilot:
        args.seeds, args.train_steps, args.train_max_seconds = "1", 300, 30.0
    return args


def stage(ctx: Context, name: str, action: Callable[[], Any]) -> Any:
    say(f"stage {name} (t={ctx.elapsed():.0f}s)")
    started = time.monotonic()
    try:
        value = action()
    except Exception:
        ctx.results.setdefault("errors", {})[name] = traceback.format_exc()[-3000:]
        ctx.save()
        raise
    ctx.results.setdefault("stage_seconds", {})[name] = round(time.monotonic() - started, 1)
    ctx.save()
    return value


def dry_run(ctx: Context) -> int:
    code, prose, stats = stage(ctx, "data", lambda: collect(scale=0.05))
    ctx.results["data"] = stats | stage(ctx, "write-data", lambda: write_data(ctx, code, prose))
    target = Target(parse_cc("9.0"), "NVIDIA-H100-80GB-HBM3")
    thresholds = THRESHOLDS[ctx.args.thresholds]
    derived = derive_thresholds(RUN1_DELTAS)
    for precision, row in derived.items():
        say(
            f"maxDrop {precision} from run 1: {row['rule']}: matched {row['matched_mean']:.6f} ± "
            f"{row['matched_std']:.6f}, mismatched {row['mismatched_mean']:.6f} ± {row['mismatched_std']:.6f}"
            f" -> {row['max_drop']} (pre-registered: {THRESHOLDS['per-precision'][precision]})"
        )
        if row["max_drop"] != THRESHOLDS["per-precision"][precision]:
            raise RuntimeError(
                f"THRESHOLDS['per-precision'] disagrees with derive_thresholds for {precision}"
            )
    ctx.results["thresholds_from_run1"] = derived
    builds = matrix(
        target, ctx.args.precisions.split(","), [int(s) for s in ctx.args.seeds.split(",")], 0.02, thresholds
    )
    for tool in ("trtllm-operator-ptq", "trtllm-operator-eval"):
        say(f"{tool} on PATH: {shutil.which(tool)}")
    for build in builds:
        write_plan(ctx, build)
        steps = {step.name: step.argv for step in build.plan.steps}
        say(f"{build.tag}: {' '.join(builder_argv(ctx, build))}")
        producing = steps.get("quantize") or steps.get("export") or []
        say(f"    steps {list(steps)}; quantize: {' '.join(producing)}")
        say(f"    accuracy: {' '.join(steps.get('accuracy') or [])}")

    def made_up(build: Build) -> float:
        """Made-up scores: matched builds at 0.8 x their maxDrop, mismatched at 1.2 x, plus seed jitter."""
        if build.precision == "bf16":
            return 3.0
        share = 1.2 if build.domain == "prose" else 0.8
        return round(3.0 + share * thresholds[build.precision] + 1e-5 * (build.seed or 0), 6)

    fake = [
        {
            "tag": b.tag,
            "precision": b.precision,
            "domain": b.domain,
            "seed": b.seed,
            "result": {"acc": [{"task": "perplexity", "metric": "perplexity", "score": made_up(b)}]},
        }
        for b in builds
    ]
    gates = gate_all(builds, fake, thresholds)
    ctx.results |= {"dry_run": True, "gates": gates, "summary": summarize(fake, gates), "builds": fake}
    if not ctx.args.skip_standin_tensorrt:
        # No GPU here: the pynvml shim answers for a made-up H100 (on the GPU machine: real NVML).
        os.environ.setdefault(
            "TRTLLM_SIM_GPUS",
            json.dumps(
                [{"name": "NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "memory_total_mib": 81559}]
            ),
        )
        model_dir = local_path(MODEL_URI, ctx.pvc)
        model_dir.mkdir(parents=True, exist_ok=True)
        config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "bfloat16"}
        (model_dir / "config.json").write_text(json.dumps(config | MODEL_SHAPE | {"vocab_size": VOCAB}))
        ctx.results["standin_tensorrt"] = stage(
            ctx, "standin-tensorrt", lambda: standin_tensorrt(ctx, target, 0.02, shim=True)
        )
    ctx.save()
    print(markdown(ctx.results))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report is not None:
        results = json.loads(args.report.read_text(encoding="utf-8"))
        if results.get("builds") and results.get("gates"):  # recomputed: older files lack columns
            results["summary"] = summarize(results["builds"], results["gates"])
        if "summary" not in results and results.get("builds"):  # a run cut short: gate what it built
            config = results["config"]
            gpu = results["preflight"]["gpu"]
            target = Target(parse_cc(gpu["compute_capability"]), gpu["name"].replace(" ", "-"))
            seeds = [int(seed) for seed in config["seeds"].split(",")]
            params = results["training"]["parameters"] / 1e9
            thresholds = THRESHOLDS[config.get("thresholds", "run1")]
            builds = matrix(target, config["precisions"].split(","), seeds, params, thresholds)
            results["gates"] = gate_all(builds, results["builds"], thresholds)
            results["summary"] = summarize(results["builds"], results["gates"])
        print(markdown(results))
        return 0
    ctx = Context(args.work.resolve(), args.out.resolve(), args)
    ctx.work.mkdir(parents=True, exist_ok=True)
    ctx.out.mkdir(parents=True, exist_ok=True)
    thresholds = THRESHOLDS[args.thresholds]
    ctx.results["config"] = {
        "thresholds": args.thresholds, "max_drop": thresholds, "max_drop_mode": MAX_DROP_MODE,
        "calib_size": CALIB_SIZE,
        "calib_max_seq_length": CALIB_MAX_SEQ, "seeds": args.seeds, "precisions": args.precisions,
        "pilot": args.pilot, "train_steps": args.train_steps, "train_max_seconds": args.train_max_seconds,
        "parallel": args.parallel, "kv_cache_dtype": "auto", "eval_max_length": "1024 (evaluator default)",
    }  # fmt: skip
    if args.dry_run:
        return dry_run(ctx)
    ctx.results["versions"] = stage(ctx, "versions", versions)
    compiling = precompile()
    code, prose, stats = stage(ctx, "data", lambda: collect(scale=0.25 if args.pilot else 1.0))
    ctx.results["data"] = stats | stage(ctx, "write-data", lambda: write_data(ctx, code, prose))
    ctx.results["training"] = stage(
        ctx, "train", lambda: train(ctx, args.train_steps, args.train_max_seconds)
    )
    ctx.results["precompile_exit"] = stage(ctx, "precompile-wait", lambda: [p.wait() for p in compiling])
    params_billions = ctx.results["training"]["parameters"] / 1e9
    if not args.skip_pytest:
        ctx.results["pytest"] = stage(ctx, "pytest", lambda: run_pytest(ctx))
    ctx.results["preflight"], target = stage(ctx, "preflight", lambda: preflight(ctx, params_billions))
    if not args.skip_standin_tensorrt:
        ctx.results["standin_tensorrt"] = stage(
            ctx, "standin-tensorrt", lambda: standin_tensorrt(ctx, target, params_billions, shim=False)
        )
    builds = matrix(
        target,
        args.precisions.split(","),
        [int(s) for s in args.seeds.split(",")],
        params_billions,
        thresholds,
    )
    records = stage(ctx, "builds", lambda: run_matrix(ctx, builds))
    first = next((b for b in builds if b.precision == "fp8"), None)
    if first is not None and (ctx.work / "logs" / f"{first.tag}.log").is_file():
        shutil.copy(ctx.work / "logs" / f"{first.tag}.log", ctx.out / f"builder-{first.tag}.log")
    ctx.results["gates"] = gates = gate_all(builds, records, thresholds)
    ctx.results["summary"] = summarize(records, gates)
    ctx.save()
    ctx.results["consistency"] = stage(ctx, "consistency", lambda: export_consistency(ctx, records, builds))
    ctx.results["total_seconds"] = round(ctx.elapsed(), 1)
    ctx.save()
    print(markdown(ctx.results), flush=True)
    failed = [r["tag"] for r in records if r.get("exit") != 0]
    say(f"done in {ctx.elapsed():.0f}s; failed builds: {failed or 'none'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
