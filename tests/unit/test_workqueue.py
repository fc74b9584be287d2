"""The work queue: dedup, one worker per key, delayed requeue, dirty re-add while processing."""

from __future__ import annotations

import threading
import time

from trtllm_operator.workqueue import WorkQueue


def test_dedup_and_order() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "c", "b"):
        queue.add(key)
    assert [queue.get(0.1) for _ in range(3)] == ["a", "b", "c"]
    assert queue.get(0.05) is None


def test_key_added_while_processing_comes_back_once_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    assert queue.get(0.1) == "a"
    queue.add("a")
    queue.add("a")
    assert queue.get(0.05) is None  # never handed to a second worker concurrently
    queue.done("a")
    assert queue.get(0.1) == "a"
    queue.done("a")
    assert queue.get(0.05) is None


def test_delayed_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("later", after=0.2)
    assert queue.get(0.05) is None
    started = time.monotonic()
    assert queue.get(1.0) == "later"
    assert time.monotonic() - started >= 0.1


def test_close_wakes_waiters() -> None:
    queue: WorkQueue[str] = WorkQueue()
    got: list[str | None] = []
    thread = threading.Thread(target=lambda: got.append(queue.get(5.0)))
    thread.start()
    queue.close()
    thread.join(2)
    assert got == [None]
    assert not thread.is_alive()
