"""Canary by engine revision, pure: start, bake, judge, promote, roll back; Prometheus answers.

The Prometheus answers under tests/data/prometheus are written in the HTTP API's documented shape
(``/api/v1/query``: status, data.resultType, data.result[].value = [time, "value"]), including what a
real one sends for NaN, an empty vector and a query error.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import REPO
from tests.unit.test_argocd_health import run_health, script_of
from tests.unit.test_reconcile_service import ENGINE_SPEC, engine
from trtllm_operator.api import reasons as r
from trtllm_operator.api.service import AccuracyProbe, CanaryGates, CanarySpec, TrackMeasurement
from trtllm_operator.reconcile import canary as cn
from trtllm_operator.reconcile.service import ServiceDecision, ServiceObservation, reconcile_service
from trtllm_operator.render.canary import canary_replicas

DATA = REPO / "tests" / "data" / "prometheus"
T0 = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
GATES = {"maxErrorRate": 0.05, "maxP95LatencyRatio": 1.5, "minTokensPerSecondRatio": 0.8, "minRequests": 20}
SPEC = {
    "engineRef": {"name": "llama"},
    "replicas": 3,
    "rollout": {"canary": {"replicas": 1, "bakeSeconds": 60, "gates": GATES}},
}


def live(rendered: dict[str, Any], ready: bool = True, generation: int = 1) -> dict[str, Any]:
    """What the cache holds after the API server and the Deployment controller handled ``rendered``."""
    dep = copy.deepcopy(rendered)
    replicas = dep["spec"].get("replicas", 1)
    dep["metadata"]["generation"] = generation
    dep["status"] = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas if ready else 0,
        "availableReplicas": replicas if ready else 0,
    }
    return dep


class Story:
    """One InferenceService driven through reconciles, children and status carried from one to the next."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = copy.deepcopy(spec or SPEC)
        self.status: dict[str, Any] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.generation = 1
        self.revision = 1

    def step(self, now: datetime, measured: cn.Measured | None = None, ready: bool = True) -> ServiceDecision:
        obs = ServiceObservation(
            "ns",
            "chat",
            "uid",
            self.generation,
            self.spec,
            self.status,
            {"llama": engine(self.revision)},
            self.deployments,
            measured=measured,
        )
        decision = reconcile_service(obs, now)
        for child in decision.apply:
            if child["kind"] == "Deployment":
                name = child["metadata"]["name"]
                before = self.deployments.get(name)
                changed = before is None or before["spec"] != child["spec"]
                gen = (before["metadata"]["generation"] + 1) if before and changed else 1
                if changed:
                    self.deployments[name] = live(child, ready, gen)
        for kind, name in decision.delete:
            if kind == "Deployment":
                self.deployments.pop(name, None)
        self.status = decision.status.model_dump(mode="json", exclude_none=True)
        return decision


def cond(decision: ServiceDecision, type_: str) -> tuple[str, str, str]:
    found = next(c for c in decision.status.conditions if c.type == type_)
    return found.status, found.reason, found.message


def revision_of(dep: dict[str, Any]) -> str:
    return str(dep["spec"]["template"]["metadata"]["labels"]["trtllm.dev/revision"])


def track(
    rev: int, requests: float, errors: float = 0.0, p95: float = 0.4, tps: float = 300.0
) -> TrackMeasurement:
    return TrackMeasurement(
        revision=rev,
        replicas=1,
        requests=requests,
        errorRate=errors,
        p95LatencySeconds=p95,
        tokensPerSecondPerReplica=tps,
    )


def health(decision: ServiceDecision, generation: int = 1) -> str:
    obj = {
        "metadata": {"generation": generation},
        "status": decision.status.model_dump(mode="json", exclude_none=True),
    }
    return str(run_health(script_of("InferenceService"), obj)["status"])


def kstatus(decision: ServiceDecision) -> str:
    """kstatus' rules on conditions (sigs.k8s.io/cli-utils kstatus: Reconciling -> InProgress, Stalled ->
    Failed, else Current); the integration tests run the real kstatus binary."""
    conds = {c.type: c.status for c in decision.status.conditions}
    if conds.get("Reconciling") == "True":
        return "InProgress"
    if conds.get("Stalled") == "True":
        return "Failed"
    return "Current"


def serving_r1() -> Story:
    story = Story()
    story.step(T0)
    story.step(T0 + timedelta(seconds=1))
    assert revision_of(story.deployments["chat-sm90"]) == "1"
    story.revision = 2
    return story


