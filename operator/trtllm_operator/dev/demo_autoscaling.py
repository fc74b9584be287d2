"""The demo's autoscaling step: load on an InferenceService's endpoints scales it up, and back down.

Real: Prometheus and the Prometheus Adapter (the cluster's "metrics" add-on), the API aggregator,
kube-controller-manager's HPA. Simulated: the servers and their load (stand-in trtllm-serve; requests
queue once a replica's batch is full).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trtllm_operator.dev.cluster import ClusterError

if TYPE_CHECKING:
    from trtllm_operator.dev.demo import Demo

SERVICE, MODEL, MANIFEST = "llama-8b", "Llama-3.1-8B-Instruct", "60-autoscaled-inferenceservice.yaml"


class _Load:
    """Threads sending completions to the Service's ready endpoints (EndpointSlices -> loopback map)."""

    def __init__(self, demo: Demo, threads: int) -> None:
        self.demo, self.addresses, self.sent = demo, list[str](), 0
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(threads)]

    def refresh(self) -> None:
        from trtllm_operator.dev.demo import NAMESPACE

        out = self.demo.kubectl(
            "get", "endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={SERVICE}",
            "-o", "json", show=False, check=False,
        ).stdout  # fmt: skip
        mapping_file = self.demo.cluster.state_dir / "serving-endpoints.json"
        mapping = json.loads(mapping_file.read_text()) if mapping_file.exists() else {}
        found = []
        for item in (json.loads(out) if out else {}).get("items") or []:
            port = next((p["port"] for p in item.get("ports") or [] if p.get("name") == "http"), None)
            for endpoint in item.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") and port:
                    found += [
                        mapping[f"{a}:{port}"] for a in endpoint["addresses"] if f"{a}:{port}" in mapping
                    ]
        self.addresses = sorted(found)

    def _send(self, index: int) -> None:
        body = json.dumps({"model": MODEL, "prompt": "Hello " * 16, "max_tokens": 400}).encode()
        while not self.stop.is_set():
            addresses = self.addresses
            if not addresses:
                self.stop.wait(0.2)
                continue
            address = addresses[(index + self.sent) % len(addresses)]
            request = urllib.request.Request(
                f"http://{address}/v1/completions", body, {"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
                    response.read()
                self.sent += 1
            except OSError:
                self.stop.wait(0.2)  # a pod going away mid-request

    def __enter__(self) -> _Load:
        self.refresh()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _service(demo: Demo) -> dict[str, Any]:
    from trtllm_operator.dev.demo import NAMESPACE

    out = demo.kubectl("get", "trtis", SERVICE, "-n", NAMESPACE, "-o", "json", show=False, check=False).stdout
    return json.loads(out) if out else {}


def _row(demo: Demo) -> dict[str, Any]:
    rows = (_service(demo).get("status") or {}).get("autoscaling") or [{}]
    return dict(rows[0])


def _until(demo: Demo, done: Callable[[dict[str, Any]], bool], timeout: float, tick: Any = None) -> bool:
    deadline, last = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        if tick:
            tick()
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
        demo.cluster.ensure_addons("metrics")  # built on first use: about 7 minutes cold
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
    with _Load(demo, threads=12) as load:
        up = _until(demo, lambda row: row.get("currentReplicas") == 3, 180, tick=load.refresh)
        print(f"  {load.sent} requests completed")
    demo.kubectl("get", "hpa", SERVICE + "-sm80", "-n", NAMESPACE)
    print("  ...load stopped")
    down = _until(demo, lambda row: row.get("currentReplicas") == 1, 180)
    demo.kubectl("get", "trtis", SERVICE, "-n", NAMESPACE)
    return up and down
