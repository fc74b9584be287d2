"""The control loop at a thousand engines, on the local control plane, in ONE run (issue: "a control loop
that holds at a thousand engines").

Phases, each against a baseline measured in the same run (these machines are noisy):

1. fleet   — a generated fleet of N GPU nodes (GFD labels) that only this run's operator sees;
2. floor   — with no operator: TRTEngine create round trip, and create → seen on a separate watch;
3. create  — with the operator (leader election on, as deployed): E engines created at a steady rate;
             create → build Job seen on a watch, p50/p99, and the ratio to the floor;
4. steady, building — every build pod Running (the sim executor is off in this namespace, so builds
             stay in flight): the operator's own API requests by verb, per engine per minute, in
             consecutive one-minute windows (flat over time, 0 reads), with a resync inside the window;
5. ready   — the benchmark plays the kubelet and finishes every build pod with a valid result, so all
             E engines become Ready; then the same steady-state measurement;
6. rss     — the operator's resident memory with E engines (and their Jobs and pods) cached;
7. restart — a new operator process over E Ready engines: its writes until its queue is drained (0);
8. failover — two replicas; SIGKILL the leader with a build in flight and a new engine created at that
             moment; time until the standby creates its Job, in lease durations, and duplicate Jobs.

The operator's requests are counted by the operator itself (``trtllm_operator_api_requests_total``:
every HTTP request of its one client, by verb and code), read from its /metrics. The Lease's own
requests (get + update every retry period, whatever the number of engines) are reported apart.

Usage: python benchmarks/scale.py [--engines 1000] [--nodes 1000] [--window 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from run import engine as run_engine  # noqa: E402  (benchmarks/run.py: one benchmark engine, one pct)
from run import pct  # noqa: E402
from tests.support import free_port  # noqa: E402

from trtllm_operator.dev.cluster import LocalCluster, apply_nodes  # noqa: E402
from trtllm_operator.dev.fleet import fleet_nodes, generate_fleet  # noqa: E402

GROUP, VERSION, PLURAL = "trtllm.dev", "v1alpha1", "trtengines"
BUILD = "trtllm.dev/component=build"
TARGET_CC = "9.0"
LEASE = {"TRTLLM_LEASE_DURATION_SECONDS": "15", "TRTLLM_RENEW_DEADLINE_SECONDS": "10"}


def log(message: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {message}", flush=True)


def engine(name: str) -> dict[str, Any]:
    """run.py's benchmark engine on one GPU, pinned to the compute capability the results report."""
    return run_engine(name, parallelism={"tensor": 1}, target={"computeCapability": TARGET_CC})


def success_message(name: str, job: Any) -> str:
    """What a build pod reports when it built and verified an engine (checked like any real result)."""
    revision = job.metadata.labels.get("trtllm.dev/build-config-hash", "h")
    uri = f"pvc://engines/engines/{name}/{revision}"
    return json.dumps(
        {
            "ok": True,
            "reason": "BuildSucceeded",
            "engine": {
                "uri": uri,
                "sha256": "0" * 64,
                "size": 1,
                "files": 1,
                "trtllm": "1.2.0",
                "gpu": "NVIDIA H100 80GB HBM3",
                "cc": TARGET_CC,
                "manifest": f"{uri}/engine-manifest.json",
            },
        },
        separators=(",", ":"),
    )