def test_new_revision_goes_to_a_canary_and_the_stable_keeps_the_old_one() -> None:
    story = serving_r1()
    decision = story.step(T0 + timedelta(seconds=10), ready=False)
    stable, canary = story.deployments["chat-sm90"], story.deployments["chat-sm90-canary"]
    assert revision_of(stable) == "1"
    assert stable["spec"]["template"]["metadata"]["annotations"]["trtllm.dev/engine-uri"].endswith("/h1")
    assert stable["spec"]["template"]["metadata"]["labels"]["trtllm.dev/track"] == "stable"
    assert revision_of(canary) == "2"
    assert canary["spec"]["template"]["metadata"]["labels"]["trtllm.dev/track"] == "canary"
    assert canary["spec"]["selector"]["matchLabels"]["trtllm.dev/track"] == "canary"
    assert canary["spec"]["replicas"] == 1
    # Same Service selector labels: the Service spreads requests over both tracks.
    for label in ("trtllm.dev/inference-service", "trtllm.dev/component"):
        assert (
            canary["spec"]["template"]["metadata"]["labels"][label]
            == stable["spec"]["template"]["metadata"]["labels"][label]
        )
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "Baking"
    assert (decision.status.canary.revision, decision.status.canary.baselineRevision) == (2, 1)
    assert decision.status.canary.trafficPercent == 25.0
    assert cond(decision, r.CANARY)[:2] == ("True", r.CANARY_STARTING)
    assert [e.reason for e in decision.events] == ["CanaryStarted"]
    assert kstatus(decision) == "InProgress"
    assert health(decision) == "Progressing"
    assert decision.status.engines == "llama r1"
    assert decision.requeue_after is None  # nothing to wait for until the canary is available


def test_bake_starts_when_the_canary_is_available_and_requeues_once_for_the_judgement() -> None:
    story = serving_r1()
    story.step(T0 + timedelta(seconds=10), ready=False)
    story.deployments["chat-sm90-canary"] = live(story.deployments["chat-sm90-canary"])
    decision = story.step(T0 + timedelta(seconds=20))
    assert decision.status.canary is not None
    assert decision.status.canary.bakingSince == "2026-11-30T04:00:20Z"
    assert decision.status.canary.judgeAt == "2026-11-30T04:01:20Z"
    assert decision.requeue_after == 60.0
    assert cond(decision, r.CANARY)[1] == r.CANARY_BAKING
    assert not cn.judgement_due(decision.status.canary, T0 + timedelta(seconds=79))
    assert cn.judgement_due(decision.status.canary, T0 + timedelta(seconds=80))
    assert cn.window_seconds(decision.status.canary, T0 + timedelta(seconds=80)) == 60
    later = story.step(T0 + timedelta(seconds=50))
    assert later.requeue_after == 30.0


def baked() -> Story:
    story = serving_r1()
    story.step(T0 + timedelta(seconds=10))
    story.step(T0 + timedelta(seconds=20))  # available: bake starts, judged at +80s
    return story


def test_failing_canary_is_rolled_back_and_the_stable_never_changes() -> None:
    story = baked()
    stable_before = copy.deepcopy(story.deployments["chat-sm90"])
    measured = cn.Measured(configured=True, stable=track(1, 300), canary=track(2, 100, errors=0.3, p95=2.0))
    decision = story.step(T0 + timedelta(seconds=80), measured)
    assert "chat-sm90-canary" not in story.deployments
    assert ("Deployment", "chat-sm90-canary") in decision.delete
    assert story.deployments["chat-sm90"] == stable_before
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "RolledBack"
    assert decision.status.canary.canary is not None
    assert decision.status.canary.canary.errorRate == 0.3
    status, reason, message = cond(decision, r.ROLLED_BACK)
    assert (status, reason) == ("True", r.CANARY_FAILED)
    assert "error rate 0.3 > maxErrorRate 0.05" in message
    assert "p95 2s is 5x stable's 0.4s > maxP95LatencyRatio 1.5" in message
    assert cond(decision, r.CANARY)[:2] == ("False", r.CANARY_FAILED)
    assert cond(decision, r.AVAILABLE)[0] == "True"  # the stable kept serving
    assert kstatus(decision) == "Failed"
    assert health(decision) == "Degraded"
    assert [e.reason for e in decision.events] == ["CanaryRolledBack"]
    # Not retried at this generation: later reconciles keep revision 1 and the verdict.
    again = story.step(T0 + timedelta(seconds=600))
    assert "chat-sm90-canary" not in story.deployments
    assert revision_of(story.deployments["chat-sm90"]) == "1"
    assert health(again) == "Degraded"
    assert again.requeue_after is None
    # A spec change tries again.
    story.generation = 2
    retry = story.step(T0 + timedelta(seconds=700))
    assert "chat-sm90-canary" in story.deployments
    assert retry.status.canary is not None
    assert retry.status.canary.phase == "Baking"
    assert cond(retry, r.ROLLED_BACK)[0] == "False"
    assert health(retry, generation=2) == "Progressing"


