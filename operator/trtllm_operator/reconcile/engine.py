"""TRTEngine reconciliation as one pure function: (observed world, now) -> (new status, actions).

Level-based: it never asks what event woke it. It reads the spec, the cluster's GPU nodes, this
engine's Jobs and their pods, and converges. Every child has a deterministic name derived from the
build-config hash, so a restart at any moment re-derives the same names and adopts what exists —
no duplicates, no lost progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.conditions import Condition, ConditionStatus, find, rfc3339, set_condition
from trtllm_operator.api.engine import (
    BuildStatus,
    EngineStatus,
    GpuStatus,
    Phase,
    TRTEngineSpec,
    TRTEngineStatus,
)
from trtllm_operator.api.plan import BuildResult
from trtllm_operator.gpu.knowledge import arch_name, parse_cc
from trtllm_operator.gpu.labels import GpuNodeFacts
from trtllm_operator.reconcile.gates import evaluate_gates
from trtllm_operator.reconcile.placement import NoFit, Placement, choose_target
from trtllm_operator.reconcile.podsecurity import violations
from trtllm_operator.reconcile.trust import build_result_problem
from trtllm_operator.reconcile.warnings import calibration_domain_mismatch, inflight_batching_warning
from trtllm_operator.render import names
from trtllm_operator.render.cleanup import render_cleanup_job
from trtllm_operator.render.job import render_engine_children
from trtllm_operator.render.plan import RenderConfig, engine_claim, render_plan
from trtllm_operator.render.presets import build_flags
from trtllm_operator.render.security import container_security_context, pod_security_context, security_hash

ANNOTATION_TARGET_CC = "trtllm.dev/target-compute-capability"
ANNOTATION_TARGET_PRODUCT = "trtllm.dev/target-gpu-product"
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class PodView:
    """What the reconcile needs to know about one build pod."""

    name: str
    phase: str
    created: str
    node: str | None = None
    exit_code: int | None = None
    message: str | None = None
    unschedulable: str | None = None


@dataclass(frozen=True)
class JobView:
    """What the reconcile needs to know about one build Job."""

    name: str
    config_hash: str
    revision: int
    active: int = 0
    succeeded: int = 0
    failed: int = 0
    complete: bool = False
    failed_final: bool = False
    failure_reason: str | None = None
    failure_message: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    target_cc: str | None = None
    target_product: str | None = None
    pods: tuple[PodView, ...] = ()
    #: The Job's trtllm.dev/pod-security-sha256 annotation (render/security.py); None on older Jobs.
    security_hash: str | None = None

    @property
    def finished(self) -> bool:
        return self.complete or self.failed_final


@dataclass(frozen=True)
class BuildSlot:
    """The answer of the operator's build-slot admission (the global build limit) for this engine."""

    granted: bool = True
    position: int = 0  # 1-based place in line when not granted
    waiting: int = 0
    running: int = 0
    limit: int = 0  # 0: unlimited


@dataclass(frozen=True)
class EngineObservation:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any]
    nodes: tuple[GpuNodeFacts, ...]
    jobs: tuple[JobView, ...] = ()
    #: The build-slot verdict; None: not asked yet (the decision then says ``needs_slot`` if it wants one).
    slot: BuildSlot | None = BuildSlot()
    baselines: dict[str, float | None] = field(default_factory=dict)
    deleting: bool = False
    has_finalizer: bool = False
    cleanup_job: JobView | None = None
    #: The engine's namespace has a deletionTimestamp: nothing can be created in it any more (403), so
    #: the cleanup Job can't run. The handler fills it from a watch-fed Namespace cache.
    namespace_terminating: bool = False
    #: The namespace's pod-security.kubernetes.io/enforce level (from the same cache), None if unset.
    pod_security_level: str | None = None


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass
class EngineDecision:
    status: TRTEngineStatus
    create: list[dict[str, Any]] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    add_finalizer: bool = False
    remove_finalizer: bool = False
    #: The engine wants to start a build and ``slot`` was None: ask for a slot, then decide again.
    needs_slot: bool = False


