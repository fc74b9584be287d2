"""The informer against a scripted ListWatch: list -> synced, events -> store/indexes/handlers,
re-list on 410 delivers the difference, errors back off and resume from the last resourceVersion,
several namespaces, and a handler bug that must not stop the cache."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from trtllm_operator.informer import ExpiredError, Informer, Obj, strip

GUARD = 5.0  # a hang guard for thread hand-offs, never an assertion on elapsed time


def obj(name: str, rv: str, namespace: str = "ns", **labels: str) -> Obj:
    return {
        "kind": "Thing",
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv, "labels": labels},
    }


def ev(type_: str, o: Obj) -> Obj:
    return {"type": type_, "object": o}


def bookmark(rv: str) -> Obj:
    return {"type": "BOOKMARK", "object": {"kind": "Thing", "metadata": {"resourceVersion": rv}}}


class Script:
    """A ListWatch that answers from a script and records what it was asked.

    ``lists``: (items, resourceVersion) per LIST call. ``watches``: per WATCH call, a list of events
    (an Exception instance in it is raised there). When the script runs out, the watch blocks until
    the test stops the informer, and ``done`` is set.
    """

    def __init__(self, lists: list[tuple[list[Obj], str]], watches: list[list[Any]]) -> None:
        self.lists, self.watches = list(lists), list(watches)
        self.list_calls = 0
        self.watch_rvs: list[str] = []
        self.done = threading.Event()
        self.stop = threading.Event()
        self.list_gate = threading.Event()
        self.list_gate.set()

    def list(self) -> tuple[list[Obj], str]:
        assert self.list_gate.wait(GUARD)
        self.list_calls += 1
        return self.lists.pop(0)

    def watch(self, resource_version: str) -> Iterator[Obj]:
        self.watch_rvs.append(resource_version)
        if not self.watches:
            self.done.set()
            self.stop.wait(GUARD)
            return
        for item in self.watches.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item


class RecordingStop(threading.Event):
    """A stop event whose waits return at once (and are recorded): backoff without sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return self.is_set()


def by_team(o: Obj) -> list[str]:
    team = (o["metadata"].get("labels") or {}).get("team")
    return [team] if team else []


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None, str | None]] = []

    def __call__(self, type_: str, old: Obj | None, new: Obj | None) -> None:
        rv = lambda o: None if o is None else o["metadata"]["resourceVersion"]  # noqa: E731
        name = (new or old or {}).get("metadata", {}).get("name")
        self.events.append((f"{type_} {name}", rv(old), rv(new)))


def informer(*scripts: tuple[Script, str | None], **kw: Any) -> tuple[Informer, Recorder]:
    inf = Informer("things", list(scripts), indexers={"team": by_team}, **kw)
    rec = Recorder()
    inf.add_handler(rec)
    return inf, rec


def run_script(inf: Informer, *scripts: Script, stop: threading.Event | None = None) -> None:
    """Run the informer until every script is exhausted, then stop it."""
    stop = stop or threading.Event()
    threads = inf.run(stop)
    for script in scripts:
        assert script.done.wait(GUARD), "the scripted source was never exhausted"
    stop.set()
    for script in scripts:
        script.stop.set()
    for thread in threads:
        thread.join(GUARD)
        assert not thread.is_alive()


def test_initial_list_fills_the_store_marks_synced_and_watches_from_the_list_version() -> None:
    script = Script([([obj("a", "5", team="x"), obj("b", "6")], "10")], [])
    inf, rec = informer((script, "ns"))
    assert not inf.synced.is_set()
    run_script(inf, script)
    assert inf.synced.is_set()
    assert sorted(inf.object_keys()) == [("ns", "a"), ("ns", "b")]
    assert [o["metadata"]["name"] for o in inf.by_index("team", "x")] == ["a"]
    assert rec.events == [("ADDED a", None, "5"), ("ADDED b", None, "6")]
    assert script.watch_rvs == ["10"]


def test_events_update_the_store_move_index_values_and_pass_old_and_new() -> None:
    inf, rec = informer()
    inf.apply_event(ev("ADDED", obj("a", "1", team="x")))
    assert [o["metadata"]["name"] for o in inf.by_index("team", "x")] == ["a"]

    assert inf.apply_event(ev("MODIFIED", obj("a", "2", team="y"))) == "2"
    assert inf.by_index("team", "x") == []
    assert [o["metadata"]["resourceVersion"] for o in inf.by_index("team", "y")] == ["2"]
    assert inf.get("ns", "a") is not None
    assert inf.get("ns", "a")["metadata"]["resourceVersion"] == "2"  # type: ignore[index]

    assert inf.apply_event(bookmark("7")) == "7"  # a bookmark only moves the resume point
    assert len(inf) == 1

    inf.apply_event(ev("DELETED", obj("a", "3", team="y")))
    assert inf.get("ns", "a") is None
    assert inf.by_index("team", "y") == []
    assert rec.events == [("ADDED a", None, "1"), ("MODIFIED a", "1", "2"), ("DELETED a", "2", None)]


