"""``trtllm-operator-eval``: perplexity of a built model on the user's own text, as an accuracy gate.

``trtllm-eval`` covers public benchmarks (MMLU, GSM8K...), but the question a quantized model must
answer for its owner is usually "does it still model *my* data?". Token-level perplexity — exp of
the mean negative log-likelihood of every next token — on a held-out directory of texts answers it
cheaply, and comparing with the unquantized reference (``--reference``) shows what quantization cost.

The model is loaded the way it will be served. A ModelOpt-exported checkpoint
(``quantization_config.quant_method = "modelopt"``) is not something ``transformers`` can load (it
has no ModelOpt quantizer; vLLM, SGLang and TensorRT-LLM read ``hf_quant_config.json``), so the
primary path is TensorRT-LLM's LLM API — the loader behind ``trtllm-serve`` — asking for context
logits with ``SamplingParams(max_tokens=1, return_context_logits=True)`` and KV-cache block reuse
off (with reuse, shared-prefix requests only return logits for the recomputed suffix; ModelOpt's own
``modelopt.deploy.llm`` wrapper asserts the same). Engines (``--backend tensorrt``) need
``--gather_context_logits`` at build time.

Without TensorRT-LLM:

* unquantized checkpoints load with ``transformers`` (a ``save_pretrained`` directory with ModelOpt
  state, ``modelopt_state.pth``, through ``modelopt.torch.opt.enable_huggingface_checkpointing``);
* a ModelOpt export that ``trtllm-operator-ptq --save_modelopt_state`` wrote is measured through
  ModelOpt's *fake-quant* PyTorch modules: the model is built from the export's ``config.json`` (its
  ``quantization_config`` dropped) in the checkpoint dtype and ``mto.restore`` loads the calibrated
  state saved just before the export. That is the same quantization (same scales, same smoothing
  and AWQ pre-quant scales, weights rounded the same way) simulated in bf16 arithmetic — not the
  serving kernels, which read the exported safetensors;
* any other ModelOpt export cannot be loaded (LoaderError).

Pure parts (unit-tested): dataset reading (shared with ``trtllm-operator-ptq``), windowing, the
NLL -> perplexity arithmetic, and the loader decision. Output: one JSON line on stdout,
``{"task": "perplexity", "metric": "perplexity", "score": ...}`` (+ ``reference``/``delta``), 6 decimals.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from trtllm_operator.builder.ptq import MODELOPT_STATE, dtype_kwargs, read_texts, torch_dtype_name

LOADERS: Final = ("trtllm", "transformers", "modelopt-restore")
DEFAULT_MAX_LENGTH: Final = 1024
DOCUMENT_SEPARATOR: Final = "\n\n"
#: Decimals of the printed perplexity (and reference, delta).
SCORE_DECIMALS: Final = 6


class LoaderError(RuntimeError):
    """No way to load this model in this environment."""


@dataclass
class NllTotal:
    """Running sum of next-token negative log-likelihoods (nats) and the number of tokens predicted."""

    nll: float = 0.0
    tokens: int = 0

    def add(self, nll: float, tokens: int) -> None:
        if tokens < 0 or not math.isfinite(nll):
            raise ValueError(f"invalid NLL contribution: nll={nll}, tokens={tokens}")
        self.nll += nll
        self.tokens += tokens

    def perplexity(self) -> float:
        """exp(mean NLL per token)."""
        if self.tokens == 0:
            raise ValueError("no token was scored: the dataset is empty or every window has < 2 tokens")
        return math.exp(self.nll / self.tokens)


def nll_of(logprobs: Sequence[float]) -> tuple[float, int]:
    """(sum of negative log-probabilities, count) of the predicted tokens' log-probabilities."""
    return -math.fsum(logprobs), len(logprobs)


def token_windows(ids: Sequence[int], max_length: int, max_windows: int | None = None) -> list[list[int]]:
    """Non-overlapping windows of at most ``max_length`` tokens; a window of < 2 tokens predicts nothing."""
    if max_length < 2:
        raise ValueError(f"max_length must be at least 2, got {max_length}")
    windows = [list(ids[start : start + max_length]) for start in range(0, len(ids), max_length)]
    windows = [window for window in windows if len(window) >= 2]
    return windows[:max_windows] if max_windows is not None else windows


def corpus(directory: Path) -> str:
    """The dataset as one text: documents joined by a blank line (as wikitext-style evaluations do)."""
    return DOCUMENT_SEPARATOR.join(read_texts(directory))


@dataclass(frozen=True)
class ModelFacts:
    """What decides how a model directory can be loaded."""

    backend: str
    modelopt_quantized: bool
    has_modelopt_state: bool


