"""A real local Kubernetes control plane with a simulated GPU fleet.

Starts etcd, kube-apiserver (loopback only, generated certificates, service-account signing keys,
Node+RBAC authorization, default admission plugins), kube-controller-manager, kube-scheduler and the
KWOK controller from binaries built by ``hack/build-binaries.sh``; waits until each is healthy; writes
an admin kubeconfig to ``.cluster/kubeconfig``; registers the fleet's nodes. Every process is started
in its own session with its PID recorded, so ``down`` stops exactly what ``up`` started.

Why our own launcher instead of kwokctl: kwokctl's binary runtime downloads components it wasn't given
and hides the flags; here every flag is visible and the layout under ``.cluster/`` is ours.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trtllm_operator.dev import pki
from trtllm_operator.dev.fleet import Fleet, builtin_fleet, fleet_nodes

REPO_ROOT = Path(__file__).resolve().parents[3]
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "sim-executor")


class ClusterError(RuntimeError):
    """The local cluster could not be started or reached; the message says which component and why."""


@dataclass(frozen=True)
class Ports:
    etcd: int = 12379
    etcd_peer: int = 12380
    apiserver: int = 16443
    controller_manager: int = 16257
    scheduler: int = 16259
    kwok: int = 16260

    @classmethod
    def from_env(cls) -> Ports:
        base = int(os.environ.get("TRTLLM_CLUSTER_PORT_OFFSET", "0"))
        return cls(*(port + base for port in (12379, 12380, 16443, 16257, 16259, 16260)))


@dataclass
class LocalCluster:
    """The cluster under ``state_dir`` (default ``<repo>/.cluster``)."""

    state_dir: Path = field(default_factory=lambda: REPO_ROOT / ".cluster")
    bin_dir: Path | None = None
    ports: Ports = field(default_factory=Ports.from_env)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    def _pid_file(self, name: str) -> Path:
        return self.state_dir / "pids" / f"{name}.pid"

    def _log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

    # ----------------------------------------------------------------- lifecycle
    def up(self, fleet: Fleet | None = None, *, timeout: float = 120.0) -> None:
        """Start everything (or reuse a healthy running cluster) and register ``fleet``'s nodes."""
        if self.healthy():
            _say(f"reusing the running cluster at {self.server}")
            if fleet is not None:
                self.apply_fleet(fleet)
            return
        self.down(quiet=True)
        bin_dir = self._binaries()
        started = time.monotonic()
        pki_dir = self.state_dir / "pki"
        for sub in ("pki", "pids", "logs", "etcd", "config"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        certs = self._certificates(pki_dir)
        self._start("etcd", [str(bin_dir / "etcd"), *self._etcd_args()])
        self._wait_http("etcd", f"http://127.0.0.1:{self.ports.etcd}/health", timeout)
        self._start("kube-apiserver", [str(bin_dir / "kube-apiserver"), *self._apiserver_args(pki_dir)])
        self._wait_apiserver(timeout)
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            args = getattr(self, f"_{name.replace('-', '_')}_args")(pki_dir, certs)
            self._start(name, [str(bin_dir / name), *args])
        self._wait_https("kube-controller-manager", self.ports.controller_manager, timeout)
        self._wait_https("kube-scheduler", self.ports.scheduler, timeout)
        self._wait_http("kwok", f"http://127.0.0.1:{self.ports.kwok}/healthz", timeout)
        self._start(
            "sim-executor", [sys.executable, "-m", "trtllm_operator.dev.executor", str(self.kubeconfig)]
        )
        self._wait("sim-executor", self._storage_class_ready, timeout)
        self.apply_fleet(fleet or builtin_fleet("default"))
        _say(f"cluster ready in {time.monotonic() - started:.1f} s; KUBECONFIG={self.kubeconfig}")

    def apply_crds(self, timeout: float = 60.0) -> None:
        """Install (or update) the repo's CRDs with the built kubectl and wait until they are Established."""
        kubectl = [str(self._binaries() / "kubectl"), "--kubeconfig", str(self.kubeconfig)]
        crds = REPO_ROOT / "crds"
        apply = [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(crds)]
        subprocess.run(apply, check=True, stdout=subprocess.DEVNULL)
        wait = [*kubectl, "wait", "--for=condition=Established", f"--timeout={int(timeout)}s"]
        subprocess.run([*wait, "-f", str(crds)], check=True, stdout=subprocess.DEVNULL)

    def restart_apiserver(self, *, down_for: float = 2.0, timeout: float = 120.0) -> None:
        """Stop kube-apiserver, keep it down ``down_for`` seconds, start it again with the same flags.

        For tests of what a client does when the API server goes away (watches break, writes fail) and
        comes back: etcd keeps the data, so the restarted server serves the same objects and
        resourceVersions. kube-controller-manager, kube-scheduler and KWOK are restarted after it: the
        job controller of this build did not always resume after its API server went away (orphaned
        pods kept their job-tracking finalizer), and later tests need a sound cluster. The client under
        test is left alone.
        """
        self._stop("kube-apiserver", quiet=True)
        time.sleep(down_for)
        pki_dir, bin_dir = self.state_dir / "pki", self._binaries()
        self._start("kube-apiserver", [str(bin_dir / "kube-apiserver"), *self._apiserver_args(pki_dir)])
        self._wait_apiserver(timeout)
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._stop(name, quiet=True)
            args = getattr(self, f"_{name.replace('-', '_')}_args")(pki_dir, {})  # same files as before
            self._start(name, [str(bin_dir / name), *args])
        self._wait_https("kube-controller-manager", self.ports.controller_manager, timeout)
        self._wait_https("kube-scheduler", self.ports.scheduler, timeout)
        self._wait_http("kwok", f"http://127.0.0.1:{self.ports.kwok}/healthz", timeout)
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            # Left running for the rest of the cluster's life and stopped by PID (`down`), like the ones
            # `up` started from another process: this process won't reap them.
            process = self._processes.pop(name)
            process.returncode = 0

    def ensure_addons(self, *names: str) -> None:
        """Start each named add-on (dev/addons) that is not running and wait until it is usable.

        Idempotent; raises ClusterError (with the add-on's log tail) when one can't start."""
        from trtllm_operator.dev import addons

        for name in names:
            try:
                addon = addons.get(name)
            except ValueError as error:
                raise ClusterError(str(error)) from None
            if not addon.running(self):
                _say(f"starting add-on {name}")
                addon.start(self)

    @property
    def prometheus_url(self) -> str:
        """Where the "metrics" add-on's Prometheus answers (ClusterError when it was not started)."""
        try:
            return (self.state_dir / "prometheus-url").read_text().strip()
        except OSError as error:
            raise ClusterError("the metrics add-on is not running: ensure_addons('metrics')") from error

    def down(self, *, quiet: bool = False) -> None:
        """Stop exactly the processes ``up`` (and the add-ons) started (by PID) and remove the data."""
        from trtllm_operator.dev import addons

        for name in addons.names():
            addons.get(name).stop(self, quiet)
        for name in reversed(COMPONENTS):
            self._stop(name, quiet=quiet)
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if not quiet:
                _say(f"removed {self.state_dir}")

    def healthy(self) -> bool:
        """All five processes we started are alive and the API server answers /readyz."""
        if not self.kubeconfig.exists() or not all(self._alive(name) for name in COMPONENTS):
            return False
        try:
            return self._get(f"{self.server}/readyz", client=True) == 200
        except (OSError, ssl.SSLError):
            return False

    # ----------------------------------------------------------------- for add-ons (dev/addons)
    def binaries(self, addon: str | None = None) -> Path:
        """The bin directory; with ``addon``, the binaries that add-on runs are built (or reused) too."""
        return self._binaries(*(["--addons", addon] if addon else []))

    def process_alive(self, name: str) -> bool:
        return self._alive(name)

    def start_process(self, name: str, argv: list[str]) -> None:
        (self.state_dir / "logs").mkdir(parents=True, exist_ok=True)
        self._start(name, argv)

    def detach_process(self, name: str) -> None:
        """Leave a started process running for the cluster's life (stopped by PID in ``down``), like
        ``restart_apiserver`` does: this process won't reap it."""
        process = self._processes.pop(name, None)
        if process is not None:
            process.returncode = 0

    def wait_process(self, name: str, probe: Any, timeout: float) -> None:
        self._wait(name, probe, timeout)

    def stop_process(self, name: str, *, quiet: bool) -> None:
        self._stop(name, quiet=quiet)

    def wait_http(self, name: str, url: str, timeout: float) -> None:
        self._wait_http(name, url, timeout)

    def tail(self, name: str, lines: int = 15) -> str:
        return self._tail(name, lines)

    def kubeconfig_text(self, ca: Path, issued: pki.Issued, user: str) -> str:
        return self._kubeconfig_text(ca, issued, user)

    # ----------------------------------------------------------------- binaries & certificates
    def _binaries(self, *script_args: str) -> Path:
        if self.bin_dir is not None:
            return self.bin_dir
        override = os.environ.get("TRTLLM_OPERATOR_BIN")
        if override:
            return Path(override)
        script = REPO_ROOT / "hack" / "build-binaries.sh"
        result = subprocess.run(
            ["bash", str(script), *script_args], stdout=subprocess.PIPE, text=True, check=False
        )
        if result.returncode != 0:
            command = " ".join([str(script), *script_args])
            raise ClusterError(f"{command} failed with exit code {result.returncode}; see its output above")
        return Path(result.stdout.strip().splitlines()[-1])

    def _certificates(self, pki_dir: Path) -> dict[str, pki.Issued]:
        ca = pki.Authority(pki_dir)
        pki.service_account_keys(pki_dir)
        hosts = [
            "127.0.0.1",
            "localhost",
            "10.96.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        certs = {
            "apiserver": ca.issue("apiserver", "kube-apiserver", hosts=hosts),
            "admin": ca.issue("admin", "kubernetes-admin", "system:masters"),
            "kube-controller-manager": ca.issue("kube-controller-manager", "system:kube-controller-manager"),
            "kube-scheduler": ca.issue("kube-scheduler", "system:kube-scheduler"),
            "kwok": ca.issue("kwok", "kwok-controller", "system:masters"),
        }
        # The aggregator's client certificate towards aggregated APIs (custom.metrics.k8s.io), from its
        # own CA as kubeadm does: those servers trust this CA for requests the API server proxies.
        front_proxy = pki.Authority(pki_dir / "front-proxy")
        certs["front-proxy-client"] = front_proxy.issue("front-proxy-client", "front-proxy-client")
        for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok"):
            path = self.kubeconfig if user == "admin" else self.state_dir / "config" / f"{user}.kubeconfig"
            path.write_text(self._kubeconfig_text(ca.cert_path, certs[user], user))
            path.chmod(0o600)
        return certs

    def _kubeconfig_text(self, ca: Path, issued: pki.Issued, user: str) -> str:
        def b64(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "trtllm-local",
                    "cluster": {"server": self.server, "certificate-authority-data": b64(ca)},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {"client-certificate-data": b64(issued.cert), "client-key-data": b64(issued.key)},
                }
            ],
            "contexts": [{"name": "trtllm-local", "context": {"cluster": "trtllm-local", "user": user}}],
            "current-context": "trtllm-local",
        }
        return yaml.safe_dump(config, sort_keys=False)

    # ----------------------------------------------------------------- component flags
    def _etcd_args(self) -> list[str]:
        client, peer = f"http://127.0.0.1:{self.ports.etcd}", f"http://127.0.0.1:{self.ports.etcd_peer}"
        return [
            "--name=trtllm-local",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=trtllm-local={peer}",
            "--quota-backend-bytes=8589934592",
            "--unsafe-no-fsync=true",  # a throwaway test store: durability isn't worth the fsync latency
            "--log-level=warn",
        ]

    def _apiserver_args(self, pki_dir: Path) -> list[str]:
        return [
            f"--etcd-servers=http://127.0.0.1:{self.ports.etcd}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",  # loopback only: no endpoints for the kubernetes Service
            f"--secure-port={self.ports.apiserver}",
            f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
            f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
            f"--client-ca-file={pki_dir / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki_dir / 'sa.pub'}",
            f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--allow-privileged=true",
            "--max-requests-inflight=800",
            "--max-mutating-requests-inflight=400",
            # Aggregated APIs (the metrics add-on's custom.metrics.k8s.io): reach the backing server by
            # its EndpointSlice address, and authenticate proxied requests as kubeadm does.
            "--enable-aggregator-routing=true",
            f"--requestheader-client-ca-file={pki_dir / 'front-proxy' / 'ca.crt'}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={pki_dir / 'front-proxy' / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={pki_dir / 'front-proxy' / 'front-proxy-client.key'}",
            "--v=1",
        ]

    def _kube_controller_manager_args(self, pki_dir: Path, _certs: dict[str, pki.Issued]) -> list[str]:
        kubeconfig = self.state_dir / "config" / "kube-controller-manager.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--service-account-private-key-file={pki_dir / 'sa.key'}",
            f"--root-ca-file={pki_dir / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.controller_manager}",
            f"--cert-dir={self.state_dir / 'pki' / 'kcm'}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-job-syncs=20",
            # HPAs act every 5 s instead of 15 s, so autoscaling tests take seconds, not minutes.
            "--horizontal-pod-autoscaler-sync-period=5s",
            "--v=1",
        ]

    def _kube_scheduler_args(self, pki_dir: Path, _certs: dict[str, pki.Issued]) -> list[str]:
        kubeconfig = self.state_dir / "config" / "kube-scheduler.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports.scheduler}",
            f"--cert-dir={pki_dir / 'scheduler'}",
            "--v=1",
        ]

    def _kwok_args(self, _pki_dir: Path, _certs: dict[str, pki.Issued]) -> list[str]:
        stages = self.state_dir / "config" / "kwok-stages.yaml"
        stages.write_text(resources.files("trtllm_operator.dev").joinpath("data/stages.yaml").read_text())
        return [
            f"--kubeconfig={self.state_dir / 'config' / 'kwok.kubeconfig'}",
            f"--config={stages}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{self.ports.kwok}",
            "--cidr=10.244.0.0/16",
            "--node-ip=10.0.0.1",
        ]

    # ----------------------------------------------------------------- processes
    def _start(self, name: str, argv: list[str]) -> None:
        with self._log(name).open("ab") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(  # argv built above from our own paths (S603 is off project-wide)
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.state_dir,
            )
        self._processes[name] = process
        self._pid_file(name).write_text(f"{process.pid}\n{argv[0]}\n")
        _say(f"started {name} (pid {process.pid}); log: {self._log(name)}")

    def _recorded(self, name: str) -> tuple[int, str] | None:
        try:
            pid_text, exe = self._pid_file(name).read_text().splitlines()[:2]
            return int(pid_text), exe
        except (OSError, ValueError):
            return None

    def _alive(self, name: str) -> bool:
        recorded = self._recorded(name)
        return recorded is not None and _is_our_process(*recorded)

    def _stop(self, name: str, *, quiet: bool) -> None:
        recorded = self._recorded(name)
        if recorded is None or not _is_our_process(*recorded):
            return
        pid = recorded[0]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _is_our_process(*recorded):
            time.sleep(0.1)
        if _is_our_process(*recorded):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        if not quiet:
            _say(f"stopped {name} (pid {pid})")

    # ----------------------------------------------------------------- health
    def _ssl_context(self, client: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.state_dir / "pki" / "ca.crt"))
        if client:
            context.load_cert_chain(
                self.state_dir / "pki" / "admin.crt", self.state_dir / "pki" / "admin.key"
            )
        return context

    def _get(self, url: str, *, client: bool = False, verify: bool = True) -> int:
        context: ssl.SSLContext | None = None
        if url.startswith("https"):
            context = self._ssl_context(client) if verify else ssl._create_unverified_context()  # noqa: S323
        with urllib.request.urlopen(url, timeout=5, context=context) as response:  # noqa: S310 - loopback only
            return int(response.status)

    def _wait(self, name: str, probe: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            process = self._processes.get(name)
            if process is not None and process.poll() is not None:
                raise ClusterError(f"{name} exited during start-up; last log lines:\n{self._tail(name)}")
            try:
                if probe() == 200:
                    _say(f"{name} healthy")
                    return
            except (OSError, ssl.SSLError, urllib.error.URLError) as error:
                last = str(error)
            time.sleep(0.25)
        raise ClusterError(
            f"{name} not healthy after {timeout:.0f} s ({last}); last log lines:\n{self._tail(name)}"
        )

    def _wait_http(self, name: str, url: str, timeout: float) -> None:
        self._wait(name, lambda: self._get(url), timeout)

    def _wait_https(self, name: str, port: int, timeout: float) -> None:
        self._wait(name, lambda: self._get(f"https://127.0.0.1:{port}/healthz", verify=False), timeout)

    def _wait_apiserver(self, timeout: float) -> None:
        self._wait("kube-apiserver", lambda: self._get(f"{self.server}/readyz", client=True), timeout)

    def _storage_class_ready(self) -> int:
        from kubernetes import client

        from trtllm_operator.k8s import new_api_client

        api = client.StorageV1Api(new_api_client(self.kubeconfig))
        try:
            api.read_storage_class("sim-local")
            return 200
        except client.ApiException as error:
            return int(error.status or 500)

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join(self._log(name).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ----------------------------------------------------------------- fleet
    def apply_fleet(self, fleet: Fleet, *, wait: bool = True) -> list[str]:
        """Create (or update) the fleet's nodes; returns their names."""
        return apply_nodes(self.kubeconfig, fleet_nodes(fleet), wait=wait)


def apply_nodes(
    kubeconfig: Path, nodes: Iterable[dict[str, Any]], *, wait: bool = True, timeout: float = 60
) -> list[str]:
    """Create Node objects and set their status (capacity/allocatable); KWOK then keeps them Ready."""
    from kubernetes import client

    from trtllm_operator.k8s import as_body, new_api_client, required

    api = client.CoreV1Api(new_api_client(kubeconfig))
    names = []
    for node in nodes:
        body = {k: v for k, v in node.items() if k != "status"}
        try:
            api.create_node(as_body(body))
        except client.ApiException as error:
            if error.status != 409:
                raise
            api.patch_node(node["metadata"]["name"], body)
        api.patch_node_status(node["metadata"]["name"], {"status": node["status"]})
        names.append(node["metadata"]["name"])
    if wait:
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            for item in api.list_node().items:
                conditions = required(item.status, "status").conditions or []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    pending.discard(required(item.metadata, "metadata").name)
            if pending:
                time.sleep(0.5)
        if pending:
            raise ClusterError(
                f"nodes not Ready after {timeout:.0f} s (is kwok running?): {sorted(pending)[:5]}"
            )
    return names


def _is_our_process(pid: int, exe: str) -> bool:
    """The PID is alive and still runs the binary we started (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return False
    return cmdline == exe and status != "Z"


def _say(message: str) -> None:
    print(f"[cluster] {message}", flush=True)
