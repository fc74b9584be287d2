"""The load generator's pure parts: which endpoints it sends to, the sim's map, the summary line; and one
real request round against a local HTTP server (threads, counting per track and pod)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from trtllm_operator.dev.load import Load, Target, kubectl_fetch, read_mapping, ready_targets, summary


def _slice(*endpoints: tuple[str, str, bool], port: int = 8000, name: str = "http") -> dict[str, Any]:
    return {
        "ports": [{"name": name, "port": port}],
        "endpoints": [
            {"addresses": [ip], "conditions": {"ready": ready}, "targetRef": {"kind": "Pod", "name": pod}}
            for ip, pod, ready in endpoints
        ],
    }


def _pod(name: str, track: str | None) -> dict[str, Any]:
    labels = {"trtllm.dev/track": track} if track else {}
    return {"metadata": {"name": name, "labels": labels}}


MAPPING = {"10.0.0.1:8000": "127.0.0.1:9001", "10.0.0.2:8000": "127.0.0.1:9002", "10.0.0.3:8000": "x:3"}


def test_only_ready_mapped_endpoints_of_the_http_port_with_their_track() -> None:
    slices = [
        _slice(("10.0.0.1", "a", True), ("10.0.0.2", "b", True), ("10.0.0.3", "c", False)),
        _slice(("10.0.0.1", "a", True), port=9999, name="metrics"),
        _slice(("10.0.0.9", "z", True)),  # no loopback for it (yet)
    ]
    found = ready_targets(slices, [_pod("a", "stable"), _pod("b", "canary")], MAPPING)
    assert found == [
        Target("127.0.0.1:9001", "10.0.0.1:8000", "a", "stable"),
        Target("127.0.0.1:9002", "10.0.0.2:8000", "b", "canary"),
    ]


def test_a_pod_without_a_track_or_unknown_counts_as_stable() -> None:
    slices = [_slice(("10.0.0.1", "a", True), ("10.0.0.2", "gone", True))]
    found = ready_targets(slices, [_pod("a", None)], MAPPING)
    assert [t.track for t in found] == ["stable", "stable"]


def test_malformed_slices_and_pods_are_passed_over() -> None:
    garbage: list[Any] = [
        None,
        "slice",
        {"ports": "http"},
        {"ports": [{"name": "http", "port": "8000"}], "endpoints": [{"addresses": ["10.0.0.1"]}]},
        {"ports": [{"name": "http", "port": 8000}], "endpoints": [None, {"conditions": {"ready": "yes"}}]},
        {"ports": [{"name": "http", "port": 8000}], "endpoints": [{"conditions": {"ready": True}}]},
    ]
    assert ready_targets(garbage, [None, {"metadata": []}, {"metadata": {"name": 3}}], MAPPING) == []


def test_read_mapping_missing_half_written_or_not_a_map_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "serving-endpoints.json"
    assert read_mapping(path) == {}
    path.write_text('{"10.0.0.1:8000": "127.0')
    assert read_mapping(path) == {}
    path.write_text("[1, 2]")
    assert read_mapping(path) == {}
    path.write_text(json.dumps({"10.0.0.1:8000": "127.0.0.1:9001", "bad": 3}))
    assert read_mapping(path) == {"10.0.0.1:8000": "127.0.0.1:9001"}


def test_summary_puts_stable_first() -> None:
    assert (
        summary({"canary": 4, "stable": 10}, {"canary": 2})
        == "stable: 10 ok, 0 failed; canary: 4 ok, 2 failed"
    )
    assert summary({}, {}) == "no requests"


def test_kubectl_fetch_reads_items_and_survives_bad_output() -> None:
    calls: list[tuple[str, ...]] = []

    def kubectl(*args: str) -> str:
        calls.append(args)
        return json.dumps({"items": [_pod("a", "canary")]}) if "pods" in args else "not json"

    slices, pods = kubectl_fetch(kubectl, "ns", "chat")()
    assert slices == []
    assert pods == [_pod("a", "canary")]
    assert calls[0][:4] == ("get", "endpointslices", "-l", "kubernetes.io/service-name=chat")
    assert "trtllm.dev/inference-service=chat" in calls[1]


class _Server(BaseHTTPRequestHandler):
    status = 200

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


class _Failing(_Server):
    status = 500


def test_load_counts_successes_and_failures_per_track_and_pod(tmp_path: Path) -> None:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (_Server, _Failing)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    mapping = {f"10.0.0.{i + 1}:8000": f"127.0.0.1:{s.server_address[1]}" for i, s in enumerate(servers)}
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    slices = [_slice(("10.0.0.1", "good", True), ("10.0.0.2", "bad", True))]
    pods = [_pod("good", "stable"), _pod("bad", "canary")]
    try:
        load = Load(lambda: (slices, pods), tmp_path / "map.json", model="m", threads=2)
        with load:
            for _ in range(1200):  # a generous bound (60 s), so a broken count fails instead of hanging
                if load.ok["stable"] >= 5 and load.failed["canary"] >= 5:
                    break
                load.stop.wait(0.05)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert load.failed["stable"] == 0
    assert load.ok["canary"] == 0
    assert load.ok_by_pod["good"] >= 5
    assert load.failed_by_pod["bad"] >= 5
    assert load.stable_failures == []
    assert all(why == "HTTP 500" for _, why in load.failures)
    assert load.summary().startswith("stable: ")
