"""A Hugging Face token is only ever referenced: it must not appear in any object, event or log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import REPO, Engines, Kube, OperatorProcess, engine_manifest

pytestmark = pytest.mark.cluster
TOKEN = "hf_SuperSecretTokenValue1234567890"


def test_token_never_leaks(kube: Kube, engines: Engines, operator: OperatorProcess) -> None:
    kube.core.create_namespaced_secret(
        engines.namespace, {"metadata": {"name": "hf-token"}, "stringData": {"token": TOKEN}}
    )
    manifest = engine_manifest("gated", model={"tokenSecretRef": {"name": "hf-token", "key": "token"}})
    engines.create(manifest)
    engines.wait_condition("gated", "Ready", "True", timeout=90)
    job = engines.jobs("gated")[0]
    env = {e.name: e for e in job.spec.template.spec.containers[0].env or []}
    assert env["HF_TOKEN"].value is None
    assert env["HF_TOKEN"].value_from.secret_key_ref.name == "hf-token"
    haystacks = {
        "TRTEngine": json.dumps(engines.get("gated")),
        "Job": json.dumps(kube.api.sanitize_for_serialization(job)),
        "ConfigMaps": json.dumps(
            [
                kube.api.sanitize_for_serialization(c)
                for c in kube.core.list_namespaced_config_map(engines.namespace).items
            ]
        ),
        "events": json.dumps(
            [
                kube.api.sanitize_for_serialization(e)
                for e in kube.core.list_namespaced_event(engines.namespace).items
            ]
        ),
        "pods": json.dumps([kube.api.sanitize_for_serialization(p) for p in engines.pods("gated")]),
        "operator log": operator.output(),
    }
    pod_logs = REPO / ".cluster" / "logs" / "pods"
    for path in pod_logs.glob(f"{engines.namespace}_*.log"):
        haystacks[f"build log {path.name}"] = path.read_text(errors="replace")
    assert any(name.startswith("build log") for name in haystacks), "the builder's log was not captured"
    leaks = [name for name, text in haystacks.items() if TOKEN in text]
    assert leaks == [], f"token found in {leaks}"
    # The builder did receive it (as a kubelet would pass it):
    # its preflight/plan log shows a masked value only.
    manifest_files = list(
        Path(REPO / ".cluster" / "volumes" / engines.namespace).rglob("engine-manifest.json")
    )
    assert manifest_files
    assert all(TOKEN not in f.read_text() for f in manifest_files)