class _Status:
    """A mutable working copy of the status with condition helpers bound to generation and clock."""

    def __init__(self, status: TRTEngineStatus, generation: int, now: datetime) -> None:
        self.s, self.generation, self.now = status, generation, now

    def cond(self, type_: str, status: ConditionStatus, reason: str, message: str = "") -> None:
        self.s.conditions = set_condition(
            self.s.conditions,
            type_,
            status,
            reason,
            message,
            generation=self.generation,
            clock=lambda: self.now,
        )

    def drop(self, type_: str) -> None:
        self.s.conditions = [x for x in self.s.conditions if x.type != type_]

    def progressing(self, phase: Phase, reason: str, message: str) -> None:
        self.s.phase = phase
        self.cond(r.READY, "False", reason, message)
        self.cond(r.RECONCILING, "True", reason, message)
        self.cond(r.STALLED, "False", reason, message)

    def stalled(self, reason: str, message: str) -> None:
        self.s.phase = "Stalled"
        self.cond(r.READY, "False", reason, message)
        self.cond(r.RECONCILING, "False", reason, message)
        self.cond(r.STALLED, "True", reason, message)

    def ready(self, reason: str, message: str) -> None:
        self.s.phase = "Ready"
        self.cond(r.READY, "True", reason, message)
        self.cond(r.RECONCILING, "False", reason, message)
        self.cond(r.STALLED, "False", reason, message)


def _load_status(raw: dict[str, Any]) -> TRTEngineStatus:
    try:
        return TRTEngineStatus.model_validate(raw or {})
    except ValidationError:
        return TRTEngineStatus()  # a hand-edited or foreign status is rebuilt from the world


def reconcile_engine(obs: EngineObservation, cfg: RenderConfig, now: datetime) -> EngineDecision:
    """Compute the new status and the actions that converge the world to the spec."""
    old = _load_status(obs.status)
    work = _Status(old.model_copy(deep=True), obs.generation, now)
    work.s.observedGeneration = obs.generation
    decision = EngineDecision(status=work.s)
    try:
        spec: TRTEngineSpec | None = TRTEngineSpec.model_validate(obs.spec)
        invalid = ""
    except ValidationError as error:
        first = error.errors()[0]
        spec, invalid = None, "spec." + ".".join(str(p) for p in first["loc"]) + f": {first['msg']}"
    if obs.deleting:  # before the spec check: a finalizer never outlives a spec we can't parse
        _reconcile_deletion(obs, spec, work, decision, cfg.cleanup_deadline_seconds)
        return _checked(decision)
    if spec is None:
        work.stalled(
            r.INVALID_SPEC, f"{invalid} — fix the spec; the operator will not retry until it changes"
        )
        return _checked(decision)
    decision.add_finalizer = spec.deletionPolicy == "Delete" and not obs.has_finalizer
    decision.remove_finalizer = spec.deletionPolicy == "Retain" and obs.has_finalizer
    config_hash = names.build_config_hash(spec)
    _advance_revision(work, config_hash, decision)
    decision.delete_jobs = [j.name for j in obs.jobs if j.config_hash != config_hash]
    if work.s.engine is not None and work.s.engine.buildConfigHash == config_hash:
        work.cond(
            r.BUILT,
            "True",
            r.BUILD_SUCCEEDED,
            f"engine {work.s.engine.uri} (revision {work.s.engine.revision})",
        )
        work.ready(r.ENGINE_PROMOTED, f"serving revision {work.s.engine.revision}: {work.s.engine.uri}")
        return _checked(decision)
    job = next((j for j in obs.jobs if j.config_hash == config_hash), None)
    placement = _placement(spec, obs.nodes, job)
    _warnings(work, spec, placement)
    if job is None:
        _no_job(obs, spec, config_hash, placement, work, decision, cfg)
    else:
        _observe_job(obs, spec, job, work, decision)
    return _checked(decision)