def model_facts(model_dir: Path, backend: str) -> ModelFacts:
    config: dict[str, Any] = {}
    if (model_dir / "config.json").is_file():
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    quant = config.get("quantization_config")
    modelopt = (isinstance(quant, dict) and quant.get("quant_method") == "modelopt") or (
        model_dir / "hf_quant_config.json"
    ).is_file()
    return ModelFacts(backend, modelopt, (model_dir / MODELOPT_STATE).is_file())


def choose_loader(facts: ModelFacts, trtllm_available: bool) -> str:
    """Pure: TensorRT-LLM when present (the serving path), else what transformers can load."""
    if trtllm_available:
        return "trtllm"
    if facts.backend == "tensorrt":
        raise LoaderError(
            "a TensorRT engine directory can only be loaded with tensorrt_llm, which is not installed"
        )
    if not facts.modelopt_quantized:
        return "transformers"
    if facts.has_modelopt_state:
        return "modelopt-restore"
    raise LoaderError(
        "a ModelOpt-exported checkpoint (quant_method modelopt) loads with TensorRT-LLM's PyTorch backend, "
        "which is not installed here; run the evaluation in the TensorRT-LLM image, or quantize with "
        f"trtllm-operator-ptq --save_modelopt_state to measure it in ModelOpt's fake-quant ({MODELOPT_STATE})"
    )


def trtllm_available() -> bool:
    return importlib.util.find_spec("tensorrt_llm") is not None


# --- scorers (GPU; lazy imports) -------------------------------------------------------------------


class Scorer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def score(self, windows: list[list[int]]) -> Iterator[tuple[float, int]]: ...
    def close(self) -> None: ...


def _window_nll(logits: Any, window: list[int]) -> tuple[float, int]:
    """NLL of ``window[1:]`` given context logits of shape [len(window), vocab]."""
    import torch

    logprobs = torch.log_softmax(logits[: len(window) - 1].float(), dim=-1)
    targets = torch.tensor(window[1:], device=logprobs.device).unsqueeze(-1)
    picked = logprobs.gather(-1, targets).squeeze(-1)
    return float(-picked.sum().item()), len(window) - 1


class TrtllmScorer:
    """TensorRT-LLM LLM API (PyTorch backend, or an engine directory) returning context logits."""

    def __init__(self, model: str, backend: str, tokenizer: str | None) -> None:
        # Imported by name: tensorrt_llm ships no type information (and is absent outside its image).
        llmapi = importlib.import_module("tensorrt_llm.llmapi")
        module = "tensorrt_llm._tensorrt_engine" if backend == "tensorrt" else "tensorrt_llm"
        llm_class = importlib.import_module(module).LLM
        kv_cache = llmapi.KvCacheConfig(enable_block_reuse=False, free_gpu_memory_fraction=0.7)
        self.llm = llm_class(model=model, tokenizer=tokenizer or model, kv_cache_config=kv_cache)

    def encode(self, text: str) -> list[int]:
        return list(self.llm.tokenizer.encode(text, add_special_tokens=False))

    def score(self, windows: list[list[int]]) -> Iterator[tuple[float, int]]:
        sampling = importlib.import_module("tensorrt_llm").SamplingParams
        params = sampling(max_tokens=1, return_context_logits=True)
        for window, output in zip(windows, self.llm.generate(windows, sampling_params=params), strict=True):
            if output.context_logits is None:
                raise LoaderError(
                    "no context logits returned (engines need trtllm-build --gather_context_logits)"
                )
            yield _window_nll(output.context_logits, window)

    def close(self) -> None:
        self.llm.shutdown()


def _checkpoint_dtype(model_dir: Path) -> Any:
    import torch

    config: dict[str, Any] = {}
    if (model_dir / "config.json").is_file():
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return getattr(torch, torch_dtype_name(config))


def load_pretrained(model_dir: Path, huggingface_checkpointing: bool) -> Any:
    """``from_pretrained`` in the checkpoint's dtype (bf16 unless it is fp16), on the GPU."""
    import transformers
    from transformers import AutoModelForCausalLM

    if huggingface_checkpointing:
        import modelopt.torch.opt as mto

        mto.enable_huggingface_checkpointing()
    dtype = _checkpoint_dtype(model_dir)
    return AutoModelForCausalLM.from_pretrained(
        str(model_dir), device_map="cuda", **dtype_kwargs(dtype, transformers.__version__)
    )


