"""The builder end to end against the stand-in tools: subprocesses, remapped paths, simulated GPUs."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import (
    EXIT_INCOMPATIBLE_GPU,
    EXIT_INVALID_PLAN,
    EXIT_NO_GPU,
    EXIT_TRANSIENT,
    EXIT_VERIFY_FAILED,
    RESULT_MAX_BYTES,
)
from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.api.plan import BuildResult
from trtllm_operator.builder import builder_command
from trtllm_operator.builder import manifest as mf
from trtllm_operator.builder.preflight import probe
from trtllm_operator.builder.remap import parse_remap
from trtllm_operator.builder.run import Options, attempt
from trtllm_operator.gpu.knowledge import ComputeCapability
from trtllm_operator.render.plan import RenderConfig, render_plan

from .builder_support import (
    A100,
    H100,
    HASH,
    Sandbox,
    builder_env,
    gate_steps,
    load_shim,
    make_plan,
    make_sandbox,
    paths,
    run_builder,
    tensorrt_steps,
    write_hf_model,
    write_texts,
)


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


def _manifest(box: Sandbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((box.host(paths()["engine"]) / mf.MANIFEST_NAME).read_text())
    return data


def test_fp8_tp2_build_publishes_a_verified_engine_with_its_manifest(box: Sandbox) -> None:
    p = paths()
    plan = make_plan(steps=[*tensorrt_steps(p), *gate_steps(p)])
    run = run_builder(box, plan, [H100, H100])

    assert run.returncode == 0, run.result
    assert len(run.raw_result.encode()) < RESULT_MAX_BYTES
    result = run.result
    assert (result.ok, result.reason, result.revision, result.hash) == (
        True,
        reasons.BUILD_SUCCEEDED,
        3,
        plan.build_config_hash,
    )
    assert run.steps_run() == ["quantize", "build", "dataset", "benchmark", "accuracy"]  # download skipped
    engine_dir, staging = box.host(p["engine"]), box.host(p["staging"])
    assert engine_dir.is_dir()
    assert not staging.exists()
    assert sorted(f.name for f in engine_dir.iterdir()) == [
        "config.json",
        "engine-manifest.json",
        "rank0.engine",
        "rank1.engine",
    ]

    manifest = _manifest(box)
    assert manifest["schema_version"] == 1
    assert manifest["engine"] == {
        "namespace": "ml",
        "name": "llama",
        "revision": 3,
        "build_config_hash": plan.build_config_hash,
        "backend": "tensorrt",
        "uri": p["uri"],
    }
    assert manifest["trtllm_version"] == "1.2.0"
    assert manifest["image"] == plan.image
    assert (manifest["precision"], manifest["kv_cache_dtype"], manifest["tensor"], manifest["pipeline"]) == (
        "fp8",
        "fp8",
        2,
        1,
    )
    assert manifest["build_flags"] == plan.build_flags
    gpu = manifest["gpu"]
    assert (gpu["name"], gpu["product"], gpu["compute_capability"], gpu["count"]) == (
        "NVIDIA H100 80GB HBM3",
        "NVIDIA-H100-80GB-HBM3",
        "9.0",
        2,
    )
    assert gpu["driver_version"] == "550.107.02"
    assert gpu["cuda_driver_version"] == 12040
    assert all(device["uuid"].startswith("GPU-") for device in gpu["devices"])
    calibration = manifest["calibration"]
    assert calibration["dataset"] == "pvc://data/calib"
    assert calibration["size"] == 8
    assert calibration["seed"] == 1234
    assert len(calibration["sha256"]) == 64  # the samples quantize.py reports it used
    files = manifest["files"]
    assert [f["path"] for f in files] == ["config.json", "rank0.engine", "rank1.engine"]
    for entry in files:
        data = (engine_dir / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["size"] == len(data)
    assert manifest["total_size"] == sum(f["size"] for f in files)
    assert {"preflight", "quantize", "build", "verify", "benchmark", "accuracy"} <= set(manifest["timings"])
    assert manifest["verification"]["inflight_batching"] is True

    engine = result.engine
    assert engine is not None
    assert engine.uri == p["uri"]
    assert engine.manifest == "engines/llama/0123abcd4567ef89/engine-manifest.json"
    assert engine.sha256 == hashlib.sha256((engine_dir / mf.MANIFEST_NAME).read_bytes()).hexdigest()
    assert (engine.files, engine.size, engine.trtllm, engine.cc) == (
        3,
        manifest["total_size"],
        "1.2.0",
        "9.0",
    )
    assert result.bench is not None
    assert result.bench.out_tps > 0
    assert (result.bench.isl, result.bench.osl, result.bench.conc) == (64, 32, 8)
    assert result.bench.ttft_p99 is not None
    assert result.bench.itl_p50 is not None
    assert [(a.task, a.metric, a.score) for a in result.acc] == [("mmlu", "accuracy", 0.682)]
    assert manifest["measurements"]["acc"] == [{"task": "mmlu", "metric": "accuracy", "score": 0.682}]

    again = run_builder(box, plan, [H100, H100])  # idempotent rerun: nothing runs, same engine reported
    assert again.returncode == 0
    assert again.result.ok
    assert again.steps_run() == []
    assert again.result.engine == engine
    assert again.result.bench == result.bench
    assert again.result.acc == result.acc
    assert "reused" in again.result.message


def test_failed_build_step_is_transient_and_the_rerun_reuses_the_verified_checkpoint(box: Sandbox) -> None:
    plan = make_plan()
    failed = run_builder(box, plan, [H100, H100], TRTLLM_SIM_FAIL="trtllm-build")

    assert failed.returncode == EXIT_TRANSIENT
    assert (failed.result.ok, failed.result.reason, failed.result.step) == (
        False,
        reasons.STEP_FAILED,
        "build",
    )
    assert failed.result.message.startswith("build failed (exit 1): ")
    assert failed.result.message.endswith("RuntimeError: simulated failure in trtllm-build")
    assert not box.host(paths()["engine"]).exists()
    checkpoint = box.host(paths()["checkpoint"])
    assert (checkpoint / mf.VERIFIED_NAME).is_file()
    mtimes = {f.name: f.stat().st_mtime_ns for f in checkpoint.iterdir()}

    rerun = run_builder(box, plan, [H100, H100])
    assert rerun.returncode == 0, rerun.result
    assert rerun.steps_run() == ["build"]
    assert rerun.has("reusing verified checkpoint", step="quantize")
    assert {f.name: f.stat().st_mtime_ns for f in checkpoint.iterdir()} == mtimes


def test_a_tampered_checkpoint_is_not_reused(box: Sandbox) -> None:
    plan = make_plan()
    assert run_builder(box, plan, [H100, H100], TRTLLM_SIM_FAIL="trtllm-build").returncode == EXIT_TRANSIENT
    (box.host(paths()["checkpoint"]) / "rank1.safetensors").write_bytes(b"truncated")

    rerun = run_builder(box, plan, [H100, H100])
    assert rerun.returncode == 0
    assert rerun.steps_run() == ["quantize", "build"]


def test_fp8_on_an_a100_is_refused_before_any_work(box: Sandbox) -> None:
    run = run_builder(box, make_plan(target_cc="8.0"), [A100, A100])

    assert run.returncode == EXIT_INCOMPATIBLE_GPU
    assert (run.result.reason, run.result.step) == (reasons.INCOMPATIBLE_GPU, "preflight")
    assert run.result.message == (
        "precision fp8 needs compute capability ≥ 8.9; KV-cache dtype fp8 needs compute capability ≥ 8.9; "
        "this node has NVIDIA A100-SXM4-80GB (8.0)"
    )
    assert run.steps_run() == []


def test_no_gpu_visible(box: Sandbox) -> None:
    run = run_builder(box, make_plan(), [])

    assert run.returncode == EXIT_NO_GPU
    assert run.result.reason == reasons.NO_GPU_VISIBLE
    assert run.result.message == (
        "no NVIDIA GPU visible to the build pod (NVML: Driver Not Loaded): check the nvidia.com/gpu request "
        "and the device plugin"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "is not valid JSON"),
        ('{"schema_version": 1}', "does not match the schema"),
    ],
)
def test_invalid_plan_is_reported(box: Sandbox, text: str, fragment: str) -> None:
    run = run_builder(box, text, [H100])

    assert run.returncode == EXIT_INVALID_PLAN
    assert run.result.reason == reasons.INVALID_PLAN
    assert fragment in run.result.message


def test_an_override_that_disables_inflight_batching_fails_verification(box: Sandbox) -> None:
    steps = tensorrt_steps(paths())
    steps[2]["argv"] += ["--remove_input_padding", "disable"]
    run = run_builder(box, make_plan(steps=steps), [H100, H100])

    assert run.returncode == EXIT_VERIFY_FAILED
    assert (run.result.reason, run.result.step) == ("InflightBatchingDisabled", "verify")
    assert "build_config.plugin_config.remove_input_padding is false, expected true" in run.result.message
    assert not box.host(paths()["engine"]).exists()

    accepted = run_builder(box, make_plan(steps=steps, accept_inflight_batching_disabled=True), [H100, H100])
    assert accepted.returncode == 0
    assert any("in-flight batching disabled (accepted)" in w for w in accepted.result.warnings)


def test_crash_between_writing_files_and_rename_leaves_no_engine(
    box: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, so the crash can be injected exactly between the manifest write and the rename."""
    for key, value in builder_env([H100, H100]).items():
        monkeypatch.setenv(key, value)
    shim = load_shim()
    plan_file = box.tmp / "plan.json"
    plan_file.write_text(make_plan().to_json(), encoding="utf-8")
    options = Options(plan_file, box.tmp / "result", tuple(parse_remap(item) for item in box.remaps))
    real_publish = mf.publish

    def power_cut(staging: Path, engine: Path, build_config_hash: str) -> bool:
        assert (staging / mf.MANIFEST_NAME).is_file()  # every file is written...
        raise OSError("simulated power cut")  # ...but the rename never happens

    monkeypatch.setattr(mf, "publish", power_cut)
    result, code = attempt(options, prober=lambda: probe(shim))
    assert (code, result.reason) == (EXIT_TRANSIENT, reasons.BUILDER_CRASHED)
    assert "simulated power cut" in result.message
    assert not box.host(paths()["engine"]).exists()

    monkeypatch.setattr(mf, "publish", real_publish)
    result, code = attempt(options, prober=lambda: probe(shim))
    assert (code, result.ok) == (0, True)
    assert box.host(paths()["engine"]).is_dir()
    assert not box.host(paths()["staging"]).exists()


