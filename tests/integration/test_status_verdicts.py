"""What GitOps tools and kubectl see on live TRTEngines, for the cases of issue #13's "Why".

The operator runs for real; the verdicts come from the real judges: kstatus
(``sigs.k8s.io/cli-utils/pkg/kstatus/status``, hack/kstatus) and the built kubectl (``kubectl wait``,
``kubectl get`` printer columns). test_gitops_and_least_privilege.py covers the InferenceService
cases (a service on a stalled engine, a partially served service).
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.integration.test_gitops_and_least_privilege import kstatus
from tests.support import Engines, Kube, OperatorProcess, engine_manifest, wait_for
from tests.unit.test_chart import tool
from trtllm_operator.api import constants as c
from trtllm_operator.api import reasons as r
from trtllm_operator.api.plan import BuildResult, ResultEngine
from trtllm_operator.dev.cluster import LocalCluster

pytestmark = pytest.mark.cluster


def _kubectl(cluster: LocalCluster, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def test_kubectl_wait_validated_returns_for_a_gate_less_engine(
    cluster: LocalCluster, engines: Engines, operator: OperatorProcess
) -> None:
    engines.create(engine_manifest("llama", target={"computeCapability": "9.0"}))  # no spec.validation
    waited = _kubectl(
        cluster,
        "wait",
        "-n",
        engines.namespace,
        "--for=condition=Validated",
        "trtengine/llama",
        "--timeout=150s",
    )
    assert waited.returncode == 0, waited.stderr
    validated = engines.condition("llama", "Validated")
    assert validated is not None
    assert (validated["status"], validated["reason"]) == ("True", r.NOT_CONFIGURED)
    assert kstatus(engines.get("llama"))["status"] == "Current"


def _engine_result(name: str, **engine: Any) -> str:
    fields: dict[str, Any] = {
        "uri": f"pvc://{name}-engines/engines/{name}/abc",
        "sha256": "f" * 64,
        "size": 123,
        "files": 3,
        "trtllm": "1.2.0",
        "gpu": "NVIDIA H100 80GB HBM3",
        "cc": "9.0",
        "manifest": f"engines/{name}/abc/engine-manifest.json",
    }
    fields.update(engine)
    return BuildResult(ok=True, reason=r.BUILD_SUCCEEDED, engine=ResultEngine(**fields)).to_message()


#: name -> (exit code, termination message, what the condition must name)
BAD_RESULTS = {
    "long-reason": (
        c.EXIT_VERIFY_FAILED,
        BuildResult(ok=False, reason="R" * 200, message="x").to_message(),
        "result.reason",
    ),
    "bad-cc": (0, _engine_result("bad-cc", cc="10.0.0"), "result.engine.cc"),
    "dotdot": (0, _engine_result("dotdot", uri="pvc://dotdot-engines/engines/dotdot/../../etc"), "uri"),
}


def _running_pod(engines: Engines, name: str) -> Any:
    pods = wait_for(
        lambda: [p for p in engines.pods(name) if p.status.phase == "Running"], 90, what=f"{name} pod Running"
    )
    return pods[0]


def test_a_bad_build_result_stalls_as_invalid_build_result(
    cluster: LocalCluster, kube: Kube, engines: Engines, operator: OperatorProcess
) -> None:
    engines.sim(TRTLLM_SIM_STEP_SECONDS="120")  # the real builder stays busy; the test reports for it
    for name in BAD_RESULTS:
        engines.create(engine_manifest(name, target={"computeCapability": "9.0"}, parallelism={"tensor": 1}))
    for name, (code, message, _) in BAD_RESULTS.items():
        kube.finish_pod(engines.namespace, _running_pod(engines, name).metadata.name, code, message)
    for name, (_, _, field) in BAD_RESULTS.items():
        stalled = engines.wait_condition(name, "Stalled", "True", r.INVALID_BUILD_RESULT, timeout=60)
        assert field in stalled["message"], stalled["message"]
        engine = engines.get(name)
        assert "engine" not in engine["status"]  # nothing untrusted is promoted
        verdict = kstatus(engine)
        assert verdict["status"] == "Failed", verdict
    columns = _kubectl(cluster, "get", "trtengines", "-n", engines.namespace, "--no-headers")
    assert columns.returncode == 0, columns.stderr
    rows = {line.split()[0]: line.split() for line in columns.stdout.splitlines()}
    for name in BAD_RESULTS:
        assert "Stalled" in rows[name], rows[name]  # the PHASE column
        assert r.INVALID_BUILD_RESULT in rows[name]  # the REASON column
