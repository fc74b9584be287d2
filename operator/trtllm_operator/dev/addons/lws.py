"""Cluster add-on "lws": the LeaderWorkerSet controller (sigs.k8s.io/lws) on the local API server.

Real upstream code: ``lws-manager`` is ``sigs.k8s.io/lws/cmd`` built from the Go module proxy by
``hack/build-binaries.sh`` (``build_lws``, version ``LWS_VERSION``), and the CRD is the module's own
``config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml`` copied next to the binary.

How it runs here (instead of the upstream Deployment + Service + cert rotation):

* the manager is a local process with its own client certificate (issued by the cluster CA, group
  ``system:masters`` like KWOK's); leader election off; metrics off; health probes on loopback;
* its webhooks (defaulting/validation of LeaderWorkerSets, and the pod webhook that gives group pods
  their ``leaderworkerset.sigs.k8s.io/*`` labels and the ``LWS_LEADER_ADDRESS`` / ``LWS_GROUP_SIZE`` /
  ``LWS_WORKER_INDEX`` env) serve on ``127.0.0.1:<port>`` with a certificate from a CA issued here;
  the webhook configurations are the upstream ones (config/webhook/manifests.yaml with the
  objectSelector patches) with ``clientConfig.url`` instead of a Service;
* the controller's internal cert rotation (``internalCertManagement``) is disabled in its config file:
  it would write a Secret and patch the webhook configurations for an in-cluster Service.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trtllm_operator.dev import pki

if TYPE_CHECKING:
    from trtllm_operator.dev.cluster import LocalCluster

NAME = "lws-manager"
#: The LeaderWorkerSet API the operator renders (api/constants.py has the same).
CRD = "leaderworkersets.leaderworkerset.x-k8s.io"
WEBHOOK_PORT, HEALTH_PORT = 16270, 16271
MUTATING = "trtllm-local-lws-mutating"
VALIDATING = "trtllm-local-lws-validating"
#: Pods of a LeaderWorkerSet only (upstream config/webhook/{mutating,validating}-patch.yaml).
POD_SELECTOR = {"matchExpressions": [{"key": "leaderworkerset.sigs.k8s.io/name", "operator": "Exists"}]}


def _ports() -> tuple[int, int]:
    base = int(os.environ.get("TRTLLM_CLUSTER_PORT_OFFSET", "0"))
    return WEBHOOK_PORT + base, HEALTH_PORT + base


def _dir(cluster: LocalCluster) -> Path:
    return cluster.state_dir / "addons" / "lws"


def running(cluster: LocalCluster) -> bool:
    """The manager runs and its CRD is installed (a test may have removed it)."""
    if not cluster.process_alive(NAME):
        return False
    kubectl = cluster.binaries() / "kubectl"
    argv = [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "get", f"crd/{CRD}", "-o", "name"]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def _kubectl(cluster: LocalCluster, bin_dir: Path, *args: str, stdin: str | None = None) -> None:
    argv = [str(bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        from trtllm_operator.dev.cluster import ClusterError

        raise ClusterError(f"lws add-on: kubectl {' '.join(args[:2])} failed: {result.stderr[-2000:]}")


def _webhooks(url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """Upstream's four webhooks (config/webhook/manifests.yaml + patches), pointed at ``url``."""

    def hook(name: str, path: str, group: str, resource: str, ops: list[str], pods: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": name,
            "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": f"{url}{path}", "caBundle": ca_bundle},
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "rules": [
                {"apiGroups": [group], "apiVersions": ["v1"], "operations": ops, "resources": [resource]}
            ],
        }
        if pods:
            entry["objectSelector"] = POD_SELECTOR
        return entry

    lws, create_update = "leaderworkerset.x-k8s.io", ["CREATE", "UPDATE"]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": MUTATING},
            "webhooks": [
                hook(
                    "mleaderworkerset.kb.io",
                    "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    lws,
                    "leaderworkersets",
                    create_update,
                    False,
                ),
                hook("mpod.kb.io", "/mutate--v1-pod", "", "pods", ["CREATE"], True),
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VALIDATING},
            "webhooks": [
                hook(
                    "vleaderworkerset.kb.io",
                    "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    lws,
                    "leaderworkersets",
                    create_update,
                    False,
                ),
                hook("vpod.kb.io", "/validate--v1-pod", "", "pods", create_update, True),
            ],
        },
    ]


