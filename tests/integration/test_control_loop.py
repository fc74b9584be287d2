"""The control loop on the real control plane: the build limit under concurrency, leader election with two
replicas, and recovery from an API-server restart.

In these namespaces the sim executor is switched off (``sim.trtllm.dev/executor=off``): build pods stay
Running until the test finishes them as a kubelet would (``Kube.finish_pod``), so the test decides when a
build slot frees and nothing depends on how fast this machine runs builds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import watch

from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from trtllm_operator.api import constants as c
from trtllm_operator.dev.cluster import LocalCluster

BUILD = f"{c.LABEL_COMPONENT}={c.COMPONENT_BUILD}"
EXIT_INCOMPATIBLE_GPU = str(c.EXIT_INCOMPATIBLE_GPU)  # fatal: the Job fails at once and frees its slot


@pytest.fixture
def manual_builds(kube: Kube, namespace: str) -> str:
    kube.core.patch_namespace(namespace, {"metadata": {"labels": {"sim.trtllm.dev/executor": "off"}}})
    return namespace


class JobWatcher:
    """Every build Job's lifecycle in a namespace, from a watch: creation order and peak concurrency."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.created: list[str] = []  # engine names, in the order their Jobs appeared
        self.active: set[str] = set()
        self.peak = 0
        self.lock = threading.Lock()
        self._watch = watch.Watch()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped = True
        self._watch.stop()

    def _run(self) -> None:
        try:
            self._follow()
        except Exception:  # the stream is cut when the test stops watching
            if not self._stopped:
                raise

    def _follow(self) -> None:
        for event in self._watch.stream(
            self.kube.batch.list_namespaced_job, self.namespace, label_selector=BUILD, timeout_seconds=600
        ):
            job = event["object"]
            name, engine = job.metadata.name, job.metadata.labels[c.LABEL_ENGINE]
            finished = any(
                x.type in ("Complete", "Failed") and x.status == "True" for x in job.status.conditions or []
            )
            with self.lock:
                if event["type"] == "ADDED" and engine not in self.created:
                    self.created.append(engine)
                if event["type"] == "DELETED" or finished:
                    self.active.discard(name)
                else:
                    self.active.add(name)
                self.peak = max(self.peak, len(self.active))


def running_build_pods(kube: Kube, namespace: str) -> list[Any]:
    pods = kube.core.list_namespaced_pod(namespace, label_selector=BUILD).items
    return [
        p
        for p in pods
        if p.status.phase == "Running" and "sim.trtllm.dev/exit-code" not in (p.metadata.annotations or {})
    ]


def queued_message(engines: Engines, name: str) -> str:
    return str(engines.wait_condition(name, "Scheduled", "False", "Queued", timeout=60)["message"])


@pytest.mark.operator_env(TRTLLM_MAX_CONCURRENT_BUILDS="4", TRTLLM_WORKERS="4")
def test_build_limit_holds_with_12_engines_and_limit_4_in_fifo_order(
    kube: Kube, manual_builds: str, engines: Engines, operator: OperatorProcess
) -> None:
    names = [f"e{i:02d}" for i in range(12)]
    with JobWatcher(kube, manual_builds) as jobs:
        for name in names:
            engines.create(engine_manifest(name))
            # One at a time into the line, so FIFO order is the creation order.
            wait_for(lambda n=name: engines.condition(n, "Scheduled"), 60, what=f"{name} scheduled or queued")
        wait_for(lambda: len(jobs.created) == 4, 60, what="the first four build Jobs")
        assert "position 8 in line" in queued_message(engines, "e11")
        assert "position 1 in line" in queued_message(engines, "e04")
        assert engines.get("e11")["status"]["phase"] == "Queued"
        # Free the slots one build at a time, as builds finish; the next in line takes each slot.
        finished: set[str] = set()
        while len(finished) < len(names):
            pods = wait_for(
                lambda: [
                    p for p in running_build_pods(kube, manual_builds) if p.metadata.name not in finished
                ],
                90,
                what=f"a running build pod ({len(finished)} finished; Jobs so far: {jobs.created})",
            )
            pod = pods[0]
            created = len(jobs.created)
            kube.finish_pod(manual_builds, pod.metadata.name, int(EXIT_INCOMPATIBLE_GPU), "")
            finished.add(pod.metadata.name)
            if created < len(names):  # one slot frees at a time: the next in line must take it
                wait_for(lambda c=created: len(jobs.created) > c, 60, what=f"a Job after {jobs.created}")
        wait_for(lambda: len(jobs.created) == 12 and not jobs.active, 90, what="every build Job finished")
    assert jobs.peak == 4, f"at most 4 build Jobs may run at once (limit 4); peak was {jobs.peak}"
    assert jobs.created == names, "build slots are granted in FIFO order"
    builds = kube.batch.list_namespaced_job(manual_builds, label_selector=BUILD).items
    assert sorted(j.metadata.labels[c.LABEL_ENGINE] for j in builds) == names  # one Job each, no duplicate


