"""The "metrics" add-on: Prometheus scraping the serving pods, and the Prometheus Adapter serving
``custom.metrics.k8s.io`` through the API server's aggregator, so HorizontalPodAutoscalers can scale on
inference load. Both are real upstream code built from the Go module proxy by
``hack/build-binaries.sh --addons metrics``.

Prometheus discovers pods with ``kubernetes_sd_configs`` (role pod) against the local API server and
keeps the serving pods (label ``trtllm.dev/component=server``, port named ``http``), labelled with the
agreed names: namespace, pod, inference_service, engine, revision, track. The one simulation trick: the
stand-in servers listen on loopback, so ``__address__`` comes from the executor's loopback annotation
(a real cluster scrapes the pod IP; see :func:`scrape_config` with ``simulated=False``).
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from trtllm_operator.api import constants as c
from trtllm_operator.dev import pki
from trtllm_operator.dev.executor import LOOPBACK_ANNOTATION

if TYPE_CHECKING:
    from trtllm_operator.dev.cluster import LocalCluster

PROMETHEUS, ADAPTER = "prometheus", "prometheus-adapter"
SCRAPE_INTERVAL = "2s"
URL_FILE = "prometheus-url"


def prometheus_port() -> int:
    return 19090 + int(os.environ.get("TRTLLM_CLUSTER_PORT_OFFSET", "0"))


def _meta_label(label: str) -> str:
    """A pod label or annotation name as Prometheus' kubernetes SD spells it in __meta_ names."""
    return "".join(ch if ch.isalnum() else "_" for ch in label)


#: Prometheus label -> pod label (the names other components query by).
POD_LABELS = {
    "inference_service": c.LABEL_SERVICE,
    "engine": c.LABEL_ENGINE,
    "revision": c.LABEL_REVISION,
    "track": "trtllm.dev/track",
}


def relabel_configs(*, simulated: bool) -> list[dict[str, Any]]:
    """Keep running serving pods' ``http`` port and give the series the agreed labels."""
    pod = "__meta_kubernetes_pod_"
    rules: list[dict[str, Any]] = [
        {
            "source_labels": [f"{pod}label_{_meta_label(c.LABEL_COMPONENT)}"],
            "regex": c.COMPONENT_SERVER,
            "action": "keep",
        },
        {"source_labels": [f"{pod}container_port_name"], "regex": "http", "action": "keep"},
        {"source_labels": [f"{pod}phase"], "regex": "Running", "action": "keep"},
    ]
    if simulated:
        loopback = f"{pod}annotation_{_meta_label(LOOPBACK_ANNOTATION)}"
        rules += [
            {"source_labels": [loopback], "regex": ".+", "action": "keep"},
            {"source_labels": [loopback], "regex": "(.+)", "target_label": "__address__"},
        ]
    rules += [
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": [f"{pod}name"], "target_label": "pod"},
    ]
    rules += [
        {"source_labels": [f"{pod}label_{_meta_label(label)}"], "target_label": target}
        for target, label in POD_LABELS.items()
    ]
    return rules


def scrape_config(
    *, simulated: bool, api_server: str | None = None, tls: dict[str, str] | None = None
) -> dict[str, Any]:
    """The scrape job for serving pods; ``simulated`` adds the loopback-address trick."""
    sd: dict[str, Any] = {
        "role": "pod",
        "selectors": [{"role": "pod", "label": f"{c.LABEL_COMPONENT}={c.COMPONENT_SERVER}"}],
    }
    if api_server:
        sd["api_server"] = api_server
    if tls:
        sd["tls_config"] = tls
    return {
        "job_name": "trtllm-serving",
        "metrics_path": "/prometheus/metrics",
        "scrape_interval": SCRAPE_INTERVAL,
        "kubernetes_sd_configs": [sd],
        "relabel_configs": relabel_configs(simulated=simulated),
    }


def _binaries(cluster: LocalCluster) -> Path:
    override = os.environ.get("TRTLLM_OPERATOR_BIN")
    if override:
        return Path(override)
    from trtllm_operator.dev.cluster import REPO_ROOT, ClusterError

    script = REPO_ROOT / "hack" / "build-binaries.sh"
    result = subprocess.run(
        ["bash", str(script), "--addons", "metrics"], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        raise ClusterError(f"{script} --addons metrics failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def _start_prometheus(cluster: LocalCluster, bin_dir: Path) -> None:
    state, pki_dir = cluster.state_dir, cluster.state_dir / "pki"
    ca = pki.Authority(pki_dir, reuse=True)
    client = ca.issue("prometheus", "prometheus", "system:masters")  # reads pods cluster-wide
    tls = {"ca_file": str(ca.cert_path), "cert_file": str(client.cert), "key_file": str(client.key)}
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [scrape_config(simulated=True, api_server=cluster.server, tls=tls)],
    }
    path = state / "config" / "prometheus.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    data = state / "prometheus"
    data.mkdir(exist_ok=True)
    address = f"127.0.0.1:{prometheus_port()}"
    cluster.start_process(
        PROMETHEUS,
        [
            str(bin_dir / "prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=1d",
            f"--web.listen-address={address}",
            "--log.level=warn",
        ],
    )
    url = f"http://{address}"
    cluster.wait_process(PROMETHEUS, lambda: _status(f"{url}/-/ready"), timeout=120)
    (state / URL_FILE).write_text(url + "\n")


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return int(response.status)


def start(cluster: LocalCluster) -> None:
    started = time.monotonic()
    bin_dir = _binaries(cluster)
    if not cluster.process_alive(PROMETHEUS):
        _start_prometheus(cluster, bin_dir)
    print(f"[cluster] metrics add-on ready in {time.monotonic() - started:.1f} s", flush=True)


def stop(cluster: LocalCluster, quiet: bool) -> None:
    for name in (ADAPTER, PROMETHEUS):
        cluster.stop_process(name, quiet=quiet)
    (cluster.state_dir / URL_FILE).unlink(missing_ok=True)


def running(cluster: LocalCluster) -> bool:
    if not cluster.process_alive(PROMETHEUS):
        return False
    try:
        return _status(f"http://127.0.0.1:{prometheus_port()}/-/ready") == 200
    except OSError:
        return False
