"""Argo CD health checks of TRTEngine and InferenceService, run for real in a Lua VM shaped like Argo's.

Argo CD evaluates ``argocd-cm`` health checks in gopher-lua (Lua 5.1) with only the base, table and
package libraries and a cut-down ``os`` (util/lua/lua.go: ``SkipOpenLibs`` unless the override sets
``useOpenLibs``). Here each ``health.lua`` runs in lupa's Lua 5.1 inside an environment with exactly
those libraries and no string metatable, against every input its ``health_test.yaml`` lists, the way
Argo's own ``TestLuaHealthScript`` does. The ``argocd-cm`` patch embeds the same scripts; it is
generated from them (``python -m tests.unit.test_argocd_health --write``) and compared here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

from tests.support import REPO
from trtllm_operator.dev.argocd_health import CHECKS_DIR, run_health, script_of

ARGO_DIR = REPO / "manifests" / "argocd"
CM_PATCH = ARGO_DIR / "argocd-cm-patch.yaml"
KINDS = ("TRTEngine", "InferenceService")
HEALTH_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def cases() -> list[Any]:
    out = []
    for kind in KINDS:
        spec = yaml.safe_load((CHECKS_DIR / kind / "health_test.yaml").read_text())
        for case in spec["tests"]:
            out.append(
                pytest.param(
                    kind, case["inputPath"], case["healthStatus"], id=f"{kind}-{Path(case['inputPath']).stem}"
                )
            )
    return out


@pytest.mark.parametrize(("kind", "input_path", "expected"), cases())
def test_health_check(kind: str, input_path: str, expected: dict[str, str]) -> None:
    obj = yaml.safe_load((CHECKS_DIR / kind / input_path).read_text())
    assert obj["kind"] == kind
    assert run_health(script_of(kind), obj) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_testdata_file_is_a_case_and_every_outcome_is_covered(kind: str) -> None:
    spec = yaml.safe_load((CHECKS_DIR / kind / "health_test.yaml").read_text())
    listed = {case["inputPath"] for case in spec["tests"]}
    on_disk = {f"testdata/{p.name}" for p in (CHECKS_DIR / kind / "testdata").glob("*.yaml")}
    assert listed == on_disk
    stems = {Path(p).stem for p in listed}
    required = {"no_status", "generation_not_observed", "ready", "stalled", "reconciling", "not_ready"}
    assert required <= stems
    if kind == "InferenceService":
        assert "unvalidated_engine" in stems
    assert {case["healthStatus"]["status"] for case in spec["tests"]} <= HEALTH_STATUSES


def test_unvalidated_engine_stays_healthy_but_says_so() -> None:
    spec = yaml.safe_load((CHECKS_DIR / "InferenceService" / "health_test.yaml").read_text())
    case = next(c for c in spec["tests"] if c["inputPath"] == "testdata/unvalidated_engine.yaml")
    assert case["healthStatus"]["status"] == "Healthy"
    assert "UnvalidatedEngine" in case["healthStatus"]["message"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({}, "Progressing"),  # status without observedGeneration: not observed yet
        ({"observedGeneration": 1}, "Progressing"),  # no conditions at all
        ({"observedGeneration": 1, "conditions": []}, "Progressing"),
        ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "Unknown"}]}, "Progressing"),
        ({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}, "Healthy"),
        ({"observedGeneration": 1, "conditions": [{"type": "Stalled", "status": "True"}]}, "Degraded"),
    ],
)
def test_sparse_status_never_errors(kind: str, status: dict[str, Any], expected: str) -> None:
    obj = {
        "apiVersion": "trtllm.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "generation": 1},
        "status": status,
    }
    result = run_health(script_of(kind), obj)
    assert result["status"] == expected
    assert isinstance(result["message"], str)
    assert result["message"]


def test_generation_compares_as_a_number_or_a_string() -> None:
    """Argo decodes integers as numbers, json.Number as strings: either must count as observed."""
    obj = {
        "kind": "TRTEngine",
        "metadata": {"name": "x", "generation": 2},
        "status": {
            "observedGeneration": "2",
            "conditions": [{"type": "Ready", "status": "True", "message": "ok"}],
        },
    }
    assert run_health(script_of("TRTEngine"), obj) == {"status": "Healthy", "message": "ok"}


def test_sandbox_is_as_bare_as_argo() -> None:
    """The checks above would prove nothing if the VM offered libraries Argo's doesn't."""
    obj: dict[str, Any] = {"metadata": {}}
    assert run_health('return {status = table.concat({"Hea", "lthy"}), message = tostring(1)}', obj) == {
        "status": "Healthy",
        "message": "1",
    }
    for forbidden in (
        'return {status = string.upper("x")}',
        'return {status = ("x"):upper()}',
        "return {status = math.floor(1)}",
        'return {status = io.open("/etc/hosts")}',
        'return {status = os.getenv("HOME")}',
        'local s = require("string") return {}',
    ):
        with pytest.raises(lua51.LuaError):
            run_health(forbidden, obj)


# ------------------------------------------------------------------ argocd-cm patch (generated)
CM_HEADER = """\
# GENERATED from resource_customizations/trtllm.dev/*/health.lua by
# `python -m tests.unit.test_argocd_health --write`; tests/unit/test_argocd_health.py fails when it drifts.
#
# Argo CD health checks for TRTEngine and InferenceService, as argocd-cm keys. Merge into your argocd-cm:
#   kubectl -n argocd patch configmap argocd-cm --type merge \\
#     --patch-file manifests/argocd/argocd-cm-patch.yaml
# (Helm-installed Argo CD: put the same keys under configs.cm in its values.)
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
  labels:
    app.kubernetes.io/name: argocd-cm
    app.kubernetes.io/part-of: argocd
data:
"""


def render_cm_patch() -> str:
    parts = [CM_HEADER]
    for kind in KINDS:
        body = "".join(f"    {line}\n" if line else "\n" for line in script_of(kind).splitlines())
        parts.append(f"  resource.customizations.health.trtllm.dev_{kind}: |\n{body}")
    return "".join(parts)


def test_argocd_cm_patch_is_generated_from_the_scripts() -> None:
    assert CM_PATCH.read_text() == render_cm_patch(), (
        "manifests/argocd/argocd-cm-patch.yaml is stale: "
        "run `python -m tests.unit.test_argocd_health --write`"
    )
    data = yaml.safe_load(CM_PATCH.read_text())["data"]
    assert data == {f"resource.customizations.health.trtllm.dev_{kind}": script_of(kind) for kind in KINDS}


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        CM_PATCH.write_text(render_cm_patch())
        print(f"wrote {CM_PATCH}")
    else:
        print("usage: python -m tests.unit.test_argocd_health --write", file=sys.stderr)
        sys.exit(2)
