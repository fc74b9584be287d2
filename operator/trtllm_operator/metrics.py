"""The operator's Prometheus metrics and its HTTP endpoints (/metrics, /healthz, /readyz).

Built on ``prometheus-client`` (the Python reference client) with a registry of our own, so tests
can read values without global state. Names follow controller-runtime's where an operator engineer
expects them (``controller_runtime_reconcile_total`` -> ``trtllm_operator_reconcile_total``,
``workqueue_depth`` ...), under the ``trtllm_operator_`` prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PREFIX = "trtllm_operator"


class Metrics:
    def __init__(self) -> None:
        #: Called before each scrape to set the gauges read from the queue and the caches.
        self.refresh: Callable[[], None] | None = None
        self.registry = CollectorRegistry()
        r = self.registry
        self.reconciles = Counter(
            f"{PREFIX}_reconcile_total",
            "Reconciles by kind and result (success, error, conflict).",
            ["kind", "result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors_total", "Reconciles that raised, by kind.", ["kind"], registry=r
        )
        self.reconcile_seconds = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time of one reconcile, by kind.",
            ["kind"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.queue_depth = Gauge(f"{PREFIX}_workqueue_depth", "Keys waiting in the work queue.", registry=r)
        # The queue counts adds and retries itself; these gauges mirror its counters at each scrape.
        self.queue_adds = Gauge(
            f"{PREFIX}_workqueue_adds", "Keys added to the work queue so far.", registry=r
        )
        self.queue_retries = Gauge(
            f"{PREFIX}_workqueue_retries", "Rate-limited requeues after errors so far.", registry=r
        )
        self.queue_longest = Gauge(
            f"{PREFIX}_workqueue_longest_running_processor_seconds",
            "How long the longest-running reconcile has been running.",
            registry=r,
        )
        self.api_requests = Counter(
            f"{PREFIX}_api_requests_total",
            "Requests to the API server by verb and HTTP code.",
            ["verb", "code"],
            registry=r,
        )
        self.builds = Gauge(f"{PREFIX}_engines", "TRTEngines by status phase.", ["phase"], registry=r)
        self.build_slots = Gauge(
            f"{PREFIX}_build_slots",
            "Build slots: in use, queued for one, and the limit.",
            ["state"],
            registry=r,
        )
        self.gates = Counter(
            f"{PREFIX}_gate_outcomes_total",
            "Validation gate verdicts (Validated transitions) by reason.",
            ["reason"],
            registry=r,
        )
        self.canaries = Counter(
            f"{PREFIX}_canary_outcomes_total",
            "Engine-revision canaries judged, by outcome (CanaryPromoted, CanaryRolledBack).",
            ["outcome"],
            registry=r,
        )
        self.leader = Gauge(
            f"{PREFIX}_leader", "1 while this replica leads (reconciles), else 0.", registry=r
        )
        self.cache_synced = Gauge(
            f"{PREFIX}_cache_synced",
            "1 once the informer's initial LIST is in its cache.",
            ["resource"],
            registry=r,
        )
        self.cache_objects = Gauge(
            f"{PREFIX}_cache_objects", "Objects in each cache.", ["resource"], registry=r
        )

    def observe_request(self, verb: str, code: str) -> None:
        self.api_requests.labels(verb=verb, code=code).inc()

    def render(self) -> bytes:
        if self.refresh is not None:
            self.refresh()
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), for tests and benchmarks."""
        found = self.registry.get_sample_value(name, labels)
        return float(found) if found is not None else 0.0


class Endpoints:
    """/metrics, /healthz (the process serves) and /readyz (caches synced) on one or two ports."""

    def __init__(self, metrics: Metrics, ready: Callable[[], tuple[bool, str]]) -> None:
        self.metrics, self.ready = metrics, ready
        self.servers: list[ThreadingHTTPServer] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoints = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    self._send(200, endpoints.metrics.render(), CONTENT_TYPE_LATEST)
                elif self.path.startswith("/healthz"):
                    self._send(200, b"ok\n")
                elif self.path.startswith("/readyz"):
                    ok, why = endpoints.ready()
                    self._send(200 if ok else 503, (why + "\n").encode())
                else:
                    self._send(404, b"not found\n")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler

    def serve(self, address: str) -> int:
        """Serve on ``host:port`` (port 0: any free one); returns the port."""
        host, _, port = address.rpartition(":")
        server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), self._handler())  # noqa: S104 - a pod's probes
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
        self.servers.append(server)
        return int(server.server_address[1])

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
