"""Stand-in for TensorRT-LLM's ``trtllm-serve``: an OpenAI-compatible HTTP server whose latency and
throughput come from the engine's recorded (simulated) benchmark, degrading with load.

What it answers, after upstream (NVIDIA/TensorRT-LLM ``docs/source/commands/trtllm-serve.rst`` and
``tensorrt_llm/serve/openai_server.py``):

* ``/v1/models`` — one model whose id is the basename of MODEL (OpenAIServer: ``model_dir.name``);
* ``/v1/completions`` and ``/v1/chat/completions`` (non-streaming; ``stream: true`` answers 400 here);
* ``/health`` — 200, or 503 when the simulation says the engine is broken;
* ``/metrics`` — iteration statistics as JSON (a list of dicts: numActiveRequests, numQueuedRequests, …);
* ``/prometheus/metrics`` — Prometheus text with TensorRT-LLM's metric names (``trtllm_*``, from
  ``tensorrt_llm/metrics/collector.py`` at commit 050f80def8df236e326949c8bd9dee10fd896a83), labelled
  ``model_name`` and ``engine_type``.

The timing model (pure, unit-tested: :func:`decode_step_ms`, :func:`ttft_ms`): at most ``max_batch``
requests run at once (``--max_batch_size``, else the benchmark's concurrency); the rest wait in a FIFO
queue, as in-flight batching does when the batch is full. A decode iteration costs a fixed part (reading
the weights) plus a part per running request (reading its KV cache), calibrated so that at the
benchmark's concurrency it equals the benchmark's inter-token latency. Prefill scales the same way. So
per-request speed drops slowly as the batch fills, and latency climbs steeply once requests queue.

Everything it generates is simulated and says so: the text is filler, ``system_fingerprint`` is
``simulated-trtllm-serve``, tokens are counted as whitespace-separated words.

Knobs (environment, set by the sim executor from the pod and the namespace's ``trtllm-sim`` ConfigMap):
``TRTLLM_SIM_SERVE_PROFILE`` (JSON: ttftMs, itlMs, concurrency, isl, osl, source),
``TRTLLM_SIM_SERVE`` (JSON: slowdown, errorRate, healthy, loadSeconds, revisions),
``TRTLLM_SIM_REVISION`` (the pod's engine revision, for ``revisions``), ``TRTLLM_SIM_ENGINE_DIR``
(the engine directory on this machine; the server refuses to start without its config.json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Used when the engine has no benchmark on record (no benchmark gate): plausible for a mid-size model
#: on one data-center GPU, and reported as "assumed" in /metrics.
ASSUMED = {"ttftMs": 120.0, "itlMs": 20.0, "concurrency": 32, "isl": 128, "osl": 128}
#: The share of a decode iteration that does not depend on the batch (weight reads) at the benchmark's
#: concurrency; the rest grows linearly with the running requests (KV-cache reads).
FIXED_SHARE = 0.6
DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default max_tokens for /v1/completions
DEFAULT_CHAT_TOKENS = 64


@dataclass(frozen=True)
class Profile:
    """Latency at the benchmark's operating point, and the simulation's knobs."""

    ttft_ms: float
    itl_ms: float
    concurrency: int
    max_batch: int
    isl: int = 128
    osl: int = 128
    source: str = "assumed"
    slowdown: float = 1.0
    error_rate: float = 0.0
    healthy: bool = True
    load_seconds: float = 0.5


def decode_step_ms(profile: Profile, running: int) -> float:
    """One decode iteration with ``running`` requests in the batch; equals itl_ms at the benchmark's
    concurrency."""
    fixed = FIXED_SHARE * profile.itl_ms
    per_request = (1 - FIXED_SHARE) * profile.itl_ms / max(1, profile.concurrency)
    return (fixed + per_request * max(1, running)) * profile.slowdown


def ttft_ms(profile: Profile, running: int, prompt_tokens: int) -> float:
    """Prefill of one request while ``running`` others share the GPU, scaled by its prompt length."""
    share = FIXED_SHARE + (1 - FIXED_SHARE) * max(1, running) / max(1, profile.concurrency)
    length = max(0.25, prompt_tokens / max(1, profile.isl))
    return profile.ttft_ms * share * length * profile.slowdown


def profile_from_env(env: dict[str, str], max_batch_arg: int | None) -> Profile:
    recorded = json.loads(env.get("TRTLLM_SIM_SERVE_PROFILE") or "{}")
    base = {**ASSUMED, **{k: v for k, v in recorded.items() if v}}
    knobs = json.loads(env.get("TRTLLM_SIM_SERVE") or "{}")
    revisions = knobs.get("revisions")
    applies = not revisions or int(env.get("TRTLLM_SIM_REVISION") or 0) in {int(r) for r in revisions}
    concurrency = int(base["concurrency"])
    return Profile(
        ttft_ms=float(base["ttftMs"]),
        itl_ms=float(base["itlMs"]),
        concurrency=concurrency,
        max_batch=max_batch_arg or concurrency,
        isl=int(base["isl"]),
        osl=int(base["osl"]),
        source=str(recorded.get("source") or "assumed (no benchmark recorded)"),
        slowdown=float(knobs.get("slowdown", 1.0)) if applies else 1.0,
        error_rate=float(knobs.get("errorRate", 0.0)) if applies else 0.0,
        healthy=bool(knobs.get("healthy", True)) if applies else True,
        load_seconds=float(knobs.get("loadSeconds", 0.5)),
    )


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


class Metrics:
    """TensorRT-LLM's Prometheus metric names (collector.py), on a private registry."""

    def __init__(self, model: str) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name", "engine_type"]
        self.values = {"model_name": model, "engine_type": "trtllm"}
        r = self.registry
        self.success = Counter(
            "trtllm_request_success", "Count of successfully processed requests.",
            [*labels, "finished_reason"], registry=r,
        )  # fmt: skip
        self.errors = Counter("trtllm_request_error", "Count of failed requests.", labels, registry=r)
        self.e2e = Histogram(
            "trtllm_e2e_request_latency_seconds", "End to end request latency.", labels, registry=r
        )
        self.ttft = Histogram(
            "trtllm_time_to_first_token_seconds", "Time to first token.", labels, registry=r,
            buckets=[0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0],
        )  # fmt: skip
        self.tpot = Histogram(
            "trtllm_time_per_output_token_seconds", "Time per output token.", labels, registry=r,
            buckets=[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0],
        )  # fmt: skip
        self.queue = Histogram(
            "trtllm_request_queue_time_seconds", "Time spent waiting for a batch slot.", labels, registry=r
        )
        self.prompt = Counter("trtllm_prompt_tokens", "Prompt tokens processed.", labels, registry=r)
        self.generated = Counter(
            "trtllm_generation_tokens", "Generation tokens produced.", labels, registry=r
        )
        self.running = Gauge("trtllm_num_requests_running", "Number of active requests", labels, registry=r)
        self.waiting = Gauge("trtllm_num_requests_waiting", "Number of queued requests", labels, registry=r)
        self.kv = Gauge("trtllm_kv_cache_utilization", "KV cache utilization", labels, registry=r)
        self.max_batch = Gauge("trtllm_max_batch_size_static", "Static max batch size", labels, registry=r)
        #: Not a TensorRT-LLM metric: the stand-in says it is one, so whoever reads its numbers (the
        #: canary judgement) can label them simulated, as trtllm-bench's stand-in report does.
        help_ = "1: this server is the simulation's stand-in trtllm-serve"
        self.simulated = Gauge("trtllm_sim_standin", help_, labels, registry=r)
        self.simulated.labels(**self.values).set(1)


