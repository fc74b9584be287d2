"""`trtllm-operator render` against the real default simulated fleet (no fake node list)."""

from __future__ import annotations

import io
from pathlib import Path

import yaml

from trtllm_operator.render.cli import run_render

DEMO = Path(__file__).resolve().parents[2] / "manifests" / "demo"


def test_worked_example_renders_against_the_default_fleet() -> None:
    out = io.StringIO()
    assert run_render(str(DEMO / "10-llama-fp8-h100.yaml"), None, out) == 0
    objects = [o for o in yaml.safe_load_all(out.getvalue()) if o]
    job = next(o for o in objects if o["kind"] == "Job")
    terms = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    keys = {e["key"]: e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]}
    assert keys["nvidia.com/gpu.compute.major"] == ["9"]
    assert keys["nvidia.com/gpu.compute.minor"] == ["0"]
    assert "--gemm_swiglu_plugin fp8" in out.getvalue()
    assert "# target:" in out.getvalue()


def test_no_fit_against_the_default_fleet_exits_nonzero(tmp_path: Path, capsys: object) -> None:
    engine = yaml.safe_load((DEMO / "40-nvfp4-anywhere.yaml").read_text())
    engine["spec"]["parallelism"] = {"tensor": 16}
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(engine))
    assert run_render(str(path), None, io.StringIO()) == 1
