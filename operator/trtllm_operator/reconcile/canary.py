"""Canary by engine revision, pure: when to start, bake, judge, promote or roll back, and how to read
Prometheus' answers.

When the promoted revision of the served engine changes while the stable Deployment serves an older
one and is available, the stable Deployment keeps the old revision (read back from its own pod
template: revision label, engine-uri and engine-sha256 annotations, validated like any outside input)
and ``<deployment>-canary`` serves the new one behind the same Service. Once the canary is available
it bakes for ``bakeSeconds``; then — and only then — the handler asks Prometheus (``queries``) and
hands the answers back (``Measured``); ``plan_canary`` judges them against the gates and promotes (the
stable Deployment rolls to the new revision, the canary goes once that is available) or rolls back
(the canary goes; the stable never stopped serving).

Fail closed: no Prometheus configured rolls back at once (a canary that can't be judged is not
promoted); an unreachable Prometheus, an invalid answer or too little traffic defers the judgement by
another bake, at most ``MAX_DEFERRALS`` times, then rolls back. A rolled-back revision is not tried
again until a newer revision is promoted or the spec changes (metadata.generation).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.conditions import ConditionStatus
from trtllm_operator.api.engine import EngineStatus, TRTEngineSpec
from trtllm_operator.api.service import (
    AccuracyProbe,
    CanaryGates,
    CanarySpec,
    CanaryStatus,
    TrackMeasurement,
)
from trtllm_operator.reconcile.engine import Event
from trtllm_operator.reconcile.trust import SHA256, uri_problem
from trtllm_operator.render.canary import canary_deployment_name, canary_replicas

BAKING, PROMOTING, PROMOTED, ROLLED_BACK = "Baking", "Promoting", "Promoted", "RolledBack"
MAX_DEFERRALS = 3
_REVISION = re.compile(r"^[0-9]{1,9}$")
_IMAGE = re.compile(r"^[^\s]{1,512}$")


# ---------------------------------------------------------------------------------------------------------
# The stable revision, read back from our own Deployment


def live_engine(
    deployment: dict[str, Any], engine_name: str, engine_spec: TRTEngineSpec, cc: str
) -> tuple[EngineStatus | None, str | None]:
    """The engine a live serving Deployment's pod template serves, or (None, why it can't be trusted)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    name = (deployment.get("metadata") or {}).get("name", "")
    revision = labels.get(c.LABEL_REVISION)
    if not isinstance(revision, str) or not _REVISION.match(revision):
        return (
            None,
            f"Deployment {name}: pod label {c.LABEL_REVISION} {str(revision)[:32]!r} is not a revision",
        )
    uri = annotations.get(c.ANNOTATION_ENGINE_URI)
    if not isinstance(uri, str):
        return None, f"Deployment {name}: pod annotation {c.ANNOTATION_ENGINE_URI} is missing"
    if problem := uri_problem(f"Deployment {name}: {c.ANNOTATION_ENGINE_URI}", uri, engine_name, engine_spec):
        return None, problem
    sha = annotations.get(c.ANNOTATION_ENGINE_SHA)
    if not isinstance(sha, str) or not SHA256.match(sha):
        return None, f"Deployment {name}: pod annotation {c.ANNOTATION_ENGINE_SHA} is not a sha256 digest"
    containers = (template.get("spec") or {}).get("containers") or []
    image = containers[0].get("image") if containers and isinstance(containers[0], dict) else None
    if not isinstance(image, str) or not _IMAGE.match(image):
        return None, f"Deployment {name}: the server container has no valid image"
    engine = EngineStatus(
        revision=int(revision), uri=uri, sha256=sha, image=image, computeCapability=cc, validated=True
    )
    return engine, None