def start(cluster: LocalCluster) -> None:
    """Install the CRD, start the manager, register its webhooks; wait until it answers /readyz."""
    from trtllm_operator.dev.cluster import ClusterError

    cluster.stop_process(NAME, quiet=True)  # a half-installed add-on starts over
    bin_dir = cluster.binaries("lws")
    crds = bin_dir / "lws-crds"
    if not (bin_dir / NAME).exists() or not crds.is_dir():
        raise ClusterError(
            f"lws add-on: {bin_dir / NAME} or {crds} missing: run hack/build-binaries.sh --addons lws"
        )
    webhook_port, health_port = _ports()
    home = _dir(cluster)
    home.mkdir(parents=True, exist_ok=True)
    # The manager's identity towards the API server: a client cert from the cluster's CA.
    cluster_ca = pki.Authority.load(cluster.state_dir / "pki")
    client = cluster_ca.issue("lws-manager", "lws-controller-manager", "system:masters")
    kubeconfig = home / "kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig_text(cluster_ca.cert_path, client, "lws-controller-manager"))
    kubeconfig.chmod(0o600)
    # The webhook server's certificate, from a CA of its own (the caBundle of the configurations).
    webhook_ca = pki.Authority(home / "webhook-pki")
    serving = webhook_ca.issue("tls", "lws-webhook", hosts=["127.0.0.1", "localhost"])
    certs = home / "certs"
    certs.mkdir(exist_ok=True)
    (certs / "tls.crt").write_bytes(serving.cert.read_bytes())
    (certs / "tls.key").write_bytes(serving.key.read_bytes())
    (certs / "tls.key").chmod(0o600)
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"port": webhook_port, "host": "127.0.0.1", "certDir": str(certs)},
        "metrics": {"bindAddress": "0"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
    }
    (home / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _kubectl(cluster, bin_dir, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
    _wait_established(cluster, bin_dir)
    cluster.start_process(
        NAME,
        [
            str(bin_dir / NAME),
            f"--config={home / 'config.yaml'}",
            f"--kubeconfig={kubeconfig}",
            "--zap-log-level=info",
        ],
    )
    cluster.wait_http(NAME, f"http://127.0.0.1:{health_port}/readyz", 60)
    cluster.detach_process(NAME)
    ca_bundle = base64.b64encode(webhook_ca.cert_path.read_bytes()).decode()
    docs = _webhooks(f"https://127.0.0.1:{webhook_port}", ca_bundle)
    _kubectl(cluster, bin_dir, "apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    _wait_webhook_ready(cluster, bin_dir)


def _wait_established(cluster: LocalCluster, bin_dir: Path, timeout: float = 60) -> None:
    """kubectl wait fails at once while the new CRD has no conditions yet: retry until Established."""
    from trtllm_operator.dev.cluster import ClusterError

    deadline, last = time.monotonic() + timeout, ""
    argv = [str(bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    while time.monotonic() < deadline:
        wait = [*argv, "wait", "--for=condition=Established", "--timeout=10s", f"crd/{CRD}"]
        result = subprocess.run(wait, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        last = result.stderr.strip()[-300:]
        time.sleep(0.5)
    raise ClusterError(f"lws add-on: CRD {CRD} not Established after {timeout:.0f} s ({last})")


def _wait_webhook_ready(cluster: LocalCluster, bin_dir: Path, timeout: float = 60) -> None:
    """The API server reaches the webhooks: a server-side dry-run create of a LeaderWorkerSet passes
    through both LeaderWorkerSet webhooks (and fails while the webhook server does not answer)."""
    from trtllm_operator.dev.cluster import ClusterError

    probe = {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": "lws-addon-probe", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "leaderWorkerTemplate": {
                "size": 2,
                "workerTemplate": {"spec": {"containers": [{"name": "c", "image": "probe"}]}},
            },
        },
    }
    deadline, last = time.monotonic() + timeout, ""
    argv = [str(bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    while time.monotonic() < deadline:
        result = subprocess.run(
            [*argv, "create", "--dry-run=server", "-f", "-"],
            input=yaml.safe_dump(probe),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            return
        last = result.stderr.strip()[-500:]
        time.sleep(0.5)
    raise ClusterError(
        f"lws webhooks not reachable after {timeout:.0f} s ({last}); log:\n{cluster.tail(NAME)}"
    )


def stop(cluster: LocalCluster, quiet: bool) -> None:
    """Stop the manager (by PID). Its webhook configurations would refuse every LeaderWorkerSet (and
    group pod) while it is down, so they go too when the API server still answers."""
    was_running = running(cluster)
    cluster.stop_process(NAME, quiet=quiet)
    if not was_running or not cluster.kubeconfig.exists():
        return
    try:
        bin_dir = cluster.binaries()
        for kind, name in (
            ("mutatingwebhookconfiguration", MUTATING),
            ("validatingwebhookconfiguration", VALIDATING),
        ):
            _kubectl(cluster, bin_dir, "delete", kind, name, "--ignore-not-found", "--timeout=10s")
    except Exception:  # the cluster is going down anyway
        if not quiet:
            print("[cluster] lws add-on: could not remove its webhook configurations", flush=True)
