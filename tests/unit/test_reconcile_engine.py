"""The TRTEngine reconcile as a pure function: every lifecycle path, no cluster."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trtllm_operator.api import reasons as r
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import BuildResult, ResultAccuracy, ResultEngine
from trtllm_operator.dev.fleet import default_nodes
from trtllm_operator.gpu.labels import facts_from_node
from trtllm_operator.reconcile.engine import BuildSlot, EngineObservation, JobView, PodView, reconcile_engine
from trtllm_operator.render import names
from trtllm_operator.render.plan import RenderConfig

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CFG = RenderConfig()
FLEET = tuple(replace(f, ready=True) for f in (facts_from_node(n) for n in default_nodes()) if f is not None)
A100_ONLY = tuple(f for f in FLEET if f.cc.major == 8 and f.cc.minor == 0)


def spec(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": "pvc://models/llama", "architecture": "LlamaForCausalLM"},
        "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        "precision": "fp8",
        "kvCacheDtype": "fp8",
        "parallelism": {"tensor": 2},
        "target": {"computeCapability": "9.0"},
        "calibration": {"dataset": "pvc://models/calib"},
        "storage": {"existingClaim": "engines"},
    }
    body.update(overrides)
    return body


def observe(raw: dict[str, Any], status: dict[str, Any] | None = None, **kw: Any) -> EngineObservation:
    args: dict[str, Any] = {
        "namespace": "ns",
        "name": "llama",
        "uid": "uid-1",
        "generation": 1,
        "spec": raw,
        "status": status or {},
        "nodes": FLEET,
    }
    args.update(kw)
    return EngineObservation(**args)


def conditions(decision: Any) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in decision.status.conditions}


def job_for(raw: dict[str, Any], revision: int = 1, **kw: Any) -> JobView:
    config_hash = names.build_config_hash(TRTEngineSpec.model_validate(raw))
    return JobView(
        name=names.job_name("llama", config_hash),
        config_hash=config_hash,
        revision=revision,
        target_cc="9.0",
        **kw,
    )


def result(ok: bool = True, reason: str = r.BUILD_SUCCEEDED, message: str = "built") -> str:
    engine = ResultEngine(
        uri="pvc://engines/engines/llama/abc",
        sha256="f" * 64,
        size=123,
        files=3,
        trtllm="1.2.0",
        gpu="NVIDIA H100 80GB HBM3",
        cc="9.0",
        manifest="engines/llama/abc/engine-manifest.json",
    )
    return BuildResult(ok=ok, reason=reason, message=message, engine=engine if ok else None).to_message()


def test_invalid_spec_is_stalled_and_never_retried() -> None:
    decision = reconcile_engine(observe({"model": {"source": "pvc://m/x"}}), CFG, NOW)
    cond = conditions(decision)
    assert cond[r.STALLED][:2] == ("True", r.INVALID_SPEC)
    assert cond[r.RECONCILING][0] == "False"
    assert "spec." in cond[r.READY][2]
    assert decision.create == []
    assert decision.status.observedGeneration == 1


def test_no_compatible_nodes_creates_nothing_and_lists_the_fleet() -> None:
    raw = spec(target=None)
    decision = reconcile_engine(observe(raw, nodes=A100_ONLY), CFG, NOW)
    cond = conditions(decision)
    assert cond[r.GPU_COMPATIBLE][:2] == ("False", r.NO_COMPATIBLE_NODES)
    assert "NVIDIA-A100-SXM4-80GB" in cond[r.GPU_COMPATIBLE][2]
    assert "8.9" in cond[r.GPU_COMPATIBLE][2]
    assert cond[r.STALLED][0] == "True"
    assert decision.create == []
    assert decision.status.phase == "Stalled"  # the PHASE column says what Stalled=True says


def test_fit_creates_plan_and_job_pinned_to_target() -> None:
    decision = reconcile_engine(observe(spec()), CFG, NOW)
    kinds = [c["kind"] for c in decision.create]
    assert kinds == ["ConfigMap", "Job"]
    job = decision.create[-1]
    assert job["metadata"]["annotations"]["trtllm.dev/target-compute-capability"] == "9.0"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert decision.status.phase == "Building"
    assert decision.status.revision == 1
    assert decision.status.gpu is not None
    assert decision.status.gpu.computeCapability == "9.0"
    cond = conditions(decision)
    assert cond[r.RECONCILING][0] == "True"
    assert cond[r.STALLED][0] == "False"
    assert cond[r.SCHEDULED][1] == r.JOB_CREATED
    assert [e.reason for e in decision.events] == [r.JOB_CREATED]


def test_asks_for_a_build_slot_before_creating_a_job() -> None:
    decision = reconcile_engine(observe(spec(), slot=None), CFG, NOW)
    assert decision.needs_slot
    assert decision.create == []


def test_queued_when_no_build_slot_is_granted_with_its_place_in_line() -> None:
    slot = BuildSlot(granted=False, position=3, waiting=5, running=2, limit=2)
    decision = reconcile_engine(observe(spec(), slot=slot), CFG, NOW)
    assert decision.create == []
    assert not decision.needs_slot
    assert decision.status.phase == "Queued"
    reason, message = conditions(decision)[r.SCHEDULED][1:3]
    assert reason == r.QUEUED
    assert "position 3 in line" in message
    assert "limit is 2" in message


def test_a_granted_slot_creates_the_job() -> None:
    decision = reconcile_engine(observe(spec(), slot=BuildSlot(granted=True, running=1, limit=2)), CFG, NOW)
    assert [o["kind"] for o in decision.create if o["kind"] == "Job"] == ["Job"]


def test_unschedulable_pod_message_is_copied() -> None:
    raw = spec()
    pod = PodView(
        name="p",
        phase="Pending",
        created="1",
        unschedulable="0/8 nodes are available: 8 Insufficient nvidia.com/gpu.",
    )
    decision = reconcile_engine(observe(raw, jobs=(job_for(raw, active=1, pods=(pod,)),)), CFG, NOW)
    scheduled = conditions(decision)[r.SCHEDULED]
    assert scheduled[:2] == ("False", r.UNSCHEDULABLE)
    assert "Insufficient nvidia.com/gpu" in scheduled[2]
    assert decision.create == []


def test_retrying_job_is_not_yet_failed() -> None:
    raw = spec()
    failed = PodView(
        name="a",
        phase="Failed",
        created="1",
        exit_code=1,
        message=result(False, r.STEP_FAILED, "build failed (exit 1): boom"),
    )
    running = PodView(name="b", phase="Running", created="2", node="sim-h100-0")
    decision = reconcile_engine(
        observe(raw, jobs=(job_for(raw, active=1, failed=1, pods=(failed, running)),)), CFG, NOW
    )
    cond = conditions(decision)
    assert cond[r.BUILT][:2] == ("Unknown", r.BUILD_RETRYING)
    assert "boom" in cond[r.BUILT][2]
    assert cond[r.STALLED][0] == "False"
    assert cond[r.RECONCILING][0] == "True"


def test_failed_job_is_stalled_with_the_builders_reason() -> None:
    raw = spec()
    pod = PodView(
        name="a",
        phase="Failed",
        created="1",
        exit_code=10,
        message=result(
            False,
            r.INCOMPATIBLE_GPU,
            "precision fp8 needs compute capability ≥ 8.9; this node has NVIDIA A100-SXM4-80GB (8.0)",
        ),
    )
    decision = reconcile_engine(
        observe(raw, jobs=(job_for(raw, failed=1, failed_final=True, pods=(pod,)),)), CFG, NOW
    )
    cond = conditions(decision)
    assert cond[r.STALLED][:2] == ("True", r.INCOMPATIBLE_GPU)
    assert "this node has NVIDIA A100" in cond[r.STALLED][2]
    assert decision.status.phase == "Stalled"
    assert [e.type for e in decision.events] == ["Warning"]


def test_failed_job_without_result_uses_the_log_tail() -> None:
    raw = spec()
    pod = PodView(name="a", phase="Failed", created="1", exit_code=137, message="Killed\nOOM")
    decision = reconcile_engine(
        observe(
            raw,
            jobs=(
                job_for(raw, failed=1, failed_final=True, failure_reason="BackoffLimitExceeded", pods=(pod,)),
            ),
        ),
        CFG,
        NOW,
    )
    assert conditions(decision)[r.STALLED][1] == r.BUILD_FAILED
    assert "OOM" in conditions(decision)[r.STALLED][2]


def test_succeeded_job_promotes_the_engine() -> None:
    raw = spec()
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message=result())
    decision = reconcile_engine(
        observe(
            raw,
            jobs=(
                job_for(raw, complete=True, succeeded=1, pods=(pod,), completion_time="2026-11-26T11:59:00Z"),
            ),
        ),
        CFG,
        NOW,
    )
    engine = decision.status.engine
    assert engine is not None
    assert engine.uri == "pvc://engines/engines/llama/abc"
    assert engine.sha256 == "f" * 64
    assert engine.builtAt == "2026-11-26T11:59:00Z"
    assert engine.validated is False
    assert engine.revision == 1
    cond = conditions(decision)
    assert cond[r.READY][:2] == ("True", r.ENGINE_PROMOTED)
    # kubectl wait --for=condition=Validated returns for a gate-less engine too; the reason says why.
    assert cond[r.VALIDATED][:2] == ("True", r.NOT_CONFIGURED)
    assert r.ENGINE_PROMOTED in [e.reason for e in decision.events]


def test_succeeded_job_with_garbage_result_is_not_trusted() -> None:
    raw = spec()
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message="not json")
    decision = reconcile_engine(observe(raw, jobs=(job_for(raw, complete=True, pods=(pod,)),)), CFG, NOW)
    assert decision.status.engine is None
    assert conditions(decision)[r.STALLED][0] == "True"


def _promoted(raw: dict[str, Any]) -> dict[str, Any]:
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message=result())
    decision = reconcile_engine(observe(raw, jobs=(job_for(raw, complete=True, pods=(pod,)),)), CFG, NOW)
    return decision.status.model_dump(mode="json", exclude_none=True)


def test_spec_change_starts_a_new_revision_and_keeps_the_promoted_engine() -> None:
    old_raw = spec()
    status = _promoted(old_raw)
    new_raw = spec(calibration={"dataset": "pvc://models/calib", "size": 128})
    old_job = job_for(old_raw, complete=True)
    decision = reconcile_engine(observe(new_raw, status, generation=2, jobs=(old_job,)), CFG, NOW)
    assert decision.status.revision == 2
    assert decision.status.engine is not None
    assert decision.status.engine.revision == 1
    assert decision.delete_jobs == [old_job.name]
    assert decision.create[-1]["kind"] == "Job"
    assert decision.create[-1]["metadata"]["labels"]["trtllm.dev/revision"] == "2"
    assert r.NEW_REVISION in [e.reason for e in decision.events]
    # Back to the old spec: instantly Ready on the promoted engine, nothing to build.
    back = reconcile_engine(
        observe(old_raw, decision.status.model_dump(mode="json", exclude_none=True), generation=3), CFG, NOW
    )
    assert back.create == []
    assert back.status.revision == 1
    assert conditions(back)[r.READY][0] == "True"


def test_job_deleted_by_hand_is_recreated_with_an_event() -> None:
    raw = spec()
    first = reconcile_engine(observe(raw), CFG, NOW)
    again = reconcile_engine(observe(raw, first.status.model_dump(mode="json", exclude_none=True)), CFG, NOW)
    assert again.create[-1]["kind"] == "Job"
    assert r.JOB_MISSING in [e.reason for e in again.events]


def test_last_transition_time_survives_an_unchanged_status() -> None:
    raw = spec()
    first = reconcile_engine(observe(raw, nodes=A100_ONLY), CFG, NOW)
    later = reconcile_engine(
        observe(raw, first.status.model_dump(mode="json", exclude_none=True), nodes=A100_ONLY),
        CFG,
        NOW + timedelta(minutes=5),
    )
    before = {c.type: c.lastTransitionTime for c in first.status.conditions}
    assert {c.type: c.lastTransitionTime for c in later.status.conditions} == before


def test_deletion_policy_drives_the_finalizer_and_cleanup() -> None:
    raw = spec(deletionPolicy="Delete")
    assert reconcile_engine(observe(raw), CFG, NOW).add_finalizer
    deleting = reconcile_engine(observe(raw, deleting=True, has_finalizer=True), CFG, NOW)
    assert deleting.create[0]["metadata"]["name"] == "llama-cleanup"
    assert not deleting.remove_finalizer
    cleaned = JobView(name="llama-cleanup", config_hash="", revision=0, complete=True)
    assert reconcile_engine(
        observe(raw, deleting=True, has_finalizer=True, cleanup_job=cleaned), CFG, NOW
    ).remove_finalizer
    assert reconcile_engine(
        observe(spec(deletionPolicy="Retain"), has_finalizer=True), CFG, NOW
    ).remove_finalizer


def test_gate_failure_keeps_previous_revision_and_stalls() -> None:
    raw = spec(validation={"benchmark": {"minOutputTokensPerSecond": 9000}})
    status = _promoted(spec())
    from trtllm_operator.api.plan import ResultBenchmark

    bench = ResultBenchmark(out_tps=6000, isl=128, osl=128, conc=64)
    message = BuildResult.model_validate_json(result()).model_copy(update={"bench": bench}).to_message()
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message=message)
    decision = reconcile_engine(
        observe(raw, status, generation=2, jobs=(job_for(raw, 2, complete=True, pods=(pod,)),)), CFG, NOW
    )
    assert decision.status.engine is not None
    assert decision.status.engine.revision == 1
    assert decision.status.candidate is not None
    assert decision.status.candidate.revision == 2
    stalled = conditions(decision)[r.STALLED]
    assert stalled[:2] == ("True", r.THROUGHPUT_BELOW_TARGET)
    assert "revision 1 stays promoted" in stalled[2]


# ------------------------------------------------------------------ untrusted build results (#13)
def _result_with(**engine_changes: Any) -> str:
    parsed = BuildResult.model_validate_json(result())
    assert parsed.engine is not None
    return parsed.model_copy(update={"engine": parsed.engine.model_copy(update=engine_changes)}).to_message()


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (result(reason="R" * 129), "result.reason"),
        (result(reason="not CamelCase"), "result.reason"),
        (_result_with(cc="10.0.0"), "result.engine.cc"),
        (_result_with(sha256="xyz"), "result.engine.sha256"),
        (_result_with(uri="pvc://models/../../../etc"), "result.engine.uri"),
        (_result_with(uri="pvc://engines/engines/llama/../other/abc"), "result.engine.uri"),
        (_result_with(uri="pvc://engines/engines/other-engine/abc"), "result.engine.uri"),
        (_result_with(uri="pvc://other-claim/engines/llama/abc"), "result.engine.uri"),
        (_result_with(uri="pvc://engines/engines/llama"), "result.engine.uri"),
    ],
)
def test_an_untrusted_build_result_is_stalled_and_never_promoted(message: str, field: str) -> None:
    raw = spec()
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message=message)
    decision = reconcile_engine(observe(raw, jobs=(job_for(raw, complete=True, pods=(pod,)),)), CFG, NOW)
    assert decision.status.engine is None
    assert decision.status.candidate is None
    stalled = conditions(decision)[r.STALLED]
    assert stalled[:2] == ("True", r.INVALID_BUILD_RESULT)
    assert field in stalled[2]
    assert decision.status.phase == "Stalled"
    # The status is writable: every condition fits the CRD's limits (a 129-character reason froze it).
    assert all(len(c.reason) <= 128 for c in decision.status.conditions)


def test_a_failed_build_with_an_overlong_reason_stalls_with_a_valid_reason() -> None:
    raw = spec()
    bad = BuildResult(ok=False, reason="X" * 500, message="boom").to_message()
    pod = PodView(name="a", phase="Failed", created="1", exit_code=1, message=bad)
    decision = reconcile_engine(
        observe(raw, jobs=(job_for(raw, failed_final=True, failed=1, pods=(pod,)),)), CFG, NOW
    )
    assert conditions(decision)[r.STALLED][:2] == ("True", r.INVALID_BUILD_RESULT)
    assert conditions(decision)[r.BUILT][:2] == ("False", r.INVALID_BUILD_RESULT)


def test_a_pending_baseline_engine_score_holds_promotion() -> None:
    """Through reconcile_engine: the gates passed nothing yet while the baseline engine has no score."""
    accuracy = {
        "tasks": [{"name": "mmlu", "baseline": {"engineRef": {"name": "llama-bf16"}}, "maxDrop": 0.01}]
    }
    raw = spec(validation={"accuracy": accuracy})
    parsed = BuildResult.model_validate_json(result())
    scored = parsed.model_copy(update={"acc": [ResultAccuracy(task="mmlu", metric="accuracy", score=0.6)]})
    pod = PodView(name="a", phase="Succeeded", created="1", exit_code=0, message=scored.to_message())
    jobs = (job_for(raw, complete=True, pods=(pod,)),)
    decision = reconcile_engine(observe(raw, jobs=jobs, baselines={"llama-bf16": None}), CFG, NOW)
    assert decision.status.engine is None, "promoted while the baseline score is pending"
    assert decision.status.candidate is not None
    assert decision.status.phase == "Validating"
    assert conditions(decision)[r.VALIDATED][:2] == ("Unknown", r.VALIDATING)
    assert conditions(decision)[r.RECONCILING][0] == "True"
    assert r.ENGINE_PROMOTED not in [e.reason for e in decision.events]
    # Once the baseline reports, the same observation promotes.
    done = reconcile_engine(observe(raw, jobs=jobs, baselines={"llama-bf16": 0.605}), CFG, NOW)
    assert done.status.engine is not None
    assert conditions(done)[r.VALIDATED][:2] == ("True", r.GATES_PASSED)


def test_extra_args_that_are_not_flags_raise_a_warning_condition() -> None:
    raw = spec(build={"extraArgs": ["--multiple_profiles", "enable", "stray", "--max_batch_size=64"]})
    decision = reconcile_engine(observe(raw), CFG, NOW)
    warning = conditions(decision)[r.EXTRA_ARGS_IGNORED]
    assert warning[:2] == ("True", r.EXTRA_ARGS_IGNORED)
    assert "'stray'" in warning[2]
    clean = reconcile_engine(
        observe(spec(build={"extraArgs": ["--multiple_profiles", "enable"]}), decision.status.model_dump()),
        CFG,
        NOW,
    )
    assert r.EXTRA_ARGS_IGNORED not in conditions(clean)


# ------------------------------------------------------------------ deletion always finishes (#13)
def test_a_finalizer_never_outlives_a_spec_the_operator_cannot_parse() -> None:
    decision = reconcile_engine(
        observe(
            {"model": {"source": "pvc://m/x"}, "deletionPolicy": "Delete"}, deleting=True, has_finalizer=True
        ),
        CFG,
        NOW,
    )
    assert decision.remove_finalizer
    assert decision.create == []
    assert r.CLEANUP_SKIPPED in [e.reason for e in decision.events]


def test_a_terminating_namespace_releases_the_finalizer_without_a_cleanup_job() -> None:
    raw = spec(deletionPolicy="Delete")
    decision = reconcile_engine(
        observe(raw, deleting=True, has_finalizer=True, namespace_terminating=True), CFG, NOW
    )
    assert decision.remove_finalizer
    assert decision.create == []  # creating anything in a terminating namespace is forbidden (403)


def test_the_cleanup_job_has_a_deadline_and_a_visible_condition() -> None:
    raw = spec(deletionPolicy="Delete")
    decision = reconcile_engine(observe(raw, deleting=True, has_finalizer=True), CFG, NOW)
    job = decision.create[0]
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert conditions(decision)[r.RECONCILING][:2] == ("True", r.DELETING_ENGINE_FILES)
    stuck_pod = PodView(name="c", phase="Pending", created="1", unschedulable="0/8 nodes are available")
    running = JobView(name="llama-cleanup", config_hash="", revision=0, active=1, pods=(stuck_pod,))
    waiting = reconcile_engine(observe(raw, deleting=True, has_finalizer=True, cleanup_job=running), CFG, NOW)
    assert not waiting.remove_finalizer
    assert "0/8 nodes are available" in conditions(waiting)[r.RECONCILING][2]
    failed = JobView(
        name="llama-cleanup", config_hash="", revision=0, failed_final=True, failure_reason="DeadlineExceeded"
    )
    gave_up = reconcile_engine(observe(raw, deleting=True, has_finalizer=True, cleanup_job=failed), CFG, NOW)
    assert gave_up.remove_finalizer
    event = next(e for e in gave_up.events if e.reason == r.CLEANUP_FAILED)
    assert event.type == "Warning"
    assert "pvc://engines/engines/llama" in event.message