def available(deployment: dict[str, Any] | None, replicas: int | None = None) -> bool:
    """Every wanted pod of the Deployment's current template is available."""
    if deployment is None:
        return False
    meta, st = deployment.get("metadata") or {}, deployment.get("status") or {}
    wanted = int((deployment.get("spec") or {}).get("replicas") or 0) if replicas is None else replicas
    observed = int(st.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    return (
        observed
        and int(st.get("updatedReplicas") or 0) >= wanted
        and int(st.get("availableReplicas") or 0) >= wanted
        and int(st.get("replicas") or 0) == int(st.get("updatedReplicas") or 0)
    )


# ---------------------------------------------------------------------------------------------------------
# Prometheus: the queries, and reading their answers


def selector(namespace: str, service: str, track: str, revision: int) -> str:
    """The agreed scrape labels (namespace, inference_service, track, revision); values are DNS names
    and digits, so they need no escaping."""
    return f'{{namespace="{namespace}",inference_service="{service}",track="{track}",revision="{revision}"}}'


def queries(namespace: str, service: str, track: str, revision: int, window_s: int) -> dict[str, str]:
    """PromQL for one track over the bake window (evaluated at the judgement time)."""
    s, w = selector(namespace, service, track, revision), f"[{max(1, window_s)}s]"
    return {
        "successes": f"sum(increase(trtllm_request_success_total{s}{w})) or vector(0)",
        "errors": f"sum(increase(trtllm_request_error_total{s}{w})) or vector(0)",
        "p95": "histogram_quantile(0.95, sum by (le) "
        f"(increase(trtllm_e2e_request_latency_seconds_bucket{s}{w})))",
        "tokensPerSecond": f"sum(rate(trtllm_generation_tokens_total{s}{w})) or vector(0)",
        "pods": f"count(count by (pod) (last_over_time(up{s}{w}))) or vector(0)",
        # Only the simulation's stand-in server exports this (dev/standins/trtllm_serve.py).
        "simulated": f"max(last_over_time(trtllm_sim_standin{s}{w})) or vector(0)",
    }


class AnswerError(ValueError):
    """A Prometheus answer that can't be used; the message says why."""


def parse_scalar(name: str, text: str | bytes) -> float | None:
    """The single value of an instant-vector answer; None for an empty vector (no data); AnswerError
    for anything else (non-JSON, an error status, several series, NaN, infinity, a negative value)."""
    try:
        answer = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AnswerError(f"{name}: Prometheus answered non-JSON ({str(error)[:200]})") from None
    if not isinstance(answer, dict):
        raise AnswerError(f"{name}: Prometheus answered {type(answer).__name__}, not an object")
    if answer.get("status") != "success":
        why = f"{answer.get('errorType', '')}: {answer.get('error', '')}"[:300]
        raise AnswerError(f"{name}: Prometheus answered status {str(answer.get('status'))[:32]!r} ({why})")
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") not in ("vector", "scalar"):
        raise AnswerError(f"{name}: Prometheus answer has no vector data")
    result = data.get("result")
    if data["resultType"] == "scalar":
        pair: Any = result
    else:
        if not isinstance(result, list):
            raise AnswerError(f"{name}: Prometheus vector result is not a list")
        if not result:
            return None
        if len(result) > 1:
            raise AnswerError(f"{name}: Prometheus answered {len(result)} series, expected one")
        pair = result[0].get("value") if isinstance(result[0], dict) else None
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise AnswerError(f'{name}: Prometheus sample is not [time, "value"]')
    try:
        value = float(pair[1])
    except ValueError:
        raise AnswerError(f"{name}: Prometheus value {pair[1][:32]!r} is not a number") from None
    if math.isnan(value):
        return None
    if math.isinf(value) or value < 0:
        raise AnswerError(f"{name}: Prometheus value {pair[1][:32]} is not a finite non-negative number")
    return value


def measurement(revision: int, answers: dict[str, str | bytes]) -> TrackMeasurement:
    """One track's numbers from the answers to ``queries`` (AnswerError when one is unusable)."""
    values = {name: parse_scalar(name, text) for name, text in answers.items()}
    successes, errors = values.get("successes") or 0.0, values.get("errors") or 0.0
    requests = successes + errors
    pods = int(values.get("pods") or 0)
    tokens = values.get("tokensPerSecond")
    return TrackMeasurement(
        revision=revision,
        replicas=pods,
        requests=round(requests, 3),
        errorRate=round(errors / requests, 4) if requests > 0 else None,
        p95LatencySeconds=round(p95, 4) if (p95 := values.get("p95")) is not None else None,
        tokensPerSecondPerReplica=round(tokens / pods, 2) if tokens is not None and pods > 0 else None,
        simulated=bool(values.get("simulated")),
    )


# ---------------------------------------------------------------------------------------------------------
# The accuracy probe


def probe_score(probe: AccuracyProbe, answers: list[str | None]) -> float:
    """Share of prompts whose answer contains ``expect`` or matches ``expectRegex`` (None: no answer)."""
    passed = 0
    for prompt, answer in zip(probe.prompts, answers, strict=True):
        if answer is None:
            continue
        if prompt.expect is not None and prompt.expect in answer:
            passed += 1
        elif prompt.expectRegex is not None:
            try:
                if re.search(prompt.expectRegex, answer):
                    passed += 1
            except re.error:
                continue
    return round(passed / len(probe.prompts), 4)


# ---------------------------------------------------------------------------------------------------------
# The judgement


@dataclass(frozen=True)
class Measured:
    """What the handler got when a judgement was due."""

    configured: bool  # a Prometheus URL is set
    stable: TrackMeasurement | None = None
    canary: TrackMeasurement | None = None
    problem: str | None = None  # Prometheus unreachable or an answer unusable
    accuracy: float | None = None
    accuracy_problem: str | None = None


def _fmt(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.4g}{unit}"


def numbers(stable: TrackMeasurement, canary: TrackMeasurement) -> str:
    return (
        f"canary r{canary.revision} ({canary.replicas} pods, {canary.requests:.0f} requests): error rate "
        f"{_fmt(canary.errorRate)}, p95 {_fmt(canary.p95LatencySeconds, 's')}, "
        f"{_fmt(canary.tokensPerSecondPerReplica)} tokens/s per replica; stable r{stable.revision} "
        f"({stable.replicas} pods, {stable.requests:.0f} requests): error rate {_fmt(stable.errorRate)}, "
        f"p95 {_fmt(stable.p95LatencySeconds, 's')}, {_fmt(stable.tokensPerSecondPerReplica)} tokens/s "
        "per replica" + (" (SIMULATED servers)" if stable.simulated or canary.simulated else "")
    )


def judge(
    gates: CanaryGates,
    stable: TrackMeasurement,
    canary: TrackMeasurement,
    probe: AccuracyProbe | None = None,
    accuracy: float | None = None,
) -> tuple[bool | None, list[str]]:
    """(True: promote, False: roll back, None: too little data to judge; the failed gates or the reason)."""
    short = [
        f"{track} has {m.requests:.0f} requests (minRequests {gates.minRequests})"
        for track, m in (("canary", canary), ("stable", stable))
        if m.requests < gates.minRequests
    ]
    if short:
        return None, short
    failed: list[str] = []
    if gates.maxErrorRate is not None and (canary.errorRate or 0.0) > gates.maxErrorRate:
        failed.append(f"error rate {_fmt(canary.errorRate)} > maxErrorRate {gates.maxErrorRate}")
    needs_p95 = gates.maxP95LatencySeconds is not None or gates.maxP95LatencyRatio is not None
    if needs_p95 and canary.p95LatencySeconds is None:
        failed.append("canary p95 latency unknown (no latency samples)")
    p95 = canary.p95LatencySeconds
    if gates.maxP95LatencySeconds is not None and p95 is not None and p95 > gates.maxP95LatencySeconds:
        failed.append(f"p95 {p95:.4g}s > maxP95LatencySeconds {gates.maxP95LatencySeconds}")
    if gates.maxP95LatencyRatio is not None and p95 is not None:
        base = stable.p95LatencySeconds
        if not base:
            failed.append("stable p95 latency unknown: maxP95LatencyRatio can't be judged")
        elif p95 / base > gates.maxP95LatencyRatio:
            failed.append(
                f"p95 {p95:.4g}s is {p95 / base:.3g}x stable's {base:.4g}s > maxP95LatencyRatio "
                f"{gates.maxP95LatencyRatio}"
            )
    if gates.minTokensPerSecondRatio is not None:
        mine, base = canary.tokensPerSecondPerReplica, stable.tokensPerSecondPerReplica
        if mine is None or not base:
            failed.append("tokens/s per replica unknown: minTokensPerSecondRatio can't be judged")
        elif mine / base < gates.minTokensPerSecondRatio:
            failed.append(
                f"tokens/s per replica {mine:.4g} is {mine / base:.3g}x stable's {base:.4g} < "
                f"minTokensPerSecondRatio {gates.minTokensPerSecondRatio}"
            )
    if probe is not None:
        if accuracy is None:
            failed.append("accuracy probe got no score")
        elif accuracy < probe.minScore:
            failed.append(f"accuracy probe score {accuracy:.3g} < minScore {probe.minScore}")
    return not failed, failed


# ---------------------------------------------------------------------------------------------------------
# The plan for one reconcile


Verdict = Literal["none", "progressing", "rolled_back"]


@dataclass
class CanaryPlan:
    #: Render the stable Deployment with this engine (the revision it serves) instead of the promoted one.
    stable_engine: EngineStatus | None = None
    #: Apply the canary Deployment (rendered for the promoted engine) with these replicas.
    canary_replicas: int | None = None
    #: The canary Deployment to delete (None: keep or none).
    delete: str | None = None
    #: Keep this Deployment though it is not wanted (a promoted canary until the stable has rolled).
    keep: str | None = None
    status: CanaryStatus | None = None
    conditions: list[tuple[str, ConditionStatus, str, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    verdict: Verdict = "none"
    message: str = ""


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_ts(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def judgement_due(status: CanaryStatus | None, now: datetime) -> bool:
    """Whether this reconcile must bring Prometheus' answers: a canary baking whose judgement time came."""
    if status is None or status.phase != BAKING:
        return False
    due = _parse_ts(status.judgeAt)
    return due is not None and due <= now


def window_seconds(status: CanaryStatus, now: datetime) -> int:
    """The bake window the queries cover: from when the canary became available until now."""
    since = _parse_ts(status.bakingSince)
    return max(1, int((now - since).total_seconds())) if since else 1


@dataclass(frozen=True)
class CanaryInputs:
    service: str
    generation: int
    spec: CanarySpec | None
    engine_name: str
    engine_spec: TRTEngineSpec
    promoted: EngineStatus
    stable_name: str
    stable: dict[str, Any] | None  # the live stable Deployment
    canary: dict[str, Any] | None  # the live canary Deployment
    stable_replicas: int
    previous: CanaryStatus | None
    measured: Measured | None


def plan_canary(i: CanaryInputs, now: datetime) -> CanaryPlan:
    plan = CanaryPlan(status=i.previous)
    canary_name = canary_deployment_name(i.stable_name)
    prev = i.previous
    if i.spec is None:
        if i.canary is not None:
            plan.delete = canary_name
        if prev is not None and prev.phase in (BAKING, PROMOTING):
            plan.status = prev.model_copy(
                update={"phase": "Cancelled", "verdict": "spec.rollout.canary removed"}
            )
        return plan
    live, problem = (
        live_engine(i.stable, i.engine_name, i.engine_spec, i.promoted.computeCapability)
        if i.stable is not None
        else (None, None)
    )
    new = i.promoted.revision
    if live is None or live.revision == new:
        _settled(i, plan, prev, canary_name, live, problem)
        return plan
    # The stable Deployment serves an older revision than the promoted one.
    if (
        prev is not None
        and prev.phase == ROLLED_BACK
        and prev.revision == new
        and prev.generation == i.generation
    ):
        plan.stable_engine = live
        if i.canary is not None:
            plan.delete = canary_name
        plan.verdict, plan.message = "rolled_back", prev.verdict
        return plan
    if prev is not None and prev.phase == PROMOTING and prev.revision == new:
        plan.keep = canary_name if i.canary is not None else None
        plan.verdict, plan.message = "progressing", f"promoting revision {new}: rolling {i.stable_name}"
        return plan
    in_progress = prev is not None and prev.phase == BAKING and prev.revision == new
    in_progress = in_progress and prev is not None and prev.baselineRevision == live.revision
    if not in_progress and not available(i.stable, i.stable_replicas):
        message = f"{i.stable_name} is not available: rolling revision {new} out directly, without a canary"
        plan.conditions.append((r.CANARY, "False", r.CANARY_SKIPPED, message))
        if i.canary is not None:
            plan.delete = canary_name
        return plan
    replicas, share = canary_replicas(i.spec, i.stable_replicas)
    if not in_progress or prev is None:
        if prev is not None and prev.phase == ROLLED_BACK:
            retry = f"trying revision {new} again on a canary (a newer revision or a spec change)"
            plan.conditions.append((r.ROLLED_BACK, "False", r.CANARY_STARTING, retry))
        prev = CanaryStatus(
            engine=i.engine_name,
            revision=new,
            baselineRevision=live.revision,
            phase=BAKING,
            generation=i.generation,
            deployment=canary_name,
            replicas=replicas,
            trafficPercent=share,
            startedAt=_ts(now),
        )
        plan.events.append(
            Event(
                "Normal",
                "CanaryStarted",
                f"revision {new} of {i.engine_name} on {canary_name} ({replicas} pods, {share}% of traffic); "
                f"{i.stable_name} keeps revision {live.revision}",
            )
        )
    status = prev.model_copy(
        update={"replicas": replicas, "trafficPercent": share, "generation": i.generation}
    )
    plan.status, plan.stable_engine, plan.canary_replicas = status, live, replicas
    plan.verdict = "progressing"
    if not available(i.canary, replicas):
        plan.message = (
            f"canary {canary_name} (revision {new}, {replicas} pods, {share}% of traffic) is starting; "
            f"{i.stable_name} serves revision {live.revision}"
        )
        plan.conditions.append((r.CANARY, "True", r.CANARY_STARTING, plan.message))
        return plan
    bake = i.spec.bakeSeconds
    if status.bakingSince is None:
        status.bakingSince, status.judgeAt = _ts(now), _ts(now + timedelta(seconds=bake))
    due = _parse_ts(status.judgeAt)
    if due is not None and due > now:
        plan.requeue_after = max(1.0, (due - now).total_seconds())
        plan.message = (
            f"canary {canary_name} serves revision {new} ({replicas} pods, {share}% of traffic) beside "
            f"revision {live.revision}; judged at {status.judgeAt}"
        )
        plan.conditions.append((r.CANARY, "True", r.CANARY_BAKING, plan.message))
        return plan
    m = i.measured
    if m is None:  # the handler brings the answers when judgement_due says so; this reconcile came early
        plan.requeue_after = 1.0
        plan.message = f"canary {canary_name}: judgement due"
        plan.conditions.append((r.CANARY, "True", r.CANARY_BAKING, plan.message))
        return plan
    if not m.configured:
        _roll_back(
            i, plan, status, live, r.METRICS_UNAVAILABLE,
            "no Prometheus is configured (operator flag --prometheus-url or env TRTLLM_PROMETHEUS_URL), so "
            "the canary can't be judged: rolled back (fail closed)",
        )  # fmt: skip
        return plan
    verdict: bool | None
    if m.problem is not None or m.stable is None or m.canary is None:
        verdict, why, reason = None, [m.problem or "no measurement"], r.METRICS_UNAVAILABLE
    else:
        status.stable, status.canary, status.accuracyScore = m.stable, m.canary, m.accuracy
        probe = i.spec.accuracyProbe
        why_probe = [m.accuracy_problem] if probe is not None and m.accuracy_problem else []
        verdict, why = judge(i.spec.gates, m.stable, m.canary, probe, m.accuracy)
        why = why + why_probe if verdict is False else why
        reason = r.INSUFFICIENT_DATA
    if verdict is None:
        if status.deferrals >= MAX_DEFERRALS:
            text = f"judgement deferred {status.deferrals} times: {'; '.join(why)}; rolled back (fail closed)"
            _roll_back(i, plan, status, live, reason, text)
            return plan
        status.deferrals += 1
        status.judgeAt = _ts(now + timedelta(seconds=bake))
        plan.requeue_after = float(bake)
        plan.message = (
            f"canary {canary_name}: judgement deferred ({status.deferrals}/{MAX_DEFERRALS}) until "
            f"{status.judgeAt}: {'; '.join(why)}"
        )
        plan.conditions.append((r.CANARY, "True", reason, plan.message[:4096]))
        return plan
    assert m.stable is not None
    assert m.canary is not None
    text = numbers(m.stable, m.canary)
    if m.accuracy is not None:
        text += f"; accuracy probe {m.accuracy:.3g}"
    if verdict:
        status.phase, status.verdict = PROMOTING, f"passed: {text}"[:2048]
        plan.stable_engine, plan.canary_replicas = None, None
        plan.keep = canary_name
        plan.message = f"canary revision {new} passed its gates, promoting: {text}"
        plan.conditions.append((r.CANARY, "True", r.CANARY_PROMOTING, plan.message[:4096]))
        plan.conditions.append((r.ROLLED_BACK, "False", r.CANARY_PROMOTING, plan.message[:4096]))
        plan.events.append(Event("Normal", "CanaryPassed", plan.message[:1024]))
        return plan
    _roll_back(i, plan, status, live, r.CANARY_FAILED, f"failed {'; '.join(why)}: {text}")
    return plan


def _roll_back(
    i: CanaryInputs, plan: CanaryPlan, status: CanaryStatus, live: EngineStatus, reason: str, why: str
) -> None:
    status.phase, status.verdict = ROLLED_BACK, why[:2048]
    status.judgeAt = None
    plan.status, plan.stable_engine, plan.canary_replicas = status, live, None
    plan.delete = status.deployment or canary_deployment_name(i.stable_name)
    plan.verdict = "rolled_back"
    plan.message = (
        f"revision {status.revision} of {i.engine_name} rolled back, revision {live.revision} kept serving: "
        f"{why}; not retried until a newer revision is promoted or the spec changes"
    )[:4096]
    plan.conditions.append((r.CANARY, "False", reason, plan.message))
    plan.conditions.append((r.ROLLED_BACK, "True", reason, plan.message))
    plan.events.append(Event("Warning", "CanaryRolledBack", plan.message[:1024]))


def _settled(
    i: CanaryInputs,
    plan: CanaryPlan,
    prev: CanaryStatus | None,
    canary_name: str,
    live: EngineStatus | None,
    problem: str | None,
) -> None:
    """The stable Deployment serves the promoted revision (or there is none yet, or it can't be read)."""
    new = i.promoted.revision
    if problem is not None and i.stable is not None:
        message = f"{problem}: rolling revision {new} out directly, without a canary"
        plan.conditions.append((r.CANARY, "False", r.CANARY_SKIPPED, message))
    promoting = prev is not None and prev.phase == PROMOTING and prev.revision == new
    if promoting and prev is not None:
        if live is not None and available(i.stable, i.stable_replicas):
            plan.delete = canary_name if i.canary is not None else None
            plan.status = prev.model_copy(update={"phase": PROMOTED})
            message = f"revision {new} promoted: {i.stable_name} serves it; {prev.verdict}"[:4096]
            plan.conditions.append((r.CANARY, "False", r.CANARY_PROMOTED, message))
            plan.events.append(Event("Normal", "CanaryPromoted", message[:1024]))
        else:
            plan.keep = canary_name if i.canary is not None else None
            plan.verdict = "progressing"
            plan.message = f"promoting revision {new}: rolling {i.stable_name}, keeping {canary_name} serving"
            plan.conditions.append((r.CANARY, "True", r.CANARY_PROMOTING, plan.message))
        return
    if i.canary is not None:
        plan.delete = canary_name
    if prev is not None and prev.phase == ROLLED_BACK and prev.revision != new:
        plan.conditions.append((r.ROLLED_BACK, "False", r.DEPLOYMENT_AVAILABLE, f"serving revision {new}"))
