"""Gate arithmetic and the promotion rule (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import ResultAccuracy, ResultBenchmark
from trtllm_operator.reconcile.gates import accuracy_drop, evaluate_gates


def spec(**validation: Any) -> TRTEngineSpec:
    return TRTEngineSpec.model_validate(
        {
            "model": {"source": "pvc://models/llama", "domain": validation.pop("domain", "general")},
            "image": "img:1",
            "precision": "fp8",
            "storage": {"existingClaim": "engines"},
            "calibration": {"dataset": validation.pop("dataset", "cnn_dailymail")},
            "validation": validation or None,
        }
    )


BENCH = ResultBenchmark(
    out_tps=6049,
    total_tps=12000,
    rps=47,
    ttft_p50=60,
    ttft_p99=88,
    itl_p50=9,
    itl_p99=10.8,
    isl=128,
    osl=128,
    conc=512,
)


@pytest.mark.parametrize(
    ("score", "baseline", "metric", "mode", "expected"),
    [
        (0.712, 0.781, "exact_match", "absolute", 0.069),
        (0.781, 0.781, "exact_match", "absolute", 0.0),
        (0.80, 0.781, "exact_match", "absolute", -0.019),  # better than baseline: negative drop
        (0.712, 0.781, "exact_match", "relative", 0.069 / 0.781),
        (6.3, 6.0, "perplexity", "absolute", 0.3),  # perplexity: higher is worse
        (5.9, 6.0, "perplexity", "absolute", -0.1),
        (6.3, 6.0, "perplexity", "relative", 0.05),
    ],
)
def test_drop_arithmetic(score: float, baseline: float, metric: str, mode: str, expected: float) -> None:
    assert accuracy_drop(score, baseline, metric, mode) == pytest.approx(expected)


def test_relative_drop_against_zero_baseline_is_infinite_only_when_worse() -> None:
    assert accuracy_drop(0.1, 0.0, "accuracy", "relative") == 0.0
    assert accuracy_drop(-0.1, 0.0, "accuracy", "relative") == float("inf")


def test_no_gates_promotes_and_says_not_validated() -> None:
    verdict = evaluate_gates(spec(), 1, None, [], {})
    assert verdict.passed
    assert not verdict.configured
    assert verdict.reason == r.NOT_CONFIGURED


def test_benchmark_floor_met_passes_with_numbers() -> None:
    verdict = evaluate_gates(
        spec(benchmark={"minOutputTokensPerSecond": 5000}), 2, BENCH, [], {}, "2026-01-01T00:00:00Z"
    )
    assert verdict.passed
    assert verdict.reason == r.GATES_PASSED
    assert verdict.benchmark is not None
    assert verdict.benchmark.passed is True
    assert verdict.benchmark.outputTokensPerSecond == 6049
    assert verdict.benchmark.ttftMs.p99 == 88  # type: ignore[union-attr]
    assert verdict.benchmark.revision == 2
    assert verdict.benchmark.measuredAt == "2026-01-01T00:00:00Z"


def test_throughput_below_floor() -> None:
    verdict = evaluate_gates(spec(benchmark={"minOutputTokensPerSecond": 8000}), 1, BENCH, [], {})
    assert not verdict.passed
    assert verdict.reason == r.THROUGHPUT_BELOW_TARGET
    assert "6,049 tok/s < minOutputTokensPerSecond 8,000 (24% below target)" in verdict.message
    assert "ISL/OSL 128/128, concurrency 512" in verdict.message


def test_latency_ceilings() -> None:
    verdict = evaluate_gates(spec(benchmark={"maxTtftP99Ms": 50, "maxItlP99Ms": 20}), 1, BENCH, [], {})
    assert verdict.reason == r.LATENCY_ABOVE_TARGET
    assert "TTFT p99 88 ms > 50 ms" in verdict.message
    missing = BENCH.model_copy(update={"ttft_p99": None})
    assert "not reported" in evaluate_gates(spec(benchmark={"maxTtftP99Ms": 50}), 1, missing, [], {}).message


def test_missing_benchmark_result_fails_the_gate() -> None:
    verdict = evaluate_gates(spec(benchmark={"minOutputTokensPerSecond": 1}), 1, None, [], {})
    assert not verdict.passed
    assert "reported no result" in verdict.message


ACCURACY = {"tasks": [{"name": "gsm8k", "baseline": {"value": 0.781}, "maxDrop": 0.02}]}


def test_accuracy_regression_message_has_numbers_and_calibration_hint() -> None:
    verdict = evaluate_gates(
        spec(accuracy=ACCURACY, domain="math"),
        1,
        None,
        [ResultAccuracy(task="gsm8k", metric="exact_match", score=0.712)],
        {},
    )
    assert verdict.reason == r.ACCURACY_REGRESSION
    assert verdict.message == (
        "gsm8k 0.712 vs baseline 0.781: drop 0.069 > maxDrop 0.02; "
        "calibration dataset cnn_dailymail does not match model domain math"
    )
    assert verdict.accuracy[0].passed is False
    assert verdict.accuracy[0].drop == pytest.approx(0.069)


def test_accuracy_within_max_drop_passes() -> None:
    verdict = evaluate_gates(
        spec(accuracy=ACCURACY), 1, None, [ResultAccuracy(task="gsm8k", metric="exact_match", score=0.77)], {}
    )
    assert verdict.passed
    assert verdict.accuracy[0].passed


@pytest.mark.parametrize(
    ("score", "passed"),
    [(0.5, True), (0.4999, False)],  # 0.75 - 0.5 == 0.25 exactly in binary floating point
)
def test_a_drop_exactly_equal_to_max_drop_passes(score: float, passed: bool) -> None:
    """maxDrop is the largest drop allowed: the boundary itself passes, anything beyond fails."""
    exact = {"tasks": [{"name": "gsm8k", "baseline": {"value": 0.75}, "maxDrop": 0.25}]}
    verdict = evaluate_gates(
        spec(accuracy=exact), 1, None, [ResultAccuracy(task="gsm8k", metric="exact_match", score=score)], {}
    )
    assert verdict.passed is passed
    assert verdict.accuracy[0].passed is passed
    assert verdict.reason == (r.GATES_PASSED if passed else r.ACCURACY_REGRESSION)


def test_relative_max_drop() -> None:
    relative = {
        "tasks": [
            {
                "name": "perplexity",
                "dataset": "pvc://evals/code",
                "baseline": {"value": 6.0},
                "maxDrop": 0.01,
                "maxDropMode": "relative",
            }
        ]
    }
    ok = evaluate_gates(
        spec(accuracy=relative),
        1,
        None,
        [ResultAccuracy(task="perplexity", metric="perplexity", score=6.05)],
        {},
    )
    bad = evaluate_gates(
        spec(accuracy=relative),
        1,
        None,
        [ResultAccuracy(task="perplexity", metric="perplexity", score=6.1)],
        {},
    )
    assert ok.passed
    assert not bad.passed
    assert "(relative)" in bad.message


def test_missing_score_is_a_regression_not_a_pass() -> None:
    verdict = evaluate_gates(spec(accuracy=ACCURACY), 1, None, [], {})
    assert not verdict.passed
    assert "reported no score" in verdict.message


def test_engine_ref_baseline_waits_then_judges() -> None:
    by_ref = {"tasks": [{"name": "mmlu", "baseline": {"engineRef": {"name": "llama-bf16"}}, "maxDrop": 0.01}]}
    measured = [ResultAccuracy(task="mmlu", metric="accuracy", score=0.80)]
    waiting = evaluate_gates(spec(accuracy=by_ref), 1, None, measured, {"llama-bf16": None})
    assert not waiting.passed
    assert waiting.pending_baselines == ["llama-bf16"]
    assert waiting.reason == r.VALIDATING
    assert evaluate_gates(spec(accuracy=by_ref), 1, None, measured, {"llama-bf16": 0.805}).passed
    assert not evaluate_gates(spec(accuracy=by_ref), 1, None, measured, {"llama-bf16": 0.83}).passed


def test_accuracy_failure_outranks_throughput_in_the_reason() -> None:
    verdict = evaluate_gates(
        spec(accuracy=ACCURACY, benchmark={"minOutputTokensPerSecond": 9000}),
        1,
        BENCH,
        [ResultAccuracy(task="gsm8k", metric="exact_match", score=0.7)],
        {},
    )
    assert verdict.reason == r.ACCURACY_REGRESSION
    assert "gsm8k" in verdict.message
    assert "tok/s" in verdict.message


SIMULATED = BENCH.model_copy(update={"sim": True, "tool": "trtllm-bench (simulated stand-in)"})


def test_a_measured_benchmark_is_shown_as_a_measurement() -> None:
    verdict = evaluate_gates(spec(benchmark={"minOutputTokensPerSecond": 5000}), 1, BENCH, [], {})
    assert verdict.benchmark is not None
    assert (verdict.benchmark.simulated, verdict.benchmark.tool) == (False, "trtllm-bench")
    assert verdict.benchmark.display == "6049 tok/s"
    assert "simulated" not in verdict.message


def test_a_simulated_benchmark_says_so_in_status_column_and_messages() -> None:
    passed = evaluate_gates(spec(benchmark={"minOutputTokensPerSecond": 5000}), 1, SIMULATED, [], {})
    assert passed.benchmark is not None
    assert passed.benchmark.simulated is True
    assert passed.benchmark.tool == "trtllm-bench (simulated stand-in)"
    assert passed.benchmark.display == "~6049 tok/s (sim)"
    assert "6,049 output tok/s (simulated)" in passed.message
    failed = evaluate_gates(spec(benchmark={"minOutputTokensPerSecond": 8000}), 1, SIMULATED, [], {})
    assert "concurrency 512 (simulated)" in failed.message
    slow = evaluate_gates(spec(benchmark={"maxTtftP99Ms": 50}), 1, SIMULATED, [], {})
    assert "TTFT p99 88 ms > 50 ms at ISL/OSL 128/128, concurrency 512 (simulated)" in slow.message
