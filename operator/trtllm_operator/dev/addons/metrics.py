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

import base64
import contextlib
import os
import socket
import ssl
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


#: Where the adapter is registered: APIService -> Service (no selector) -> EndpointSlice -> this host.
ADAPTER_NAMESPACE, ADAPTER_SERVICE = "trtllm-metrics", "prometheus-adapter"
CUSTOM_METRICS_GROUP = "custom.metrics.k8s.io"
#: The HPA controller asks for the preferred version; the adapter serves both.
CUSTOM_METRICS_VERSIONS = ("v1beta1", "v1beta2")


def _offset() -> int:
    return int(os.environ.get("TRTLLM_CLUSTER_PORT_OFFSET", "0"))


def prometheus_port() -> int:
    return 19090 + _offset()


def adapter_port() -> int:
    return 16461 + _offset()


def host_ip() -> str:
    """This host's non-loopback IPv4 address: EndpointSlices refuse loopback, so the aggregator reaches
    the adapter there. The address the default route would use, else the hostname's."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.254.254.254", 9))  # no packet is sent: this only picks the source address
        address = str(probe.getsockname()[0])
        if not address.startswith("127.") and address != "0.0.0.0":  # noqa: S104 - a comparison
            return address
    for address in socket.gethostbyname_ex(socket.gethostname())[2]:
        if not address.startswith("127."):
            return address
    from trtllm_operator.dev.cluster import ClusterError

    raise ClusterError(
        "no non-loopback IPv4 address on this host: the API aggregator cannot reach the adapter"
    )


#: custom.metrics.k8s.io metrics the adapter serves per pod (the HPA's ``Pods`` metrics), from the
#: servers' TensorRT-LLM metric names. Requests in flight = running + waiting; ``up * 0`` makes it 0 for a
#: pod that answers scrapes but has not served yet (its gauges appear with the first request).
ADAPTER_RULES: list[dict[str, Any]] = [
    {
        # Not by job name: a PodMonitor names its job differently; inference_service is ours alone.
        "seriesQuery": 'up{inference_service!="",namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^up$", "as": "trtllm_requests_in_flight"},
        "metricsQuery": (
            "(sum by (<<.GroupBy>>) (trtllm_num_requests_running{<<.LabelMatchers>>})"
            " + sum by (<<.GroupBy>>) (trtllm_num_requests_waiting{<<.LabelMatchers>>}))"
            " or (sum by (<<.GroupBy>>) (up{<<.LabelMatchers>>}) * 0)"
        ),
    },
    {
        "seriesQuery": 'trtllm_kv_cache_utilization{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^trtllm_kv_cache_utilization$", "as": "trtllm_kv_cache_utilization"},
        "metricsQuery": "max by (<<.GroupBy>>) (<<.Series>>{<<.LabelMatchers>>})",
    },
    {
        "seriesQuery": 'trtllm_generation_tokens_total{namespace!="",pod!=""}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}},
        "name": {"matches": "^trtllm_generation_tokens_total$", "as": "trtllm_generation_tokens_per_second"},
        "metricsQuery": "sum by (<<.GroupBy>>) (rate(<<.Series>>{<<.LabelMatchers>>}[30s]))",
    },
]


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
    # It runs for the cluster's life (stopped by PID in ``down``), not this process's: no Popen to reap.
    cluster.detach_process(PROMETHEUS)
    (state / URL_FILE).write_text(url + "\n")


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return int(response.status)


def _start_adapter(cluster: LocalCluster, bin_dir: Path) -> None:
    state, pki_dir = cluster.state_dir, cluster.state_dir / "pki"
    address, port = host_ip(), adapter_port()
    ca = pki.Authority(pki_dir, reuse=True)
    dns = f"{ADAPTER_SERVICE}.{ADAPTER_NAMESPACE}.svc"
    serving = ca.issue("prometheus-adapter", dns, hosts=[dns, address, "127.0.0.1"])
    rules = state / "config" / "prometheus-adapter.yaml"
    rules.write_text(yaml.safe_dump({"rules": ADAPTER_RULES}, sort_keys=False))
    kubeconfig = str(cluster.kubeconfig)  # reads pods/namespaces, delegates authn/authz to the API server
    cluster.start_process(
        ADAPTER,
        [
            str(bin_dir / "prometheus-adapter"),
            f"--prometheus-url=http://127.0.0.1:{prometheus_port()}/",
            f"--config={rules}",
            "--metrics-relist-interval=5s",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={address}",
            f"--secure-port={port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            "--v=1",
        ],
    )
    insecure = ssl._create_unverified_context()  # noqa: S323 - a health probe of our own process

    def healthz() -> int:
        with urllib.request.urlopen(f"https://{address}:{port}/healthz", timeout=5, context=insecure) as r:
            return int(r.status)

    cluster.wait_process(ADAPTER, healthz, timeout=120)
    register(cluster, address, port)
    cluster.wait_process(ADAPTER, lambda: 200 if available(cluster) else 503, timeout=120)
    cluster.detach_process(ADAPTER)


def _api(cluster: LocalCluster) -> Any:
    from trtllm_operator.k8s import new_api_client

    return new_api_client(cluster.kubeconfig)


def register(cluster: LocalCluster, address: str, port: int) -> None:
    """Namespace, selector-less Service, EndpointSlice to ``address:port``, and the APIServices
    (re-created when they exist: the address or port may have changed)."""
    from kubernetes import client

    from trtllm_operator.k8s import as_body

    api = _api(cluster)
    core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    registration = client.ApiregistrationV1Api(api)
    ns, name = ADAPTER_NAMESPACE, ADAPTER_SERVICE
    with contextlib.suppress(client.ApiException):
        core.create_namespace(as_body({"metadata": {"name": ns}}))
    service = {
        "metadata": {"name": name},
        "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port, "protocol": "TCP"}]},
    }
    endpoints = {
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": name,
                "endpointslice.kubernetes.io/managed-by": "trtllm-local-cluster",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    }
    ca_bundle = base64.b64encode((cluster.state_dir / "pki" / "ca.crt").read_bytes()).decode()
    steps: list[tuple[Any, Any]] = [
        (
            lambda: core.create_namespaced_service(ns, as_body(service)),
            lambda: core.delete_namespaced_service(name, ns),
        ),
        (
            lambda: discovery.create_namespaced_endpoint_slice(ns, as_body(endpoints)),
            lambda: discovery.delete_namespaced_endpoint_slice(name, ns),
        ),
    ]
    for version in CUSTOM_METRICS_VERSIONS:
        body = apiservice(version, ca_bundle)
        steps.append(
            (
                lambda body=body: registration.create_api_service(body),
                lambda body=body: registration.delete_api_service(body["metadata"]["name"]),
            )
        )
    for create, delete in steps:
        try:
            create()
        except client.ApiException as error:
            if error.status != 409:
                raise
            delete()
            create()


def apiservice(version: str, ca_bundle: str) -> dict[str, Any]:
    """The APIService that routes custom.metrics.k8s.io/<version> to the adapter's Service."""
    return {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{CUSTOM_METRICS_GROUP}"},
        "spec": {
            "group": CUSTOM_METRICS_GROUP,
            "version": version,
            "service": {"namespace": ADAPTER_NAMESPACE, "name": ADAPTER_SERVICE, "port": 443},
            "caBundle": ca_bundle,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
        },
    }


