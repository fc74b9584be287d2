"""Helpers for the builder tests: plans made by hand, a fake HF model, and the builder run as a subprocess.

The builder is run exactly as the simulated cluster runs it: ``python -m trtllm_operator.builder``
with the stand-in tools first on PATH, the pynvml shim first on PYTHONPATH, ``TRTLLM_SIM_GPUS``
naming the GPUs, and ``--remap`` turning the in-pod paths of the plan (``/engines``, ``/models``,
``/app/tensorrt_llm``) into a temporary tree.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from trtllm_operator.api.plan import BuildPlan, BuildResult
from trtllm_operator.builder import builder_command
from trtllm_operator.dev.standins import SHIM_DIR, standin_env
from trtllm_operator.trtllm.cli_tables import version_from_image

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / "hack" / "standins" / "bin"
GPU = dict[str, Any]
H100: GPU = {"name": "NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "memory_total_mib": 81559}
A100: GPU = {"name": "NVIDIA A100-SXM4-80GB", "major": 8, "minor": 0, "memory_total_mib": 81920}
L40S: GPU = {"name": "NVIDIA L40S", "major": 8, "minor": 9, "memory_total_mib": 46068}
B200: GPU = {"name": "NVIDIA B200", "major": 10, "minor": 0, "memory_total_mib": 183359}
HASH = "0123abcd4567ef89"
ROOT = "/engines/engines/llama"
EXAMPLES = "/app/tensorrt_llm/examples"
MODEL_DIR = "/models/models/llama-tiny"
CALIB_DIR = "/models/data/calib"
_SCRUBBED = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH", "HF_TOKEN")


def paths(build_hash: str = HASH) -> dict[str, str]:
    return {
        "root": ROOT,
        "engine": f"{ROOT}/{build_hash}",
        "staging": f"{ROOT}/.{build_hash}.partial",
        "checkpoint": f"{ROOT}/.{build_hash}.checkpoint",
        "uri": f"pvc://engines/engines/llama/{build_hash}",
    }


def tensorrt_steps(
    p: dict[str, str], tensor: int = 2, precision: str = "fp8", kv: str = "fp8"
) -> list[dict[str, Any]]:
    quantize = ["python3", f"{EXAMPLES}/quantization/quantize.py", "--model_dir", MODEL_DIR]
    quantize += ["--output_dir", p["checkpoint"], "--qformat", precision, "--kv_cache_dtype", kv]
    quantize += ["--calib_dataset", CALIB_DIR, "--calib_size", "8", "--calib_max_seq_length", "64"]
    quantize += ["--tp_size", str(tensor), "--pp_size", "1", "--seed", "1234"]
    build = ["trtllm-build", "--checkpoint_dir", p["checkpoint"], "--output_dir", p["staging"]]
    build += ["--workers", str(tensor), "--max_batch_size", "64", "--max_seq_len", "512"]
    return [
        {
            "name": "download",
            "argv": ["huggingface-cli", "download", "org/llama-tiny", "--local-dir", MODEL_DIR],
        },
        {"name": "quantize", "argv": quantize},
        {"name": "build", "argv": build},
        {"name": "verify"},
    ]


def gate_steps(p: dict[str, str], backend: str = "tensorrt") -> list[dict[str, Any]]:
    """dataset + benchmark + trtllm-eval mmlu, shaped like the renderer's (they measure staging)."""
    dataset = f"{p['root']}/.{HASH}.bench-dataset.jsonl"
    prepare = ["python3", "/app/tensorrt_llm/benchmarks/cpp/prepare_dataset.py", "--stdout"]
    prepare += ["--tokenizer", MODEL_DIR, "token-norm-dist", "--input-mean", "64", "--output-mean", "32"]
    prepare += ["--input-stdev", "0", "--output-stdev", "0", "--num-requests", "16"]
    bench = ["trtllm-bench", "--model", "org/llama-tiny", "--model_path", MODEL_DIR, "throughput"]
    bench += ["--engine_dir", p["staging"], "--backend", backend, "--dataset", dataset]
    bench += [
        "--concurrency",
        "8",
        "--num_requests",
        "16",
        "--report_json",
        f"{p['root']}/.{HASH}.bench.json",
    ]
    bench += ["--streaming"]
    evaluate = ["trtllm-eval", "--model", p["staging"], "--backend", backend, "--tokenizer", MODEL_DIR]
    evaluate += ["mmlu", "--dataset_path", "/models/data/mmlu"]
    return [
        {"name": "dataset", "argv": prepare, "stdout": dataset},
        {"name": "benchmark", "argv": bench},
        {"name": "accuracy", "argv": evaluate},
    ]


