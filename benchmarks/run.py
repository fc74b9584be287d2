"""Operator latency and scale on the local control plane, as ratios against the API server's own floor.

Measured in ONE run, on the same machine, so the noisy absolute numbers cancel out:

* floor   — create a TRTEngine with no operator running: the create round trip, and the time until a
            separate watch sees it (the API server's write + fan-out floor);
* status  — with the operator: create → first status write (observedGeneration) seen on a watch;
* job     — create → build Job seen on a watch (placement + render + 3 creates);
* burst   — N engines created at once: time until every one has a Job;
* scale   — the same burst against a generated fleet of many GPU nodes (the operator sees only those, via
            TRTLLM_NODE_SELECTOR), to show placement does not LIST nodes per reconcile.

Usage: python benchmarks/run.py [--engines 20] [--nodes 500] [--json out.json]
The engines name a PVC that doesn't exist, so their build pods stay Pending and no builder runs while
measuring: the timings stop at the Job's creation and the machine stays quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from trtllm_operator.dev.cluster import LocalCluster, apply_nodes  # noqa: E402
from trtllm_operator.dev.fleet import fleet_nodes, generate_fleet  # noqa: E402

GROUP, VERSION, PLURAL = "trtllm.dev", "v1alpha1", "trtengines"


def engine(name: str, **spec: Any) -> dict[str, Any]:
    """A benchmark TRTEngine; ``spec`` replaces top-level spec fields (benchmarks/scale.py pins a GPU)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TRTEngine",
        "metadata": {"name": name},
        "spec": {
            "model": {"source": "pvc://models/llama", "architecture": "LlamaForCausalLM"},
            "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
            "precision": "fp8",
            "parallelism": {"tensor": 2},
            "calibration": {"dataset": "pvc://models/calib"},
            "storage": {"existingClaim": "engines"},
            **spec,
        },
    }


