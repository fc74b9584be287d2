"""Operator settings, read once from the environment (the Helm chart and manifests set them)."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field


def _selector(text: str) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    return {key.strip(): value.strip() for key, value in pairs}


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class OperatorSettings:
    #: Cluster-wide limit on build Jobs running at once (0: unlimited); further builds wait as Queued.
    max_concurrent_builds: int = 4
    #: Image of the operator, whose Python package the build pod's init container copies in.
    builder_image: str = "ghcr.io/trtllm-operator/trtllm-operator:0.1.0"
    #: Only nodes with these labels count as GPU capacity, and build/serving pods are pinned to them.
    node_selector: dict[str, str] = field(default_factory=dict)
    #: Every object is reconciled at least this often from the caches (a safety net, as
    #: controller-runtime's SyncPeriod; it costs no API request when nothing changed).
    resync_seconds: float = 600.0
    #: Worker threads reconciling different objects concurrently.
    workers: int = 4
    #: Deadline of the Job that deletes a ``deletionPolicy: Delete`` engine's files; past it (a pod that
    #: can never schedule), the TRTEngine's deletion finishes anyway, with a Warning naming the files.
    cleanup_deadline_seconds: int = 600
    #: Prometheus HTTP API base URL (e.g. http://prometheus.monitoring:9090) that canary judgements query;
    #: empty: none, and a canary fails closed (rolled back, saying so).
    prometheus_url: str = ""
    #: Namespaces to watch (empty: all). Set from `trtllm-operator run --namespace`.
    namespaces: tuple[str, ...] = ()
    #: Lease-based leader election: only the leader reconciles; a standby keeps its caches warm.
    leader_election: bool = True
    #: Where the Lease lives (default: the pod's namespace, else the first watched one, else "default").
    lease_namespace: str = "default"
    lease_name: str = "trtllm-operator"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    #: This replica's identity in the Lease (the pod name when set).
    identity: str = field(
        default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}", compare=False
    )

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, namespaces: tuple[str, ...] = ()
    ) -> OperatorSettings:
        source = os.environ if env is None else env
        lease_namespace = (
            source.get("TRTLLM_LEADER_ELECTION_NAMESPACE")
            or source.get("POD_NAMESPACE")
            or (namespaces[0] if namespaces else "default")
        )
        pod = source.get("POD_NAME")
        return cls(
            max_concurrent_builds=int(source.get("TRTLLM_MAX_CONCURRENT_BUILDS", "4")),
            builder_image=source.get("TRTLLM_BUILDER_IMAGE", cls.builder_image),
            node_selector=_selector(source.get("TRTLLM_NODE_SELECTOR", "")),
            resync_seconds=float(source.get("TRTLLM_RESYNC_SECONDS", "600")),
            workers=int(source.get("TRTLLM_WORKERS", "4")),
            cleanup_deadline_seconds=int(source.get("TRTLLM_CLEANUP_DEADLINE_SECONDS", "600")),
            prometheus_url=source.get("TRTLLM_PROMETHEUS_URL", "").strip(),
            namespaces=namespaces,
            leader_election=_flag(source.get("TRTLLM_LEADER_ELECTION", "true")),
            lease_namespace=lease_namespace,
            lease_name=source.get("TRTLLM_LEADER_ELECTION_NAME", "trtllm-operator"),
            lease_duration=float(source.get("TRTLLM_LEASE_DURATION_SECONDS", "15")),
            renew_deadline=float(source.get("TRTLLM_RENEW_DEADLINE_SECONDS", "10")),
            retry_period=float(source.get("TRTLLM_RETRY_PERIOD_SECONDS", "2")),
            **({"identity": f"{pod}-{uuid.uuid4().hex[:6]}"} if pod else {}),
        )