def test_healthy_canary_is_promoted_then_removed_once_the_stable_serves_it() -> None:
    story = baked()
    measured = cn.Measured(configured=True, stable=track(1, 300), canary=track(2, 100, p95=0.45, tps=290))
    decision = story.step(T0 + timedelta(seconds=80), measured, ready=False)
    assert revision_of(story.deployments["chat-sm90"]) == "2"
    assert "chat-sm90-canary" in story.deployments  # keeps serving until the stable has rolled
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "Promoting"
    assert cond(decision, r.CANARY)[1] == r.CANARY_PROMOTING
    assert health(decision) == "Progressing"
    rolling = story.step(T0 + timedelta(seconds=81), ready=False)
    assert "chat-sm90-canary" in story.deployments
    assert kstatus(rolling) == "InProgress"
    story.deployments["chat-sm90"] = live(story.deployments["chat-sm90"], generation=3)
    done = story.step(T0 + timedelta(seconds=90))
    assert "chat-sm90-canary" not in story.deployments
    assert done.status.canary is not None
    assert done.status.canary.phase == "Promoted"
    status, reason, message = cond(done, r.CANARY)
    assert (status, reason) == ("False", r.CANARY_PROMOTED)
    assert "error rate 0, p95 0.45s, 290 tokens/s per replica" in message
    assert cond(done, r.READY)[0] == "True"
    assert health(done) == "Healthy"
    assert kstatus(done) == "Current"
    assert done.status.engines == "llama r2"


def test_no_prometheus_fails_closed_saying_what_is_missing() -> None:
    story = baked()
    decision = story.step(T0 + timedelta(seconds=80), cn.Measured(configured=False))
    status, reason, message = cond(decision, r.ROLLED_BACK)
    assert (status, reason) == ("True", r.METRICS_UNAVAILABLE)
    assert "--prometheus-url" in message
    assert "TRTLLM_PROMETHEUS_URL" in message
    assert "chat-sm90-canary" not in story.deployments


def test_too_little_data_or_unreachable_prometheus_defers_then_rolls_back() -> None:
    story = baked()
    when = T0 + timedelta(seconds=80)
    quiet = cn.Measured(configured=True, stable=track(1, 300), canary=track(2, 3))
    for attempt in range(1, cn.MAX_DEFERRALS + 1):
        measured = (
            quiet if attempt % 2 else cn.Measured(configured=True, problem="Prometheus can't be reached")
        )
        decision = story.step(when, measured)
        assert decision.status.canary is not None
        assert decision.status.canary.phase == "Baking"
        assert decision.status.canary.deferrals == attempt
        assert decision.requeue_after == 60.0
        assert cond(decision, r.CANARY)[0] == "True"
        assert "chat-sm90-canary" in story.deployments
        when += timedelta(seconds=60)
    decision = story.step(when, quiet)
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "RolledBack"
    assert cond(decision, r.ROLLED_BACK)[:2] == ("True", r.INSUFFICIENT_DATA)
    assert "canary has 3 requests (minRequests 20)" in cond(decision, r.ROLLED_BACK)[2]


def test_early_reconcile_without_answers_does_not_judge() -> None:
    story = baked()
    decision = story.step(T0 + timedelta(seconds=85))
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "Baking"
    assert decision.requeue_after == 1.0


def test_unreadable_stable_template_rolls_out_directly() -> None:
    story = serving_r1()
    story.deployments["chat-sm90"]["spec"]["template"]["metadata"]["annotations"]["trtllm.dev/engine-uri"] = (
        "pvc://engines/../etc"
    )
    decision = story.step(T0 + timedelta(seconds=10))
    status, reason, message = cond(decision, r.CANARY)
    assert (status, reason) == ("False", r.CANARY_SKIPPED)
    assert "trtllm.dev/engine-uri" in message
    assert revision_of(story.deployments["chat-sm90"]) == "2"
    assert "chat-sm90-canary" not in story.deployments


def test_unavailable_stable_rolls_out_directly() -> None:
    story = Story()
    story.step(T0, ready=False)
    story.revision = 2
    decision = story.step(T0 + timedelta(seconds=5), ready=False)
    assert cond(decision, r.CANARY)[:2] == ("False", r.CANARY_SKIPPED)
    assert revision_of(story.deployments["chat-sm90"]) == "2"


