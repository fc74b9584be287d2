"""``run_render``: the offline ``trtllm-operator render`` — output stream, exit codes, errors."""

from __future__ import annotations

import io
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import yaml

from trtllm_operator.render.cli import EXIT_INVALID, EXIT_NO_FIT, EXIT_RENDERED, run_render


def gpu_node(
    name: str, product: str, major: int, minor: int, count: int = 8, **status: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "nvidia.com/gpu.product": product,
                "nvidia.com/gpu.compute.major": str(major),
                "nvidia.com/gpu.compute.minor": str(minor),
                "nvidia.com/gpu.count": str(count),
                "nvidia.com/gpu.memory": "81920",
            },
        },
        "spec": status.pop("spec", {}),
        "status": {
            "allocatable": {"nvidia.com/gpu": str(count)},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


X = "\u00d7"  # the multiplication sign messages use
CPU_NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "cpu-0", "labels": {}}, "status": {}}
H100_NODES = [
    gpu_node("h100-0", "NVIDIA-H100-80GB-HBM3", 9, 0),
    gpu_node("h100-1", "NVIDIA-H100-80GB-HBM3", 9, 0),
]
A100_NODES = [
    gpu_node("a100-0", "NVIDIA-A100-SXM4-80GB", 8, 0),
    gpu_node("a100-1", "NVIDIA-A100-SXM4-80GB", 8, 0),
]


def engine(**spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"source": "hf://meta-llama/Llama-3.3-70B-Instruct", "architecture": "LlamaForCausalLM"},
        "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        "precision": "fp8",
        "kvCacheDtype": "fp8",
        "parallelism": {"tensor": 4},
        "storage": {"claim": {"size": "500Gi"}},
    }
    body.update(spec)
    return {
        "apiVersion": "trtllm.dev/v1alpha1",
        "kind": "TRTEngine",
        "metadata": {"name": "llama", "namespace": "ml"},
        "spec": body,
    }


def write(tmp_path: Path, name: str, *docs: Any) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False), encoding="utf-8")
    return str(path)


def node_list(tmp_path: Path, nodes: list[dict[str, Any]]) -> str:
    return write(tmp_path, "nodes.yaml", {"apiVersion": "v1", "kind": "List", "items": nodes})


def render(engine_path: str, nodes_path: str | None) -> tuple[int, str]:
    out = io.StringIO()
    return run_render(engine_path, nodes_path, out), out.getvalue()


class TestSuccess:
    def test_stream_holds_claim_configmap_and_job(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, text = render(
            write(tmp_path, "e.yaml", engine()), node_list(tmp_path, [CPU_NODE, *H100_NODES, *A100_NODES])
        )
        assert code == EXIT_RENDERED
        assert capsys.readouterr().err == ""
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
        assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "ConfigMap", "Job"]
        job = docs[2]
        assert job["metadata"]["name"].startswith("llama-build-")
        assert job["metadata"]["namespace"] == "ml"
        assert job["metadata"]["labels"]["trtllm.dev/revision"] == "1"
        assert "ownerReferences" not in job["metadata"]
        terms = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]
        values = [e["values"] for e in terms["nodeSelectorTerms"][0]["matchExpressions"]]
        assert values == [["9"], ["0"]]
        build = next(
            line for line in docs[1]["data"]["steps.sh"].splitlines() if line.startswith("trtllm-build")
        )
        assert (
            "--gemm_plugin disable --reduce_fusion enable --user_buffer enable --gemm_swiglu_plugin fp8"
            in build
        )

    def test_header_comment_names_the_target(self, tmp_path: Path) -> None:
        _, text = render(write(tmp_path, "e.yaml", engine()), node_list(tmp_path, [*H100_NODES, *A100_NODES]))
        first = text.splitlines()[0]
        assert first == "# target: highest compute capability with a fitting node: 9.0 (Hopper), 2 nodes"
        assert text.index("# target:") < text.index("---")

    def test_warnings_and_notes_as_comments(self, tmp_path: Path) -> None:
        spec = engine(
            model={"source": "hf://bigcode/starcoder2-15b", "domain": "code"},
            build={"extraArgs": ["--remove_input_padding", "disable"]},
        )
        _, text = render(write(tmp_path, "e.yaml", spec), node_list(tmp_path, H100_NODES))
        header = text.split("---", 1)[0]
        assert (
            "# warning: calibration dataset cnn_dailymail (news summaries) does not match model domain code"
            in header
        )
        assert (
            "# warning: spec.build.extraArgs disable in-flight batching (--remove_input_padding disable)"
            in header
        )
        assert "# note: left out --reduce_fusion enable: spec.model.architecture is not set" in header
        assert all(line.startswith("#") for line in header.splitlines() if line)

    def test_nodes_as_a_stream_of_node_documents(self, tmp_path: Path) -> None:
        nodes = write(tmp_path, "nodes.yaml", *A100_NODES)
        code, text = render(write(tmp_path, "e.yaml", engine(precision="bf16", kvCacheDtype="auto")), nodes)
        assert code == EXIT_RENDERED
        assert "8.0 (Ampere), 2 nodes" in text.splitlines()[0]

    def test_existing_claim_has_no_pvc(self, tmp_path: Path) -> None:
        spec = engine(storage={"existingClaim": "shared"})
        _, text = render(write(tmp_path, "e.yaml", spec), node_list(tmp_path, H100_NODES))
        assert [d["kind"] for d in yaml.safe_load_all(text) if d] == ["ConfigMap", "Job"]

    def test_namespace_defaults(self, tmp_path: Path) -> None:
        doc = engine()
        del doc["metadata"]["namespace"]
        _, text = render(write(tmp_path, "e.yaml", doc), node_list(tmp_path, H100_NODES))
        assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(text) if d} == {"default"}

    def test_default_fleet_comes_from_dev_fleet(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        fleet = types.ModuleType("trtllm_operator.dev.fleet")
        fleet.default_nodes = lambda: list(H100_NODES)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "trtllm_operator.dev.fleet", fleet)
        code, text = render(write(tmp_path, "e.yaml", engine()), None)
        assert code == EXIT_RENDERED
        assert "9.0 (Hopper), 2 nodes" in text.splitlines()[0]