@dataclass
class Server:
    """The scheduler state shared by the request threads."""

    model: str
    profile: Profile
    metrics: Metrics
    lock: threading.Condition = field(default_factory=threading.Condition)
    running: int = 0
    waiting: int = 0
    iteration: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(12))  # noqa: S311 - simulated errors, not secrets

    def _gauges(self) -> None:
        v = self.metrics.values
        self.metrics.running.labels(**v).set(self.running)
        self.metrics.waiting.labels(**v).set(self.waiting)
        self.metrics.kv.labels(**v).set(min(1.0, self.running / max(1, self.profile.max_batch)))

    def admit(self) -> float:
        """Wait for a batch slot (FIFO enough for a simulation); the seconds spent queued."""
        start = time.monotonic()
        with self.lock:
            self.waiting += 1
            self._gauges()
            while self.running >= self.profile.max_batch:
                self.lock.wait()
            self.waiting -= 1
            self.running += 1
            self._gauges()
        return time.monotonic() - start

    def release(self) -> None:
        with self.lock:
            self.running -= 1
            self.iteration += 1
            self._gauges()
            self.lock.notify()

    def generate(self, prompt_tokens: int, max_tokens: int) -> dict[str, float]:
        queued = self.admit()
        try:
            first = ttft_ms(self.profile, self.running, prompt_tokens) / 1000
            time.sleep(first)
            decoded = 0
            while decoded < max_tokens - 1:  # the first token came with prefill
                chunk = min(8, max_tokens - 1 - decoded)
                time.sleep(chunk * decode_step_ms(self.profile, self.running) / 1000)
                decoded += chunk
        finally:
            self.release()
        return {"queue": queued, "ttft": first}

    def fails(self) -> bool:
        with self.lock:
            return self.rng.random() < self.profile.error_rate

    def iteration_stats(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "iter": self.iteration,
                    "timestamp": time.strftime("%m-%d-%Y %H:%M:%S"),
                    "numActiveRequests": self.running,
                    "numQueuedRequests": self.waiting,
                    "maxNumActiveRequests": self.profile.max_batch,
                    "simulated": f"trtllm-serve stand-in; timing from {self.profile.source}",
                }
            ]


def _completion_text(count: int) -> str:
    return " ".join(f"sim{i}" for i in range(count))