def restore_fake_quant(model_dir: Path) -> Any:
    """The calibrated fake-quant model of a ModelOpt export, from its ``modelopt_state.pth``.

    The model is built from the export's config exactly as ``from_pretrained`` builds it (same dtype,
    so non-persistent buffers such as RoPE frequencies match the reference), then ``mto.restore``
    re-creates the quantizers and loads the weights and calibrated scales saved before the export.
    """
    import modelopt.torch.opt as mto
    import transformers
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_dir))
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config  # the export's; the fake-quant model carries its own quantizers
    dtype = _checkpoint_dtype(model_dir)
    model = AutoModelForCausalLM.from_config(config, **dtype_kwargs(dtype, transformers.__version__))
    # The file is the one trtllm-operator-ptq wrote into this export (not third-party input); ModelOpt's
    # state holds plain Python objects that torch's weights-only unpickler may refuse.
    model = mto.restore(model, str(model_dir / MODELOPT_STATE), weights_only=False)
    return model.to("cuda")


class TransformersScorer:
    """A Hugging Face checkpoint through transformers, or a ModelOpt export restored in fake-quant."""

    def __init__(self, model: str, loader: str, has_modelopt_state: bool = False) -> None:
        from transformers import AutoTokenizer

        if loader == "modelopt-restore":
            self.model = restore_fake_quant(Path(model))
        else:
            self.model = load_pretrained(Path(model), huggingface_checkpointing=has_modelopt_state)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, windows: list[list[int]]) -> Iterator[tuple[float, int]]:
        import torch

        for window in windows:
            ids = torch.tensor([window], device=self.model.device)
            with torch.no_grad():
                loss = self.model(input_ids=ids, labels=ids).loss
            yield float(loss.item()) * (len(window) - 1), len(window) - 1

    def close(self) -> None:
        import torch

        del self.model
        torch.cuda.empty_cache()


def open_scorer(model: Path, backend: str, tokenizer: str | None) -> tuple[Scorer, str]:
    facts = model_facts(model, backend)
    loader = choose_loader(facts, trtllm_available())
    if loader == "trtllm":
        return TrtllmScorer(str(model), backend, tokenizer), loader
    return TransformersScorer(str(model), loader, facts.has_modelopt_state), loader


# --- CLI -------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[trtllm-operator-eval] {message}", file=sys.stderr, flush=True)


def perplexity(model: Path, args: argparse.Namespace, text: str) -> tuple[float, int, int, str]:
    """(perplexity, tokens scored, windows, loader) of ``model`` on ``text``."""
    scorer, loader = open_scorer(model, args.backend, args.tokenizer)
    try:
        windows = token_windows(scorer.encode(text), args.max_length, args.max_samples)
        say(f"{model}: {len(windows)} windows of up to {args.max_length} tokens ({loader})")
        total = NllTotal()
        for nll, tokens in scorer.score(windows):
            total.add(nll, tokens)
        return total.perplexity(), total.tokens, len(windows), loader
    finally:
        scorer.close()


def result_line(score: float, tokens: int, windows: int, loader: str, reference: float | None) -> str:
    """The JSON result line. Scores carry 6 decimals: quantization costs and their seed-to-seed spread
    can be 1e-4 of a perplexity (docs/gpu-validation.md), so 4 decimals would hide them."""
    data: dict[str, Any] = {
        "task": "perplexity",
        "metric": "perplexity",
        "score": round(score, SCORE_DECIMALS),
        "tokens": tokens,
        "windows": windows,
        "loader": loader,
    }
    if reference is not None:
        data |= {
            "reference": round(reference, SCORE_DECIMALS),
            "delta": round(score - reference, SCORE_DECIMALS),
        }
    return json.dumps(data)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trtllm-operator-eval", allow_abbrev=False, description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model", required=True, type=Path, help="checkpoint or engine directory")
    parser.add_argument("--backend", default="pytorch", choices=["pytorch", "tensorrt"])
    parser.add_argument("--task", default="perplexity", choices=["perplexity"])
    parser.add_argument(
        "--dataset", required=True, type=Path, help="directory of *.txt / *.jsonl / *.json texts"
    )
    parser.add_argument("--max_samples", type=int, default=None, help="evaluate at most this many windows")
    parser.add_argument("--max_length", type=int, default=DEFAULT_MAX_LENGTH, help="tokens per window")
    parser.add_argument("--reference", type=Path, default=None, help="unquantized checkpoint to compare with")
    parser.add_argument(
        "--tokenizer", default=None, help="tokenizer directory (needed for engine directories)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        text = corpus(args.dataset)
        score, tokens, windows, loader = perplexity(args.model, args, text)
        reference = None
        if args.reference is not None:
            reference_args = argparse.Namespace(**{**vars(args), "backend": "pytorch", "tokenizer": None})
            reference = perplexity(args.reference, reference_args, text)[0]
    except (ValueError, OSError, LoaderError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    print(result_line(score, tokens, windows, loader, reference), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