def available(cluster: LocalCluster) -> bool:
    """Every custom-metrics APIService says Available=True (the aggregator reached the adapter)."""
    from kubernetes import client

    registration = client.ApiregistrationV1Api(_api(cluster))
    for version in CUSTOM_METRICS_VERSIONS:
        try:
            item = registration.read_api_service(f"{version}.{CUSTOM_METRICS_GROUP}")
        except client.ApiException:
            return False
        conditions = (item.status.conditions if item.status else None) or []
        if not any(x.type == "Available" and x.status == "True" for x in conditions):
            return False
    return True


def unregister(cluster: LocalCluster) -> None:
    """Delete the APIServices first: an unavailable aggregated API blocks namespace deletion."""
    from kubernetes import client

    with contextlib.suppress(Exception):  # the API server may be gone already (cluster down)
        registration = client.ApiregistrationV1Api(_api(cluster))
        for version in CUSTOM_METRICS_VERSIONS:
            with contextlib.suppress(client.ApiException):
                registration.delete_api_service(f"{version}.{CUSTOM_METRICS_GROUP}")


def start(cluster: LocalCluster) -> None:
    """Start what is not running; ClusterError (with the log's tail) when something can't start."""
    from kubernetes import client

    from trtllm_operator.dev.cluster import ClusterError

    started = time.monotonic()
    bin_dir = cluster.binaries("metrics")
    try:
        if not cluster.process_alive(PROMETHEUS):
            _start_prometheus(cluster, bin_dir)
        if not cluster.process_alive(ADAPTER):
            _start_adapter(cluster, bin_dir)
        elif not available(cluster):
            register(cluster, host_ip(), adapter_port())
            cluster.wait_process(ADAPTER, lambda: 200 if available(cluster) else 503, timeout=120)
    except (client.ApiException, OSError) as error:
        log = cluster.state_dir / "logs" / f"{ADAPTER}.log"
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log.exists() else "(no log)"
        raise ClusterError(f"metrics add-on: {str(error)[:500]}; {ADAPTER} log:\n{tail}") from error
    print(f"[cluster] metrics add-on ready in {time.monotonic() - started:.1f} s", flush=True)


def stop(cluster: LocalCluster, quiet: bool) -> None:
    if cluster.process_alive(ADAPTER) and cluster.kubeconfig.exists():
        unregister(cluster)
    for name in (ADAPTER, PROMETHEUS):
        cluster.stop_process(name, quiet=quiet)
    (cluster.state_dir / URL_FILE).unlink(missing_ok=True)


def running(cluster: LocalCluster) -> bool:
    """Prometheus answers, the adapter runs and the aggregator reaches it (APIServices Available)."""
    if not (cluster.process_alive(PROMETHEUS) and cluster.process_alive(ADAPTER)):
        return False
    try:
        return _status(f"http://127.0.0.1:{prometheus_port()}/-/ready") == 200 and available(cluster)
    except OSError:
        return False