def test_first_revision_needs_no_canary() -> None:
    story = Story()
    decision = story.step(T0)
    assert "chat-sm90-canary" not in story.deployments
    assert decision.status.canary is None
    assert all(c.type != r.CANARY for c in decision.status.conditions)


def test_removing_the_canary_spec_deletes_the_canary() -> None:
    story = serving_r1()
    story.step(T0 + timedelta(seconds=10))
    del story.spec["rollout"]["canary"]
    story.generation = 2
    decision = story.step(T0 + timedelta(seconds=20))
    assert "chat-sm90-canary" not in story.deployments
    assert revision_of(story.deployments["chat-sm90"]) == "2"
    assert decision.status.canary is not None
    assert decision.status.canary.phase == "Cancelled"


@pytest.mark.parametrize(
    ("percent", "stable", "pods", "share"),
    [
        (10, 9, 1, 10.0),
        (25, 3, 1, 25.0),
        (50, 4, 4, 50.0),
        (10, 2, 1, 33.3),
        (1, 1, 1, 50.0),
        (99, 1, 99, 99.0),
    ],
)
def test_traffic_share_becomes_pods_and_the_real_share_is_reported(
    percent: int, stable: int, pods: int, share: float
) -> None:
    assert canary_replicas(
        CanarySpec(trafficPercent=percent, gates=CanaryGates(maxErrorRate=0.1)), stable
    ) == (
        pods,
        share,
    )


# ------------------------------------------------------------------------------------------- judgement


def test_judge_needs_data_on_both_tracks() -> None:
    gates = CanaryGates(maxErrorRate=0.1, minRequests=50)
    verdict, why = cn.judge(gates, track(1, 49), track(2, 500))
    assert verdict is None
    assert why == ["stable has 49 requests (minRequests 50)"]


def test_judge_each_gate() -> None:
    stable = track(1, 100, p95=1.0, tps=100)
    assert cn.judge(CanaryGates(maxP95LatencySeconds=0.5), stable, track(2, 100, p95=0.6))[0] is False
    assert cn.judge(CanaryGates(maxP95LatencySeconds=0.5), stable, track(2, 100, p95=0.4))[0] is True
    assert cn.judge(CanaryGates(minTokensPerSecondRatio=0.9), stable, track(2, 100, tps=85))[0] is False
    assert cn.judge(CanaryGates(minTokensPerSecondRatio=0.9), stable, track(2, 100, tps=95))[0] is True
    assert cn.judge(CanaryGates(maxErrorRate=0.01), stable, track(2, 100, errors=0.02))[0] is False
    no_p95 = TrackMeasurement(revision=2, requests=100, errorRate=0.0)
    verdict, why = cn.judge(CanaryGates(maxP95LatencyRatio=1.2), stable, no_p95)
    assert verdict is False
    assert "canary p95 latency unknown" in why[0]


def test_accuracy_probe_scores_substrings_and_regexes() -> None:
    probe = AccuracyProbe.model_validate(
        {
            "prompts": [
                {"prompt": "capital of France?", "expect": "Paris"},
                {"prompt": "2+2?", "expectRegex": r"\b4\b"},
                {"prompt": "sky?", "expect": "blue"},
                {"prompt": "x", "expectRegex": "("},  # invalid regex: no match, no crash
            ],
            "minScore": 0.5,
        }
    )
    assert cn.probe_score(probe, ["It is Paris.", "four is 4", None, "("]) == 0.5
    stable = track(1, 100)
    assert cn.judge(CanaryGates(maxErrorRate=0.1), stable, track(2, 100), probe, 0.5)[0] is True
    verdict, why = cn.judge(CanaryGates(maxErrorRate=0.1), stable, track(2, 100), probe, 0.25)
    assert verdict is False
    assert why == ["accuracy probe score 0.25 < minScore 0.5"]


# ------------------------------------------------------------------------------------------- Prometheus


def answer(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_parse_scalar_reads_one_sample() -> None:
    assert cn.parse_scalar("q", answer("vector.json")) == 41.5
    assert cn.parse_scalar("q", answer("empty.json")) is None
    assert cn.parse_scalar("q", answer("nan.json")) is None


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("not_json.html", "non-JSON"),
        ("bad_query.json", "status 'error' (bad_data: invalid parameter"),
        ("two_series.json", "2 series, expected one"),
        ("inf.json", "not a finite non-negative number"),
        ("matrix.json", "no vector data"),
    ],
)
def test_unusable_answers_say_why(fixture: str, message: str) -> None:
    with pytest.raises(cn.AnswerError, match="p95: Prometheus"):
        cn.parse_scalar("p95", answer(fixture))
    with pytest.raises(cn.AnswerError) as error:
        cn.parse_scalar("p95", answer(fixture))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "text",
    [
        b"[]",
        b"null",
        b'{"status": "success"}',
        b'{"status":"success","data":{"resultType":"vector","result":[{"value":[1, 2]}]}}',
        b"\xff\xfe",
    ],
)
def test_odd_answers_never_crash(text: bytes) -> None:
    with pytest.raises(cn.AnswerError):
        cn.parse_scalar("q", text)