def _advance_revision(work: _Status, config_hash: str, decision: EngineDecision) -> None:
    s = work.s
    if s.buildConfigHash == config_hash:
        return
    if s.engine is not None and s.engine.buildConfigHash == config_hash:
        s.revision = s.engine.revision  # back to the promoted engine: nothing to build
    else:
        s.revision += 1
        if s.revision > 1:
            decision.events.append(
                Event(
                    "Normal",
                    r.NEW_REVISION,
                    f"spec changed: building revision {s.revision} "
                    f"(build config {config_hash}); the promoted engine keeps serving",
                )
            )
    s.buildConfigHash = config_hash
    s.build = s.candidate = s.benchmark = s.accuracy = None
    for stale in (r.BUILT, r.VALIDATED, r.SCHEDULED, r.GPU_COMPATIBLE):
        work.drop(stale)


def _placement(
    spec: TRTEngineSpec, nodes: tuple[GpuNodeFacts, ...], job: JobView | None
) -> Placement | NoFit:
    """The target of an existing Job is fixed (engines are not portable); otherwise choose from the fleet."""
    if job is None or job.target_cc is None:
        return choose_target(spec, nodes)
    cc = parse_cc(job.target_cc)
    fitting = sum(1 for n in nodes if n.cc == cc and n.usable)
    gpus = spec.parallelism.tensor * spec.parallelism.pipeline
    chosen = choose_target(spec, nodes)
    if isinstance(chosen, Placement) and chosen.cc == cc:
        gpus = chosen.gpus  # a multi-node engine's build pod has one node's share
    return Placement(
        cc=cc,
        product=job.target_product,
        gpus=gpus,
        candidate_nodes=fitting,
        reason=f"fixed by build Job {job.name}: {cc} ({arch_name(cc)})",
    )


def _warnings(work: _Status, spec: TRTEngineSpec, placement: Placement | NoFit) -> None:
    mismatch = calibration_domain_mismatch(spec)
    if mismatch:
        work.cond(r.CALIBRATION_DOMAIN_MISMATCH, "True", r.DOMAIN_MISMATCH, mismatch)
    else:
        work.drop(r.CALIBRATION_DOMAIN_MISMATCH)
    ifb_warning, ignored = "", []
    if isinstance(placement, Placement) and spec.backend == "tensorrt":
        flags = build_flags(spec, placement.cc, spec.model.architecture)
        ifb_warning = inflight_batching_warning(flags) or ""
        ignored = [note for note in flags.notes if "spec.build.extraArgs" in note]
    if ifb_warning:
        work.cond(r.INFLIGHT_BATCHING_DISABLED, "True", r.OVERRIDE_DISABLES_IFB, ifb_warning)
    else:
        work.drop(r.INFLIGHT_BATCHING_DISABLED)
    if ignored:
        work.cond(r.EXTRA_ARGS_IGNORED, "True", r.EXTRA_ARGS_IGNORED, "; ".join(ignored)[:1024])
    else:
        work.drop(r.EXTRA_ARGS_IGNORED)


def _gpu_status(spec: TRTEngineSpec, placement: Placement) -> GpuStatus:
    return GpuStatus(
        computeCapability=str(placement.cc),
        architecture=arch_name(placement.cc),
        gpuProduct=placement.product,
        gpus=placement.gpus,
        candidateNodes=placement.candidate_nodes,
        reason=placement.reason[:512],
    )


