"""Stand-in for TensorRT-LLM's ``benchmarks/cpp/prepare_dataset.py`` (synthetic trtllm-bench datasets).

Interface of the real click script (built from ``trtllm/cli_tables.py``): global ``--tokenizer``
(required), ``--output``
(default ``preprocessed_dataset.json``), ``--stdout``, ``--random-seed`` (420), ``--task-id`` (-1),
``--rand-task-id MIN MAX``, ``--lora-dir``, ``--log-level`` (info|debug), then the subcommand
``token-norm-dist --num-requests --input-mean --input-stdev --output-mean --output-stdev`` (all
required integers). Only ``token-norm-dist`` is simulated.

Output: one JSON object per line, ``{"task_id", "input_ids", "output_tokens"}`` (compact separators,
as ``print_dataset`` writes it), on stdout with ``--stdout`` -- progress then goes to stderr so the
data stays clean -- or into ``--output``. Lengths are ``max(1, ceil(normal(mean, stdev)))`` with a
seeded generator, token ids uniform in the tokenizer's vocabulary (``vocab_size`` of its
``config.json``/``tokenizer_config.json`` when the tokenizer is a local dir, else 32000). A tokenizer
NAME needs the Hub, so it fails when ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import read_json
from trtllm_operator.dev.standins._common import ToolError, hub_offline, progress_to_stderr, run_tool, step
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import PREPARE_DATASET_12

TOOL: Final = "prepare_dataset.py"
DEFAULT_VOCAB: Final = 32000


def build_parser() -> argparse.ArgumentParser:
    """Exactly the options of the real script (``cli_tables.PREPARE_DATASET_12``)."""
    return to_argparse(PREPARE_DATASET_12, description=__doc__.splitlines()[0])


def tokenizer_vocab_size(tokenizer: str) -> int:
    """Vocabulary size of a local tokenizer dir; a Hub name needs the Hub."""
    path = Path(tokenizer)
    if path.is_dir():
        for name in ("config.json", "tokenizer_config.json"):
            if (path / name).is_file():
                vocab = read_json(path / name).get("vocab_size")
                if isinstance(vocab, int) and vocab > 0:
                    return vocab
        return DEFAULT_VOCAB
    if hub_offline("TRANSFORMERS_OFFLINE"):
        raise ToolError(
            f"Cannot find a tokenizer from the given string because of We couldn't connect to "
            f"'https://huggingface.co' to load the files of {tokenizer}.\nPlease set tokenizer to the "
            "directory that contains the tokenizer, or set to a model name in HuggingFace.",
            "ValueError",
        )
    return DEFAULT_VOCAB


def norm_lengths(rng: random.Random, mean: int, stdev: int, count: int) -> list[int]:
    return [max(1, math.ceil(rng.gauss(mean, stdev))) for _ in range(count)]


def generate(args: argparse.Namespace, vocab: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(args.random_seed)  # noqa: S311 - synthetic benchmark data, not secrets
    inputs = norm_lengths(rng, args.input_mean, args.input_stdev, args.num_requests)
    outputs = norm_lengths(rng, args.output_mean, args.output_stdev, args.num_requests)
    for index, (isl, osl) in enumerate(zip(inputs, outputs, strict=True)):
        task_id = rng.randint(*args.rand_task_id) if args.rand_task_id else index
        yield {
            "task_id": task_id,
            "input_ids": [rng.randrange(vocab) for _ in range(isl)],
            "output_tokens": osl,
        }


def execute(args: argparse.Namespace) -> None:
    if args.command != "token-norm-dist":
        raise ToolError(
            f"stand-in: only token-norm-dist is simulated, not {args.command}", "NotImplementedError"
        )
    if args.num_requests < 1:
        raise ToolError("--num-requests must be positive", "ValueError")
    vocab = tokenizer_vocab_size(args.tokenizer)
    step(
        f"Generating {args.num_requests} requests (input {args.input_mean}±{args.input_stdev}, "
        f"output {args.output_mean}±{args.output_stdev}, vocab {vocab})"
    )
    lines = [json.dumps(record, separators=(",", ":")) for record in generate(args, vocab)]
    if args.stdout:
        print("\n".join(lines), flush=True)
    else:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
        step(f"Wrote {len(lines)} requests to {args.output}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress_to_stderr(bool(args.stdout))
    return run_tool(TOOL, lambda: execute(args))
