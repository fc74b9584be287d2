"""Read what the measurement tools report: trtllm-bench's JSON report and accuracy scores from logs.

The builder only measures; the operator decides whether the numbers pass its gates. Both sources are
third-party formats that drift between releases, so parsing is tolerant and pure:

* ``trtllm-bench --report_json`` writes ``ReportUtility.get_statistics_dict`` (TensorRT-LLM
  ``bench/dataclasses/reporting.py``): sections ``performance``, ``streaming_metrics`` (with
  ``--streaming``: ``ttft_percentiles``/``tpot_percentiles`` with p50...p99), ``request_info``... Keys
  are looked up in their section first, then anywhere in the document, so a flat report (all keys
  at the top level, as some wrappers write) parses too. TPOT (time per output token) stands in for
  inter-token latency when the report has no ITL block: trtllm-bench reports only TPOT.
  A report with a ``simulation`` section came from the development stand-in (a roofline estimate,
  ``dev/standins/trtllm_bench.py``); the real tool never writes one, so only such a report is
  marked simulated, and its ``simulation.tool`` names what produced it.
* ``trtllm-eval`` logs its score (``MMLU weighted average accuracy: 68.20 (14042)``,
  ``lm-eval gsm8k average accuracy: 78.10``, ``JSON Mode Eval accuracy: 90.00 (100)``, cnn_dailymail's
  ``rouge1: 28.000``); the lm-eval tasks log lm-eval's task name (``gpqa_main_cot_zeroshot_aa``,
  ``mmmu_val``...), mapped back to ours (:data:`_LM_EVAL_TASKS`); our own evaluator
  (``trtllm-operator-eval``) prints one JSON line ``{"task", "metric", "score"}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from trtllm_operator.api.plan import ResultBenchmark
from trtllm_operator.builder.steps import flag_value

#: Where each figure lives in the nested report, and the names it is known by.
_SECTIONS: Final = ("performance", "streaming_metrics", "request_info", "world_info", "dataset")
OUT_TPS_KEYS: Final = ("system_output_throughput_tok_s", "output_throughput_tok_s", "output_token_throughput")
TOTAL_TPS_KEYS: Final = ("system_total_throughput_tok_s", "total_token_throughput_tok_s")
RPS_KEYS: Final = ("request_throughput_req_s", "request_throughput")
TTFT_KEYS: Final = ("ttft_percentiles", "ttft_percentiles_ms", "ttft_ms", "ttft")
ITL_KEYS: Final = ("itl_percentiles", "itl_percentiles_ms", "itl_ms", "itl", "tpot_percentiles", "tpot_ms")
ISL_KEYS: Final = ("avg_input_length", "avg_isl")
OSL_KEYS: Final = ("avg_output_length", "avg_osl")
CONC_KEYS: Final = ("concurrency", "avg_num_concurrent_requests")


class ReportError(ValueError):
    """The benchmark report lacks the figure the gates need."""


def _walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from _walk(value)


def find(report: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The first of ``keys`` found at the top level, in a known section, or anywhere (depth-first)."""
    scopes: list[Mapping[str, Any]] = [report]
    scopes += [report[s] for s in _SECTIONS if isinstance(report.get(s), Mapping)]
    scopes += list(_walk(report))
    for key in keys:
        for scope in scopes:
            if key in scope and scope[key] is not None:
                return scope[key]
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _percentile(report: Mapping[str, Any], keys: tuple[str, ...], quantile: str) -> float | None:
    """``p50``/``p99`` of a percentile block, or of flat ``<name>_p50`` style keys."""
    block = find(report, keys)
    if isinstance(block, Mapping):
        return _number(block.get(quantile))
    bases = dict.fromkeys(key.removesuffix("_ms").removesuffix("_percentiles") for key in keys)
    flat = tuple(
        name for b in bases for name in (f"{b}_{quantile}", f"{b}_{quantile}_ms", f"{quantile}_{b}_ms")
    )
    return _number(find(report, flat))


def _count(report: Mapping[str, Any], keys: tuple[str, ...], given: int | None) -> int:
    if given is not None:
        return given
    value = _number(find(report, keys))
    return round(value) if value is not None else 0


