"""Lease-based leader election with client-go's semantics (``tools/leaderelection``).

A candidate reads the ``coordination.k8s.io/v1`` Lease every ``retry_period``. It takes the Lease when
nobody holds it, or when the holder's record has not changed for ``lease_duration`` as measured on the
candidate's own clock (never by comparing clocks across machines). The leader renews every
``retry_period``; when it cannot renew within ``renew_deadline`` it stops leading (the operator then
exits, as controller-runtime does, and restarts as a candidate). Writes go through the Lease's
resourceVersion, so two candidates can never both win the same round. On a clean shutdown the leader
releases the Lease (``release_on_cancel``), so the standby takes over at once instead of after a
lease duration.

Why not the Python client's ``kubernetes.leaderelection``: its LeaseLock uses the process-wide default
client, it cannot be stopped or release its Lease, and it reports no state for metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)
Obj = dict[str, Any]


class LeaseStore(Protocol):
    """The three Lease calls an elector needs (``k8s.Kube`` implements them)."""

    def get_lease(self, namespace: str, name: str) -> Obj | None: ...
    def create_lease(self, namespace: str, name: str, spec: Obj) -> Obj | None: ...
    def update_lease(self, namespace: str, name: str, resource_version: str, spec: Obj) -> Obj | None: ...


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError(
                "leader election needs leaseDuration > renewDeadline > retryPeriod > 0, got "
                f"{self.lease_duration} / {self.renew_deadline} / {self.retry_period}"
            )


def micro_time(when: datetime) -> str:
    """A Lease MicroTime: RFC 3339 with microseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        config: ElectionConfig,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.config = store, config
        self.on_started, self.on_stopped = on_started, on_stopped
        self._clock, self._wall = clock, wall
        self._observed: Obj | None = None  # the Lease spec last seen
        self._observed_rv = ""
        self._observed_at = 0.0  # our clock when the observed record last changed
        self.is_leader = False
        self.transitions = 0

    # ------------------------------------------------------------------ one round
    def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew; True when we hold the Lease afterwards."""
        cfg, now = self.config, self._wall()
        lease = self.store.get_lease(cfg.namespace, cfg.name)
        record = {
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": int(cfg.lease_duration),
            "acquireTime": micro_time(now),
            "renewTime": micro_time(now),
            "leaseTransitions": 0,
        }
        if lease is None:
            created = self.store.create_lease(cfg.namespace, cfg.name, record)
            if created is None:
                return False
            self._observe(created)
            return True
        spec = lease.get("spec") or {}
        if spec != self._observed:
            self._observe(lease)
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and self._observed_at + duration > self._clock():
            return False  # held by another candidate and not yet expired
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == cfg.identity:
            record["acquireTime"] = spec.get("acquireTime") or record["acquireTime"]
            record["leaseTransitions"] = transitions
        else:
            record["leaseTransitions"] = transitions + 1
        rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        updated = self.store.update_lease(cfg.namespace, cfg.name, rv, record)
        if updated is None:
            return False
        self._observe(updated)
        return True

    def _observe(self, lease: Obj) -> None:
        self._observed = lease.get("spec") or {}
        self._observed_rv = str((lease.get("metadata") or {}).get("resourceVersion") or "")
        self._observed_at = self._clock()

    def release(self) -> None:
        """Give the Lease up (clean shutdown): the next candidate need not wait for it to expire."""
        if not self.is_leader or self._observed is None:
            return
        cfg, now = self.config, self._wall()
        record = {
            **self._observed,
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "renewTime": micro_time(now),
        }
        try:
            self.store.update_lease(cfg.namespace, cfg.name, self._observed_rv, record)
            log.info("leader election: lease released", lease=f"{cfg.namespace}/{cfg.name}")
        except Exception as error:  # shutting down anyway; the lease then expires by itself
            log.warning("leader election: could not release the lease", error=str(error)[:300])
        self.is_leader = False

    # ------------------------------------------------------------------ the loop
    def _round(self) -> bool:
        try:
            return self.try_acquire_or_renew()
        except Exception as error:  # API server unreachable: this round failed, the next may not
            log.warning("leader election: lease round failed", error=str(error)[:300])
            return False

    def run(self, stop: threading.Event) -> None:
        """Campaign until leading, then renew until stopped or the renew deadline passes."""
        cfg = self.config
        log.info("leader election: candidate", identity=cfg.identity, lease=f"{cfg.namespace}/{cfg.name}")
        while not stop.is_set():
            if self._round():
                break
            stop.wait(cfg.retry_period)
        if stop.is_set():
            return
        self.is_leader = True
        self.transitions += 1
        log.info("leader election: leading", identity=cfg.identity)
        self.on_started()
        last_renewed = self._clock()
        while not stop.wait(cfg.retry_period):
            if self._round():
                last_renewed = self._clock()
            elif self._clock() - last_renewed > cfg.renew_deadline:
                log.error("leader election: lost the lease (renew deadline passed)", identity=cfg.identity)
                self.is_leader = False
                self.on_stopped()
                return
        # Stopped while leading: the owner releases the Lease once its workers are done.
