"""The simulated cluster's kubelet-side helpers: a local volume provisioner and the build-pod executor.

KWOK makes pods look Running but runs nothing. This process closes the gap for the parts the product
depends on:

* **Volumes** — PVCs of the default StorageClass ``sim-local`` get a hostPath PV under
  ``.cluster/volumes/``, bound by the real PV controller, so the scheduler's volume checks are real.
* **Build pods** (label ``trtllm.dev/component=build``) scheduled on a simulated node are executed:
  the real builder (``python -m trtllm_operator.builder``) runs on this machine with the plan from the
  pod's ConfigMap, the pod's PVC mounts mapped to their hostPath directories (``--remap``), the
  TensorRT-LLM stand-ins first on PATH and a pynvml stand-in that reports the node's GPUs (from its GFD
  labels, or from the ``sim.trtllm.dev/actual-gpus`` annotation to simulate stale labels). When it
  exits, the pod is annotated with the exit code and termination message and KWOK's ``pod-finish`` stage
  reports them in the pod status, exactly where a kubelet would.
* **Serving pods** (label ``trtllm.dev/component=server``) are started as the stand-in ``trtllm-serve``
  (``dev/standins/trtllm_serve.py``) on a loopback port of this machine, one process per pod, with the
  pod's own arguments (``--host``/``--port`` replaced) and the timing of the engine's recorded benchmark
  (``status.benchmark`` of the pod's TRTEngine). KWOK's ``pod-server-start`` stage makes such a pod
  Running but *not* Ready; this executor is its kubelet for readiness and liveness: it probes the
  stand-in's ``/health`` every second (not the pod's ``periodSeconds``) and patches the pod's Ready and
  ContainersReady conditions, so EndpointSlices and the Deployment follow the server's real health. A
  stand-in that exits or fails ``/health`` three times after having been Ready is restarted and the
  container's ``restartCount`` goes up, as a liveness probe would do. The pod IP the Service's
  EndpointSlices list is KWOK's invention: nothing listens there. ``.cluster/serving-endpoints.json``
  maps ``podIP:port`` to the ``127.0.0.1:port`` that really answers, and each pod carries it in the
  ``sim.trtllm.dev/loopback`` annotation.

* **Multi-node groups** (LeaderWorkerSet, ``render/multinode.py``): the leader pod is a serving pod
  like any other (the stand-in ``trtllm-serve`` serves for the whole group; the pod's ``mpirun``
  command is not run). Worker pods (label ``trtllm.dev/component=server-worker``) run nothing: they are
  marked Ready once their leader's stand-in answers ``/health`` and not Ready while it doesn't, or while
  the worker carries the annotation ``sim.trtllm.dev/unready: "true"`` (a test's way to make one worker
  fail its readiness probe).

Per-namespace simulation knobs come from an optional ConfigMap ``trtllm-sim`` (keys are TRTLLM_SIM_*
environment variables for the stand-ins, e.g. TRTLLM_SIM_BENCH), so each test picks its own numbers.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from kubernetes import client

from trtllm_operator.api import constants as c
from trtllm_operator.builder import builder_command
from trtllm_operator.dev.standins import standin_env
from trtllm_operator.dev.standins.simgpu import sim_gpus_for_node_labels
from trtllm_operator.gpu.labels import GFD
from trtllm_operator.k8s import as_body, new_api_client, required
from trtllm_operator.trtllm.cli_tables import CONVERT_12_BY_FAMILY, version_from_image

log = structlog.get_logger("sim-executor")
REPO = Path(__file__).resolve().parents[3]
STANDIN_BIN = REPO / "hack" / "standins" / "bin"
STORAGE_CLASS = "sim-local"
PROVISIONER = "sim.trtllm.dev/local"
COMPONENT_CLEANUP = "cleanup"
EXIT_ANNOTATION = "sim.trtllm.dev/exit-code"
MESSAGE_ANNOTATION = "sim.trtllm.dev/termination-message"
ACTUAL_GPUS_ANNOTATION = "sim.trtllm.dev/actual-gpus"
SIM_CONFIGMAP = "trtllm-sim"
EXECUTOR_LABEL = "sim.trtllm.dev/executor"
EXAMPLES = "/app/tensorrt_llm/examples"
BENCHMARKS = "/app/tensorrt_llm/benchmarks"
LOOPBACK_ANNOTATION = "sim.trtllm.dev/loopback"
UNREADY_ANNOTATION = "sim.trtllm.dev/unready"
LWS_LEADER_NAME_ANNOTATION = "leaderworkerset.sigs.k8s.io/leader-name"
ENDPOINTS_FILE = "serving-endpoints.json"
LIVENESS_FAILURES = 3
#: The convert_checkpoint.py scripts the renderer emits, one per transcribed parser (no mixtral script
#: upstream: Mixtral converts with llama's).
FAMILIES = tuple(CONVERT_12_BY_FAMILY)


@dataclass
class ServingPod:
    """One running stand-in trtllm-serve and what the executor last told the API server about it."""

    uid: str
    process: subprocess.Popen[bytes]
    port: int
    target: str  # podIP:containerPort, as the EndpointSlices list it
    ready: bool | None = None
    failures: int = 0
    restarts: int = 0
    drain_seconds: float = 0.0  # the container's preStop sleep: served on after the pod is deleted
    stop_at: float | None = None  # monotonic time the drain ends (None: not draining)
    was_ready: bool = False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pre_stop_sleep(container: Any) -> float:
    """Seconds of the container's ``lifecycle.preStop.sleep`` hook (0 without one)."""
    pre_stop = getattr(getattr(container, "lifecycle", None), "pre_stop", None)
    seconds = getattr(getattr(pre_stop, "sleep", None), "seconds", None)
    return (
        float(seconds) if isinstance(seconds, int) and not isinstance(seconds, bool) and seconds > 0 else 0.0
    )