def test_measurement_from_answers() -> None:
    def vec(value: str) -> bytes:
        return (
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"%s"]}]}}'
            % value.encode()
        )

    m = cn.measurement(
        2,
        {
            "successes": vec("90"),
            "errors": vec("10"),
            "p95": vec("0.75"),
            "tokensPerSecond": vec("600"),
            "pods": vec("2"),
            "simulated": vec("1"),
        },
    )
    assert m == TrackMeasurement(
        revision=2,
        replicas=2,
        requests=100,
        errorRate=0.1,
        p95LatencySeconds=0.75,
        tokensPerSecondPerReplica=300,
        simulated=True,
    )
    nothing = cn.measurement(2, {"successes": vec("0"), "errors": vec("0"), "p95": answer("nan.json")})
    assert (nothing.requests, nothing.errorRate, nothing.p95LatencySeconds) == (0, None, None)


def test_queries_select_the_agreed_labels_over_the_bake_window() -> None:
    q = cn.queries("team-a", "chat", "canary", 2, 60)
    sel = '{namespace="team-a",inference_service="chat",track="canary",revision="2"}'
    assert q["errors"] == f"sum(increase(trtllm_request_error_total{sel}[60s])) or vector(0)"
    assert q["successes"] == f"sum(increase(trtllm_request_success_total{sel}[60s])) or vector(0)"
    buckets = f"trtllm_e2e_request_latency_seconds_bucket{sel}[60s]"
    assert q["p95"] == f"histogram_quantile(0.95, sum by (le) (increase({buckets})))"
    assert "trtllm_generation_tokens_total" in q["tokensPerSecond"]
    assert ENGINE_SPEC  # the engine fixture's spec is the one reconcile_service validates


def test_numbers_say_simulated_only_when_the_servers_say_so() -> None:
    real = cn.numbers(track(1, 100), track(2, 100))
    assert "SIMULATED" not in real
    sim = cn.numbers(track(1, 100), track(2, 100).model_copy(update={"simulated": True}))
    assert sim.endswith("(SIMULATED servers)")


def test_a_newer_revision_after_a_rollback_gets_its_own_canary() -> None:
    story = baked()
    bad = cn.Measured(configured=True, stable=track(1, 300), canary=track(2, 100, errors=0.5))
    story.step(T0 + timedelta(seconds=80), bad)
    story.revision = 3
    decision = story.step(T0 + timedelta(seconds=90))
    assert decision.status.canary is not None
    assert (decision.status.canary.phase, decision.status.canary.revision) == ("Baking", 3)
    assert decision.status.canary.baselineRevision == 1
    assert revision_of(story.deployments["chat-sm90-canary"]) == "3"
    assert revision_of(story.deployments["chat-sm90"]) == "1"
    assert cond(decision, r.ROLLED_BACK)[0] == "False"


def test_with_autoscaling_the_share_follows_the_stable_deployments_current_replicas() -> None:
    spec = copy.deepcopy(SPEC)
    spec.pop("replicas")
    spec["autoscaling"] = {"minReplicas": 1, "maxReplicas": 8}
    spec["rollout"]["canary"] = {"trafficPercent": 25, "bakeSeconds": 60, "gates": GATES}
    story = Story(spec)
    story.step(T0)
    stable = story.deployments["chat-sm90"]
    assert "replicas" not in stable["spec"]  # the HPA owns it
    stable["spec"]["replicas"] = 6  # as the HPA set it, all available
    stable["status"].update(replicas=6, updatedReplicas=6, readyReplicas=6, availableReplicas=6)
    story.revision = 2
    decision = story.step(T0 + timedelta(seconds=10))
    assert story.deployments["chat-sm90-canary"]["spec"]["replicas"] == 2
    assert decision.status.canary is not None
    assert decision.status.canary.trafficPercent == 25.0
    hpas = [o for o in decision.apply if o["kind"] == "HorizontalPodAutoscaler"]
    assert [h["spec"]["scaleTargetRef"]["name"] for h in hpas] == ["chat-sm90"]  # the stable only
