"""Leader election over an in-memory LeaseStore with resourceVersions and 409s, and injected clocks.

Every candidate has its own monotonic clock and its own wall clock; the wall clocks are skewed by hours
to prove that expiry is measured on the candidate's own clock, never by comparing clocks.
"""

from __future__ import annotations

import copy
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from trtllm_operator.leader import ElectionConfig, LeaderElector, Obj

WALL = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Store:
    """One Lease with the API server's optimistic concurrency: a stale resourceVersion gets None (409)."""

    def __init__(self) -> None:
        self.lease: Obj | None = None
        self.rv = 0
        self.fail = False
        self.writes: list[tuple[str, str]] = []
        self.before_get: Any = None

    def get_lease(self, namespace: str, name: str) -> Obj | None:
        if self.fail:
            raise ConnectionError("apiserver down")
        lease = copy.deepcopy(self.lease)
        if self.before_get is not None:
            self.before_get()
        return lease

    def _store(self, spec: Obj) -> Obj:
        self.rv += 1
        self.lease = {"metadata": {"resourceVersion": str(self.rv)}, "spec": copy.deepcopy(spec)}
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, name: str, spec: Obj) -> Obj | None:
        if self.lease is not None:
            return None
        self.writes.append(("create", spec["holderIdentity"]))
        return self._store(spec)

    def update_lease(self, namespace: str, name: str, resource_version: str, spec: Obj) -> Obj | None:
        if self.fail:
            raise ConnectionError("apiserver down")
        if self.lease is None or self.lease["metadata"]["resourceVersion"] != resource_version:
            return None
        self.writes.append(("update", spec["holderIdentity"]))
        return self._store(spec)

    @property
    def spec(self) -> Obj:
        assert self.lease is not None
        return self.lease["spec"]


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Wall:
    def __init__(self, skew: timedelta = timedelta(0)) -> None:
        self.now = WALL + skew

    def __call__(self) -> datetime:
        return self.now


class SimulatedStop(threading.Event):
    """A stop event whose waits advance the candidate's clocks instead of sleeping."""

    def __init__(self, clock: Clock, wall: Wall, max_waits: int = 1000) -> None:
        super().__init__()
        self.clock, self.wall, self.max_waits, self.waits = clock, wall, max_waits, 0
        self.on_wait: Any = None

    def wait(self, timeout: float | None = None) -> bool:
        self.waits += 1
        self.clock.now += timeout or 0.0
        self.wall.now += timedelta(seconds=timeout or 0.0)
        if self.on_wait is not None:
            self.on_wait(self)
        if self.waits >= self.max_waits:
            self.set()
        return self.is_set()


class Candidate:
    def __init__(self, store: Store, identity: str, skew: timedelta = timedelta(0), **cfg: float) -> None:
        self.clock, self.wall = Clock(), Wall(skew)
        self.started = 0
        self.stopped = 0
        self.config = ElectionConfig("ns", "lease", identity, **cfg)
        self.elector = LeaderElector(
            store, self.config, self._on_started, self._on_stopped, clock=self.clock, wall=self.wall
        )

    def _on_started(self) -> None:
        self.started += 1

    def _on_stopped(self) -> None:
        self.stopped += 1

    def round(self) -> bool:
        return self.elector.try_acquire_or_renew()

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.wall.now += timedelta(seconds=seconds)


def test_acquires_an_absent_lease_with_a_full_record() -> None:
    store = Store()
    a = Candidate(store, "a")
    assert a.round()
    spec = store.spec
    assert spec["holderIdentity"] == "a"
    assert spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-26T12:00:00.000000Z"
    assert store.writes == [("create", "a")]


def test_another_candidate_cannot_take_an_unexpired_lease_even_if_its_wall_clock_says_old() -> None:
    store = Store()
    a = Candidate(store, "a")
    b = Candidate(store, "b", skew=timedelta(hours=5))  # by b's wall clock a's renewTime is hours old
    assert a.round()
    assert not b.round()
    b.advance(14.9)
    assert not b.round()
    assert store.spec["holderIdentity"] == "a"
    assert store.writes == [("create", "a")]


def test_takes_the_lease_after_lease_duration_without_change_by_its_own_clock() -> None:
    store = Store()
    a = Candidate(store, "a")
    b = Candidate(store, "b", skew=-timedelta(hours=5))  # by b's wall clock a's renewTime is in the future
    assert a.round()
    assert not b.round()  # b first sees the record now, on its own clock
    b.advance(10)
    a.advance(10)
    assert a.round()  # a renews: the record changed, so b's countdown starts again
    assert not b.round()
    b.advance(14.9)
    assert not b.round()
    b.advance(0.2)  # a stopped renewing 15.1 s ago by b's clock
    assert b.round()
    assert store.spec["holderIdentity"] == "b"
    assert store.spec["leaseTransitions"] == 1
    assert store.spec["acquireTime"] == "2026-11-26T07:00:25.100000Z"  # b's own (skewed) wall time