class Seen:
    """First-seen times from watches: engines by name, build Jobs by engine label."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.engines: dict[str, float] = {}
        self.jobs: dict[str, float] = {}
        self._watches: list[watch.Watch] = []
        for target in (self._follow_engines, self._follow_jobs):
            threading.Thread(target=target, daemon=True).start()
        time.sleep(1.0)

    def _stream(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        stream = watch.Watch()
        self._watches.append(stream)
        return stream.stream(func, *args, timeout_seconds=7200, **kwargs)

    def _follow_engines(self) -> None:
        custom = client.CustomObjectsApi(self.api)
        for event in self._stream(
            custom.list_namespaced_custom_object, GROUP, VERSION, self.namespace, PLURAL
        ):
            self.engines.setdefault(event["object"]["metadata"]["name"], time.perf_counter())

    def _follow_jobs(self) -> None:
        batch = client.BatchV1Api(self.api)
        for event in self._stream(batch.list_namespaced_job, self.namespace, label_selector=BUILD):
            self.jobs.setdefault(event["object"].metadata.labels["trtllm.dev/engine"], time.perf_counter())

    def stop(self) -> None:
        for stream in self._watches:
            stream.stop()


class Operator:
    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, selector: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "TRTLLM_MAX_CONCURRENT_BUILDS": "0",
            "TRTLLM_RESYNC_SECONDS": "120",  # a resync inside each measured window (it must cost no read)
            "TRTLLM_NODE_SELECTOR": selector,
            "PYTHONPATH": str(REPO / "operator"),
            **LEASE,
        }
        argv = [sys.executable, "-m", "trtllm_operator.cli", "run", "--namespace", namespace]
        argv += ["--health-addr", f"127.0.0.1:{self.port}"]
        with log_path.open("ab") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), ""
        except OSError:
            return 0, ""

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        code, body = self.get("/metrics")
        out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        if code == 200:
            for family in text_string_to_metric_families(body):
                for s in family.samples:
                    out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def requests(self) -> dict[str, float]:
        by_verb: dict[str, float] = {}
        for (name, labels), value in self.samples().items():
            if name == "trtllm_operator_api_requests_total":
                verb = dict(labels)["verb"]
                by_verb[verb] = by_verb.get(verb, 0.0) + value
        return by_verb

    def value(self, name: str) -> float:
        return sum(v for (n, _), v in self.samples().items() if n == name)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return float("nan")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(30)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def latency(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(values, 0.5), 1), "p99_ms": round(pct(values, 0.99), 1), "n": len(values)}


def settle(operator: Operator, timeout: float = 600) -> None:
    """The operator's queue is empty and nothing is being reconciled."""

    def idle() -> bool:
        return (
            operator.value("trtllm_operator_workqueue_depth") == 0
            and operator.value("trtllm_operator_workqueue_longest_running_processor_seconds") == 0
        )

    wait_until(idle, timeout, "the operator's queue to drain", interval=2.0)