def test_a_partial_staging_left_by_a_crash_is_removed_and_rebuilt(box: Sandbox) -> None:
    staging = box.host(paths()["staging"])
    staging.mkdir(parents=True)
    (staging / "rank0.engine").write_bytes(b"half an engine")
    (staging / "leftover.tmp").write_text("junk")

    run = run_builder(box, make_plan(), [H100, H100])
    assert run.returncode == 0, run.result
    assert run.has("removed stale staging directory (an earlier attempt died)")
    engine = box.host(paths()["engine"])
    assert not (engine / "leftover.tmp").exists()
    assert (engine / "rank0.engine").read_bytes() != b"half an engine"


def test_an_engine_directory_that_is_not_ours_is_never_overwritten(box: Sandbox) -> None:
    engine = box.host(paths()["engine"])
    engine.mkdir(parents=True)
    (engine / "rank0.engine").write_bytes(b"someone else's")

    run = run_builder(box, make_plan(), [H100, H100])
    assert run.returncode == EXIT_VERIFY_FAILED
    assert run.result.reason == reasons.ENGINE_DIRECTORY_CONFLICT
    assert (engine / "rank0.engine").read_bytes() == b"someone else's"
    assert run.steps_run() == []


@dataclass(frozen=True)
class _Placement:
    cc: ComputeCapability
    product: str | None
    gpus: int