def _no_job(
    obs: EngineObservation,
    spec: TRTEngineSpec,
    config_hash: str,
    placement: Placement | NoFit,
    work: _Status,
    decision: EngineDecision,
    cfg: RenderConfig,
) -> None:
    if isinstance(placement, NoFit):
        work.cond(r.GPU_COMPATIBLE, "False", placement.reason, placement.message)
        work.stalled(placement.reason, placement.message)
        return
    work.cond(r.GPU_COMPATIBLE, "True", r.COMPATIBLE, placement.reason)
    work.s.gpu = _gpu_status(spec, placement)
    if obs.slot is None:
        decision.needs_slot = True
        return
    if not obs.slot.granted:
        slot = obs.slot
        message = (
            f"waiting for a build slot: position {slot.position} in line; "
            f"{slot.running} build(s) running, the operator's limit is {slot.limit}; starts when one finishes"
        )
        work.cond(r.SCHEDULED, "False", r.QUEUED, message)
        work.progressing("Queued", r.QUEUED, message)
        return
    job_name = names.job_name(obs.name, config_hash)
    previous = work.s.build
    if previous is not None and previous.jobName == job_name:
        decision.events.append(
            Event(
                "Warning",
                r.JOB_MISSING,
                f"build Job {job_name} disappeared (deleted by hand?); recreating it",
            )
        )
    plan = render_plan(obs.namespace, obs.name, spec, work.s.revision, config_hash, placement, cfg)
    owner = {
        "apiVersion": c.API_VERSION,
        "kind": c.ENGINE_KIND,
        "metadata": {"name": obs.name, "uid": obs.uid},
    }
    children = render_engine_children(owner, obs.namespace, obs.name, spec, plan, placement, cfg)
    for child in children:
        if child.get("kind") == "Job":
            annotations = child["metadata"].setdefault("annotations", {})
            annotations[ANNOTATION_TARGET_CC] = str(placement.cc)
            if placement.product:
                annotations[ANNOTATION_TARGET_PRODUCT] = placement.product
    decision.create = children
    attempts = previous.attempts if previous is not None and previous.jobName == job_name else 0
    work.s.build = BuildStatus(
        revision=work.s.revision, buildConfigHash=config_hash, jobName=job_name, attempts=attempts
    )
    message = (
        f"build Job {job_name} created for {placement.cc} ({arch_name(placement.cc)}), "
        f"{placement.gpus} GPU(s)"
    )
    work.cond(r.SCHEDULED, "Unknown", r.JOB_CREATED, message)
    work.progressing("Building", r.JOB_CREATED, message)
    decision.events.append(Event("Normal", r.JOB_CREATED, message))


def _latest_pod(job: JobView) -> PodView | None:
    return max(job.pods, key=lambda p: p.created, default=None)


def _last_result(job: JobView, phase: str) -> tuple[PodView | None, BuildResult | None]:
    pods = sorted((p for p in job.pods if p.phase == phase), key=lambda p: p.created)
    if not pods:
        return None, None
    pod = pods[-1]
    return pod, BuildResult.from_message(pod.message or "")


def _observe_job(
    obs: EngineObservation, spec: TRTEngineSpec, job: JobView, work: _Status, decision: EngineDecision
) -> None:
    s = work.s
    if s.gpu is None and job.target_cc:
        cc = parse_cc(job.target_cc)
        s.gpu = GpuStatus(
            computeCapability=job.target_cc,
            architecture=arch_name(cc),
            gpuProduct=job.target_product,
            gpus=spec.parallelism.tensor * spec.parallelism.pipeline,
            reason=f"fixed by build Job {job.name}",
        )
    work.cond(r.GPU_COMPATIBLE, "True", r.COMPATIBLE, f"build Job {job.name} targets {job.target_cc}")
    latest = _latest_pod(job)
    s.build = BuildStatus(
        revision=job.revision or s.revision,
        buildConfigHash=job.config_hash,
        jobName=job.name,
        startedAt=job.start_time,
        completedAt=job.completion_time,
        attempts=len(job.pods),
        node=latest.node if latest else None,
    )
    if job.complete:
        _job_succeeded(obs, spec, job, work, decision)
    elif job.failed_final:
        _job_failed(obs, spec, job, work, decision)
    elif not job.pods and not job.active and _pod_security_refusal(obs, spec, job, work, decision):
        return
    else:
        _job_running(job, latest, work)