def writes(process: OperatorProcess) -> float:
    """Requests that changed something: successful creates, patches and deletes.

    Both replicas start as candidates and may both try to create the missing Lease; the loser's create
    is answered 409 and changed nothing, so only 2xx answers count.
    """
    return sum(
        value
        for key, value in process.metrics().items()
        if key.startswith("trtllm_operator_api_requests_total{")
        and any(f'verb="{verb}"' in key for verb in ("create", "patch", "delete"))
        and 'code="2' in key
    )


def leader(process: OperatorProcess) -> bool:
    return process.metric_sum("trtllm_operator_leader") == 1


@pytest.fixture
def two_replicas(
    cluster: LocalCluster, manual_builds: str, tmp_path: Path
) -> Iterator[list[OperatorProcess]]:
    env = {
        "TRTLLM_LEASE_DURATION_SECONDS": "4",
        "TRTLLM_RENEW_DEADLINE_SECONDS": "3",
        "TRTLLM_RETRY_PERIOD_SECONDS": "0.5",
    }
    replicas = [
        OperatorProcess(cluster.kubeconfig, manual_builds, tmp_path / f"replica-{i}.log", env).start()
        for i in range(2)
    ]
    yield replicas
    for replica in replicas:
        replica.stop()


def test_two_replicas_only_the_leader_writes_and_a_killed_leader_is_replaced_without_duplicates(
    kube: Kube, engines: Engines, two_replicas: list[OperatorProcess]
) -> None:
    for replica in two_replicas:
        wait_for(lambda r=replica: r.get("/readyz")[0] == 200, 60, what="both replicas ready (caches synced)")
    first = wait_for(lambda: next((r for r in two_replicas if leader(r)), None), 30, what="a leader")
    standby = next(r for r in two_replicas if r is not first)
    assert "standby" in standby.get("/readyz")[1]
    for name in ("a", "b", "c"):
        engines.create(engine_manifest(name))
    for name in ("a", "b", "c"):
        engines.wait_condition(name, "Scheduled", "True", "PodScheduled", timeout=60)
    before = {
        j.metadata.labels[c.LABEL_ENGINE]: j.metadata.uid
        for j in engines.kube.batch.list_namespaced_job(engines.namespace, label_selector=BUILD).items
    }
    assert sorted(before) == ["a", "b", "c"]
    assert writes(first) > 0
    assert writes(standby) == 0, "the standby must not write"
    assert standby.metric_sum("trtllm_operator_reconcile_total") == 0, "the standby must not reconcile"

    first.kill()  # SIGKILL: no clean hand-over; the standby waits for the Lease to expire
    engines.create(engine_manifest("d"))
    wait_for(lambda: leader(standby), 60, what="the standby to take the Lease over")
    engines.wait_condition("d", "Scheduled", "True", "PodScheduled", timeout=60)
    pod = running_build_pods(kube, engines.namespace)[0]
    kube.finish_pod(engines.namespace, pod.metadata.name, int(EXIT_INCOMPATIBLE_GPU), "")
    engine = pod.metadata.labels[c.LABEL_ENGINE]
    engines.wait_condition(engine, "Stalled", "True", timeout=60)  # the new leader follows the builds
    after = {
        j.metadata.labels[c.LABEL_ENGINE]: j.metadata.uid
        for j in kube.batch.list_namespaced_job(engines.namespace, label_selector=BUILD).items
    }
    assert sorted(after) == ["a", "b", "c", "d"], "exactly one Job per engine after the failover"
    assert all(after[name] == uid for name, uid in before.items()), (
        "the old leader's Jobs were adopted, not replaced"
    )