class TestNoFit:
    def test_fp8_on_a100_fleet(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        out = io.StringIO()
        code = run_render(write(tmp_path, "e.yaml", engine()), node_list(tmp_path, A100_NODES), out)
        assert code == EXIT_NO_FIT
        assert out.getvalue() == ""
        err = capsys.readouterr().err
        assert err.startswith(
            "reason: NoCompatibleNodes\nmessage: fp8 needs compute capability ≥ 8.9 and 4 GPUs per node"
        )
        assert f"2 {X} NVIDIA-A100-SXM4-80GB (8.0, 8 GPUs)" in err

    def test_explicit_target_that_cannot_run_fp8(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        spec = engine(target={"computeCapability": "8.0"})
        code, _ = render(write(tmp_path, "e.yaml", spec), node_list(tmp_path, A100_NODES))
        assert code == EXIT_NO_FIT
        assert capsys.readouterr().err.startswith("reason: PrecisionUnsupported\n")


class TestInvalidInput:
    def test_invalid_yaml(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        path = tmp_path / "e.yaml"
        path.write_text("spec: [unclosed\n", encoding="utf-8")
        code, text = render(str(path), node_list(tmp_path, H100_NODES))
        assert (code, text) == (EXIT_INVALID, "")
        assert "is not valid YAML" in capsys.readouterr().err

    def test_schema_error_names_the_field(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _ = render(write(tmp_path, "e.yaml", engine(precision="fp6")), node_list(tmp_path, H100_NODES))
        assert code == EXIT_INVALID
        err = capsys.readouterr().err
        assert "invalid TRTEngine llama" in err
        assert "spec.precision" in err

    def test_bad_name(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        doc = engine()
        doc["metadata"]["name"] = "Llama_70B"
        code, _ = render(write(tmp_path, "e.yaml", doc), node_list(tmp_path, H100_NODES))
        assert code == EXIT_INVALID
        assert (
            "metadata.name 'Llama_70B' must be a DNS label of at most 48 characters"
            in capsys.readouterr().err
        )

    def test_storage_needs_exactly_one_claim(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        spec = engine(storage={"path": "engines"})
        code, _ = render(write(tmp_path, "e.yaml", spec), node_list(tmp_path, H100_NODES))
        assert code == EXIT_INVALID
        assert "spec.storage: set exactly one of existingClaim" in capsys.readouterr().err

    def test_missing_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _ = render(str(tmp_path / "nope.yaml"), None)
        assert code == EXIT_INVALID
        assert "cannot read" in capsys.readouterr().err

    def test_no_trtengine_in_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        code, _ = render(write(tmp_path, "e.yaml", {"kind": "ConfigMap"}), node_list(tmp_path, H100_NODES))
        assert code == EXIT_INVALID
        assert "exactly one TRTEngine, found 0" in capsys.readouterr().err

    def test_invalid_nodes_file(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        bad = tmp_path / "nodes.yaml"
        bad.write_text("items: [\n", encoding="utf-8")
        code, _ = render(write(tmp_path, "e.yaml", engine()), str(bad))
        assert code == EXIT_INVALID
        assert "nodes.yaml is not valid YAML" in capsys.readouterr().err