def make_plan(**overrides: Any) -> BuildPlan:
    """A tensorrt fp8 TP 2 plan for a 9.0 GPU with in-pod paths; keyword arguments override fields."""
    p = paths()
    data: dict[str, Any] = {
        "namespace": "ml",
        "engine_name": "llama",
        "revision": 3,
        "build_config_hash": HASH,
        "backend": "tensorrt",
        "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        "precision": "fp8",
        "kv_cache_dtype": "fp8",
        "tensor": 2,
        "pipeline": 1,
        "target_cc": "9.0",
        "target_product": None,
        "model": {
            "source": "hf://org/llama-tiny",
            "local_dir": MODEL_DIR,
            "architecture": "LlamaForCausalLM",
        },
        "calibration": {
            "dataset": "pvc://data/calib",
            "local_dir": CALIB_DIR,
            "size": 8,
            "max_seq_length": 64,
            "seed": 1234,
        },
        "paths": p,
        "build_flags": {"max_batch_size": "64", "max_seq_len": "512"},
        "steps": tensorrt_steps(p),
    }
    data.update(overrides)
    return BuildPlan.model_validate(data)


def write_hf_model(directory: Path, dtype: str = "bfloat16") -> Path:
    """A tiny Hugging Face model directory (config + tokenizer config; the stand-ins need no weights)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "torch_dtype": dtype,
        "vocab_size": 1000,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 128,
        "max_position_embeddings": 1024,
        "hidden_act": "silu",
    }
    (directory / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps({"vocab_size": 1000}), encoding="utf-8")
    return directory


def write_texts(directory: Path, count: int = 20) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"sample {i}: the quick brown fox jumps over the lazy dog {i}" for i in range(count)]
    (directory / "part-0.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


@dataclass(frozen=True)
class Sandbox:
    """A temporary tree standing in for the build pod's volumes and the TensorRT-LLM image."""

    tmp: Path

    @property
    def remaps(self) -> list[str]:
        return [
            f"/engines={self.tmp / 'engines'}",
            f"/models={self.tmp / 'models'}",
            f"/app/tensorrt_llm={self.tmp / 'app'}",
        ]

    def host(self, pod_path: str) -> Path:
        """Where an in-pod path of the plan lives on this machine."""
        for src, dst in (item.split("=", 1) for item in self.remaps):
            if pod_path == src or pod_path.startswith(src + "/"):
                return Path(dst + pod_path[len(src) :])
        return Path(pod_path)


def make_sandbox(tmp: Path) -> Sandbox:
    """Model, calibration and MMLU data under /models, and the image's example scripts (symlinks)."""
    box = Sandbox(tmp)
    write_hf_model(box.host(MODEL_DIR))
    write_texts(box.host(CALIB_DIR))
    box.host("/models/data/mmlu").mkdir(parents=True, exist_ok=True)
    links = {
        "examples/quantization/quantize.py": "quantize.py",
        "examples/models/core/llama/convert_checkpoint.py": "convert_checkpoint.py",
        "benchmarks/cpp/prepare_dataset.py": "prepare_dataset.py",
    }
    for rel, tool in links.items():
        link = tmp / "app" / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(BIN / tool)
    return box


def builder_env(gpus: list[GPU], **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRTLLM_") and k not in _SCRUBBED}
    env = standin_env(gpus, base, HF_HUB_OFFLINE="1", **extra)
    env["PYTHONPATH"] = f"{SHIM_DIR}{os.pathsep}{REPO / 'operator'}"
    return env


@dataclass(frozen=True)
class Run:
    returncode: int
    result: BuildResult
    raw_result: str
    events: list[dict[str, Any]]

    def steps_run(self) -> list[str]:
        """Steps whose tool was started (``running`` events)."""
        return [event["step"] for event in self.events if event.get("event") == "running"]

    def has(self, event: str, **fields: Any) -> bool:
        return any(
            e.get("event") == event and all(e.get(k) == v for k, v in fields.items()) for e in self.events
        )


def run_builder(box: Sandbox, plan: BuildPlan | str, gpus: list[GPU], **env: str) -> Run:
    """Write the plan (a BuildPlan, or raw text), run the builder as a subprocess, parse result and logs."""
    plan_file = box.tmp / "plan.json"
    plan_file.write_text(plan if isinstance(plan, str) else plan.to_json(), encoding="utf-8")
    result_file = box.tmp / "termination-log"
    result_file.unlink(missing_ok=True)
    argv = builder_command(plan_file, result_file, box.remaps)
    if not isinstance(plan, str) and (version := version_from_image(plan.image)):
        env.setdefault("TRTLLM_SIM_VERSION", version)  # as the executor does: the image's version
    done = subprocess.run(argv, env=builder_env(gpus, **env), capture_output=True, text=True, timeout=120)
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    raw = result_file.read_text(encoding="utf-8")
    result = BuildResult.from_message(raw)
    assert result is not None, f"no result written; stderr:\n{done.stderr[-3000:]}"
    return Run(done.returncode, result, raw, events)


def load_shim() -> ModuleType:
    """The stand-in pynvml module, loaded from its file without touching sys.path."""
    spec = importlib.util.spec_from_file_location("pynvml_shim", SHIM_DIR / "pynvml.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