class Seen:
    """Timestamps of the first watch event per name (engines with status, Jobs by engine label)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.created: dict[str, float] = {}
        self.status: dict[str, float] = {}
        self.jobs: dict[str, float] = {}
        self._stop = threading.Event()
        for target in (self._engines, self._jobs):
            threading.Thread(target=target, daemon=True).start()
        time.sleep(1.0)

    def _engines(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        stream = watch.Watch()
        for event in stream.stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL, timeout_seconds=600
        ):
            now = time.perf_counter()
            obj = event["object"]
            name = obj["metadata"]["name"]
            self.created.setdefault(name, now)
            if (obj.get("status") or {}).get("observedGeneration"):
                self.status.setdefault(name, now)
            if self._stop.is_set():
                return

    def _jobs(self) -> None:
        batch = client.BatchV1Api(self.api)
        stream = watch.Watch()
        for event in stream.stream(batch.list_namespaced_job, self.namespace, timeout_seconds=600):
            labels = event["object"].metadata.labels or {}
            if "trtllm.dev/engine" in labels:
                self.jobs.setdefault(labels["trtllm.dev/engine"], time.perf_counter())
            if self._stop.is_set():
                return

    def stop(self) -> None:
        self._stop.set()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(pct(values, 0.5), 1),
        "p95_ms": round(pct(values, 0.95), 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
        "n": len(values),
    }


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def start_operator(
    kubeconfig: Path, namespace: str, log: Path, selector: str = ""
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "TRTLLM_MAX_CONCURRENT_BUILDS": "0",
        "TRTLLM_RESYNC_SECONDS": "300",
        "PYTHONPATH": str(REPO / "operator"),
    }
    if selector:
        env["TRTLLM_NODE_SELECTOR"] = selector
    return subprocess.Popen(
        [sys.executable, "-m", "trtllm_operator.cli", "run", "--namespace", namespace],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def measure(
    api: client.ApiClient, kubeconfig: Path, engines: int, nodes: int, log_dir: Path
) -> dict[str, Any]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": namespace}})
    results: dict[str, Any] = {"engines": engines, "nodes": nodes}
    try:
        # Floor: no operator watching this namespace.
        seen = Seen(api, namespace)
        writes = []
        for index in range(engines):
            started = time.perf_counter()
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, engine(f"floor-{index}")
            )
            writes.append((f"floor-{index}", started, time.perf_counter()))
        wait_until(lambda: all(n in seen.created for n, _, _ in writes), 30)
        results["floor_create"] = summary([end - start for _, start, end in writes])
        results["floor_watch"] = summary([seen.created[n] - start for n, start, _ in writes])

        # Operator: one engine at a time, on the default fleet.
        operator = start_operator(kubeconfig, namespace, log_dir / "bench-operator.log")
        try:
            wait_until(
                lambda: all(n in seen.status for n, _, _ in writes), 60
            )  # it catches up the floor ones
            single = []
            for index in range(engines):
                name = f"one-{index}"
                started = time.perf_counter()
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, engine(name))
                wait_until(lambda name=name: name in seen.jobs and name in seen.status, 30)
                single.append((name, started))
            results["operator_status"] = summary([seen.status[n] - s for n, s in single if n in seen.status])
            results["operator_job"] = summary([seen.jobs[n] - s for n, s in single if n in seen.jobs])
            started = time.perf_counter()
            burst = [f"burst-{i}" for i in range(engines)]
            for name in burst:
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, engine(name))
            wait_until(lambda: all(n in seen.jobs for n in burst), 120)
            results["burst_all_jobs_s"] = round(
                max(seen.jobs.get(n, float("nan")) for n in burst) - started, 2
            )
        finally:
            operator.terminate()
            operator.wait(15)
        seen.stop()

        # Scale: a generated fleet the operator alone sees.
        if nodes:
            label = f"bench-{namespace}"
            fleet = generate_fleet(nodes)
            for pool in fleet.pools:
                pool.labels["trtllm.dev/fleet"] = label
                pool.name = f"{label[:20]}-{pool.name}"
            t0 = time.perf_counter()
            apply_nodes(kubeconfig, fleet_nodes(fleet), wait=False)
            results["scale_node_create_s"] = round(time.perf_counter() - t0, 1)
            scale_ns = f"{namespace}-s"
            core.create_namespace({"metadata": {"name": scale_ns}})
            seen = Seen(api, scale_ns)
            operator = start_operator(
                kubeconfig, scale_ns, log_dir / "bench-operator-scale.log", f"trtllm.dev/fleet={label}"
            )
            try:
                time.sleep(3)
                scale = []
                for index in range(engines):
                    name = f"scale-{index}"
                    started = time.perf_counter()
                    custom.create_namespaced_custom_object(GROUP, VERSION, scale_ns, PLURAL, engine(name))
                    wait_until(lambda name=name: name in seen.jobs, 30)
                    scale.append((name, started))
                results["scale_operator_job"] = summary(
                    [seen.jobs[n] - s for n, s in scale if n in seen.jobs]
                )
            finally:
                operator.terminate()
                operator.wait(15)
                seen.stop()
                core.delete_collection_node(label_selector=f"trtllm.dev/fleet={label}")
                core.delete_namespace(scale_ns)
    finally:
        core.delete_namespace(namespace)
    floor = results["floor_watch"]["p50_ms"]
    results["ratio_status_vs_floor_p50"] = round(results["operator_status"]["p50_ms"] / floor, 1)
    results["ratio_job_vs_floor_p50"] = round(results["operator_job"]["p50_ms"] / floor, 1)
    if "scale_operator_job" in results:
        results["ratio_scale_job_vs_default_job_p50"] = round(
            results["scale_operator_job"]["p50_ms"] / results["operator_job"]["p50_ms"], 2
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=int, default=20)
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    cluster = LocalCluster()
    cluster.up()
    cluster.apply_crds()
    api = config.new_client_from_config(str(cluster.kubeconfig))
    result = measure(api, cluster.kubeconfig, args.engines, args.nodes, cluster.state_dir / "logs")
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