def _die_with_parent() -> None:
    """Stand-in servers must not outlive the executor (Linux: SIGKILL when the parent thread dies)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serve_profile(engine: dict[str, Any] | None, revision: str) -> dict[str, Any]:
    """The stand-in's timing from a TRTEngine's recorded (simulated) benchmark; {} when none."""
    bench = ((engine or {}).get("status") or {}).get("benchmark") or {}
    if not bench.get("outputTokensPerSecond"):
        return {}
    concurrency = int(bench.get("concurrency") or 1)
    itl = (bench.get("itlMs") or {}).get("p50") or 1000.0 * concurrency / float(
        bench["outputTokensPerSecond"]
    )
    return {
        "ttftMs": (bench.get("ttftMs") or {}).get("p50"),
        "itlMs": itl,
        "concurrency": concurrency,
        "isl": bench.get("isl"),
        "osl": bench.get("osl"),
        "source": f"simulated benchmark of revision {bench.get('revision', revision)}",
    }


class Executor:
    def __init__(self, kubeconfig: Path, state_dir: Path) -> None:
        self.api = new_api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.storage = client.StorageV1Api(self.api)
        self.state_dir = state_dir
        self.volumes = state_dir / "volumes"
        self.pod_logs = state_dir / "logs" / "pods"
        self.tree = state_dir / "standin-tensorrt_llm"  # stands in for the image's /app/tensorrt_llm
        self.running: dict[str, threading.Thread] = {}
        self.lock = threading.Lock()
        self.custom = client.CustomObjectsApi(self.api)
        self.servers: dict[str, ServingPod] = {}
        self.endpoints_file = state_dir / ENDPOINTS_FILE

    # ------------------------------------------------------------------ setup
    def prepare(self) -> None:
        for directory in (self.volumes, self.pod_logs):
            directory.mkdir(parents=True, exist_ok=True)
        self._examples_tree()
        storage_class = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        try:
            self.storage.create_storage_class(as_body(storage_class))
        except client.ApiException as error:
            if error.status != 409:
                raise

    def _examples_tree(self) -> None:
        """/app/tensorrt_llm as the stand-ins: examples/quantization/quantize.py,
        examples/models/core/*/convert_checkpoint.py, benchmarks/cpp/prepare_dataset.py."""
        links = {
            "examples/quantization/quantize.py": "quantize.py",
            "benchmarks/cpp/prepare_dataset.py": "prepare_dataset.py",
        }
        links.update(
            {
                f"examples/models/core/{family}/convert_checkpoint.py": "convert_checkpoint.py"
                for family in FAMILIES
            }
        )
        for relative, target in links.items():
            path = self.tree / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.symlink_to(STANDIN_BIN / target)

    # ------------------------------------------------------------------ volumes
    def provision(self) -> None:
        for pvc in self.core.list_persistent_volume_claim_for_all_namespaces().items:
            spec = required(pvc.spec, "spec")
            if required(pvc.status, "status").phase != "Pending" or spec.volume_name:
                continue
            if (spec.storage_class_name or STORAGE_CLASS) != STORAGE_CLASS:
                continue
            meta = required(pvc.metadata, "metadata")
            namespace, name = required(meta.namespace, "namespace"), required(meta.name, "name")
            # One directory per claim *instance* (its uid), as a real provisioner creates a new volume: a
            # claim deleted and created again with the same name starts empty, it never sees old files.
            path = self.volumes / namespace / f"{name}-{str(meta.uid)[:8]}"
            path.mkdir(parents=True, exist_ok=True)
            size = (required(spec.resources, "spec.resources").requests or {}).get("storage", "1Gi")
            pv = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": f"pvc-{meta.uid}",
                    "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
                },
                "spec": {
                    "capacity": {"storage": size},
                    "accessModes": spec.access_modes or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                    "claimRef": {"namespace": namespace, "name": name, "uid": meta.uid},
                },
            }
            try:
                self.core.create_persistent_volume(as_body(pv))
                log.info("provisioned", claim=f"{namespace}/{name}", path=str(path))
            except client.ApiException as error:
                if error.status != 409:
                    raise

    def _host_path(self, namespace: str, claim: str) -> Path:
        pvc = self.core.read_namespaced_persistent_volume_claim(claim, namespace)
        volume_name = required(pvc.spec, "spec").volume_name
        if not volume_name:
            raise RuntimeError(f"claim {namespace}/{claim} is not bound")
        pv = self.core.read_persistent_volume(volume_name)
        host_path = required(pv.spec, "spec").host_path
        if host_path is None:
            raise RuntimeError(f"volume {required(pv.metadata, 'metadata').name} is not a local volume")
        return Path(host_path.path)

    # ------------------------------------------------------------------ build pods
    def scan(self) -> None:
        selector = f"{c.LABEL_COMPONENT} in ({c.COMPONENT_BUILD},{COMPONENT_CLEANUP})"
        pods = self.core.list_pod_for_all_namespaces(label_selector=selector).items
        if not pods:
            return
        # Namespaces labelled sim.trtllm.dev/executor=off keep their build pods Running and unexecuted:
        # the test or benchmark there plays the kubelet itself (kube.finish_pod) or wants builds in flight.
        off = {
            required(ns.metadata, "metadata").name
            for ns in self.core.list_namespace(label_selector=f"{EXECUTOR_LABEL}=off").items
        }
        for pod in pods:
            meta = required(pod.metadata, "metadata")
            if meta.namespace in off:
                continue
            key = f"{meta.namespace}/{meta.name}"
            phase = required(pod.status, "status").phase
            if phase != "Running" or EXIT_ANNOTATION in (meta.annotations or {}):
                continue
            with self.lock:
                if key in self.running:
                    continue
                thread = threading.Thread(target=self._run_pod, args=(pod,), name=key, daemon=True)
                self.running[key] = thread
            thread.start()

    def _run_pod(self, pod: Any) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        cleanup = (pod.metadata.labels or {}).get(c.LABEL_COMPONENT) == COMPONENT_CLEANUP
        try:
            code, message = self._execute_command(pod) if cleanup else self._execute(pod)
        except Exception as error:  # the executor itself failed: report like a container crash
            log.error("executor failed", pod=key, error=str(error))
            code, message = 128, f"sim executor: {error}"
        try:
            annotations = {EXIT_ANNOTATION: str(code), MESSAGE_ANNOTATION: message}
            self.core.patch_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, {"metadata": {"annotations": annotations}}
            )
            log.info("pod finished", pod=key, exit_code=code)
        except client.ApiException as error:
            if error.status != 404:
                log.error("could not report pod result", pod=key, error=str(error))
        finally:
            with self.lock:
                self.running.pop(key, None)

    def _container(self, pod: Any) -> Any:
        return next(x for x in pod.spec.containers if x.name in ("builder", "cleanup", "server"))

    def _execute_command(self, pod: Any) -> tuple[int, str]:
        """A plain container (the engine-files cleanup): its own command, volume paths mapped to hostPaths."""
        volumes = {v.name: v for v in pod.spec.volumes or []}
        mapping: list[tuple[str, str]] = []
        for mount in self._container(pod).volume_mounts or []:
            volume = volumes.get(mount.name)
            if volume is not None and volume.persistent_volume_claim is not None:
                host = self._host_path(pod.metadata.namespace, volume.persistent_volume_claim.claim_name)
                mapping.append((mount.mount_path, str(host)))

        def remap(arg: str) -> str:
            for source, target in mapping:
                if arg == source or arg.startswith(source + "/"):
                    return target + arg[len(source) :]
            return arg

        container = self._container(pod)
        argv = [remap(a) for a in [*(container.command or []), *(container.args or [])]]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return done.returncode, (done.stdout + done.stderr)[-c.RESULT_MAX_BYTES :]

    def _gpus(self, pod: Any) -> list[dict[str, Any]]:
        node_meta = required(self.core.read_node(pod.spec.node_name).metadata, "metadata")
        annotations = node_meta.annotations or {}
        if ACTUAL_GPUS_ANNOTATION in annotations:
            gpus: list[dict[str, Any]] = json.loads(annotations[ACTUAL_GPUS_ANNOTATION])
        else:
            gpus = sim_gpus_for_node_labels(node_meta.labels or {})
        limits = self._container(pod).resources.limits or {}
        return gpus[: int(limits.get(GFD.RESOURCE, "0"))]

    def _env(self, pod: Any) -> dict[str, str]:
        namespace = pod.metadata.namespace
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TRTLLM_SIM_", "HF_"))}
        base["PYTHONPATH"] = str(REPO / "operator")  # this checkout's package, behind the pynvml shim
        env = standin_env(self._gpus(pod), base, PYTHONUNBUFFERED="1")
        if version := version_from_image(self._container(pod).image or ""):
            env["TRTLLM_SIM_VERSION"] = version  # the stand-ins play the image's TensorRT-LLM version
        pythonpath = env["PYTHONPATH"]
        for item in self._container(pod).env or []:
            if item.value is not None:
                env[item.name] = item.value
            elif item.value_from and item.value_from.secret_key_ref:  # what a kubelet does with secretKeyRef
                ref = item.value_from.secret_key_ref
                secret = self.core.read_namespaced_secret(ref.name, namespace)
                env[item.name] = base64.b64decode((secret.data or {})[ref.key]).decode()
        try:
            sim = self.core.read_namespaced_config_map(SIM_CONFIGMAP, namespace).data or {}
            env.update({k: v for k, v in sim.items() if k.startswith("TRTLLM_SIM_")})
        except client.ApiException as error:
            if error.status != 404:
                raise
        env["PYTHONPATH"] = pythonpath  # the pod's own PYTHONPATH points into its (absent) image
        env["HOME"] = base.get("HOME", "/tmp")  # the pod HOME (/tmp) is in its image
        return env

    def _remaps(self, pod: Any) -> tuple[list[str], Path]:
        """--remap arguments for every PVC mount, and the plan file taken from the ConfigMap mount."""
        volumes = {v.name: v for v in pod.spec.volumes or []}
        remaps = [f"{EXAMPLES}={self.tree / 'examples'}", f"{BENCHMARKS}={self.tree / 'benchmarks'}"]
        plan_file: Path | None = None
        for mount in self._container(pod).volume_mounts or []:
            volume = volumes.get(mount.name)
            if volume is None:
                continue
            if volume.persistent_volume_claim is not None:
                host = self._host_path(pod.metadata.namespace, volume.persistent_volume_claim.claim_name)
                remaps.append(f"{mount.mount_path}={host}")
            elif volume.config_map is not None and mount.mount_path == c.PLAN_MOUNT:
                data = (
                    self.core.read_namespaced_config_map(volume.config_map.name, pod.metadata.namespace).data
                    or {}
                )
                handle, name = tempfile.mkstemp(prefix="plan-", suffix=".json")
                os.write(handle, data[c.PLAN_FILE].encode())
                os.close(handle)
                plan_file = Path(name)
        if plan_file is None:
            raise RuntimeError("build pod has no plan ConfigMap mounted at " + c.PLAN_MOUNT)
        return remaps, plan_file

    def _execute(self, pod: Any) -> tuple[int, str]:
        remaps, plan_file = self._remaps(pod)
        result_file = Path(tempfile.mkstemp(prefix="result-")[1])
        argv = builder_command(plan_file, result_file, remaps)
        log_path = self.pod_logs / f"{pod.metadata.namespace}_{pod.metadata.name}.log"
        log.info(
            "running builder",
            pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
            node=pod.spec.node_name,
            log=str(log_path),
        )
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=self._env(pod), cwd=REPO
            )
            while process.poll() is None:
                time.sleep(0.5)
                if not self._pod_exists(pod):
                    process.kill()
                    return 137, "pod deleted"
        message = result_file.read_text() if result_file.exists() else ""
        if not message.strip():  # terminationMessagePolicy FallbackToLogsOnError
            message = "\n".join(log_path.read_text(errors="replace").splitlines()[-80:])[
                -c.RESULT_MAX_BYTES :
            ]
        for path in (plan_file, result_file):
            path.unlink(missing_ok=True)
        return int(process.returncode), message

    def _pod_exists(self, pod: Any) -> bool:
        try:
            current = self.core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)
        except client.ApiException as error:
            status: int | None = error.status
            return status != 404
        meta = required(current.metadata, "metadata")
        return bool(meta.uid == pod.metadata.uid and not meta.deletion_timestamp)

    # ------------------------------------------------------------------ serving pods
    def serve_scan(self) -> None:
        """Start a stand-in for each new Running serving pod, probe them all, stop the gone ones.

        Runs on the main thread: the stand-ins die with the thread that started them (PDEATHSIG)."""
        selector = f"{c.LABEL_COMPONENT}={c.COMPONENT_SERVER}"
        seen: set[str] = set()
        for pod in self.core.list_pod_for_all_namespaces(label_selector=selector).items:
            meta, status = required(pod.metadata, "metadata"), required(pod.status, "status")
            key = f"{meta.namespace}/{meta.name}"
            if meta.deletion_timestamp or status.phase != "Running" or not status.pod_ip:
                continue
            seen.add(key)
            current = self.servers.get(key)
            if current is not None and current.uid != meta.uid:
                self._stop_server(key)
                current = None
            if current is None:
                self._start_server(key, pod)
            else:
                self._probe(key, pod, current)
        for key in [k for k in self.servers if k not in seen]:
            self._drain_or_stop(key)
        self._write_endpoints()
        self._workers_scan()

    def _workers_scan(self) -> None:
        """Multi-node worker pods: Ready exactly when their leader's stand-in is (and not marked unready)."""
        selector = f"{c.LABEL_COMPONENT}={c.COMPONENT_SERVER_WORKER}"
        for pod in self.core.list_pod_for_all_namespaces(label_selector=selector).items:
            meta, status = required(pod.metadata, "metadata"), required(pod.status, "status")
            if meta.deletion_timestamp or status.phase != "Running":
                continue
            annotations = meta.annotations or {}
            leader = annotations.get(LWS_LEADER_NAME_ANNOTATION) or str(meta.name).rsplit("-", 1)[0]
            server = self.servers.get(f"{meta.namespace}/{leader}")
            want = bool(server and server.ready and annotations.get(UNREADY_ANNOTATION) != "true")
            ready = any(x.type == "Ready" and x.status == "True" for x in status.conditions or [])
            if want != ready:
                log.info("worker pod readiness", pod=f"{meta.namespace}/{meta.name}", ready=want)
                self._patch_ready(pod, want, 0)

    def _start_server(self, key: str, pod: Any, restarts: int = 0) -> None:
        container = self._container(pod)
        args = list(container.args or [])
        container_port = next((p.container_port for p in container.ports or []), 8000)
        port = _free_port()
        for flag, value in (("--host", "127.0.0.1"), ("--port", str(port))):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        if args and args[0] == "trtllm-serve":
            args = args[1:]
        env = self._env(pod)
        labels = pod.metadata.labels or {}
        engine = self._engine(pod.metadata.namespace, labels.get(c.LABEL_ENGINE, ""))
        revision = labels.get(c.LABEL_REVISION, "")
        env["TRTLLM_SIM_SERVE_PROFILE"] = json.dumps(serve_profile(engine, revision))
        env["TRTLLM_SIM_REVISION"] = revision
        if engine_dir := self._served_engine_dir(pod):
            env["TRTLLM_SIM_ENGINE_DIR"] = str(engine_dir)
        log_path = self.pod_logs / f"{pod.metadata.namespace}_{pod.metadata.name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, str(STANDIN_BIN / "trtllm-serve"), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
                preexec_fn=_die_with_parent,  # only sets the death signal
            )
        target = f"{pod.status.pod_ip}:{container_port}"
        self.servers[key] = ServingPod(
            pod.metadata.uid,
            process,
            port,
            target,
            restarts=restarts,
            drain_seconds=_pre_stop_sleep(container),
        )
        log.info(
            "serving pod started", pod=key, loopback=f"127.0.0.1:{port}", target=target, log=str(log_path)
        )
        try:
            annotations = {LOOPBACK_ANNOTATION: f"127.0.0.1:{port}"}
            self.core.patch_namespaced_pod(
                pod.metadata.name, pod.metadata.namespace, {"metadata": {"annotations": annotations}}
            )
        except client.ApiException as error:
            if error.status != 404:
                raise

    def _engine(self, namespace: str, name: str) -> dict[str, Any] | None:
        if not name:
            return None
        try:
            engine = self.custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, name
            )
            return engine if isinstance(engine, dict) else None
        except client.ApiException as error:
            if error.status != 404:
                raise
            return None

    def _served_engine_dir(self, pod: Any) -> Path | None:
        """The host directory behind the container's engine subPath mount (what MODEL points at)."""
        volumes = {v.name: v for v in pod.spec.volumes or []}
        for mount in self._container(pod).volume_mounts or []:
            volume = volumes.get(mount.name)
            if mount.sub_path and volume is not None and volume.persistent_volume_claim is not None:
                claim = volume.persistent_volume_claim.claim_name
                return self._host_path(pod.metadata.namespace, claim) / str(mount.sub_path)
        return None

    def _healthy(self, server: ServingPod) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=1) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False

    def _probe(self, key: str, pod: Any, server: ServingPod) -> None:
        exited = server.process.poll() is not None
        healthy = not exited and self._healthy(server)
        server.failures = 0 if healthy else server.failures + 1
        server.was_ready = server.was_ready or healthy
        if exited or (server.was_ready and server.failures >= LIVENESS_FAILURES):
            log.info("restarting serving pod", pod=key, exited=exited, failures=server.failures)
            self._stop_server(key)
            self._start_server(key, pod, restarts=server.restarts + 1)
            self._set_ready(pod, self.servers[key], False)
            return
        if healthy != server.ready:
            self._set_ready(pod, server, healthy)

    def _set_ready(self, pod: Any, server: ServingPod, ready: bool) -> None:
        if self._patch_ready(pod, ready, server.restarts):
            server.ready = ready

    def _patch_ready(self, pod: Any, ready: bool, restarts: int) -> bool:
        """What a kubelet reports after a readiness probe: Ready/ContainersReady and the container's ready."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        value = "True" if ready else "False"
        conditions = [
            {"type": kind, "status": value, "lastTransitionTime": now}
            for kind in ("Ready", "ContainersReady")
        ]
        container = pod.spec.containers[0]
        statuses = [
            {
                "name": container.name,
                "image": container.image,
                "ready": ready,
                "started": True,
                "restartCount": restarts,
                "state": {"running": {"startedAt": now}},
            }
        ]
        body = {"status": {"conditions": conditions, "containerStatuses": statuses}}
        try:
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)
            return True
        except client.ApiException as error:
            if error.status != 404:
                raise
            return False

    def _drain_or_stop(self, key: str) -> None:
        """The pod is being deleted (or gone). As a kubelet runs a preStop ``sleep`` before SIGTERM, the
        stand-in keeps answering for that long (clients drop it once its endpoint leaves the
        EndpointSlice), then stops; without a preStop hook it stops at once."""
        server = self.servers[key]
        now = time.monotonic()
        if server.stop_at is None and server.drain_seconds > 0:
            server.stop_at = now + server.drain_seconds
            log.info("serving pod draining", pod=key, seconds=server.drain_seconds)
        if server.stop_at is None or now >= server.stop_at:
            self._stop_server(key)

    def _stop_server(self, key: str) -> None:
        server = self.servers.pop(key)
        if server.process.poll() is None:
            server.process.terminate()
            try:
                server.process.wait(5)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(5)
        log.info("serving pod stopped", pod=key)

    def _write_endpoints(self) -> None:
        mapping = {s.target: f"127.0.0.1:{s.port}" for s in self.servers.values()}
        text = json.dumps(mapping, indent=1, sort_keys=True)
        if not self.endpoints_file.exists() or self.endpoints_file.read_text() != text:
            temporary = self.endpoints_file.with_suffix(".tmp")
            temporary.write_text(text)
            temporary.replace(self.endpoints_file)

    def loop(self, interval: float = 0.5) -> None:
        self.prepare()
        log.info("sim executor ready", volumes=str(self.volumes))
        try:
            while True:
                try:
                    self.provision()
                    self.scan()
                    self.serve_scan()
                except Exception as error:  # keep going: the API server may restart under us
                    log.error("executor loop error", error=str(error))
                time.sleep(interval)
        finally:
            for key in list(self.servers):
                self._stop_server(key)


def main() -> int:
    from trtllm_operator.logging import configure_logging

    configure_logging()
    state_dir = Path(os.environ.get("TRTLLM_CLUSTER_STATE", str(REPO / ".cluster")))
    Executor(Path(sys.argv[1]) if len(sys.argv) > 1 else state_dir / "kubeconfig", state_dir).loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