def _pod_security_refusal(
    obs: EngineObservation, spec: TRTEngineSpec, job: JobView, work: _Status, decision: EngineDecision
) -> bool:
    """A build Job without a pod: replaced when the spec's security contexts changed since it was made
    (it did no work), Stalled when its pod breaks the namespace's Pod Security level (PSA refuses the pod
    and only a FailedCreate event on the Job says so)."""
    wanted = security_hash(spec.podSecurityContext, spec.securityContext)
    if job.security_hash is not None and job.security_hash != wanted:
        decision.delete_jobs.append(job.name)
        message = f"replacing build Job {job.name}: spec security contexts changed before it started a pod"
        decision.events.append(Event("Normal", r.JOB_REPLACED, message))
        work.s.build = None
        work.progressing("Building", r.JOB_REPLACED, message)
        return True
    pod, container = (
        pod_security_context(spec.podSecurityContext),
        container_security_context(spec.securityContext),
    )
    problems = violations(obs.pod_security_level, pod, container)
    if not problems:
        return False
    message = (
        f"build Job {job.name} can't create its pod: namespace {obs.namespace} enforces Pod Security "
        f'"{obs.pod_security_level}" (label pod-security.kubernetes.io/enforce) and the pod breaks it: '
        f"{'; '.join(problems)}. Fix spec.podSecurityContext/spec.securityContext (the Job is replaced) "
        "or relax the namespace's level"
    )
    work.cond(r.SCHEDULED, "False", r.POD_SECURITY_VIOLATION, message)
    if not _is(work, r.STALLED, "True", r.POD_SECURITY_VIOLATION):
        decision.events.append(Event("Warning", r.POD_SECURITY_VIOLATION, message))
    work.stalled(r.POD_SECURITY_VIOLATION, message)
    return True


def _job_running(job: JobView, latest: PodView | None, work: _Status) -> None:
    if latest is None or latest.phase == "Pending":
        if latest is not None and latest.unschedulable:
            message = f"build pod {latest.name} can't be scheduled: {latest.unschedulable}"
            work.cond(r.SCHEDULED, "False", r.UNSCHEDULABLE, message)
            work.progressing("Building", r.UNSCHEDULABLE, message)
        else:
            message = f"build Job {job.name} is waiting for its pod to be scheduled"
            work.cond(r.SCHEDULED, "Unknown", r.POD_PENDING, message)
            work.progressing("Building", r.POD_PENDING, message)
        return
    work.cond(r.SCHEDULED, "True", r.POD_SCHEDULED, f"build pod {latest.name} on node {latest.node}")
    failed = [p for p in job.pods if p.phase == "Failed"]
    if failed:
        last = max(failed, key=lambda p: p.created)
        result = BuildResult.from_message(last.message or "")
        why = result.message if result else (last.message or f"exit code {last.exit_code}")
        message = f"attempt {len(failed)} failed ({why[:600]}); retrying (attempt {len(job.pods)})"
        work.cond(r.BUILT, "Unknown", r.BUILD_RETRYING, message)
        work.progressing("Building", r.BUILD_RETRYING, message)
        return
    work.cond(r.BUILT, "Unknown", r.BUILDING, f"building on {latest.node}")
    work.progressing("Building", r.BUILDING, f"build pod {latest.name} running on {latest.node}")


def _job_failed(
    obs: EngineObservation, spec: TRTEngineSpec, job: JobView, work: _Status, decision: EngineDecision
) -> None:
    _, result = _last_result(job, "Failed")
    problem = build_result_problem(result, obs.name, spec) if result is not None else None
    if problem:
        reason, message = r.INVALID_BUILD_RESULT, f"build pod reported an untrusted result: {problem}"
    elif result is not None and not result.ok:
        reason, message = result.reason, result.message
    elif job.failure_reason == "DeadlineExceeded":
        reason, message = (
            r.DEADLINE_EXCEEDED,
            f"build Job {job.name} exceeded activeDeadlineSeconds: {job.failure_message or ''}",
        )
    else:
        pods = [p for p in job.pods if p.phase == "Failed"]
        tail = pods[-1].message if pods and pods[-1].message else "no result reported"
        reason, message = (
            r.BUILD_FAILED,
            f"build Job {job.name} failed ({job.failure_reason or 'Failed'}): {tail[:1500]}",
        )
    message = (
        f"{message} (after {len(job.pods)} attempt(s); change the spec or delete Job {job.name} to retry)"
    )
    work.cond(r.BUILT, "False", reason, message)
    if find(work.s.conditions, r.STALLED) is None or not _is(work, r.STALLED, "True", reason):
        decision.events.append(Event("Warning", reason, message))
    work.stalled(reason, message)