def test_transitions_are_counted_each_time_the_holder_changes() -> None:
    store = Store()
    a, b = Candidate(store, "a"), Candidate(store, "b")
    assert a.round()
    assert not b.round()
    b.advance(16)
    assert b.round()
    assert not a.round()
    a.advance(16)
    assert a.round()
    assert store.spec["leaseTransitions"] == 2
    assert a.round()  # a renewal is not a transition
    assert store.spec["leaseTransitions"] == 2


def test_renew_keeps_acquire_time_and_moves_renew_time() -> None:
    store = Store()
    a = Candidate(store, "a")
    assert a.round()
    acquired = store.spec["acquireTime"]
    a.advance(2)
    assert a.round()
    assert store.spec["acquireTime"] == acquired
    assert store.spec["renewTime"] == "2026-11-26T12:00:02.000000Z"
    assert store.spec["leaseTransitions"] == 0
    assert store.writes == [("create", "a"), ("update", "a")]


@pytest.mark.parametrize("held", [False, True], ids=["absent", "expired"])
def test_two_candidates_racing_the_same_round_exactly_one_wins(held: bool) -> None:
    store = Store()
    if held:
        old = Candidate(store, "old")
        assert old.round()
    b, c = Candidate(store, "b"), Candidate(store, "c")
    if held:
        assert not b.round()
        assert not c.round()
        b.advance(20)
        c.advance(20)
    barrier = threading.Barrier(2, timeout=5)
    store.before_get = barrier.wait  # both read the same resourceVersion before either writes
    results: dict[str, bool] = {}
    threads = [
        threading.Thread(target=lambda x=x: results.update({x.config.identity: x.round()})) for x in (b, c)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sorted(results.values()) == [False, True]
    winner = next(name for name, won in results.items() if won)
    assert store.spec["holderIdentity"] == winner
    assert [w for w in store.writes if w[1] != "old"] == [("update" if held else "create", winner)]


def test_release_on_clean_stop_lets_the_other_take_over_at_once() -> None:
    store = Store()
    a, b = Candidate(store, "a"), Candidate(store, "b")
    stop = SimulatedStop(a.clock, a.wall, max_waits=3)  # lead, renew twice, then stop
    a.elector.run(stop)
    assert a.started == 1
    assert a.stopped == 0  # a clean stop is not a lost lease
    assert a.elector.is_leader
    a.elector.release()
    assert not a.elector.is_leader
    assert store.spec["holderIdentity"] == ""
    assert b.round()  # no lease duration to wait for
    assert store.spec["holderIdentity"] == "b"
    assert store.spec["leaseTransitions"] == 1


def test_release_is_a_no_op_when_not_leading() -> None:
    store = Store()
    a, b = Candidate(store, "a"), Candidate(store, "b")
    assert a.round()
    b.elector.release()
    assert store.spec["holderIdentity"] == "a"


def test_renew_failures_past_the_renew_deadline_call_on_stopped() -> None:
    store = Store()
    a = Candidate(store, "a", lease_duration=15, renew_deadline=10, retry_period=2)
    stop = SimulatedStop(a.clock, a.wall)
    failing_since: list[float] = []

    def fail_after_two_renewals(s: SimulatedStop) -> None:
        if s.waits == 3:
            store.fail = True
            failing_since.append(a.clock.now - 2)  # the last successful renewal

    stop.on_wait = fail_after_two_renewals
    a.elector.run(stop)
    assert (a.started, a.stopped) == (1, 1)
    assert not a.elector.is_leader
    assert not stop.is_set()  # it returned by itself, not because it was stopped
    lost_after = a.clock.now - failing_since[0]
    assert 10 < lost_after <= 12  # the first failed round past the deadline, not before


def test_renew_failures_shorter_than_the_deadline_keep_leading() -> None:
    store = Store()
    a = Candidate(store, "a", lease_duration=15, renew_deadline=10, retry_period=2)
    stop = SimulatedStop(a.clock, a.wall, max_waits=40)

    def flaky(s: SimulatedStop) -> None:
        store.fail = s.waits % 5 != 0  # four failed rounds (8 s), then one renewal

    stop.on_wait = flaky
    a.elector.run(stop)
    assert (a.started, a.stopped) == (1, 0)
    assert a.elector.is_leader


def test_a_candidate_keeps_campaigning_through_api_errors() -> None:
    store = Store()
    a = Candidate(store, "a", lease_duration=15, renew_deadline=10, retry_period=2)
    store.fail = True
    stop = SimulatedStop(a.clock, a.wall, max_waits=6)

    def recover(s: SimulatedStop) -> None:
        store.fail = s.waits < 3

    stop.on_wait = recover
    a.elector.run(stop)
    assert a.started == 1
    assert store.spec["holderIdentity"] == "a"


@pytest.mark.parametrize(
    ("lease", "renew", "retry"),
    [(10, 10, 2), (15, 10, 10), (15, 10, 0), (5, 10, 2), (15, 2, 10)],
)
def test_config_needs_lease_duration_over_renew_deadline_over_retry_period(
    lease: float, renew: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="leaseDuration > renewDeadline > retryPeriod > 0"):
        ElectionConfig("ns", "lease", "a", lease_duration=lease, renew_deadline=renew, retry_period=retry)


def test_a_valid_config_is_accepted() -> None:
    assert ElectionConfig("ns", "lease", "a", 4, 3, 0.5).retry_period == 0.5