class Handler(BaseHTTPRequestHandler):
    server_version = "trtllm-serve-standin"
    state: Server  # set on the subclass made in serve()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: HTTPStatus, message: str, kind: str) -> None:
        body = {"object": "error", "message": message, "type": kind, "param": None, "code": status.value}
        self._send(status.value, body)

    def do_GET(self) -> None:
        state = self.state
        if self.path == "/health":
            self._send(200 if state.profile.healthy else 503, b"")
        elif self.path == "/v1/models":
            card = {"id": state.model, "object": "model", "created": 0, "owned_by": "tensorrt_llm"}
            self._send(200, {"object": "list", "data": [card]})
        elif self.path == "/metrics":
            self._send(200, state.iteration_stats())
        elif self.path.startswith("/prometheus/metrics"):
            self._send(200, generate_latest(state.metrics.registry), "text/plain; version=0.0.4")
        elif self.path == "/version":
            self._send(200, {"version": os.environ.get("TRTLLM_SIM_VERSION", "simulated")})
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}", "NotFoundError")

    def do_POST(self) -> None:
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self._error(HTTPStatus.NOT_FOUND, f"no route {self.path}", "NotFoundError")
            return
        try:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        except json.JSONDecodeError as error:
            self._error(HTTPStatus.BAD_REQUEST, f"invalid JSON: {error}", "BadRequestError")
            return
        self._complete(request, chat)

    def _complete(self, request: dict[str, Any], chat: bool) -> None:
        state, values = self.state, self.state.metrics.values
        if request.get("model") != state.model:
            message = f"The model `{request.get('model')}` does not exist."
            self._error(HTTPStatus.NOT_FOUND, message, "NotFoundError")
            return
        if request.get("stream"):
            self._error(HTTPStatus.BAD_REQUEST, "streaming is not simulated", "BadRequestError")
            return
        if chat:
            prompt = " ".join(str(m.get("content", "")) for m in request.get("messages") or [])
            limit = request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_CHAT_TOKENS
        else:
            raw = request.get("prompt", "")
            prompt = " ".join(raw) if isinstance(raw, list) else str(raw)
            limit = request.get("max_tokens") or DEFAULT_COMPLETION_TOKENS
        prompt_tokens, max_tokens = _tokens(prompt), max(1, int(limit))
        started = time.monotonic()
        timing = state.generate(prompt_tokens, max_tokens)
        if state.fails():
            state.metrics.errors.labels(**values).inc()
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "simulated engine error", "InternalServerError")
            return
        elapsed = time.monotonic() - started
        m = state.metrics
        m.success.labels(**values, finished_reason="length").inc()
        m.e2e.labels(**values).observe(elapsed)
        m.ttft.labels(**values).observe(timing["ttft"])
        m.queue.labels(**values).observe(timing["queue"])
        if max_tokens > 1:
            m.tpot.labels(**values).observe((elapsed - timing["queue"] - timing["ttft"]) / (max_tokens - 1))
        m.prompt.labels(**values).inc(prompt_tokens)
        m.generated.labels(**values).inc(max_tokens)
        text = _completion_text(max_tokens)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "length", "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        self._send(
            200,
            {
                "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
                "object": "chat.completion" if chat else "text_completion",
                "created": int(time.time()),
                "model": state.model,
                "system_fingerprint": "simulated-trtllm-serve",
                "choices": [choice],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": max_tokens,
                    "total_tokens": prompt_tokens + max_tokens,
                },
            },
        )


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """trtllm-serve's options that the operator renders; others are accepted and ignored."""
    parser = argparse.ArgumentParser(prog="trtllm-serve")
    parser.add_argument("model")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", default="pytorch")
    parser.add_argument("--tp_size", type=int, default=1)
    parser.add_argument("--pp_size", type=int, default=1)
    parser.add_argument("--tokenizer")
    parser.add_argument("--max_batch_size", type=int)
    parser.add_argument("--max_num_tokens", type=int)
    args, _unknown = parser.parse_known_args(argv)
    return args


def serve(argv: Sequence[str], env: dict[str, str]) -> ThreadingHTTPServer:
    args = parse(argv)
    engine_dir = env.get("TRTLLM_SIM_ENGINE_DIR")
    if engine_dir and not (Path(engine_dir) / "config.json").exists():
        raise SystemExit(f"[TensorRT-LLM][ERROR] cannot load engine: {engine_dir}/config.json not found")
    profile = profile_from_env(env, args.max_batch_size)
    model = Path(args.model.rstrip("/")).name  # OpenAIServer answers to MODEL's basename
    state = Server(model, profile, Metrics(model))
    state.metrics.max_batch.labels(**state.metrics.values).set(profile.max_batch)
    handler = type("BoundHandler", (Handler,), {"state": state})
    httpd = ThreadingHTTPServer((args.host, args.port), handler)
    httpd.daemon_threads = True
    return httpd


def main(argv: Sequence[str] | None = None) -> int:
    httpd = serve(list(sys.argv[1:] if argv is None else argv), dict(os.environ))
    state: Server = httpd.RequestHandlerClass.state  # type: ignore[attr-defined]
    time.sleep(state.profile.load_seconds)  # loading the engine, before the port answers
    host, port = httpd.server_address[:2]
    print(
        f"[TensorRT-LLM] simulated trtllm-serve for {state.model} on {host!s}:{port} "
        f"(max batch {state.profile.max_batch}; timing from {state.profile.source})",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