def steady(operator: Operator, engines: int, window: float, minutes: float = 60.0) -> dict[str, Any]:
    """Requests by verb in consecutive windows, per engine per minute; the Lease's shown apart."""
    settle(operator)
    windows = []
    reconciles0 = operator.value("trtllm_operator_reconcile_total")
    end = time.monotonic() + window
    while time.monotonic() < end:
        before, t0 = operator.requests(), time.monotonic()
        time.sleep(min(minutes, max(1.0, end - time.monotonic())))
        after, seconds = operator.requests(), time.monotonic() - t0
        delta = {verb: after.get(verb, 0.0) - before.get(verb, 0.0) for verb in set(after) | set(before)}
        per = 60.0 / seconds / engines
        windows.append(
            {
                "seconds": round(seconds, 1),
                # The Lease: a get and an update per retry period, independent of the engines.
                "lease_get_update": delta.get("get", 0) + delta.get("update", 0),
                "reads_per_engine_min": round((delta.get("list", 0)) * per, 4),
                "writes_per_engine_min": round(
                    (delta.get("create", 0) + delta.get("patch", 0) + delta.get("delete", 0)) * per, 4
                ),
                "watch_reconnects": delta.get("watch", 0),
                "by_verb": {k: v for k, v in sorted(delta.items()) if v},
            }
        )
        log(f"  window: {windows[-1]}")
    return {
        "windows": windows,
        "reconciles_in_window": operator.value("trtllm_operator_reconcile_total") - reconciles0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = LocalCluster()
    cluster.up()
    cluster.apply_crds()
    kubeconfig = cluster.kubeconfig
    api = config.new_client_from_config(str(kubeconfig))
    core, custom, batch = client.CoreV1Api(api), client.CustomObjectsApi(api), client.BatchV1Api(api)
    log_dir = REPO / ".cluster" / "logs"
    namespace = f"scale-{uuid.uuid4().hex[:6]}"
    label = f"fleet-{namespace}"
    results: dict[str, Any] = {"engines": args.engines, "nodes": args.nodes, "window_s": args.window}
    operators: list[Operator] = []
    try:
        # 1. the fleet, seen by this run's operators only
        fleet = generate_fleet(args.nodes)
        for pool in fleet.pools:
            pool.labels["trtllm.dev/fleet"] = label
            pool.name = f"{label[:20]}-{pool.name}"
        t0 = time.perf_counter()
        apply_nodes(kubeconfig, fleet_nodes(fleet), wait=False)
        results["fleet_register_s"] = round(time.perf_counter() - t0, 1)
        log(f"{args.nodes} nodes registered in {results['fleet_register_s']} s")
        core.create_namespace({"metadata": {"name": namespace, "labels": {"sim.trtllm.dev/executor": "off"}}})
        for claim in ("engines", "models"):  # where engines go, and where the model and calibration are
            core.create_namespaced_persistent_volume_claim(
                namespace,
                {
                    "metadata": {"name": claim},
                    "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Ti"}}},
                },
            )
        seen = Seen(api, namespace)

        # 2. floor: no operator
        floor = []
        for index in range(args.floor):
            started = time.perf_counter()
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, engine(f"floor-{index}")
            )
            floor.append((f"floor-{index}", started, time.perf_counter()))
        wait_until(lambda: all(n in seen.engines for n, _, _ in floor), 60, "floor engines on the watch")
        results["floor_create"] = latency([end - start for _, start, end in floor])
        results["floor_watch"] = latency([seen.engines[n] - start for n, start, _ in floor])
        for name, _, _ in floor:
            custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        log(f"floor {results['floor_watch']}")

        # 3. the operator; E engines at a steady rate
        selector = f"trtllm.dev/fleet={label}"
        operator = Operator(kubeconfig, namespace, log_dir / "scale-operator.log", selector)
        operators.append(operator)
        wait_until(lambda: operator.get("/readyz")[0] == 200, 120, "the operator ready")
        wait_until(lambda: operator.value("trtllm_operator_leader") == 1, 60, "the operator leading")
        names = [f"e{index:04d}" for index in range(args.engines)]
        created: dict[str, float] = {}
        t0 = time.perf_counter()
        for index, name in enumerate(names):
            due = t0 + index / args.rate
            if (pause := due - time.perf_counter()) > 0:
                time.sleep(pause)
            created[name] = time.perf_counter()
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, engine(name))
        wait_until(lambda: all(n in seen.jobs for n in names), 1800, "every engine's build Job")
        results["create_rate_per_s"] = args.rate
        results["create_to_job"] = latency([seen.jobs[n] - created[n] for n in names])
        results["ratio_job_p50_vs_floor_p50"] = round(
            results["create_to_job"]["p50_ms"] / results["floor_watch"]["p50_ms"], 1
        )
        log(f"create→Job {results['create_to_job']} ({results['ratio_job_p50_vs_floor_p50']}x the floor)")

        # 4. steady state with every build in flight
        def running() -> int:
            pods = core.list_namespaced_pod(namespace, label_selector=BUILD).items
            return sum(1 for p in pods if p.status.phase == "Running")

        wait_until(lambda: running() >= args.engines, 1800, "every build pod Running")
        log("steady state, building")
        results["steady_building"] = steady(operator, args.engines, args.window)
        results["rss_mb_building"] = operator.rss_mb()

        # 5. every build finishes with a valid result -> E Ready engines
        jobs = {
            j.metadata.labels["trtllm.dev/engine"]: j
            for j in batch.list_namespaced_job(namespace, label_selector=BUILD).items
        }
        for pod in core.list_namespaced_pod(namespace, label_selector=BUILD).items:
            name = pod.metadata.labels["trtllm.dev/engine"]
            annotations = {
                "sim.trtllm.dev/exit-code": "0",
                "sim.trtllm.dev/termination-message": success_message(name, jobs[name]),
            }
            core.patch_namespaced_pod(
                pod.metadata.name, namespace, {"metadata": {"annotations": annotations}}
            )

        def ready() -> int:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
            return sum(1 for o in items if (o.get("status") or {}).get("phase") == "Ready")

        t0 = time.perf_counter()
        wait_until(lambda: ready() >= args.engines, 1800, "every engine Ready", interval=5.0)
        results["all_ready_s"] = round(time.perf_counter() - t0, 1)
        log(f"all {args.engines} Ready in {results['all_ready_s']} s; steady state, ready")
        results["steady_ready"] = steady(operator, args.engines, args.window)
        results["rss_mb_ready"] = operator.rss_mb()

        # 7. restart over E Ready engines: nothing to write
        operator.stop()
        restarted = Operator(kubeconfig, namespace, log_dir / "scale-operator-restart.log", selector)
        operators.append(restarted)
        t0 = time.perf_counter()
        wait_until(lambda: restarted.get("/readyz")[0] == 200, 300, "the restarted operator's caches")
        results["restart_cache_sync_s"] = round(time.perf_counter() - t0, 1)
        wait_until(
            lambda: restarted.value("trtllm_operator_leader") == 1, 120, "the restarted operator leading"
        )
        settle(restarted)
        requests = restarted.requests()
        results["restart_requests"] = {k: v for k, v in sorted(requests.items()) if v}
        results["restart_writes"] = sum(requests.get(v, 0) for v in ("create", "patch", "delete"))
        results["restart_reconciles"] = restarted.value("trtllm_operator_reconcile_total")
        log(f"restart: {results['restart_requests']}, reconciles {results['restart_reconciles']}")

        # 8. failover: a standby takes over from a SIGKILLed leader with a build in flight
        standby = Operator(kubeconfig, namespace, log_dir / "scale-operator-standby.log", selector)
        operators.append(standby)
        wait_until(lambda: standby.get("/readyz")[0] == 200, 300, "the standby's caches")
        restarted.stop(signal.SIGKILL)
        killed = time.perf_counter()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, engine("after-failover"))
        wait_until(lambda: "after-failover" in seen.jobs, 120, "the standby's first Job")
        took = seen.jobs["after-failover"] - killed
        lease = float(LEASE["TRTLLM_LEASE_DURATION_SECONDS"])
        results["failover_s"] = round(took, 1)
        results["failover_in_lease_durations"] = round(took / lease, 2)
        all_jobs = batch.list_namespaced_job(namespace, label_selector=BUILD).items
        per_engine: dict[str, int] = {}
        for job in all_jobs:
            key = job.metadata.labels["trtllm.dev/engine"]
            per_engine[key] = per_engine.get(key, 0) + 1
        results["jobs_total"] = len(all_jobs)
        results["duplicate_jobs"] = sum(count - 1 for count in per_engine.values() if count > 1)
        log(
            f"failover {took:.1f} s = {results['failover_in_lease_durations']} lease durations; "
            f"duplicate Jobs {results['duplicate_jobs']}"
        )
        seen.stop()
    finally:
        for operator in operators:
            operator.stop(signal.SIGKILL)
        core.delete_collection_node(label_selector=f"trtllm.dev/fleet={label}")
        core.delete_namespace(namespace)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engines", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--floor", type=int, default=50, help="engines created without an operator")
    parser.add_argument("--rate", type=float, default=10.0, help="engines created per second")
    parser.add_argument("--window", type=float, default=300.0, help="seconds of each steady-state window")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = run(args)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
