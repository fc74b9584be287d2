"""Test helpers shared by the integration suites: waiting, clients, namespaces, the operator process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2, what: str = ""
) -> T:
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
        annotations = {
            "sim.trtllm.dev/exit-code": str(exit_code),
            "sim.trtllm.dev/termination-message": message,
        }
        self.core.patch_namespaced_pod(name, namespace, {"metadata": {"annotations": annotations}})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class OperatorProcess:
    """`trtllm-operator run` as a subprocess, so tests can kill and restart it like a real pod.

    It serves /healthz, /readyz and /metrics on ``self.port`` (loopback), so tests can read what the
    operator says about itself (requests by verb, reconciles, leader) without guessing from outside.
    """

    def __init__(
        self, kubeconfig: Path, namespace: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1", **self.env}
        argv = [sys.executable, "-m", "trtllm_operator.cli", "run", "--namespace", self.namespace]
        argv += ["--health-addr", f"127.0.0.1:{self.port}"]
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

    def get(self, path: str) -> tuple[int, str]:
        """(HTTP status, body) of one of the operator's endpoints; (0, error) while it is not up."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as error:
            return int(error.code), error.read().decode()
        except OSError as error:
            return 0, str(error)

    def metrics(self) -> dict[str, float]:
        """The operator's Prometheus samples, ``name{label="v",...}`` -> value (empty while it is down)."""
        from prometheus_client.parser import text_string_to_metric_families

        code, body = self.get("/metrics")
        if code != 200:
            return {}
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
                samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
        return samples

    def metric_sum(self, prefix: str, **labels: str) -> float:
        """The sum of every sample whose name starts with ``prefix`` and that carries ``labels``."""
        wanted = [f'{k}="{v}"' for k, v in labels.items()]
        return sum(
            value
            for key, value in self.metrics().items()
            if key.startswith(prefix) and all(w in key for w in wanted)
        )


FAKE_MODEL_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "torch_dtype": "bfloat16",
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "vocab_size": 32000,
}
CALIBRATION_TEXTS = {
    "code": (
        "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    ),
    "prose": (
        "The committee met on Tuesday to discuss the annual budget and the plans for the new library.\n"
    ),
}


def claim_host_path(kube: Kube, namespace: str, claim: str, timeout: float = 30) -> Path:
    """The local directory behind a PVC of the simulated cluster (bound by the sim provisioner)."""
    pvc = wait_for(
        lambda: (
            (p := kube.core.read_namespaced_persistent_volume_claim(claim, namespace)).spec.volume_name and p
        ),
        timeout,
        what=f"PVC {claim} bound",
    )
    pv = kube.core.read_persistent_volume(pvc.spec.volume_name)
    return Path(pv.spec.host_path.path)


def make_model_claim(kube: Kube, namespace: str, claim: str = "models") -> Path:
    """A PVC holding a tiny Hugging Face-style model dir (``llama``) and calibration text (``calib/code``)."""
    import json

    kube.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "10Gi"}}},
        },
    )
    root = claim_host_path(kube, namespace, claim)
    (root / "llama").mkdir(parents=True, exist_ok=True)
    (root / "llama" / "config.json").write_text(json.dumps(FAKE_MODEL_CONFIG))
    for domain, text in CALIBRATION_TEXTS.items():
        (root / "calib" / domain).mkdir(parents=True, exist_ok=True)
        for index in range(4):
            (root / "calib" / domain / f"sample{index}.txt").write_text(text * (index + 1))
    return root


def engine_manifest(name: str, **spec: Any) -> dict[str, Any]:
    """A TRTEngine that builds from the ``models`` claim with local calibration data (no Hub needed)."""
    body: dict[str, Any] = {
        "model": {"source": "pvc://models/llama", "architecture": "LlamaForCausalLM"},
        "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        "precision": "fp8",
        "kvCacheDtype": "fp8",
        "parallelism": {"tensor": 2},
        "calibration": {"dataset": "pvc://models/calib/code", "size": 64},
        "storage": {"claim": {"size": "50Gi"}},
    }
    for key, value in spec.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return {
        "apiVersion": "trtllm.dev/v1alpha1",
        "kind": "TRTEngine",
        "metadata": {"name": name},
        "spec": body,
    }


class Engines:
    """TRTEngine helpers bound to one namespace."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace

    def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.kube.custom.create_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "trtengines", manifest
        )
        return result

    def get(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.kube.custom.get_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "trtengines", name
        )
        return result

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.kube.custom.patch_namespaced_custom_object(
            "trtllm.dev", "v1alpha1", self.namespace, "trtengines", name, {"spec": spec}
        )

    def condition(self, name: str, type_: str) -> dict[str, Any] | None:
        conditions = (self.get(name).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), None)

    def wait_condition(
        self,
        name: str,
        type_: str,
        status: str,
        reason: str | None = None,
        timeout: float = 60,
        contains: str = "",
    ) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            found = self.condition(name, type_)
            if (
                found
                and found["status"] == status
                and (reason is None or found["reason"] == reason)
                and contains in found.get("message", "")
            ):
                return found
            return None

        try:
            return wait_for(probe, timeout, what=f"{name} {type_}={status} {reason or ''}")
        except AssertionError as error:
            raise AssertionError(f"{error}\nstatus: {self.get(name).get('status')}") from None

    def jobs(self, name: str) -> list[Any]:
        selector = f"trtllm.dev/engine={name},trtllm.dev/component=build"
        return list(self.kube.batch.list_namespaced_job(self.namespace, label_selector=selector).items)

    def pods(self, name: str) -> list[Any]:
        selector = f"trtllm.dev/engine={name},trtllm.dev/component=build"
        return list(self.kube.core.list_namespaced_pod(self.namespace, label_selector=selector).items)

    def sim(self, **env: str) -> None:
        """Per-namespace knobs of the simulated build environment (TRTLLM_SIM_* for the stand-ins)."""
        body = {"metadata": {"name": "trtllm-sim"}, "data": env}
        try:
            self.kube.core.create_namespaced_config_map(self.namespace, body)
        except client.ApiException as error:
            if error.status != 409:
                raise
            self.kube.core.replace_namespaced_config_map("trtllm-sim", self.namespace, body)


def endpoint_fetch(kube: Kube, namespace: str, service: str) -> Callable[[], tuple[list[Any], list[Any]]]:
    """A ``fetch`` for trtllm_operator.dev.load.Load: the Service's EndpointSlices and pods as API JSON."""

    def fetch() -> tuple[list[Any], list[Any]]:
        slices = client.DiscoveryV1Api(kube.api).list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        pods = kube.core.list_namespaced_pod(
            namespace, label_selector=f"trtllm.dev/inference-service={service}"
        )
        serialize = kube.api.sanitize_for_serialization
        return serialize(slices.items), serialize(pods.items)

    return fetch