def test_an_unchanged_resource_version_is_not_delivered_again_and_strip_drops_bulk() -> None:
    inf, rec = informer()
    raw = obj("a", "1")
    raw["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    raw["status"] = {"images": [{"names": ["big"]}], "phase": "Ready"}
    inf.upsert(raw)
    inf.upsert(obj("a", "1"))
    assert len(rec.events) == 1
    stored = inf.get("ns", "a")
    assert stored is not None
    assert "managedFields" not in stored["metadata"]
    assert stored["status"] == {"phase": "Ready"}
    assert strip(raw)["metadata"]["name"] == "a"
    assert raw["metadata"]["managedFields"]  # the input is not mutated


def test_relist_after_expiry_deletes_what_vanished_and_is_silent_for_unchanged() -> None:
    script = Script(
        [
            ([obj("a", "1"), obj("b", "2"), obj("c", "3")], "10"),
            ([obj("a", "1"), obj("b", "12")], "20"),
        ],
        [[ExpiredError("too old")]],
    )
    inf, rec = informer((script, "ns"))
    run_script(inf, script)
    assert rec.events[3:] == [("MODIFIED b", "2", "12"), ("DELETED c", "3", None)]
    assert sorted(inf.object_keys()) == [("ns", "a"), ("ns", "b")]
    assert inf.relists == 1
    assert script.list_calls == 2
    assert script.watch_rvs == ["10", "20"]


def test_a_410_error_event_in_the_stream_relists_too() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old"}}
    script = Script([([obj("a", "1")], "10"), ([], "30")], [[gone]])
    inf, rec = informer((script, "ns"))
    run_script(inf, script)
    assert inf.relists == 1
    assert ("DELETED a", "1", None) in rec.events
    assert script.watch_rvs == ["10", "30"]


def test_a_watch_error_backs_off_capped_and_resumes_from_the_last_resource_version() -> None:
    script = Script(
        [([obj("a", "1")], "10")],
        [
            [ev("ADDED", obj("b", "11")), ConnectionResetError("reset")],
            [ConnectionResetError("refused")],
            [RuntimeError("500")],
            [RuntimeError("500")],
            [bookmark("15"), RuntimeError("500")],
        ],
    )
    stop = RecordingStop()
    inf, _ = informer((script, "ns"), retry_base=0.5, retry_cap=2.0)
    run_script(inf, script, stop=stop)
    assert script.list_calls == 1  # never re-listed: only 410 does that
    assert script.watch_rvs == ["10", "11", "11", "11", "11", "15"]
    assert inf.watch_errors == 5
    # The first failure after an event starts over; consecutive ones double up to the cap.
    assert stop.waits == [0.5, 1.0, 2.0, 2.0, 0.5]


def test_a_stream_closed_by_the_server_rewatches_from_the_last_bookmark() -> None:
    script = Script([([], "10")], [[bookmark("40")], [ev("ADDED", obj("a", "41"))]])
    inf, _ = informer((script, "ns"))
    run_script(inf, script)
    assert script.watch_rvs == ["10", "40", "41"]
    assert inf.watch_errors == 0


def test_several_namespaces_sync_only_when_all_listed_and_relist_only_their_own() -> None:
    a = Script([([obj("a1", "1", "a")], "10"), ([], "20")], [[ExpiredError("too old")]])
    b = Script([([obj("b1", "2", "b")], "11")], [])
    b.list_gate.clear()
    inf, rec = informer((a, "a"), (b, "b"))
    stop = threading.Event()
    threads = inf.run(stop)
    assert a.done.wait(GUARD)
    assert not inf.synced.is_set()  # namespace b has not listed yet
    assert inf.get("a", "a1") is None  # a's relist deleted its own vanished object
    b.list_gate.set()
    assert b.done.wait(GUARD)
    assert inf.synced.wait(GUARD)
    assert inf.object_keys() == [("b", "b1")]
    assert ("DELETED a1", "1", None) in rec.events
    stop.set()
    a.stop.set()
    b.stop.set()
    for thread in threads:
        thread.join(GUARD)


def test_relist_of_one_namespace_never_deletes_another_namespaces_objects() -> None:
    inf, rec = informer()
    inf.replace([obj("a1", "1", "a")], "a")
    inf.replace([obj("b1", "2", "b")], "b")
    inf.replace([], "a")
    assert inf.object_keys() == [("b", "b1")]
    assert rec.events[-1] == ("DELETED a1", "1", None)


def test_a_handler_that_raises_does_not_stop_the_informer_or_other_handlers() -> None:
    script = Script([([obj("a", "1")], "10")], [[ev("ADDED", obj("b", "11")), ev("DELETED", obj("a", "12"))]])
    inf = Informer("things", [(script, "ns")])
    calls: list[str] = []

    def broken(type_: str, old: Obj | None, new: Obj | None) -> None:
        calls.append(f"broken {type_}")
        raise ValueError("handler bug")

    inf.add_handler(broken)
    inf.add_handler(lambda type_, old, new: calls.append(f"ok {type_}"))
    run_script(inf, script)
    assert inf.object_keys() == [("ns", "b")]
    assert calls == ["broken ADDED", "ok ADDED", "broken ADDED", "ok ADDED", "broken DELETED", "ok DELETED"]
    assert inf.watch_errors == 0  # the stream went on: no re-watch from an older resourceVersion
    assert script.watch_rvs == ["10", "12"]


@pytest.mark.parametrize("code", [500, 403])
def test_a_non_410_error_event_backs_off_without_relisting(code: int) -> None:
    error = {"type": "ERROR", "object": {"kind": "Status", "code": code, "message": "boom"}}
    script = Script([([obj("a", "1")], "10")], [[error]])
    stop = RecordingStop()
    inf, _ = informer((script, "ns"))
    run_script(inf, script, stop=stop)
    assert inf.relists == 0
    assert inf.watch_errors == 1
    assert script.watch_rvs == ["10", "10"]