def parse_bench_report(
    data: Mapping[str, Any], isl: int | None = None, osl: int | None = None, conc: int | None = None
) -> ResultBenchmark:
    """A trtllm-bench report -> the compact result the operator gates on.

    ``isl``/``osl``/``conc`` are what the plan asked for; the report's averages fill in when absent.
    """
    out_tps = _number(find(data, OUT_TPS_KEYS))
    if out_tps is None:
        raise ReportError(f"benchmark report has no output throughput ({OUT_TPS_KEYS[0]})")
    simulation = data.get("simulation")
    simulated = isinstance(simulation, Mapping)
    tool = str(simulation.get("tool") or "") if isinstance(simulation, Mapping) else ""
    return ResultBenchmark(
        sim=True if simulated else None,
        tool=(tool or "simulated")[:64] if simulated else None,
        out_tps=round(out_tps, 3),
        total_tps=_rounded(_number(find(data, TOTAL_TPS_KEYS))),
        rps=_rounded(_number(find(data, RPS_KEYS))),
        ttft_p50=_rounded(_percentile(data, TTFT_KEYS, "p50")),
        ttft_p99=_rounded(_percentile(data, TTFT_KEYS, "p99")),
        itl_p50=_rounded(_percentile(data, ITL_KEYS, "p50")),
        itl_p99=_rounded(_percentile(data, ITL_KEYS, "p99")),
        isl=_count(data, ISL_KEYS, isl),
        osl=_count(data, OSL_KEYS, osl),
        conc=_count(data, CONC_KEYS, conc),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def report_json_path(argv: Sequence[str]) -> str | None:
    """Where a trtllm-bench command line writes its report (``--report_json F`` or ``=F``)."""
    return flag_value(argv, "--report_json")


# --- accuracy --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    task: str | None
    metric: str | None
    score: float


_NUMBER: Final = r"([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
#: (pattern, task, metric); a None task comes from the pattern's first group.
_SCORE_PATTERNS: Final = (
    (re.compile(rf"MMLU weighted average accuracy:\s*{_NUMBER}"), "mmlu", "accuracy"),
    # JsonModeEval.compute_score (tensorrt_llm/evaluate/json_mode_eval.py, index id 31948579, as cli_tables
    # cites it); its next line, "JSON Mode Eval grammar accuracy", is not the score
    (re.compile(rf"JSON Mode Eval accuracy:\s*{_NUMBER}"), "json_mode_eval", "accuracy"),
    (re.compile(rf"lm-eval (\S+) average accuracy:\s*{_NUMBER}"), None, None),
    (re.compile(rf"lm-eval (\S+) \S+ accuracy:\s*{_NUMBER}"), None, None),
    (re.compile(rf"^\s*(?:\[[^\]]*\]\s*)*\s*rouge1:\s*{_NUMBER}"), "cnn_dailymail", "rouge1"),
    (re.compile(rf"Per-token perplexity:\s*{_NUMBER}"), "perplexity", "perplexity"),
)
#: lm-eval task names trtllm-eval uses -> the operator's task names: each LmEvalEvaluator subclass's
#: ``super().__init__(task_name)``, logged as ``lm-eval {task_name} average accuracy`` (NVIDIA/TensorRT-LLM
#: tensorrt_llm/evaluate/lm_eval.py @ 00dc3b46824c; gsm8k is "gsm8k" on both sides).
_LM_EVAL_TASKS: Final = {
    "gpqa_diamond_cot_zeroshot_aa": "gpqa_diamond",
    "gpqa_main_cot_zeroshot_aa": "gpqa_main",
    "gpqa_extended_cot_zeroshot_aa": "gpqa_extended",
    "mmmu_val": "mmmu",
}


def _json_score(line: str) -> Score | None:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or "score" not in data or "metric" not in data:
        return None
    score = _number(data["score"])
    if score is None:
        return None
    task = data.get("task")
    return Score(str(task) if task else None, str(data["metric"]), score)


def _fraction(percent: float) -> float:
    return round(percent / 100.0, 6)


def parse_score_line(line: str) -> Score | None:
    """The score a tool output line announces, or None."""
    json_score = _json_score(line)
    if json_score is not None:
        return json_score
    for pattern, task, metric in _SCORE_PATTERNS:
        match = pattern.search(line)
        if match is None:
            continue
        # trtllm-eval logs percentages (and rouge x100); status and gates use fractions (0.781, not 78.1),
        # the scale of lm-evaluation-harness and of the accuracy baselines users write.
        if task is None:
            name = match.group(1)
            return Score(_LM_EVAL_TASKS.get(name, name), metric, _fraction(float(match.group(2))))
        return Score(
            task,
            metric,
            float(match.group(1)) if metric == "perplexity" else _fraction(float(match.group(1))),
        )
    return None


class ScoreScanner:
    """Fed every output line of an accuracy step; keeps the first rouge1 and the last other score.

    cnn_dailymail logs rouge scores once per beam; beam 0 is the one trtllm-eval returns.
    """

    def __init__(self) -> None:
        self.score: Score | None = None

    def feed(self, line: str) -> None:
        found = parse_score_line(line)
        if found is None:
            return
        if self.score is not None and self.score.metric == "rouge1" and found.metric == "rouge1":
            return
        self.score = found
