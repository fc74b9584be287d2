"""The Prometheus HTTP API, queried only when a canary judgement is due (reconcile/canary.py reads the
answers; nothing here interprets them)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

#: Answers larger than this are not Prometheus answers to our scalar queries.
MAX_ANSWER = 1 << 20


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or answered with an HTTP error; the message says which."""


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, at: float) -> bytes:
        """The raw answer of ``GET /api/v1/query`` (instant query at unix time ``at``)."""
        params = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        url = f"{self.url}/api/v1/query?{params}"
        if not url.startswith(("http://", "https://")):
            raise PrometheusError(f"Prometheus URL {self.url[:200]!r} is not http(s)")
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as answer:  # noqa: S310 - http(s) checked
                return bytes(answer.read(MAX_ANSWER))
        except urllib.error.HTTPError as error:
            body = error.read(MAX_ANSWER)
            if error.code in (400, 422) and body:  # a query error: its JSON says why
                return bytes(body)
            raise PrometheusError(f"Prometheus at {self.url} answered HTTP {error.code}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusError(f"Prometheus at {self.url} can't be reached: {reason}") from None
