"""Stand-in for ``trtllm-eval --model M [...] <task> [...]`` (accuracy checks).

The CLI is the real one's at the simulated version (``TRTLLM_SIM_VERSION``'s release line): the parser is
built from ``trtllm/cli_tables.py`` (global options from ``tensorrt_llm/commands/eval.py``, each task
subcommand's from its class's ``command`` in ``tensorrt_llm/evaluate/*.py``; files and commits cited
there). 1.2 has cnn_dailymail, mmlu, gsm8k, gpqa_diamond/main/extended and json_mode_eval; 1.3 adds
mmmu and ``--disable_kv_cache_reuse`` and has no ``--backend tensorrt``. There is no ``humaneval`` task
(nor an ``--output_json`` option) in the real tool. Errors read like click's: exit 2 with
``Error: No such option: --x`` / ``Error: No such command 'x'.``

Score: ``TRTLLM_SIM_EVAL`` (JSON ``{"<task>": score}``) or the task default, on the real tool's 0-100
scale, printed in the real log format (``MMLU weighted average accuracy: 68.20 (14042)``,
``lm-eval gsm8k average accuracy: 78.10``, ``JSON Mode Eval accuracy: 90.00 (100)`` then a made-up
``grammar accuracy``, cnn_dailymail's ``rouge1``...). Stand-in extension: when
``TRTLLM_SIM_EVAL_REPORT`` names a file, ``{"task": ..., "score": ...}`` is written there.

Checks: a GPU; ``--backend tensorrt`` needs ``--model`` to be a loadable engine dir (same rules as
trtllm-bench) and ``--tokenizer``; without ``--dataset_path`` the dataset is downloaded, which fails
when ``HF_HUB_OFFLINE`` is set; ``--check_accuracy`` (mmlu) fails below ``--accuracy_threshold``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import load_hf_model, write_json
from trtllm_operator.dev.standins._common import (
    ToolError,
    hub_offline,
    log,
    require_gpus,
    run_tool,
    sim_version,
    step,
)
from trtllm_operator.dev.standins._rules import load_runnable_engine
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import TABLES, line_of

TOOL: Final = "trtllm-eval"
ENV_EVAL: Final = "TRTLLM_SIM_EVAL"
ENV_EVAL_REPORT: Final = "TRTLLM_SIM_EVAL_REPORT"


@dataclass(frozen=True)
class Task:
    name: str
    default_score: float
    lm_eval_name: str | None = None  # reported through lm-eval's "average accuracy" line
    full_size: int = 0


TASKS: Final = {
    task.name: task
    for task in (
        Task("cnn_dailymail", 28.0, full_size=11490),
        Task("mmlu", 68.2, full_size=14042),
        Task("gsm8k", 78.1, lm_eval_name="gsm8k"),
        Task("gpqa_diamond", 40.4, lm_eval_name="gpqa_diamond_cot_zeroshot_aa"),
        Task("gpqa_main", 38.0, lm_eval_name="gpqa_main_cot_zeroshot_aa"),
        Task("gpqa_extended", 37.0, lm_eval_name="gpqa_extended_cot_zeroshot_aa"),
        Task("json_mode_eval", 90.0, full_size=100),  # rows of NousResearch/json-mode-eval (not re-checked)
        Task("mmmu", 45.0, lm_eval_name="mmmu_val"),
    )
}


def build_parser() -> argparse.ArgumentParser:
    """Exactly the options and tasks of the real trtllm-eval at the simulated version (``cli_tables``)."""
    line = line_of(sim_version()) or "1.2"
    return to_argparse(TABLES[line].trtllm_eval, description=__doc__.splitlines()[0])


def load_model(args: argparse.Namespace) -> None:
    """Fail where the real LLM constructor would."""
    gpus = require_gpus()
    if args.backend == "tensorrt":
        engine = load_runnable_engine(Path(args.model), gpus)
        if not args.tokenizer:
            raise ToolError(
                "--tokenizer is required when --model is a TensorRT engine directory", "ValueError"
            )
        step(f"Loaded engine {engine.path} (world_size {engine.world_size})")
        return
    if len(gpus) < args.tp_size * args.pp_size:
        raise ToolError(
            f"tp_size x pp_size = {args.tp_size * args.pp_size} GPUs needed, {len(gpus)} visible."
        )
    if Path(args.model).is_dir():
        hf = load_hf_model(args.model)
        step(f"Loaded {hf.architecture} from {hf.path}")
    elif hub_offline():
        raise ToolError(f"We couldn't connect to 'https://huggingface.co' to load {args.model}", "OSError")


def check_dataset(args: argparse.Namespace) -> None:
    """A local path is used as is; otherwise the data comes from the network (the Hub, or MMLU's URL).

    ``HF_HUB_OFFLINE`` stands for "no network" here; MMLU's ``--dataset_path`` must be a local dir.
    """
    source = args.dataset_path
    if source is not None and Path(source).exists():
        step(f"Using local dataset {source}")
        return
    if source is not None and args.command == "mmlu":
        raise ToolError(
            f"[Errno 2] No such file or directory: '{source}/dev/abstract_algebra_dev.csv'",
            "FileNotFoundError",
        )
    if hub_offline("HF_DATASETS_OFFLINE"):
        name = source or args.command
        raise ToolError(f"Couldn't reach '{name}' on the Hub (offline mode is enabled)", "ConnectionError")
    step(f"Downloading the {args.command} dataset {source or ''}(simulated)")


def score_for(task: Task) -> float:
    raw = os.environ.get(ENV_EVAL, "").strip()
    scores: Any = {}
    if raw:
        try:
            scores = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ToolError(f"{ENV_EVAL} is not valid JSON: {exc}", "ValueError") from exc
    if not isinstance(scores, dict):
        raise ToolError(f"{ENV_EVAL} must be a JSON object of task -> score", "ValueError")
    value = scores.get(task.name, task.default_score)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError(f"{ENV_EVAL}[{task.name!r}] must be a number", "ValueError")
    return float(value)


def report_score(task: Task, score: float, samples: int) -> None:
    if task.name == "cnn_dailymail":
        log("Beam 0 rouge scores:")
        for key, factor in (("rouge1", 1.0), ("rouge2", 0.4), ("rougeL", 0.7), ("rougeLsum", 0.9)):
            log(f"\t{key}: {score * factor:.3f}")
    elif task.name == "mmlu":
        log(f"MMLU weighted average accuracy: {score:.2f} ({samples})")
    elif task.name == "json_mode_eval":  # JsonModeEval.compute_score: accuracy, then grammar accuracy
        log(f"JSON Mode Eval accuracy: {score:.2f} ({samples})")
        log(f"JSON Mode Eval grammar accuracy: {min(100.0, score + 5.0):.2f} ({samples})")
    else:
        log(f"lm-eval {task.lm_eval_name} average accuracy: {score:.2f}")
    report = os.environ.get(ENV_EVAL_REPORT)
    if report:
        write_json(Path(report), {"task": task.name, "score": score})


def execute(args: argparse.Namespace) -> None:
    task = TASKS[args.command]
    load_model(args)
    check_dataset(args)
    samples = args.num_samples or task.full_size
    step(f"Evaluating {task.name} on {samples or 'all'} samples")
    score = score_for(task)
    report_score(task, score, samples)
    if getattr(args, "check_accuracy", False) and score < args.accuracy_threshold:
        raise ToolError(f"Expected accuracy >= {args.accuracy_threshold}, but got {score}.", "AssertionError")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(TOOL, lambda: execute(args))
