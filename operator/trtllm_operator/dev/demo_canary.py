"""The demo's canary steps: a new engine revision promoted by its live gates, then a bad one rolled back.

Real: the operator's canary (Deployments per track behind one Service, EndpointSlices), Prometheus (the
"metrics" add-on) scraping the serving pods, the PromQL judgement over the bake window, kstatus, Argo
CD's health script (run in Lua 5.1 as Argo does).
Simulated: the servers (stand-in trtllm-serve) and so every number they report; revision 3's errors come
from the namespace's ``trtllm-sim`` ConfigMap knob ``TRTLLM_SIM_SERVE`` with ``revisions``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trtllm_operator.dev.load import Load, kubectl_fetch, mapping_file

if TYPE_CHECKING:
    from trtllm_operator.dev.demo import Demo

SERVICE, ENGINE, MANIFEST = "chat", "llama-8b-nvfp4", "70-canary-inferenceservice.yaml"
STABLE, CANARY = f"{SERVICE}-sm100", f"{SERVICE}-sm100-canary"


def _get(demo: Demo, kind: str, name: str) -> dict[str, Any]:
    from trtllm_operator.dev.demo import NAMESPACE

    out = demo.kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", show=False, check=False).stdout
    try:
        found = json.loads(out) if out else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _canary(demo: Demo) -> dict[str, Any]:
    return dict((_get(demo, "trtis", SERVICE).get("status") or {}).get("canary") or {})


def _condition(demo: Demo, type_: str) -> dict[str, Any]:
    conditions = (_get(demo, "trtis", SERVICE).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def _revision(demo: Demo, deployment: str) -> str:
    template = (_get(demo, "deploy", deployment).get("spec") or {}).get("template") or {}
    return str(((template.get("metadata") or {}).get("labels") or {}).get("trtllm.dev/revision", ""))


def _show_tracks(demo: Demo) -> None:
    from trtllm_operator.dev.demo import NAMESPACE

    selector = f"trtllm.dev/inference-service={SERVICE}"
    columns = "trtllm.dev/track,trtllm.dev/revision"
    demo.kubectl("get", "deploy,pods", "-n", NAMESPACE, "-l", selector, "-L", columns)


def _track_line(name: str, track: dict[str, Any]) -> str:
    def num(key: str, fmt: str) -> str:
        value = track.get(key)
        return format(value, fmt) if isinstance(value, int | float) else "n/a"

    label = " (SIMULATED)" if track.get("simulated") else ""
    return (
        f"    {name} r{track.get('revision')}: {num('requests', '.0f')} requests, error rate "
        f"{num('errorRate', '.3f')}, p95 {num('p95LatencySeconds', '.3f')} s, "
        f"{num('tokensPerSecondPerReplica', '.1f')} tok/s per replica{label}"
    )


def _judgement(demo: Demo) -> None:
    canary = _canary(demo)
    simulated = any((canary.get(t) or {}).get("simulated") for t in ("stable", "canary"))
    source = "from the stand-in servers, SIMULATED" if simulated else "measured"
    print(f"  the judgement (Prometheus over the bake window; the numbers are {source}):")
    for track in ("stable", "canary"):
        print(_track_line(track, canary.get(track) or {}))
    print(f"    verdict: {canary.get('verdict')} (deferred: {canary.get('deferrals', 0)})")


def _bump(demo: Demo) -> None:
    """Change the engine's spec (the calibration seed) so that it builds a new revision."""
    from trtllm_operator.dev.demo import NAMESPACE

    seed = int(((_get(demo, "trte", ENGINE).get("spec") or {}).get("calibration") or {}).get("seed", 1234))
    patch = json.dumps({"spec": {"calibration": {"seed": seed + 1}}})
    demo.kubectl("patch", "trte", ENGINE, "-n", NAMESPACE, "--type", "merge", "-p", patch)


def _serve_knob(demo: Demo, knob: dict[str, Any]) -> None:
    from trtllm_operator.dev.demo import NAMESPACE

    patch = json.dumps({"data": {"TRTLLM_SIM_SERVE": json.dumps(knob)}})
    demo.kubectl("patch", "configmap", "trtllm-sim", "-n", NAMESPACE, "--type", "merge", "-p", patch)


def _follow(demo: Demo, revision: int, timeout: float, load: Load) -> str:
    """Narrate the canary of ``revision`` until it is promoted or rolled back; returns its last phase
    (an earlier canary's status, still there until the new one starts, is not this one's)."""
    deadline, last, shown = time.monotonic() + timeout, "", False
    while time.monotonic() < deadline:
        canary = _canary(demo)
        phase = str(canary.get("phase") or "") if canary.get("revision") == revision else ""
        if phase != last and phase:
            share = canary.get("trafficPercent")
            print(
                f"  canary r{canary.get('revision')} vs stable r{canary.get('baselineRevision')}: {phase}"
                + (f" ({share}% of the pods)" if share is not None else ""),
                flush=True,
            )
            last = phase
        if phase == "Baking" and canary.get("bakingSince") and not shown:
            print(
                f"  the canary pod is Ready: baking until {canary.get('judgeAt')}, then judged on Prometheus"
            )
            _show_tracks(demo)
            shown = True
        if phase in ("Promoted", "RolledBack"):
            return phase
        time.sleep(1)
    print(f"  (gave up after {timeout:.0f} s; load so far: {load.summary()})")
    return last


