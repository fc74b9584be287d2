"""The demo's autoscaling step: load on an InferenceService's endpoints scales it up, and back down.

Real: Prometheus and the Prometheus Adapter (the cluster's "metrics" add-on), the API aggregator,
kube-controller-manager's HPA. Simulated: the servers and their load (stand-in trtllm-serve; requests
queue once a replica's batch is full).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trtllm_operator.dev.cluster import ClusterError
from trtllm_operator.dev.load import Load, kubectl_fetch, mapping_file

if TYPE_CHECKING:
    from trtllm_operator.dev.demo import Demo

SERVICE, MODEL, MANIFEST = "llama-8b", "Llama-3.1-8B-Instruct", "60-autoscaled-inferenceservice.yaml"


def _service(demo: Demo) -> dict[str, Any]:
    from trtllm_operator.dev.demo import NAMESPACE

    out = demo.kubectl("get", "trtis", SERVICE, "-n", NAMESPACE, "-o", "json", show=False, check=False).stdout
    return json.loads(out) if out else {}


def _row(demo: Demo) -> dict[str, Any]:
    rows = (_service(demo).get("status") or {}).get("autoscaling") or [{}]
    return dict(rows[0])


def _until(demo: Demo, done: Callable[[dict[str, Any]], bool], timeout: float) -> bool:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        row = _row(demo)
        line = (
            f"  HPA: {row.get('currentReplicas')} -> {row.get('desiredReplicas')} replicas, "
            f"{row.get('metric')} = {row.get('current')} per replica (target {row.get('target')})"
        )
        if line != last and row.get("metric"):
            print(line, flush=True)
            last = line
        if done(row):
            return True
        time.sleep(2)
    return False


def autoscaling_step(demo: Demo, say: Callable[[str], None]) -> bool:
    """Returns whether it scaled up to 3 under load and back down to 1 without it."""
    from trtllm_operator.dev.demo import DEMO, NAMESPACE

    say("9. Autoscaling on inference load (real Prometheus, Prometheus Adapter and HPA; simulated servers)")
    try:
        demo.cluster.ensure_addons("metrics")  # started with the operator (step 4); a no-op here
    except ClusterError as error:
        print(f"the metrics add-on could not start: {error}")
        return False
    demo.kubectl("apply", "-f", str(DEMO / MANIFEST))
    ready = _until(
        demo,
        lambda row: (
            row.get("current") == "0"
            and any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (_service(demo).get("status") or {}).get("conditions") or []
            )
        ),
        120,
    )
    if not ready:
        print("(the autoscaled InferenceService did not get Ready with its metric)")
        return False
    print("  12 clients start sending requests through the Service's ready endpoints...")

    def kubectl(*args: str) -> str:
        return demo.kubectl(*args, show=False, check=False).stdout

    fetch = kubectl_fetch(kubectl, NAMESPACE, SERVICE)
    mapping = mapping_file(demo.cluster.state_dir)
    load = Load(
        fetch, mapping, model=MODEL, threads=12, prompt="Hello " * 16, max_tokens=400, refresh_seconds=2
    )
    with load:
        up = _until(demo, lambda row: row.get("currentReplicas") == 3, 180)
        print(f"  {load.completed} requests completed")
    demo.kubectl("get", "hpa", SERVICE + "-sm80", "-n", NAMESPACE)
    print("  ...load stopped")
    down = _until(demo, lambda row: row.get("currentReplicas") == 1, 180)
    demo.kubectl("get", "trtis", SERVICE, "-n", NAMESPACE)
    return up and down