def _is(work: _Status, type_: str, status: str, reason: str) -> bool:
    found = find(work.s.conditions, type_)
    return found is not None and found.status == status and found.reason == reason


def _engine_from(
    result: BuildResult, spec: TRTEngineSpec, revision: int, config_hash: str, when: str | None
) -> EngineStatus:
    assert result.engine is not None
    e = result.engine
    return EngineStatus(
        revision=revision,
        uri=e.uri,
        sha256=e.sha256,
        sizeBytes=e.size,
        trtllmVersion=e.trtllm,
        image=spec.image,
        buildConfigHash=config_hash,
        manifest=e.manifest,
        precision=spec.precision,
        kvCacheDtype=spec.kvCacheDtype,
        computeCapability=e.cc,
        gpuProduct=e.gpu,
        builtAt=when,
    )


def _job_succeeded(
    obs: EngineObservation, spec: TRTEngineSpec, job: JobView, work: _Status, decision: EngineDecision
) -> None:
    s = work.s
    pod, result = _last_result(job, "Succeeded")
    if result is None or not result.ok or result.engine is None:
        message = (
            f"build Job {job.name} succeeded but pod {pod.name if pod else '?'} reported no valid result; "
            "the engine is not trusted — delete the Job to rebuild"
        )
        work.cond(r.BUILT, "False", r.BUILD_FAILED, message)
        work.stalled(r.BUILD_FAILED, message)
        return
    problem = build_result_problem(result, obs.name, spec)
    if problem:
        message = (
            f"build pod {pod.name if pod else '?'} reported an untrusted result: {problem}; the engine is "
            f"not promoted — delete Job {job.name} to rebuild"
        )
        work.cond(r.BUILT, "False", r.INVALID_BUILD_RESULT, message)
        work.stalled(r.INVALID_BUILD_RESULT, message)
        return
    when = job.completion_time or rfc3339(work.now)
    candidate = _engine_from(result, spec, s.revision, job.config_hash, when)
    if not _is(work, r.BUILT, "True", r.BUILD_SUCCEEDED):
        decision.events.append(
            Event("Normal", r.BUILD_SUCCEEDED, f"engine built and verified: {candidate.uri}")
        )
    work.cond(
        r.BUILT,
        "True",
        r.BUILD_SUCCEEDED,
        f"engine {candidate.uri} ({candidate.sizeBytes} bytes, "
        f"TensorRT-LLM {candidate.trtllmVersion}, "
        f"built on {candidate.gpuProduct} {candidate.computeCapability})",
    )
    verdict = evaluate_gates(spec, s.revision, result.bench, list(result.acc), obs.baselines, when)
    s.benchmark = verdict.benchmark
    s.accuracy = verdict.accuracy or None
    if verdict.pending_baselines and not verdict.reason.endswith(("Regression", "Target")):
        s.candidate = candidate
        work.cond(r.VALIDATED, "Unknown", r.VALIDATING, verdict.message)
        work.progressing("Validating", r.VALIDATING, verdict.message)
        return  # the baseline engine's status change wakes this one (baseline index)
    if not verdict.passed:
        s.candidate = candidate
        work.cond(r.VALIDATED, "False", verdict.reason, verdict.message)
        if not _is(work, r.STALLED, "True", verdict.reason):
            decision.events.append(Event("Warning", verdict.reason, verdict.message))
        keep = f"; revision {s.engine.revision} stays promoted" if s.engine else ""
        work.stalled(verdict.reason, verdict.message + keep)
        return
    candidate = candidate.model_copy(update={"validated": verdict.configured})
    # Validated=True means "the validation step is over and nothing failed", so that
    # `kubectl wait --for=condition=Validated` returns for every engine; whether gates really ran is
    # the reason (GatesPassed / NotConfigured) and status.engine.validated, which serving checks.
    work.cond(
        r.VALIDATED, "True", verdict.reason if verdict.configured else r.NOT_CONFIGURED, verdict.message
    )
    s.engine, s.candidate = candidate, None
    decision.events.append(
        Event("Normal", r.ENGINE_PROMOTED, f"revision {s.revision} promoted: {candidate.uri}")
    )
    work.ready(r.ENGINE_PROMOTED, f"serving revision {s.revision}: {candidate.uri}")