def _verdicts(demo: Demo) -> None:
    """kstatus (the real library, the binary built with the cluster) and Argo CD's health script."""
    from trtllm_operator.dev.demo import NAMESPACE

    demo.kubectl("get", "trtis", SERVICE, "-n", NAMESPACE)
    kstatus = demo.bin / "kstatus"
    if kstatus.exists():
        result = subprocess.run(
            [str(kstatus)], input=json.dumps(_get(demo, "trtis", SERVICE)), capture_output=True, text=True
        )
        try:
            verdict = json.loads(result.stdout)
            print(f"  kstatus: {verdict.get('status')} — {verdict.get('message', '')}")
        except ValueError:
            print(f"  kstatus: no verdict ({result.stderr.strip()[:200]})")
    try:  # Argo CD's view: the repo's health.lua in a Lua 5.1 VM shaped like Argo's (lupa, a dev dependency)
        from trtllm_operator.dev.argocd_health import run_health, script_of

        health = run_health(script_of("InferenceService"), _get(demo, "trtis", SERVICE))
        print(f"  Argo CD health (the repo's health.lua): {health.get('status')} — {health.get('message')}")
    except ImportError:
        print("  Argo CD health: not evaluated (lupa is not installed: pip install -e '.[dev]')")


def _load(demo: Demo) -> Load:
    from trtllm_operator.dev.demo import NAMESPACE

    def kubectl(*args: str) -> str:
        return demo.kubectl(*args, show=False, check=False).stdout

    return Load(
        kubectl_fetch(kubectl, NAMESPACE, SERVICE),
        mapping_file(demo.cluster.state_dir),
        model="Llama-3.1-8B-NVFP4",
        threads=3,
        refresh_seconds=2.0,
    )


def canary_steps(demo: Demo, say: Callable[[str], None]) -> bool:
    """Returns whether the next revision was promoted, and the one after (erroring) rolled back with the
    stable kept and no failed request to a stable pod."""
    from trtllm_operator.dev.demo import DEMO, NAMESPACE

    say("10. Canary: a new engine revision promoted by live gates (real Prometheus + judgement)")
    _serve_knob(demo, {})  # healthy servers for every revision
    # A demo run again on a running cluster starts from a fresh service (the last run left it rolled back).
    demo.kubectl("delete", "trtis", SERVICE, "-n", NAMESPACE, "--ignore-not-found", "--wait", show=False)
    demo.kubectl("apply", "-f", str(DEMO / MANIFEST))
    demo.wait(lambda: _condition(demo, "Ready").get("status") == "True", 120, "the canaried service Ready")
    base = int(_revision(demo, STABLE) or 0)
    print(f"  {SERVICE} serves {ENGINE} revision {base} on 2 pods")
    print(
        "  3 clients send requests through the Service's ready endpoints; a spec change rebuilds the engine:"
    )
    with _load(demo) as load:
        _bump(demo)
        promoted = _follow(demo, base + 1, 300, load) == "Promoted"
        if promoted:
            _judgement(demo)
            demo.wait(
                lambda: (
                    not _get(demo, "deploy", CANARY) and _condition(demo, "Ready").get("status") == "True"
                ),
                120,
                "the canary Deployment gone",
            )
    print(f"  requests by track: {load.summary()}")
    if load.failed["stable"]:
        print(
            f"  ({load.failed['stable']} requests failed on old stable pods as the rolling update to "
            f"revision {base + 1} removed them: this load generator re-reads the endpoints every 2 s)"
        )
    stable_rev = int(_revision(demo, STABLE) or 0)
    _show_tracks(demo)
    canary_left = bool(_get(demo, "deploy", CANARY))
    print(f"  stable Deployment {STABLE} now on revision {stable_rev}; canary Deployment left: {canary_left}")
    promoted = promoted and stable_rev == base + 1 and not canary_left

    say("11. Canary rollback: the next revision's servers fail half their requests (SIMULATED knob)")
    bad = stable_rev + 1
    _serve_knob(demo, {"errorRate": 0.5, "revisions": [bad]})
    with _load(demo) as load:
        _bump(demo)
        rolled = _follow(demo, bad, 300, load) == "RolledBack"
        demo.wait(lambda: not _get(demo, "deploy", CANARY), 120, "the canary Deployment deleted")
        time.sleep(2)  # the stable keeps answering after the rollback
    print(f"  requests by track: {load.summary()}")
    stable_failures = load.stable_failures
    print(f"  failed requests to stable pods: {len(stable_failures)} {stable_failures[:3] or ''}")
    if rolled:
        _judgement(demo)
        print(f"  RolledBack: {_condition(demo, 'RolledBack').get('message', '')}")
    final_rev = int(_revision(demo, STABLE) or 0)
    canary_left = bool(_get(demo, "deploy", CANARY))
    print(
        f"  stable Deployment {STABLE} still on revision {final_rev}; canary Deployment left: {canary_left}"
    )
    _verdicts(demo)
    demo.kubectl("get", "events", "-n", NAMESPACE, "--field-selector", f"involvedObject.name={SERVICE}")
    rolled = rolled and final_rev == stable_rev and not canary_left and not stable_failures
    if not promoted:
        print(f"(revision {base + 1} was not promoted, or the canary was not cleaned up)")
    if not rolled:
        print(f"(revision {bad} was not rolled back with the stable kept on {stable_rev} and serving)")
    return promoted and rolled
