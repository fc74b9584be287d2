"""Build slots: serialized admission to the global build limit, FIFO, reservations, wake-ups, TTL."""

from __future__ import annotations

import threading
import time

from trtllm_operator.handlers.slots import RESERVATION_TTL, BuildSlots

T0 = "2026-11-26T12:00:00Z"
T1 = "2026-11-26T12:01:00Z"
T2 = "2026-11-26T12:02:00Z"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class YieldingClock(Clock):
    """Gives the CPU away on every reading: a check-then-act without the lock would interleave."""

    def __call__(self) -> float:
        time.sleep(0.0005)
        return self.now


def e(name: str) -> tuple[str, str]:
    return ("ns", name)


def test_the_limit_holds_under_concurrent_requests_from_many_threads() -> None:
    slots = BuildSlots(3, clock=YieldingClock())
    engines = [e(f"engine-{i}") for i in range(24)]
    barrier = threading.Barrier(len(engines), timeout=5)
    granted: list[tuple[str, str]] = []
    lock = threading.Lock()

    def ask(engine: tuple[str, str]) -> None:
        barrier.wait()
        for _ in range(3):  # each asks again, as its next reconcile would
            if slots.request(engine, T0).granted:
                with lock:
                    granted.append(engine)

    threads = [threading.Thread(target=ask, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(set(granted)) == 3
    used, waiting, limit = slots.snapshot()
    assert (used, waiting, limit) == (3, 21, 3)


def test_fifo_by_queued_since_then_by_arrival() -> None:
    slots = BuildSlots(1, clock=Clock())
    assert slots.request(e("first"), T0).granted
    late = slots.request(e("late"), T2)
    same_a = slots.request(e("same-a"), T1)
    same_b = slots.request(e("same-b"), T1)
    assert (late.granted, late.position) == (False, 1)
    # Queued earlier (kept in the Queued condition across restarts) goes first; ties by arrival.
    assert (same_a.position, same_b.position) == (1, 2)
    assert slots.request(e("late"), T2).position == 3
    assert slots.request(e("late"), T2).waiting == 3
    freed = slots.job_seen("ns", "job-first", "first", running=False)  # the reservation's Job failed
    assert freed == [e("same-a"), e("same-b"), e("late")]
    assert not slots.request(e("same-b"), T1).granted  # not the head of the line
    assert slots.request(e("same-a"), T1).granted
    assert slots.request(e("late"), T2).position == 2


def test_reservation_becomes_a_running_job_and_the_slot_frees_when_it_finishes() -> None:
    slots = BuildSlots(1, clock=Clock())
    assert slots.request(e("a"), T0).granted
    assert slots.snapshot() == (1, 0, 1)
    assert not slots.request(e("b"), T1).granted
    assert slots.job_seen("ns", "job-a", "a", running=True) == []  # the reservation is now the Job
    assert slots.snapshot() == (1, 1, 1)
    assert slots.request(e("a"), T0).granted  # its own running build keeps its slot
    assert not slots.request(e("b"), T1).granted
    assert slots.job_seen("ns", "job-a", "a", running=True) == []  # a later MODIFIED event
    assert slots.job_seen("ns", "job-a", "a", running=False) == [e("b")]
    assert slots.job_seen("ns", "job-a", "a", running=False) == []  # freed once, not twice
    assert slots.request(e("b"), T1).granted
    assert slots.snapshot() == (1, 0, 1)


def test_a_finished_job_nobody_held_wakes_nobody() -> None:
    slots = BuildSlots(1, clock=Clock())
    assert slots.request(e("a"), T0).granted
    assert not slots.request(e("b"), T1).granted
    assert slots.job_seen("ns", "old-job", "c", running=False) == []


def test_wake_up_list_is_in_line_order() -> None:
    slots = BuildSlots(2, clock=Clock())
    for name in ("a", "b"):
        assert slots.request(e(name), T0).granted
        slots.job_seen("ns", f"job-{name}", name, running=True)
    for name, since in (("w3", T2), ("w1", T0), ("w2", T1)):
        assert not slots.request(e(name), since).granted
    assert slots.job_seen("ns", "job-a", "a", running=False) == [e("w1"), e("w2"), e("w3")]


def test_forget_drops_the_place_in_line_and_frees_a_reservation() -> None:
    slots = BuildSlots(1, clock=Clock())
    assert slots.request(e("a"), T0).granted
    assert not slots.request(e("b"), T1).granted
    assert not slots.request(e("c"), T2).granted
    assert slots.forget(e("b")) == [e("c")]  # it left the line: the engines behind it move up
    assert slots.request(e("c"), T2).position == 1
    assert slots.forget(e("a")) == [e("c")]  # its reservation freed the slot
    assert slots.request(e("c"), T2).granted


def test_cancel_gives_a_granted_slot_back_without_waking() -> None:
    slots = BuildSlots(1, clock=Clock())
    assert slots.request(e("a"), T0).granted
    assert not slots.request(e("b"), T1).granted
    slots.cancel(e("a"))  # its Job could not be created; it retries with backoff
    assert slots.snapshot() == (0, 1, 1)
    assert slots.request(e("b"), T1).granted
    assert not slots.request(e("a"), T0).granted  # a retry queues like anyone else
    assert slots.request(e("a"), T0).position == 1


def test_a_reservation_whose_job_never_appears_expires_after_the_ttl() -> None:
    clock = Clock()
    slots = BuildSlots(1, clock=clock)
    assert slots.request(e("a"), T0).granted
    clock.now += RESERVATION_TTL
    assert not slots.request(e("b"), T1).granted  # exactly the TTL: still held
    clock.now += 0.5
    assert slots.request(e("b"), T1).granted
    assert slots.snapshot() == (1, 0, 1)


def test_a_running_job_never_expires() -> None:
    clock = Clock()
    slots = BuildSlots(1, clock=clock)
    assert slots.request(e("a"), T0).granted
    slots.job_seen("ns", "job-a", "a", running=True)
    clock.now += RESERVATION_TTL * 100
    assert not slots.request(e("b"), T1).granted


def test_limit_zero_is_unlimited() -> None:
    slots = BuildSlots(0, clock=Clock())
    answers = [slots.request(e(f"x{i}"), T0) for i in range(50)]
    assert all(a.granted for a in answers)
    assert answers[-1].limit == 0
    assert slots.snapshot()[1] == 0  # nobody waits