def _reconcile_deletion(
    obs: EngineObservation,
    spec: TRTEngineSpec | None,
    work: _Status,
    decision: EngineDecision,
    deadline: int,
) -> None:
    """deletionPolicy Delete: a cleanup Job removes the engine files, then the finalizer goes.

    Deletion always finishes. The finalizer is released without a cleanup Job when the spec can't be
    parsed (no trustworthy path to delete) or when the namespace itself is terminating (nothing can be
    created there any more; its PVCs go with it, and the StorageClass' reclaimPolicy decides the files'
    fate). A cleanup Job that fails or passes its deadline releases the finalizer too, with a Warning
    event naming the files left behind. While it runs, Reconciling=True/DeletingEngineFiles says so.
    """
    if not obs.has_finalizer:
        return
    cleanup = obs.cleanup_job
    if spec is None or spec.deletionPolicy != "Delete" or (cleanup is not None and cleanup.complete):
        if spec is None:
            decision.events.append(
                Event(
                    "Warning",
                    r.CLEANUP_SKIPPED,
                    "the spec can't be parsed, so no engine files are deleted; finalizer removed",
                )
            )
        decision.remove_finalizer = True
        return
    where = f"pvc://{engine_claim(obs.name, spec)}/{spec.storage.path}/{obs.name}"
    if obs.namespace_terminating:
        decision.events.append(
            Event(
                "Normal",
                r.CLEANUP_SKIPPED,
                f"namespace {obs.namespace} is terminating: {where} goes with its PVC "
                "(the StorageClass reclaimPolicy decides); finalizer removed",
            )
        )
        decision.remove_finalizer = True
        return
    if cleanup is not None and cleanup.failed_final:
        why = cleanup.failure_message or cleanup.failure_reason or "failed"
        decision.events.append(
            Event(
                "Warning",
                r.CLEANUP_FAILED,
                f"cleanup Job {cleanup.name} did not finish ({why[:300]}); the files at {where} are left "
                "for you to delete; finalizer removed",
            )
        )
        decision.remove_finalizer = True
        return
    if cleanup is None:
        decision.create = [render_cleanup_job(obs.namespace, obs.name, spec, deadline)]
        decision.events.append(Event("Normal", r.DELETING_ENGINE_FILES, f"removing engine files at {where}"))
        message = f"cleanup Job created to remove {where}"
    else:
        latest = _latest_pod(cleanup)
        pending = (
            f"; its pod can't be scheduled: {latest.unschedulable}" if latest and latest.unschedulable else ""
        )
        message = f"cleanup Job {cleanup.name} removing {where} (deadline {deadline} s){pending}"
    work.progressing(work.s.phase, r.DELETING_ENGINE_FILES, message)


def _checked(decision: EngineDecision) -> EngineDecision:
    """The single exit: kstatus forbids Reconciling and Stalled both True."""
    conditions: list[Condition] = decision.status.conditions
    reconciling, stalled = find(conditions, r.RECONCILING), find(conditions, r.STALLED)
    both = reconciling is not None and stalled is not None and reconciling.status == stalled.status == "True"
    assert not both, "Reconciling and Stalled both True"
    return decision