# The deployed lease timings (a leader that cannot renew for renewDeadline steps down, as client-go's does):
# a restart of a few seconds is ridden out, not answered by an exit.
@pytest.mark.operator_env(
    TRTLLM_LEASE_DURATION_SECONDS="30", TRTLLM_RENEW_DEADLINE_SECONDS="20", TRTLLM_RETRY_PERIOD_SECONDS="2"
)
def test_an_api_server_restart_is_recovered_without_restarting_the_operator(
    kube: Kube, cluster: LocalCluster, manual_builds: str, engines: Engines, operator: OperatorProcess
) -> None:
    engines.create(engine_manifest("before"))
    engines.wait_condition("before", "Scheduled", "True", "PodScheduled", timeout=60)
    watch_errors_before = operator.metric_sum("trtllm_operator_api_requests_total", verb="watch")
    cluster.restart_apiserver(down_for=3.0)
    # The operator's watches broke and resumed; it never restarted and reconciles what comes next.
    engines.create(engine_manifest("after"))
    engines.wait_condition("after", "Scheduled", "True", "PodScheduled", timeout=90)
    # KWOK's own watches recover too; once a build pod runs again, its result reaches the engine's status.
    pod = wait_for(
        lambda: next(iter(running_build_pods(kube, manual_builds)), None), 120, what="a build pod running"
    )
    kube.finish_pod(manual_builds, pod.metadata.name, int(EXIT_INCOMPATIBLE_GPU), "")
    engines.wait_condition(pod.metadata.labels[c.LABEL_ENGINE], "Stalled", "True", timeout=60)
    assert operator.process is not None
    assert operator.process.poll() is None, operator.output()[-3000:]
    assert operator.metric_sum("trtllm_operator_api_requests_total", verb="watch") > watch_errors_before
    assert operator.get("/readyz")[0] == 200


def drop_get(counts: dict[str, float]) -> dict[str, float]:
    """Request counts without GETs: the Lease's renewal reads, whatever the engines do."""
    return {verb: value for verb, value in counts.items() if verb != "get"}


def test_a_steady_state_engine_costs_no_api_request(
    kube: Kube, manual_builds: str, engines: Engines, operator: OperatorProcess
) -> None:
    """Building engines whose world does not change: the operator reads nothing and writes nothing."""
    for name in ("s1", "s2"):
        engines.create(engine_manifest(name))
    for name in ("s1", "s2"):
        engines.wait_condition(name, "Scheduled", "True", "PodScheduled", timeout=60)

    verbs = ("get", "list", "create", "patch", "delete")

    def counts() -> dict[str, float]:
        return {v: operator.metric_sum("trtllm_operator_api_requests_total", verb=v) for v in verbs}

    def quiet() -> dict[str, float] | None:
        """Counts that stay the same over a few seconds, with nothing queued or being reconciled."""
        first = counts()
        time.sleep(3)
        idle = (
            operator.metric_sum("trtllm_operator_workqueue_depth") == 0
            and operator.metric_sum("trtllm_operator_workqueue_longest_running_processor_seconds") == 0
        )
        second = counts()
        return second if idle and drop_get(first) == drop_get(second) else None

    before = wait_for(quiet, 90, what="the operator to settle")
    reconciles = operator.metric_sum("trtllm_operator_reconcile_total")
    # Two resyncs (TRTLLM_RESYNC_SECONDS=10 in tests): each reconciles every key from the caches.
    wait_for(
        lambda: operator.metric_sum("trtllm_operator_reconcile_total") >= reconciles + 4,
        60,
        what="two resyncs",
    )
    after = counts()
    # The only GETs are the Lease's (leader election); everything else must be unchanged.
    assert drop_get(after) == drop_get(before), (before, after)


def test_readyz_waits_for_the_caches(kube: Kube, operator: OperatorProcess) -> None:
    wait_for(lambda: operator.get("/readyz")[0] == 200, 60, what="ready")
    assert "caches synced" in operator.get("/readyz")[1]
    body = operator.get("/metrics")[1]
    for family in (
        "trtllm_operator_reconcile_total",
        "trtllm_operator_workqueue_depth",
        "trtllm_operator_api_requests_total",
        "trtllm_operator_cache_synced",
        "trtllm_operator_leader",
    ):
        assert family in body
