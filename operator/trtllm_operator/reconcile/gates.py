"""Validation gates: is a freshly built engine good enough to promote?

The builder only measures (trtllm-bench, the accuracy evaluator); the decision is made here, purely,
because a baseline may be another TRTEngine's measured score, which only the operator knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trtllm_operator.api import reasons
from trtllm_operator.api.engine import (
    DEFAULT_METRIC,
    LOWER_IS_BETTER,
    AccuracyStatus,
    AccuracyTask,
    BenchmarkStatus,
    BenchmarkValidation,
    Percentiles,
    TRTEngineSpec,
)
from trtllm_operator.api.plan import ResultAccuracy, ResultBenchmark
from trtllm_operator.reconcile.warnings import calibration_domain_mismatch


@dataclass(frozen=True)
class GateVerdict:
    """Outcome of every configured gate for one revision."""

    configured: bool
    passed: bool
    reason: str
    message: str
    benchmark: BenchmarkStatus | None = None
    accuracy: list[AccuracyStatus] = field(default_factory=list)
    pending_baselines: list[str] = field(default_factory=list)


def metric_of(task: AccuracyTask) -> str:
    return task.metric or DEFAULT_METRIC[task.name]


def accuracy_drop(score: float, baseline: float, metric: str, mode: str) -> float:
    """Loss against the baseline, positive when worse.

    Absolute in score units, or relative to the baseline.
    """
    loss = score - baseline if metric in LOWER_IS_BETTER else baseline - score
    if mode == "relative":
        return loss / abs(baseline) if baseline else float("inf") if loss > 0 else 0.0
    return loss


def _fmt(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def simulated_note(result: ResultBenchmark) -> str:
    """ " (simulated)" after every figure a simulator produced, so no message passes it off as measured."""
    return " (simulated)" if result.sim else ""


def throughput_display(result: ResultBenchmark) -> str:
    """The Bench printer column: "1234 tok/s" measured, "~1234 tok/s (sim)" simulated."""
    figure = f"{result.out_tps:.0f} tok/s"
    return f"~{figure} (sim)" if result.sim else figure


def benchmark_status(result: ResultBenchmark, revision: int, measured_at: str | None) -> BenchmarkStatus:
    return BenchmarkStatus(
        tool=result.tool or "trtllm-bench",
        simulated=bool(result.sim),
        display=throughput_display(result),
        outputTokensPerSecond=result.out_tps,
        totalTokensPerSecond=result.total_tps,
        requestsPerSecond=result.rps,
        ttftMs=Percentiles(p50=result.ttft_p50, p99=result.ttft_p99),
        itlMs=Percentiles(p50=result.itl_p50, p99=result.itl_p99),
        isl=result.isl,
        osl=result.osl,
        concurrency=result.conc,
        revision=revision,
        measuredAt=measured_at,
    )


def benchmark_problems(gate: BenchmarkValidation, result: ResultBenchmark) -> list[tuple[str, str]]:
    """(reason, sentence) for every floor or ceiling the measurement misses."""
    problems = []
    workload = f"at ISL/OSL {result.isl}/{result.osl}, concurrency {result.conc}{simulated_note(result)}"
    if gate.minOutputTokensPerSecond is not None and result.out_tps < gate.minOutputTokensPerSecond:
        shortfall = 1 - result.out_tps / gate.minOutputTokensPerSecond
        problems.append(
            (
                reasons.THROUGHPUT_BELOW_TARGET,
                f"output throughput {_fmt(result.out_tps)} tok/s < minOutputTokensPerSecond "
                f"{_fmt(gate.minOutputTokensPerSecond)} ({shortfall:.0%} below target) {workload}",
            )
        )
    for name, limit, value in (
        ("TTFT p99", gate.maxTtftP99Ms, result.ttft_p99),
        ("inter-token latency p99", gate.maxItlP99Ms, result.itl_p99),
    ):
        if limit is None:
            continue
        if value is None:
            problems.append(
                (reasons.LATENCY_ABOVE_TARGET, f"{name} was not reported; run the benchmark with streaming")
            )
        elif value > limit:
            problems.append(
                (reasons.LATENCY_ABOVE_TARGET, f"{name} {_fmt(value)} ms > {_fmt(limit)} ms {workload}")
            )
    return problems


def _calibration_hint(spec: TRTEngineSpec) -> str:
    """The CalibrationDomainMismatch warning, restated where the accuracy regression it predicts shows up."""
    if calibration_domain_mismatch(spec) is None:
        return ""
    return f"; calibration dataset {spec.calibration.dataset} does not match model domain {spec.model.domain}"


def evaluate_gates(
    spec: TRTEngineSpec,
    revision: int,
    bench: ResultBenchmark | None,
    accuracy: list[ResultAccuracy],
    baselines: dict[str, float | None],
    measured_at: str | None = None,
) -> GateVerdict:
    """Decide promotion.

    ``baselines`` maps a baseline TRTEngine's name to its measured score (None: not yet).
    """
    validation = spec.validation
    if validation is None or (validation.accuracy is None and validation.benchmark is None):
        return GateVerdict(
            False,
            True,
            reasons.NOT_CONFIGURED,
            "no validation gates configured; promoted after build and verify",
        )
    failures: list[tuple[str, str]] = []
    bench_status: BenchmarkStatus | None = None
    if validation.benchmark is not None:
        if bench is None:
            failures.append((reasons.THROUGHPUT_BELOW_TARGET, "the benchmark step reported no result"))
        else:
            problems = benchmark_problems(validation.benchmark, bench)
            failures.extend(problems)
            bench_status = benchmark_status(bench, revision, measured_at).model_copy(
                update={"passed": not problems}
            )
    acc_statuses: list[AccuracyStatus] = []
    pending: list[str] = []
    for task in validation.accuracy.tasks if validation.accuracy else []:
        status, failure, waiting = _judge_task(task, accuracy, baselines, revision, spec)
        if status is not None:
            acc_statuses.append(status)
        if failure:
            failures.append(failure)
        if waiting:
            pending.append(waiting)
    if failures:
        order = [reasons.ACCURACY_REGRESSION, reasons.THROUGHPUT_BELOW_TARGET, reasons.LATENCY_ABOVE_TARGET]
        reason = min((r for r, _ in failures), key=lambda r: order.index(r) if r in order else len(order))
        return GateVerdict(
            True, False, reason, "; ".join(m for _, m in failures), bench_status, acc_statuses, pending
        )
    if pending:
        return GateVerdict(
            True,
            False,
            reasons.VALIDATING,
            f"waiting for baseline engine(s) {', '.join(pending)} to report a score",
            bench_status,
            acc_statuses,
            pending,
        )
    summary = [f"{s.task} {_fmt(s.score)}" for s in acc_statuses]
    if bench_status is not None:
        sim = " (simulated)" if bench_status.simulated else ""
        summary.append(f"{_fmt(bench_status.outputTokensPerSecond)} output tok/s{sim}")
    return GateVerdict(
        True,
        True,
        reasons.GATES_PASSED,
        "all gates passed: " + ", ".join(summary),
        bench_status,
        acc_statuses,
    )


def _judge_task(
    task: AccuracyTask,
    measured: list[ResultAccuracy],
    baselines: dict[str, float | None],
    revision: int,
    spec: TRTEngineSpec,
) -> tuple[AccuracyStatus | None, tuple[str, str] | None, str | None]:
    metric = metric_of(task)
    result = next((r for r in measured if r.task == task.name), None)
    if result is None:
        return None, (reasons.ACCURACY_REGRESSION, f"{task.name}: the evaluator reported no score"), None
    if task.baseline.engineRef is not None:
        baseline = baselines.get(task.baseline.engineRef.name)
        if baseline is None:
            return None, None, task.baseline.engineRef.name
    else:
        baseline = task.baseline.value
    assert baseline is not None  # the CRD requires exactly one of value / engineRef
    drop = accuracy_drop(result.score, baseline, metric, task.maxDropMode)
    passed = drop <= task.maxDrop
    status = AccuracyStatus(
        task=task.name,
        metric=metric,
        score=result.score,
        baseline=baseline,
        drop=round(drop, 6),
        maxDrop=task.maxDrop,
        passed=passed,
        revision=revision,
    )
    if passed:
        return status, None, None
    unit = " (relative)" if task.maxDropMode == "relative" else ""
    message = (
        f"{task.name} {_fmt(result.score)} vs baseline {_fmt(baseline)}: drop {_fmt(drop)} > maxDrop "
        f"{_fmt(task.maxDrop)}{unit}{_calibration_hint(spec)}"
    )
    return status, (reasons.ACCURACY_REGRESSION, message), None
