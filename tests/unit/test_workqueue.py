"""The work queue's controller-runtime semantics: dedup, one worker per key, earliest delayed entry
wins, per-key backoff that plain adds cannot cut short, forget, FIFO fairness, numbers."""

from __future__ import annotations

import threading

from trtllm_operator.workqueue import Backoff, WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def queue(clock: Clock | None = None, **backoff: float) -> WorkQueue[str]:
    return WorkQueue(Backoff(jitter=0.0, **backoff), clock=clock or Clock())


def drain(q: WorkQueue[str]) -> list[str]:
    out = []
    while (key := q.get(0)) is not None:
        out.append(key)
        q.done(key)
    return out


def test_a_key_is_at_most_once_in_the_queue_and_served_fifo() -> None:
    q = queue()
    for key in ("a", "b", "a", "c", "b"):
        q.add(key)
    assert q.depth() == 3
    assert drain(q) == ["a", "b", "c"]


def test_a_key_added_while_processing_comes_back_once_after_done() -> None:
    q = queue()
    q.add("a")
    assert q.get(0) == "a"
    q.add("a")
    q.add("a")
    assert q.get(0) is None  # never handed to a second worker concurrently
    q.done("a")
    assert q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_add_after_keeps_one_pending_entry_and_the_earliest_time_wins() -> None:
    clock = Clock()
    q = queue(clock)
    q.add_after("k", 10)
    q.add_after("k", 5)
    q.add_after("k", 30)
    assert q.depth() == 1
    clock.now += 4.9
    assert q.get(0) is None
    clock.now += 0.2
    assert q.get(0) == "k"
    q.done("k")
    clock.now += 100  # the superseded 10 s and 30 s entries never fire
    assert q.get(0) is None


def test_rate_limited_requeues_back_off_exponentially_up_to_the_cap() -> None:
    clock = Clock()
    q = queue(clock, base=1.0, cap=8.0)
    delays = [q.add_rate_limited("k") for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert q.failures("k") == 6
    assert q.stats.retries == 6


def test_an_unrelated_add_does_not_cut_a_backoff_short() -> None:
    """A failing object's own status write (a watch event) must not turn retries into a hot loop."""
    clock = Clock()
    q = queue(clock, base=1.0, cap=300.0)
    q.add("k")
    for _ in range(5):  # five failed reconciles, each retried when its backoff ends
        clock.now += 60
        assert q.get(0) == "k"
        q.add_rate_limited("k")  # the fifth: 16 s
        q.done("k")
    q.add("k")  # a watch event for the same key (e.g. its own status write)
    assert q.get(0) is None
    clock.now += 15.9
    assert q.get(0) is None
    clock.now += 0.2
    assert q.get(0) == "k"


def test_forget_resets_the_backoff_after_a_success() -> None:
    clock = Clock()
    q = queue(clock, base=1.0)
    for _ in range(4):
        q.add_rate_limited("k")
    q.forget("k")
    assert q.failures("k") == 0
    q.add("k")
    assert q.get(0) == "k"  # at once: no backoff left
    q.done("k")
    assert q.add_rate_limited("k") == 1.0  # starts over


def test_a_dirty_key_waits_for_its_backoff_after_done() -> None:
    clock = Clock()
    q = queue(clock, base=2.0)
    q.add("k")
    assert q.get(0) == "k"
    q.add("k")  # an event while processing
    q.add_rate_limited("k")  # and the reconcile failed
    q.done("k")
    assert q.get(0) is None
    clock.now += 2.1
    assert q.get(0) == "k"


def test_other_keys_are_served_while_one_backs_off() -> None:
    clock = Clock()
    q = queue(clock, base=60.0)
    q.add_rate_limited("failing")
    for key in ("a", "b"):
        q.add(key)
    assert drain(q) == ["a", "b"]


def test_longest_running_and_depth_numbers() -> None:
    clock = Clock()
    q = queue(clock)
    q.add("a")
    q.add_after("b", 5)
    assert q.depth() == 2
    assert q.get(0) == "a"
    clock.now += 7
    assert q.longest_running() == 7
    q.done("a")
    assert q.longest_running() == 0.0
    assert q.stats.adds == 2


def test_close_wakes_waiters() -> None:
    q: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(q.get(5.0)))
    thread.start()
    q.close()
    thread.join(2)
    assert got == [None]
    assert not thread.is_alive()


def test_get_waits_for_the_delayed_entry_in_real_time() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("later", 0.05)
    assert q.get(1.0) == "later"
