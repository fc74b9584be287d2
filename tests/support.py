"""Test helpers shared by the integration suites: waiting, clients, namespaces, the operator process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = "") -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or probe}; last value: {last!r}")


class Kube:
    """The typed API groups a test needs, on one ApiClient."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.ext = client.ApiextensionsV1Api(api)
        self.events = client.EventsV1Api(api)

    def events_for(self, namespace: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}").items
        return list(items)

    def finish_pod(self, namespace: str, name: str, exit_code: int, message: str = "") -> None:
        """Finish a Running pod with an exit code and termination message, as a kubelet would report it."""
        annotations = {"sim.trtllm.dev/exit-code": str(exit_code), "sim.trtllm.dev/termination-message": message}
        self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations}})


class OperatorProcess:
    """`trtllm-operator run` as a subprocess, so tests can kill and restart it like a real pod."""

    def __init__(self, kubeconfig: Path, namespace: str, log: Path, env: dict[str, str] | None = None) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.env}
        argv = [sys.executable, "-m", "trtllm_operator.cli", "run", "--namespace", self.namespace]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        return self

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a node failure or OOM kill."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
