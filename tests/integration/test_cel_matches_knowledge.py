"""The CRD's CEL rules and the GPU knowledge must agree on every (precision, KV dtype, backend, target CC).

For each combination, a TRTEngine with that ``spec.target.computeCapability`` is dry-run created against the
real API server: it must be accepted exactly when ``compatibility_problems`` finds nothing, and when both
reject, the server's message must name the same field(s) as the knowledge.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any, get_args

import pytest
from kubernetes import client

from tests.support import Kube
from trtllm_operator.api import constants as c
from trtllm_operator.api.engine import Backend, KvCacheDtype, Precision
from trtllm_operator.gpu import compatibility_problems, parse_cc

pytestmark = pytest.mark.cluster

PRECISIONS = list(get_args(Precision))
KV_DTYPES = list(get_args(KvCacheDtype))
BACKENDS = list(get_args(Backend))
CCS = ["7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]


def _params() -> Iterator[Any]:
    for combo in itertools.product(PRECISIONS, KV_DTYPES, BACKENDS, CCS):
        yield pytest.param(*combo, id="-".join(combo))


@pytest.fixture(scope="module")
def cel_namespace(kube: Kube) -> Iterator[str]:
    """One namespace for the whole module: every request is a dry run, nothing is stored."""
    name = f"cel-knowledge-{uuid.uuid4().hex[:6]}"
    kube.core.create_namespace({"metadata": {"name": name, "labels": {"trtllm.dev/test": "true"}}})
    yield name
    kube.core.delete_namespace(name, propagation_policy="Background")


def _engine(precision: str, kv: str, backend: str, cc: str) -> dict[str, Any]:
    image = "nvcr.io/nvidia/tensorrt-llm/release:" + ("1.2.0" if backend == "tensorrt" else "1.3.0")
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.ENGINE_KIND,
        "metadata": {"name": "cel-probe"},
        "spec": {
            "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct"},
            "backend": backend,
            "image": image,
            "precision": precision,
            "kvCacheDtype": kv,
            "target": {"computeCapability": cc},
            "storage": {"existingClaim": "engines"},
        },
    }


def _dry_run(kube: Kube, namespace: str, body: dict[str, Any]) -> tuple[int | None, str]:
    """(None, "") when the server accepts the object, else (HTTP status, Status message)."""
    try:
        kube.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.ENGINE_PLURAL, body, dry_run="All"
        )
    except client.ApiException as error:
        message = json.loads(error.body).get("message", "") if error.body else ""
        return int(error.status), str(message)
    return None, ""


def test_the_matrix_covers_every_enum_value() -> None:
    assert len(PRECISIONS) == 9
    assert len(KV_DTYPES) == 4
    assert len(BACKENDS) == 2
    assert len(list(_params())) == 9 * 4 * 2 * 8


@pytest.mark.parametrize(("precision", "kv", "backend", "cc"), list(_params()))
def test_cel_accepts_exactly_what_the_knowledge_accepts(
    kube: Kube, cel_namespace: str, precision: str, kv: str, backend: str, cc: str
) -> None:
    problems = compatibility_problems(precision, kv, backend, parse_cc(cc))
    status, message = _dry_run(kube, cel_namespace, _engine(precision, kv, backend, cc))
    if status is None:
        assert not problems, "the API server accepts what the GPU knowledge rejects: " + "; ".join(
            p.message for p in problems
        )
        return
    assert status == 422, message
    assert problems, f"the API server rejects what the GPU knowledge allows: {message}"
    for problem in problems:
        assert f"{problem.field}: Invalid value" in message, (problem.field, message)
    fields = {"spec.precision", "spec.kvCacheDtype", "spec.target.computeCapability"}
    named = {f for f in fields if f"{f}: Invalid value" in message}
    assert named <= {p.field for p in problems}, (
        f"rejected for a reason the knowledge does not give: {message}"
    )
    for problem in problems:  # both suggest the same KV-cache dtypes (never one the GPU lacks)
        suggestion = re.search(r"use kvCacheDtype [a-z0-9]+(?: or [a-z0-9]+)?", problem.message)
        if suggestion:
            assert suggestion.group(0) in message, (suggestion.group(0), message)
