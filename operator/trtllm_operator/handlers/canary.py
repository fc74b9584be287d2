"""A canary's judgement inputs, gathered only when reconcile/canary.py says one is due: Prometheus'
answers for both tracks, and the optional accuracy probe's answers from the canary pods.

The probe reaches each Ready canary pod at ``podIP:port`` (what the operator, in the cluster network,
can reach). Simulation only, and explicit: with ``TRTLLM_SIM_ENDPOINTS_FILE`` set (the local cluster's
``.cluster/serving-endpoints.json``, written by the sim executor), ``podIP:port`` is looked up there
and the loopback address that really answers is used instead; without that setting pod IPs are used
as they are.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from trtllm_operator.api import constants as c
from trtllm_operator.api.service import (
    AccuracyProbe,
    CanaryStatus,
    InferenceServiceSpec,
    InferenceServiceStatus,
)
from trtllm_operator.handlers.runtime import BY_SERVICE, Runtime
from trtllm_operator.prometheus import Prometheus, PrometheusError
from trtllm_operator.reconcile.canary import (
    AnswerError,
    Measured,
    judgement_due,
    measurement,
    probe_score,
    queries,
    window_seconds,
)
from trtllm_operator.sim_endpoints import read_mapping

log = structlog.get_logger(__name__)
#: Simulation only (never set by the chart): a JSON file mapping serving pod "IP:port" to the loopback
#: address that answers for it, the local cluster's .cluster/serving-endpoints.json.
SIM_ENDPOINTS_ENV = "TRTLLM_SIM_ENDPOINTS_FILE"
PROBE_TIMEOUT = 30.0


def measure(
    rt: Runtime,
    namespace: str,
    service: str,
    canary: CanaryStatus,
    probe: AccuracyProbe | None,
    port: int,
    model: str,
    now: datetime,
) -> Measured:
    url = rt.settings.prometheus_url
    if not url:
        return Measured(configured=False)
    prometheus, window, at = Prometheus(url), window_seconds(canary, now), now.timestamp()
    tracks = {}
    try:
        for track, revision in (("stable", canary.baselineRevision), ("canary", canary.revision)):
            answers: dict[str, str | bytes] = {
                name: prometheus.query(q, at)
                for name, q in queries(namespace, service, track, revision, window).items()
            }
            tracks[track] = measurement(revision, answers)
    except (PrometheusError, AnswerError) as error:
        log.warning("canary metrics unavailable", namespace=namespace, service=service, error=str(error))
        return Measured(configured=True, problem=str(error))
    accuracy, problem = None, None
    if probe is not None:
        accuracy, problem = _probe(rt, namespace, service, canary.revision, probe, port, model)
    log.info(
        "canary measured", namespace=namespace, service=service, window_s=window, accuracy=accuracy, **{
            k: v.model_dump(exclude_none=True) for k, v in tracks.items()
        },
    )  # fmt: skip
    return Measured(
        configured=True,
        stable=tracks["stable"],
        canary=tracks["canary"],
        accuracy=accuracy,
        accuracy_problem=problem,
    )


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conditions)


def _probe(
    rt: Runtime,
    namespace: str,
    service: str,
    revision: int,
    probe: AccuracyProbe,
    port: int,
    model: str,
) -> tuple[float | None, str | None]:
    """Each prompt goes to the Ready canary pods in turn; the score is the share of matching answers."""
    pods = [
        p
        for p in rt.caches.canary_pods.by_index(BY_SERVICE, f"{namespace}/{service}")
        if _ready(p)
        and ((p.get("metadata") or {}).get("labels") or {}).get(c.LABEL_REVISION) == str(revision)
    ]
    addresses = [
        f"{ip}:{port}" for p in pods if isinstance(ip := (p.get("status") or {}).get("podIP"), str) and ip
    ]
    if not addresses:
        return None, "accuracy probe: no Ready canary pod with an IP"
    sim_file = os.environ.get(SIM_ENDPOINTS_ENV, "")
    mapping = read_mapping(Path(sim_file)) if sim_file else {}
    answers: list[str | None] = []
    errors = 0
    for index, prompt in enumerate(probe.prompts):
        target = addresses[index % len(addresses)]
        address = mapping.get(target, target)
        body = {"model": model, "messages": [{"role": "user", "content": prompt.prompt}],
                "max_tokens": probe.maxTokens}  # fmt: skip
        request = urllib.request.Request(
            f"http://{address}/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT) as reply:  # noqa: S310
                answer = json.loads(reply.read(1 << 20))
            content = answer["choices"][0]["message"]["content"]
            answers.append(content if isinstance(content, str) else None)
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError):
            errors += 1
            answers.append(None)
    problem = f"accuracy probe: {errors} of {len(answers)} prompts got no answer" if errors else None
    return probe_score(probe, answers), problem


def judgement_inputs(
    rt: Runtime, namespace: str, name: str, obj: dict[str, Any], now: datetime
) -> Measured | None:
    """Measured inputs when this service's canary judgement is due, else None (no query at all)."""
    try:
        status = InferenceServiceStatus.model_validate(obj.get("status") or {})
        spec = InferenceServiceSpec.model_validate(obj.get("spec") or {})
    except ValueError:
        return None
    canary, settings = status.canary, spec.rollout.canary
    if canary is None or settings is None or not judgement_due(canary, now):
        return None
    model = spec.servedModelName or name
    return measure(rt, namespace, name, canary, settings.accuracyProbe, spec.port, model, now)
