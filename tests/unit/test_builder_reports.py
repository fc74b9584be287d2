"""Parsing trtllm-bench reports (nested and flat) and accuracy scores from tool output."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.builder.reports import (
    ReportError,
    Score,
    ScoreScanner,
    parse_bench_report,
    parse_score_line,
    report_json_path,
)


def percentiles(p50: float, p99: float) -> dict[str, float]:
    return {
        "p50": p50,
        "p90": p50 * 1.1,
        "p95": p50 * 1.15,
        "p99": p99,
        "minimum": 1.0,
        "maximum": p99,
        "average": p50,
    }


#: The shape of ReportUtility.get_statistics_dict (TensorRT-LLM bench/dataclasses/reporting.py).
NESTED: dict[str, Any] = {
    "engine": {"model": "meta-llama/Llama-3.3-70B-Instruct", "backend": "TRT", "version": "1.2.0"},
    "world_info": {"tp_size": 4, "pp_size": 1, "world_size": 4, "max_batch_size": 512},
    "request_info": {
        "num_requests": 512,
        "avg_num_concurrent_requests": 498.2,
        "avg_input_length": 128.0,
        "avg_output_length": 128.0,
    },
    "performance": {
        "total_latency_ms": 10834.1,
        "avg_request_latency_ms": 1410.2,
        "request_throughput_req_s": 47.26,
        "system_output_throughput_tok_s": 6049.2,
        "system_total_throughput_tok_s": 12098.4,
        "output_throughput_per_user_tok_s": 90.8,
        "output_throughput_per_gpu_tok_s": 1512.3,
        "request_latency_percentiles_ms": percentiles(1400.0, 1900.0),
    },
    "streaming_metrics": {
        "token_output_speed_tok_s": 92.6,
        "avg_ttft_ms": 88.0,
        "avg_tpot_ms": 10.8,
        "tpot_percentiles": percentiles(10.8, 14.1),
        "ttft_percentiles": percentiles(85.0, 150.5),
        "gen_tps_percentiles": percentiles(92.0, 120.0),
    },
    "dataset": {"num_requests": 512, "avg_isl": 128, "avg_osl": 128},
}


def test_nested_report_of_trtllm_bench() -> None:
    bench = parse_bench_report(NESTED, isl=128, osl=128, conc=512)
    assert bench.model_dump(exclude_none=True) == {
        "out_tps": 6049.2,
        "total_tps": 12098.4,
        "rps": 47.26,
        "ttft_p50": 85.0,
        "ttft_p99": 150.5,
        "itl_p50": 10.8,
        "itl_p99": 14.1,
        "isl": 128,
        "osl": 128,
        "conc": 512,
    }


def test_a_real_report_is_never_labelled_simulated() -> None:
    """Only the stand-in writes a ``simulation`` section; a real trtllm-bench report is a measurement."""
    bench = parse_bench_report(NESTED)
    assert (bench.sim, bench.tool) == (None, None)


def test_a_stand_in_report_is_labelled_simulated_with_its_tool() -> None:
    simulated = NESTED | {"simulation": {"tool": "trtllm-bench (simulated stand-in)", "gpu": "H100 SXM"}}
    bench = parse_bench_report(simulated)
    assert (bench.sim, bench.tool) == (True, "trtllm-bench (simulated stand-in)")
    assert parse_bench_report(NESTED | {"simulation": {}}).tool == "simulated"


def test_report_averages_fill_in_what_the_plan_did_not_say() -> None:
    bench = parse_bench_report(NESTED)
    assert (bench.isl, bench.osl, bench.conc) == (128, 128, 498)


def test_non_streaming_report_has_no_latency_percentiles() -> None:
    report = {key: value for key, value in NESTED.items() if key != "streaming_metrics"}
    bench = parse_bench_report(report, isl=128, osl=128, conc=64)
    assert bench.out_tps == 6049.2
    assert bench.ttft_p50 is None
    assert bench.itl_p99 is None


def test_flat_report() -> None:
    flat = {
        "system_output_throughput_tok_s": "3390.5",
        "request_throughput_req_s": 26.5,
        "ttft_p50_ms": 120.0,
        "p99_ttft_ms": 310.0,
        "itl_percentiles": {"p50": 12.0, "p99": 19.5},
        "avg_input_length": 128,
        "avg_output_length": 128,
        "concurrency": 64,
    }
    bench = parse_bench_report(flat)
    assert bench.model_dump() == {
        "out_tps": 3390.5,
        "sim": None,
        "tool": None,
        "total_tps": None,
        "rps": 26.5,
        "ttft_p50": 120.0,
        "ttft_p99": 310.0,
        "itl_p50": 12.0,
        "itl_p99": 19.5,
        "isl": 128,
        "osl": 128,
        "conc": 64,
    }


def test_a_report_without_throughput_is_an_error() -> None:
    with pytest.raises(ReportError, match="system_output_throughput_tok_s"):
        parse_bench_report({"performance": {"total_latency_ms": 3.0}})


@pytest.mark.parametrize(
    ("argv", "path"),
    [
        (["trtllm-bench", "throughput", "--report_json", "/x/r.json"], "/x/r.json"),
        (["trtllm-bench", "throughput", "--report_json=/y.json"], "/y.json"),
        (["trtllm-bench", "throughput"], None),
    ],
)
def test_report_json_path(argv: list[str], path: str | None) -> None:
    assert report_json_path(argv) == path


@pytest.mark.parametrize(
    ("line", "score"),
    [
        (
            "[05/01/2025-13:56:15] [TRT-LLM] [I] MMLU weighted average accuracy: 79.09 (14042)",
            Score("mmlu", "accuracy", 0.7909),
        ),
        (
            "[11/26/2026-18:39:48] [TRT-LLM] [I] lm-eval gsm8k average accuracy: 78.10",
            Score("gsm8k", None, 0.781),
        ),
        (
            "[TRT-LLM] [I] lm-eval gpqa_diamond_cot_zeroshot_aa average accuracy: 40.40",
            Score("gpqa_diamond", None, 0.404),
        ),
        (
            "[TRT-LLM] [I] lm-eval gpqa_main_cot_zeroshot_aa average accuracy: 38.00",
            Score("gpqa_main", None, 0.38),
        ),
        (
            "[TRT-LLM] [I] lm-eval gpqa_extended_cot_zeroshot_aa average accuracy: 37.00",
            Score("gpqa_extended", None, 0.37),
        ),
        ("[TRT-LLM] [I] lm-eval mmmu_val average accuracy: 45.00", Score("mmmu", None, 0.45)),
        (
            "[11/30/2026-03:00:00] [TRT-LLM] [I] JSON Mode Eval accuracy: 90.00 (100)",
            Score("json_mode_eval", "accuracy", 0.9),
        ),
        ("[TRT-LLM] [I] JSON Mode Eval grammar accuracy: 97.00 (100)", None),
        ("[TRT-LLM] [I] lm-eval gsm8k flexible-extract accuracy: 75.5", Score("gsm8k", None, 0.755)),
        ("[11/26/2026-18:39:48] [TRT-LLM] [I] \trouge1: 28.000", Score("cnn_dailymail", "rouge1", 0.28)),
        (
            '{"task": "perplexity", "metric": "perplexity", "score": 6.1234, "tokens": 100}',
            Score("perplexity", "perplexity", 6.1234),
        ),
        ("Per-token perplexity: 5.61", Score("perplexity", "perplexity", 5.61)),
        ("[TRT-LLM] [I] Average accuracy 68.20 (1000) - STEM", None),
        ('{"event": "not a score"}', None),
    ],
)
def test_score_lines(line: str, score: Score | None) -> None:
    """trtllm-eval logs percentages; scores are reported as fractions, the unit baselines are written in."""
    assert parse_score_line(line) == score


def test_scanner_keeps_beam_zero_rouge_and_the_last_other_score() -> None:
    scanner = ScoreScanner()
    for line in [
        "Beam 0 rouge scores:",
        "\trouge1: 28.000",
        "\trouge2: 11.2",
        "Beam 1 rouge scores:",
        "\trouge1: 27.000",
    ]:
        scanner.feed(line)
    assert scanner.score == Score("cnn_dailymail", "rouge1", 0.28)

    scanner = ScoreScanner()
    for line in ["JSON Mode Eval accuracy: 88.00 (50)", "JSON Mode Eval grammar accuracy: 98.00 (50)"]:
        scanner.feed(line)
    assert scanner.score == Score("json_mode_eval", "accuracy", 0.88)

    scanner = ScoreScanner()
    for line in ["lm-eval gsm8k average accuracy: 70.00", "noise", "lm-eval gsm8k average accuracy: 71.00"]:
        scanner.feed(line)
    assert scanner.score == Score("gsm8k", None, 0.71)
