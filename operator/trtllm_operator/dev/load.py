"""One load generator for the simulated serving pods: the demo and the integration tests use it.

Threads send OpenAI ``/v1/completions`` requests round robin over a Service's **ready** endpoints, read
from its EndpointSlices as kube-proxy would, and count successes and failures per track (the pod's
``trtllm.dev/track`` label, ``stable`` when it has none) and per pod. KWOK pods have no network: the sim
executor writes ``.cluster/serving-endpoints.json`` (``podIP:port`` -> the loopback address where the
stand-in trtllm-serve answers), and the load sends each request to that loopback address.

Where the EndpointSlices and pods come from is the caller's (``fetch``: a kubectl call in the demo, the
kubernetes client in the tests); what to do with them is pure (:func:`ready_targets`, :func:`summary`).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from trtllm_operator.dev.executor import ENDPOINTS_FILE
from trtllm_operator.sim_endpoints import read_mapping

log = structlog.get_logger(__name__)
TRACK_LABEL = "trtllm.dev/track"
SERVICE_LABEL = "trtllm.dev/inference-service"

#: What ``fetch`` returns: the Service's EndpointSlices and the service's pods, as API JSON (dicts).
Fetch = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


@dataclass(frozen=True, order=True)
class Target:
    """One ready endpoint and where it really answers."""

    address: str  # loopback host:port of the stand-in server
    endpoint: str  # podIP:port, as in the EndpointSlice
    pod: str
    track: str


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def ready_targets(slices: Iterable[Any], pods: Iterable[Any], mapping: Mapping[str, str]) -> list[Target]:
    """The ready endpoints of ``slices`` (port named ``http``) that ``mapping`` knows, with each pod's
    track. Anything malformed is passed over, never raised."""
    tracks: dict[str, str] = {}
    for pod in pods:
        metadata = _dict(_dict(pod).get("metadata"))
        labels = _dict(metadata.get("labels"))
        if isinstance(metadata.get("name"), str):
            track = labels.get(TRACK_LABEL)
            tracks[metadata["name"]] = track if isinstance(track, str) and track else "stable"
    found: set[Target] = set()
    for item in slices:
        item = _dict(item)
        port = next(
            (p.get("port") for p in map(_dict, _list(item.get("ports"))) if p.get("name") == "http"), None
        )
        if not isinstance(port, int):
            continue
        for endpoint in map(_dict, _list(item.get("endpoints"))):
            if _dict(endpoint.get("conditions")).get("ready") is not True:
                continue
            pod = _dict(endpoint.get("targetRef")).get("name")
            pod = pod if isinstance(pod, str) else ""
            for address in _list(endpoint.get("addresses")):
                key = f"{address}:{port}"
                loopback = mapping.get(key)
                if isinstance(loopback, str) and loopback:
                    found.add(Target(loopback, key, pod, tracks.get(pod, "stable")))
    return sorted(found)


def mapping_file(state_dir: Path) -> Path:
    """Where the sim executor writes its ``podIP:port`` -> loopback map (.cluster/serving-endpoints.json)."""
    return state_dir / ENDPOINTS_FILE


def summary(ok: Mapping[str, int], failed: Mapping[str, int]) -> str:
    """``stable: 120 ok, 0 failed; canary: 40 ok, 21 failed`` (tracks in a fixed order, stable first)."""
    tracks = sorted(set(ok) | set(failed), key=lambda t: (t != "stable", t))
    return "; ".join(f"{t}: {ok.get(t, 0)} ok, {failed.get(t, 0)} failed" for t in tracks) or "no requests"


class Load:
    """``with Load(fetch, mapping_file, model=...) as load:`` keeps ``threads`` requests in flight."""

    def __init__(
        self,
        fetch: Fetch,
        mapping_file: Path,
        *,
        model: str,
        threads: int = 3,
        prompt: str = "Hello there",
        max_tokens: int = 8,
        timeout: float = 60.0,
        refresh_seconds: float = 1.0,
    ) -> None:
        self.fetch, self.mapping_file, self.model = fetch, mapping_file, model
        self.body = json.dumps({"model": model, "prompt": prompt, "max_tokens": max_tokens}).encode()
        self.timeout, self.refresh_seconds = timeout, refresh_seconds
        self.ok: Counter[str] = Counter()  # per track
        self.failed: Counter[str] = Counter()
        self.ok_by_pod: Counter[str] = Counter()
        self.failed_by_pod: Counter[str] = Counter()
        self.failures: list[tuple[Target, str]] = []
        self.targets: list[Target] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, args=(i,), daemon=True) for i in range(threads)]
        self._threads.append(threading.Thread(target=self._refresh_loop, daemon=True))

    @property
    def completed(self) -> int:
        with self.lock:
            return sum(self.ok.values())

    @property
    def stable_failures(self) -> list[str]:
        with self.lock:
            return [f"{t.address} ({t.pod}): {why}" for t, why in self.failures if t.track != "canary"]

    def summary(self) -> str:
        with self.lock:
            return summary(self.ok, self.failed)

    def refresh(self) -> None:
        slices, pods = self.fetch()
        targets = ready_targets(slices, pods, read_mapping(self.mapping_file))
        with self.lock:
            self.targets = targets

    def _refresh_loop(self) -> None:
        while not self.stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as error:  # the API server busy for a moment: keep the last targets
                log.debug("load: targets not refreshed", error=str(error))

    def _send(self, index: int) -> None:
        turn = index
        while not self.stop.is_set():
            with self.lock:
                targets = list(self.targets)
            if not targets:
                self.stop.wait(0.2)
                continue
            target = targets[turn % len(targets)]
            turn += 1
            request = urllib.request.Request(
                f"http://{target.address}/v1/completions", self.body, {"Content-Type": "application/json"}
            )
            why = ""
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310 - loopback
                    reply.read()
            except urllib.error.HTTPError as error:  # the server answered: an error reply
                why = f"HTTP {error.code}"
                error.close()
            except OSError as error:  # a pod going away mid-request
                why = str(error) or type(error).__name__
            with self.lock:
                (self.failed if why else self.ok)[target.track] += 1
                (self.failed_by_pod if why else self.ok_by_pod)[target.pod] += 1
                if why:
                    self.failures.append((target, why))
            if why and not why.startswith("HTTP"):
                self.stop.wait(0.2)

    def __enter__(self) -> Load:
        self.refresh()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout)


def kubectl_fetch(kubectl: Callable[..., str], namespace: str, service: str) -> Fetch:
    """A ``fetch`` from a function that runs ``kubectl ARGS...`` and returns its stdout (the demo's)."""

    def items(*args: str) -> list[dict[str, Any]]:
        out = kubectl("get", *args, "-n", namespace, "-o", "json")
        try:
            return [i for i in _list(_dict(json.loads(out)).get("items")) if isinstance(i, dict)]
        except ValueError:
            return []

    def fetch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return (
            items("endpointslices", "-l", f"kubernetes.io/service-name={service}"),
            items("pods", "-l", f"{SERVICE_LABEL}={service}"),
        )

    return fetch
