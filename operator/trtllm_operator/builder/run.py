"""Orchestration of one build attempt: preflight, steps, verify, manifest, publish, gates, result.

The build pod has no API access; everything the operator learns comes from the result the builder
writes to the termination-message path (< 4 KiB) and from its exit code, which the Job's
podFailurePolicy reads: deterministic failures (wrong GPU, invalid plan, failed verification) stop
the Job at once, a failing tool step exits 1 so the Job retries. Hence the invariant of this
module: whatever happens — including a bug in the builder — a result is written and the exit code
matches it.

Order of work:

1. preflight with NVML, before anything heavy;
2. if the final engine directory already holds a valid manifest for this build-config hash, the
   production steps are skipped (idempotent rerun) and the result is reported from the manifest;
3. steps in plan order: production steps (download, quantize/convert, build, export, verify) reuse
   a verified checkpoint when a previous attempt left one; measurement steps (dataset, benchmark,
   accuracy) only measure — the operator applies the gates — and are recorded in the manifest;
4. verification (if the plan has no explicit verify step, before the first measurement) and atomic
   publication: right before the first step that reads the final engine path, else after the last
   step. Plans that measure the staging directory therefore publish an engine whose measurements
   are already in its manifest, and a crash while measuring publishes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from pydantic import ValidationError

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import (
    EXIT_INVALID_PLAN,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_VERIFY_FAILED,
    RESULT_MAX_BYTES,
)
from trtllm_operator.api.engine import DEFAULT_METRIC
from trtllm_operator.api.plan import (
    BuildPlan,
    BuildResult,
    PlanStep,
    ResultAccuracy,
    ResultBenchmark,
    ResultEngine,
)
from trtllm_operator.builder import manifest as mf
from trtllm_operator.builder.preflight import Inventory, check, probe
from trtllm_operator.builder.remap import Remap, remap_plan
from trtllm_operator.builder.reports import ScoreScanner, parse_bench_report, report_json_path
from trtllm_operator.builder.steps import child_env, flag_value, run_command
from trtllm_operator.builder.verify import Verification, verify_dir
from trtllm_operator.logging import HF_TOKEN_RE

GATE_STEPS: Final = frozenset({"dataset", "benchmark", "accuracy"})
MAX_WARNINGS: Final = 5
MAX_WARNING_CHARS: Final = 200
MESSAGE_HEAD_CHARS: Final = 240
_ELLIPSIS: Final = " ... "

log = structlog.get_logger("trtllm_operator.builder")


class BuildError(Exception):
    """A failure with a known reason; the exit code tells the Job whether to retry."""

    def __init__(self, reason: str, message: str, exit_code: int, step: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.exit_code = exit_code
        self.step = step


class BuildInterrupted(BaseException):
    """SIGTERM from the kubelet (pod deleted, deadline): stop the tool, report, exit."""


@dataclass(frozen=True)
class Options:
    plan: Path
    result_file: Path
    remaps: tuple[Remap, ...] = ()


# --- plan ------------------------------------------------------------------------------------------


def _schema_summary(exc: ValidationError) -> str:
    errors = exc.errors()
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def load_plan(path: Path) -> BuildPlan:
    """Read and validate the plan; every problem becomes an InvalidPlan failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _invalid(f"cannot read plan {path}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(f"plan {path} is not valid JSON: {exc}") from exc
    try:
        plan = BuildPlan.model_validate(data)
    except ValidationError as exc:
        raise _invalid(f"plan {path} does not match the schema: {_schema_summary(exc)}") from exc
    for step in plan.steps:
        if any(HF_TOKEN_RE.search(arg) for arg in step.argv):
            raise _invalid(
                f"step {step.name}: argv contains a Hugging Face token; pass it via token_env instead"
            )
    return plan


def _invalid(message: str) -> BuildError:
    return BuildError(reasons.INVALID_PLAN, message, EXIT_INVALID_PLAN)


# --- the build -------------------------------------------------------------------------------------


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-link when source and destination share a filesystem (no second copy of the weights)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _volume_path(uri: str, name: str) -> str:
    """``pvc://claim/engines/x/h`` -> ``engines/x/h/<name>``: a path inside the volume."""
    rest = uri.split("://", 1)[-1]
    inside = rest.split("/", 1)[1] if "/" in rest else ""
    return f"{inside}/{name}" if inside else name


def _within(path: str | Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (lexically: plan paths are absolute and normalised)."""
    text, base = str(path), str(root)
    return text == base or text.startswith(base + "/")


def _mentions(step: PlanStep, root: Path) -> bool:
    """Whether the step reads or writes under ``root`` (argv element or stdout file)."""
    return any(_within(arg, root) for arg in step.argv) or (
        step.stdout is not None and _within(step.stdout, root)
    )


@dataclass
class Builder:
    """One attempt at building ``plan``. ``run`` returns the success result or raises BuildError."""

    plan: BuildPlan
    prober: Callable[[], Inventory] = probe
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    inventory: Inventory = field(default_factory=Inventory)
    verification: Verification | None = None
    engine: ResultEngine | None = None
    bench: ResultBenchmark | None = None
    acc: list[ResultAccuracy] = field(default_factory=list)
    reuse: bool = False

    @property
    def staging(self) -> Path:
        return Path(self.plan.paths.staging)

    @property
    def engine_dir(self) -> Path:
        return Path(self.plan.paths.engine)

    # -- top level --

    def run(self) -> BuildResult:
        """Preflight, then every step in plan order; publication happens right before the first step
        that reads the final engine path, or after the last step (measurements of the staging dir
        are then part of the manifest)."""
        self._timed("preflight", self._preflight)
        self._decide_reuse()
        remeasure = any(s.name in GATE_STEPS and _mentions(s, self.engine_dir) for s in self.plan.steps)
        for index, step in enumerate(self.plan.steps):
            if self.reuse:
                self._rerun_step(step, index, remeasure)
                continue
            if _mentions(step, self.engine_dir):
                self._ensure_published()
            if step.name in GATE_STEPS:
                self._ensure_verified()
                self._run_gate(step, index)
            else:
                self._run_production(step)
        self._ensure_published()
        return self.result(True, reasons.BUILD_SUCCEEDED, self._success_message())

    def _rerun_step(self, step: PlanStep, index: int, remeasure: bool) -> None:
        """On an already published engine, only plans that measure the published engine measure again;
        measurements of the staging directory were recorded in the manifest and are reported from it."""
        if step.name in GATE_STEPS and remeasure:
            self._run_gate(step, index)
        else:
            log.info("step skipped", step=step.name, why="engine already published")

    def result(self, ok: bool, reason: str, message: str, step: str | None = None) -> BuildResult:
        return BuildResult(
            ok=ok,
            reason=reason,
            message=message,
            revision=self.plan.revision,
            hash=self.plan.build_config_hash,
            step=step,
            engine=self.engine,
            bench=self.bench,
            acc=self.acc,
            timings={key: round(value, 1) for key, value in self.timings.items()},
            warnings=self.warnings,
        )

    def _timed(self, name: str, action: Callable[[], None]) -> None:
        runs = sum(key == name or key.startswith(f"{name}-") for key in self.timings)
        key = f"{name}-{runs + 1}" if runs else name
        started = time.monotonic()
        log.info("step started", step=name)
        action()
        self.timings[key] = time.monotonic() - started
        log.info("step finished", step=name, elapsed=round(self.timings[key], 3))

    # -- preflight and reuse --

    def _preflight(self) -> None:
        self.inventory = self.prober()
        log.info("gpus probed", **self.inventory.to_json(), error=self.inventory.error)
        verdict = check(self.plan, self.inventory)
        self.warnings += verdict.warnings
        if verdict.failure is not None:
            failure = verdict.failure
            raise BuildError(failure.reason, failure.message, failure.exit_code, "preflight")

    def _decide_reuse(self) -> None:
        if self.engine_dir.exists():
            problem = mf.manifest_problem(self.engine_dir, self.plan.build_config_hash)
            if problem is not None:
                raise self._conflict(problem)
            self.reuse = True
            log.info("engine already published; reusing it", engine=str(self.engine_dir))
            return
        if mf.remove_tree(self.staging):
            log.info("removed stale staging directory (an earlier attempt died)", staging=str(self.staging))
        self.staging.parent.mkdir(parents=True, exist_ok=True)

    def _conflict(self, problem: str) -> BuildError:
        return BuildError(
            reasons.ENGINE_DIRECTORY_CONFLICT,
            f"{self.engine_dir} exists but is not a complete engine of build config "
            f"{self.plan.build_config_hash} ({problem}); it is never overwritten: move it away or delete it",
            EXIT_VERIFY_FAILED,
            "publish",
        )

    # -- production steps --

    def _run_production(self, step: PlanStep) -> None:
        handlers: dict[str, Callable[[PlanStep], None]] = {
            "download": self._download,
            "quantize": self._checkpoint_step,
            "convert": self._checkpoint_step,
            "build": self._build,
            "export": self._export,
            "verify": lambda _step: self._ensure_verified(),
        }
        handlers.get(step.name, self._generic)(step)

    def _generic(self, step: PlanStep) -> None:
        if step.argv:
            self._timed(step.name, lambda: self._exec(step))
        else:
            log.info("step has nothing to run", step=step.name)

    def _download(self, step: PlanStep) -> None:
        config = Path(self.plan.model.local_dir) / "config.json"
        if config.is_file():
            log.info("step skipped", step="download", why=f"{config} exists")
            return
        if not step.argv:
            raise BuildError(
                reasons.STEP_FAILED, f"model not found: {config} does not exist", EXIT_TRANSIENT, "download"
            )
        self._timed("download", lambda: self._exec(step))
        if not config.is_file():
            raise BuildError(
                reasons.STEP_FAILED, f"download finished but {config} is missing", EXIT_TRANSIENT, "download"
            )

    def _checkpoint_step(self, step: PlanStep) -> None:
        """quantize/convert; a checkpoint outside staging is kept and reused across attempts."""
        checkpoint = Path(flag_value(step.argv, "--output_dir") or self.plan.paths.checkpoint)
        if _within(checkpoint, self.staging):
            self._generic(step)  # written straight into staging: nothing survives a failed attempt
            return
        if mf.checkpoint_reusable(checkpoint, self.plan.build_config_hash):
            log.info("reusing verified checkpoint", step=step.name, checkpoint=str(checkpoint))
            return
        if not _within(self.plan.model.local_dir, checkpoint) and mf.remove_tree(checkpoint):
            log.info("removed unverified checkpoint", step=step.name, checkpoint=str(checkpoint))
        self._generic(step)
        mf.write_verified(checkpoint, self.plan.build_config_hash)
        log.info("checkpoint verified", step=step.name, checkpoint=str(checkpoint))

    def _build(self, step: PlanStep) -> None:
        if mf.remove_tree(self.staging):
            log.info("removed stale staging directory", staging=str(self.staging))
        self._generic(step)

    def _export(self, step: PlanStep) -> None:
        if step.argv:
            self._timed("export", lambda: self._exec(step))
        else:
            self._timed("export", self._export_in_process)

    def _export_in_process(self) -> None:
        """pytorch backend: the artifact is the (quantized) HF checkpoint, copied into staging."""
        checkpoint = Path(self.plan.paths.checkpoint)
        source = checkpoint if (checkpoint / "config.json").is_file() else Path(self.plan.model.local_dir)
        mf.remove_tree(self.staging)
        ignore = shutil.ignore_patterns(mf.VERIFIED_NAME, mf.MANIFEST_NAME)
        shutil.copytree(source, self.staging, ignore=ignore, copy_function=_link_or_copy)
        log.info("checkpoint exported", source=str(source), staging=str(self.staging))

    def _ensure_verified(self) -> None:
        if self.verification is None:
            self._timed("verify", self._verify)

    def _verify(self) -> None:
        if self.plan.backend == "pytorch" and not self.staging.exists():
            self._export_in_process()
        result = verify_dir(self.plan, self.staging)
        self.warnings += result.warnings
        if not result.ok:
            messages = "; ".join(finding.message for finding in result.findings)
            raise BuildError(result.findings[0].reason, messages, EXIT_VERIFY_FAILED, "verify")
        self.verification = result
        log.info("engine verified", staging=str(self.staging), **result.facts)

    # -- subprocess --

    def _exec(self, step: PlanStep, on_line: Callable[[str], None] | None = None) -> None:
        started = time.monotonic()

        def emit(line: str) -> None:
            log.info("output", step=step.name, elapsed=round(time.monotonic() - started, 1), line=line)
            if on_line is not None:
                on_line(line)

        log.info("running", step=step.name, argv=step.argv, stdout=step.stdout)
        env = child_env(self.env, self.plan.model.token_env)
        outcome = run_command(step.argv, emit, env=env, stdout_path=step.stdout)
        if not outcome.ok:
            raise BuildError(
                reasons.STEP_FAILED,
                f"{step.name} failed (exit {outcome.returncode}): " + "\n".join(outcome.tail),
                EXIT_TRANSIENT,
                step.name,
            )

    # -- publication --

    def _ensure_published(self) -> None:
        if self.engine is not None:
            return
        if not self.reuse:
            self._ensure_verified()
            self._timed("publish", self._publish)
        self.engine = self._engine_result()
        self._restore_measurements()

    def _manifest_inputs(self, verification: Verification) -> mf.ManifestInputs:
        plan = self.plan
        version = verification.facts.get("trtllm_version") or self.env.get("TRTLLM_VERSION") or "unknown"
        calibration = plan.calibration.model_dump() if plan.calibration else None
        local = plan.calibration.local_dir if plan.calibration else None
        reported = mf.calibration_block(Path(plan.paths.checkpoint)) or mf.calibration_block(self.staging)
        return mf.ManifestInputs(
            engine={
                "namespace": plan.namespace,
                "name": plan.engine_name,
                "revision": plan.revision,
                "build_config_hash": plan.build_config_hash,
                "backend": plan.backend,
                "uri": plan.paths.uri,
            },
            trtllm_version=str(version),
            image=plan.image,
            gpu=self._gpu_record(),
            precision=plan.precision,
            kv_cache_dtype=plan.kv_cache_dtype,
            parallelism={"tensor": plan.tensor, "pipeline": plan.pipeline},
            build_flags=dict(plan.build_flags),
            calibration=mf.calibration_record(calibration, reported, Path(local) if local else None),
            verification=verification.facts,
            measurements=self._measurements(),
            timings={key: round(value, 3) for key, value in self.timings.items()},
        )

    def _measurements(self) -> dict[str, Any]:
        return {
            "bench": self.bench.model_dump(mode="json", exclude_none=True) if self.bench else None,
            "acc": [item.model_dump(mode="json") for item in self.acc],
        }

    def _restore_measurements(self) -> None:
        """A reused engine reports the measurements recorded when it was published."""
        if not self.reuse:
            return
        recorded = (mf.read_manifest(self.engine_dir) or {}).get("measurements") or {}
        if self.bench is None and recorded.get("bench"):
            self.bench = ResultBenchmark.model_validate(recorded["bench"])
        if not self.acc and recorded.get("acc"):
            self.acc = [ResultAccuracy.model_validate(item) for item in recorded["acc"]]

    def _gpu_record(self) -> dict[str, Any]:
        gpus = self.inventory.gpus
        first = gpus[0]
        return {
            "name": first.name,
            "product": first.name.replace(" ", "-"),
            "compute_capability": str(first.cc),
            "count": len(gpus),
            "driver_version": self.inventory.driver_version,
            "cuda_driver_version": self.inventory.cuda_driver_version,
            "devices": [gpu.to_json() for gpu in gpus],
        }

    def _publish(self) -> None:
        assert self.verification is not None
        mf.write_manifest(self.staging, self._manifest_inputs(self.verification))
        try:
            moved = mf.publish(self.staging, self.engine_dir, self.plan.build_config_hash)
        except mf.PublishConflictError as exc:
            raise self._conflict(str(exc)) from exc
        event = "engine published" if moved else "identical engine already published"
        log.info(event, engine=str(self.engine_dir))

    def _engine_result(self) -> ResultEngine:
        data = mf.read_manifest(self.engine_dir) or {}
        gpu = data.get("gpu") or {}
        return ResultEngine(
            uri=self.plan.paths.uri,
            sha256=mf.sha256_file(self.engine_dir / mf.MANIFEST_NAME),
            size=int(data.get("total_size", 0)),
            files=len(data.get("files") or []),
            trtllm=str(data.get("trtllm_version", "unknown")),
            gpu=str(gpu.get("name", "")),
            cc=str(gpu.get("compute_capability", "")),
            manifest=_volume_path(self.plan.paths.uri, mf.MANIFEST_NAME),
        )

    def _success_message(self) -> str:
        assert self.engine is not None
        verb = "reused the engine already published" if self.reuse else "built, verified and published"
        engine = self.engine
        return f"{verb} at {engine.uri} ({engine.files} files, {engine.size} bytes, {engine.gpu})"

    # -- measurement steps --

    def _run_gate(self, step: PlanStep, index: int) -> None:
        if not step.argv:
            log.info("step has nothing to run", step=step.name)
            return
        if step.name == "benchmark":
            self._timed("benchmark", lambda: self._benchmark(step))
        elif step.name == "accuracy":
            ordinal = sum(s.name == "accuracy" for s in self.plan.steps[:index])
            self._timed("accuracy", lambda: self._accuracy(step, ordinal))
        else:
            self._timed(step.name, lambda: self._exec(step))

    def _benchmark(self, step: PlanStep) -> None:
        report_path = report_json_path(step.argv)
        if report_path is None:
            raise BuildError(
                reasons.INVALID_PLAN, "benchmark step has no --report_json", EXIT_INVALID_PLAN, "benchmark"
            )
        mf.remove_tree(Path(report_path))
        self._exec(step)
        wanted = self.plan.benchmark
        try:
            data = json.loads(Path(report_path).read_text(encoding="utf-8"))
            self.bench = parse_bench_report(
                data,
                isl=wanted.inputLength if wanted else None,
                osl=wanted.outputLength if wanted else None,
                conc=wanted.concurrency if wanted else None,
            )
        except (OSError, ValueError) as exc:
            message = f"benchmark report {report_path} unusable: {exc}"
            raise BuildError(reasons.STEP_FAILED, message, EXIT_TRANSIENT, "benchmark") from exc
        log.info("benchmark measured", **self.bench.model_dump(exclude_none=True))

    def _accuracy(self, step: PlanStep, ordinal: int) -> None:
        scanner = ScoreScanner()
        self._exec(step, scanner.feed)
        if scanner.score is None:
            raise BuildError(
                reasons.STEP_FAILED,
                "accuracy step exited 0 but printed no score (expected trtllm-eval's accuracy line or a JSON "
                '{"task", "metric", "score"} line)',
                EXIT_TRANSIENT,
                "accuracy",
            )
        tasks = self.plan.accuracy.tasks if self.plan.accuracy else []
        planned = tasks[ordinal] if ordinal < len(tasks) else None
        task = planned.name if planned else scanner.score.task or "unknown"
        metric = (planned.metric if planned else None) or DEFAULT_METRIC.get(task) or scanner.score.metric
        self.acc.append(ResultAccuracy(task=task, metric=metric or "score", score=scanner.score.score))
        log.info("accuracy measured", task=task, metric=metric, score=scanner.score.score)


# --- result ----------------------------------------------------------------------------------------


def _encoded_size(result: BuildResult) -> int:
    return len(json.dumps(result.model_dump(mode="json", exclude_none=True), separators=(",", ":")).encode())


def _cut_middle(text: str, keep: int) -> str:
    """``text`` shortened to about ``keep`` characters taken from its head and its tail."""
    if keep >= len(text):
        return text
    if keep <= len(_ELLIPSIS):
        return ""
    head = min(MESSAGE_HEAD_CHARS, (keep - len(_ELLIPSIS)) // 2)
    tail = keep - len(_ELLIPSIS) - head
    return text[:head] + _ELLIPSIS + text[len(text) - tail :]


def fit_result(result: BuildResult, limit: int = RESULT_MAX_BYTES) -> BuildResult:
    """Shorten warnings, then the middle of the message (its head names the step, its tail the error).

    The size that counts is the serialized JSON (non-ASCII characters are escaped), so the longest
    message that fits is found by bisection rather than by arithmetic on characters.
    """
    warnings = [
        w if len(w) <= MAX_WARNING_CHARS else w[: MAX_WARNING_CHARS - 3] + "..." for w in result.warnings
    ]
    result = result.model_copy(update={"warnings": warnings[:MAX_WARNINGS]})
    if _encoded_size(result) <= limit:
        return result
    low, high = 0, len(result.message)
    while low < high:
        middle = (low + high + 1) // 2
        candidate = result.model_copy(update={"message": _cut_middle(result.message, middle)})
        low, high = (middle, high) if _encoded_size(candidate) <= limit else (low, middle - 1)
    return result.model_copy(update={"message": _cut_middle(result.message, low)})


def write_result(path: Path, result: BuildResult) -> None:
    text = fit_result(result).to_message()
    log.info("result", ok=result.ok, reason=result.reason, bytes=len(text.encode()), path=str(path))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        log.error("cannot write the result", path=str(path), error=str(exc))


def attempt(options: Options, prober: Callable[[], Inventory] = probe) -> tuple[BuildResult, int]:
    """Run one build; never raises (except BaseException other than BuildInterrupted)."""
    builder: Builder | None = None
    try:
        plan = remap_plan(load_plan(options.plan), options.remaps)
        builder = Builder(plan, prober=prober)
        return builder.run(), EXIT_OK
    except BuildError as failure:
        log.error("build failed", reason=failure.reason, step=failure.step, message=failure.message)
        return _failed(builder, failure.reason, failure.message, failure.step), failure.exit_code
    except BuildInterrupted:
        log.error("build interrupted by SIGTERM")
        return _failed(
            builder, reasons.BUILD_INTERRUPTED, "the build pod was terminated (SIGTERM)", None
        ), EXIT_TRANSIENT
    except Exception as exc:
        log.exception("builder crashed")
        message = f"unexpected {type(exc).__name__}: {exc}"
        return _failed(builder, reasons.BUILDER_CRASHED, message, None), EXIT_TRANSIENT


def _failed(builder: Builder | None, reason: str, message: str, step: str | None) -> BuildResult:
    if builder is not None:
        return builder.result(False, reason, message, step)
    return BuildResult(ok=False, reason=reason, message=message, step=step)


def run_build(options: Options, prober: Callable[[], Inventory] = probe) -> int:
    """Build, always write the result, and return the exit code."""
    result, code = attempt(options, prober)
    write_result(options.result_file, result)
    return code