def test_pytorch_plan_rendered_by_the_operator(box: Sandbox) -> None:
    """render_plan's own plan: ModelOpt PTQ stand-in, dataset on stdout, trtllm-bench, perplexity."""
    spec = TRTEngineSpec.model_validate(
        {
            "model": {"source": "hf://org/llama-tiny", "architecture": "LlamaForCausalLM"},
            "backend": "pytorch",
            "image": "nvcr.io/nvidia/tensorrt-llm/release:1.3.0",
            "precision": "fp8",
            "kvCacheDtype": "fp8",
            "calibration": {"dataset": "pvc://data/calib", "size": 8, "maxSeqLength": 64},
            "storage": {"existingClaim": "engines"},
            "validation": {
                "benchmark": {"inputLength": 64, "outputLength": 32, "concurrency": 8, "numRequests": 16},
                "accuracy": {
                    "tasks": [
                        {
                            "name": "perplexity",
                            "dataset": "pvc://data/eval",
                            "baseline": {"value": 6.5},
                            "maxDrop": 1,
                        }
                    ]
                },
            },
        }
    )
    plan = render_plan(
        "ml", "llama", spec, 1, HASH, _Placement(ComputeCapability(9, 0), None, 1), RenderConfig()
    )
    write_hf_model(box.host(plan.model.local_dir))
    write_texts(box.host("/models/data/eval"), count=50)

    run = run_builder(box, plan, [H100])
    assert run.returncode == 0, run.result
    assert run.steps_run() == ["quantize", "dataset", "benchmark", "accuracy"]
    engine = box.host(plan.paths.engine)
    names = sorted(f.name for f in engine.iterdir())
    assert names == [
        "calibration.json",
        "config.json",
        "engine-manifest.json",
        "hf_quant_config.json",
        "model.safetensors",
        "tokenizer_config.json",
    ]
    manifest = json.loads((engine / mf.MANIFEST_NAME).read_text())
    assert manifest["trtllm_version"] == "unknown"  # the pytorch backend has no engine config version
    assert manifest["verification"]["exclude_modules"] == ["lm_head", "model.embed_tokens"]
    assert (
        manifest["calibration"]["sha256"] == json.loads((engine / "calibration.json").read_text())["sha256"]
    )
    assert run.result.bench is not None
    assert run.result.bench.out_tps > 0
    [accuracy] = run.result.acc
    assert (accuracy.task, accuracy.metric) == ("perplexity", "perplexity")
    assert accuracy.score > 6


def test_sigterm_stops_the_tool_and_still_writes_a_result(box: Sandbox) -> None:
    plan_file, result_file = box.tmp / "plan.json", box.tmp / "result"
    plan_file.write_text(make_plan().to_json(), encoding="utf-8")
    argv = builder_command(plan_file, result_file, box.remaps)
    env = builder_env([H100, H100], TRTLLM_SIM_STEP_SECONDS="30")
    with subprocess.Popen(
        argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    ) as builder:
        assert builder.stderr is not None
        for line in builder.stderr:  # wait until quantize.py is running, then "delete the pod"
            if '"event": "output"' in line and '"step": "quantize"' in line:
                builder.send_signal(signal.SIGTERM)
                break
        builder.stderr.read()
        assert builder.wait(timeout=60) == EXIT_TRANSIENT

    result = BuildResult.from_message(result_file.read_text())
    assert result is not None
    assert (result.ok, result.reason) == (False, reasons.BUILD_INTERRUPTED)
    assert not (box.host(paths()["checkpoint"]) / mf.VERIFIED_NAME).exists()
