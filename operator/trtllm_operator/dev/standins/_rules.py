"""Hardware rules the real stack enforces, in one place so every stand-in applies them alike.

Sources: ``shared/reference/trtllm.md`` (precision vs compute capability, engine portability, the
in-flight batching prerequisites) and TensorRT-LLM's ``tensorrt_llm/builder.py::build`` (the SM 10.x
quantization rejections apply to ``100 <= sm < 120``: SM 12.0 is not rejected there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import (
    DESERIALIZE_FAILED,
    missing_rank_files,
    read_engine_header,
    read_json,
    world_size_of,
)
from trtllm_operator.dev.standins._common import ToolError, sim_version
from trtllm_operator.dev.standins.simgpu import SimGPU

FP8_HW_ERROR: Final = "Networks with FP8 precision require hardware with FP8 support."
W4A8_HW_ERROR: Final = "W4A(fp)8 kernel is unsupported on pre-Ada (sm<89) architectures!"
FP4_HW_ERROR: Final = "FP4 Gemm not supported before Blackwell"
IFB_ERROR: Final = (
    "TrtGptModelInflightBatching requires GPT attention/Mamba Conv 1d plugin with packed input and "
    "paged KV cache."
)

FP8_ALGOS: Final = frozenset({"FP8", "FP8_PER_CHANNEL_PER_TOKEN"})
INT_WEIGHT_ONLY_ALGOS: Final = frozenset(
    {"W8A16", "W4A16", "W4A16_AWQ", "W4A16_GPTQ", "W8A16_GPTQ", "W4A8_AWQ"}
)
PER_CHANNEL_OR_TOKEN_ALGOS: Final = frozenset({"FP8_PER_CHANNEL_PER_TOKEN"})


def _cc(sm: int) -> str:
    return f"{sm // 10}.{sm % 10}"


def check_precision(sm: int, quant_algo: str | None, kv_algo: str | None, dtype: str) -> None:
    """Fail like the real stack when the GPU cannot run the requested precision at all."""
    if quant_algo == "NVFP4" and sm < 100:
        raise ToolError(FP4_HW_ERROR)
    if quant_algo == "W4A8_AWQ" and sm < 89:
        raise ToolError(W4A8_HW_ERROR)
    if (quant_algo in FP8_ALGOS or kv_algo == "FP8") and sm < 89:
        raise ToolError(
            FP8_HW_ERROR,
            details=[
                f"[TRT] [E] IBuilder::buildSerializedNetwork: Error Code 9: API Usage Error ({FP8_HW_ERROR})"
            ],
        )
    if dtype == "bfloat16" and sm < 80:
        raise ToolError(f"bfloat16 requires compute capability 8.0 or newer; this GPU is {_cc(sm)}.")


def check_blackwell_quantization(sm: int, quant_algo: str | None, kv_algo: str | None) -> None:
    """``builder.build``: on SM 10.x INT8/INT4, SmoothQuant and per-channel/token scaling are rejected."""
    if not 100 <= sm < 120:
        return
    if quant_algo in INT_WEIGHT_ONLY_ALGOS or kv_algo == "INT8":
        raise ToolError("INT8/INT4 quantization is not supported on SM>=100.")
    if quant_algo is not None and quant_algo.startswith("W8A8_SQ"):
        raise ToolError("SmoothQuant is not supported on SM>=100.")
    if quant_algo in PER_CHANNEL_OR_TOKEN_ALGOS:
        raise ToolError("Per-channel or per-token scaling is not supported on SM>=100.")


@dataclass(frozen=True)
class Engine:
    """A loaded engine directory, after every runtime compatibility check passed."""

    path: Path
    config: dict[str, Any]
    world_size: int

    @property
    def pretrained(self) -> dict[str, Any]:
        value: dict[str, Any] = self.config["pretrained_config"]
        return value

    @property
    def build(self) -> dict[str, Any]:
        value: dict[str, Any] = self.config["build_config"]
        return value


def _engine_config(engine_dir: Path) -> dict[str, Any]:
    if not engine_dir.is_dir():
        raise ToolError(f"[Errno 2] No such file or directory: '{engine_dir}'", "FileNotFoundError")
    config = read_json(engine_dir / "config.json")
    for key in ("version", "pretrained_config", "build_config"):
        if not isinstance(config.get(key), dict | str):
            raise ToolError(f"{engine_dir / 'config.json'} is not an engine config (no '{key}')", "KeyError")
    return config


def _check_rank_header(path: Path, gpu: SimGPU, runtime_version: str) -> None:
    header = read_engine_header(path)
    built_sm = int(header.get("sm", 0))
    if built_sm != gpu.sm:
        raise ToolError(
            DESERIALIZE_FAILED,
            details=[
                "[TRT] [E] 6: The engine plan file is generated on an incompatible device, "
                f"expecting compute {gpu.compute_capability} got compute {_cc(built_sm)}, please rebuild."
            ],
        )
    built_version = str(header.get("tensorrt_llm_version"))
    if built_version != runtime_version:
        raise ToolError(
            DESERIALIZE_FAILED,
            details=[
                "[TRT] [E] 6: The engine plan file is not compatible with this version of TensorRT, "
                f"expecting library version of TensorRT-LLM {runtime_version} got {built_version}, "
                "please rebuild."
            ],
        )


def _check_inflight_batching(build_config: dict[str, Any]) -> None:
    plugins = build_config.get("plugin_config") or {}
    kv_cache_type = str(build_config.get("kv_cache_type", "PAGED")).upper()
    if not plugins.get("gpt_attention_plugin") or not plugins.get("remove_input_padding"):
        raise ToolError(IFB_ERROR)
    if kv_cache_type not in {"PAGED", "DISABLED"}:
        raise ToolError(IFB_ERROR)


def load_runnable_engine(engine_dir: Path, gpus: list[SimGPU]) -> Engine:
    """Load an engine dir as the C++ runtime would: enough GPUs, same SM and version, IFB-capable."""
    config = _engine_config(engine_dir)
    pretrained = config["pretrained_config"]
    world = world_size_of(pretrained, engine_dir / "config.json")
    if len(gpus) < world:
        raise ToolError(
            f"The engine needs world_size {world} (tp_size x pp_size) but only {len(gpus)} GPU(s) "
            "are visible."
        )
    missing = missing_rank_files(engine_dir, world, "engine")
    if missing:
        raise ToolError(
            f"[Errno 2] No such file or directory: '{engine_dir / missing[0]}'", "FileNotFoundError"
        )
    runtime_version = sim_version()
    for rank in range(world):
        _check_rank_header(engine_dir / f"rank{rank}.engine", gpus[rank], runtime_version)
    _check_inflight_batching(config["build_config"])
    return Engine(engine_dir, config, world)
