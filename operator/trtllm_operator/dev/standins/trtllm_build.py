"""Stand-in for ``trtllm-build`` (TRT-LLM checkpoint -> engine directory), TensorRT engine path.

Flags, defaults and choices are the real parser's (``trtllm/cli_tables.py``, build.py + plugin.py). The option
resolution mirrors ``tensorrt_llm/builder.py::build`` and ``plugin.py::PluginConfig.validate``
(TensorRT-LLM main, 2025):

* ``reduce_fusion`` is forced off unless tp_size > 1 and the architecture is LlamaForCausalLM /
  Gemma2ForCausalLM / MedusaForCausalLM; ``user_buffer`` is forced off without ``reduce_fusion``;
  ``norm_quant_fusion`` is forced off unless Llama + NVFP4 without ``reduce_fusion`` (each with the
  real "Overriding ... to False" warning);
* FP8 context FMHA: off without context FMHA, off unless quant_algo is FP8/W4A8_AWQ/NVFP4, off below
  SM 89; turned ON when paged context FMHA is used with an FP8 KV cache; paged context FMHA is off
  with an INT8 KV cache;
* SM 10.0 rejects the gemm_swiglu / low_latency_gemm plugins (``{plugin}={val} is not supported on
  SM {sm}.``: the real table is keyed on SM 100 exactly); SM 10.x (100 <= sm < 120) rejects INT8/INT4
  weight-only and INT8 KV cache, SmoothQuant and per-channel/per-token scaling;
* ``gemm_swiglu_plugin fp8`` needs quant_algo FP8 on SM 9.0 (the docs: "only supported for FP8
  precision on Hopper") -- enforced here as an error;
* an NVFP4 checkpoint turns ``gemm_plugin`` to ``nvfp4`` unless ``--gemm_plugin`` was given;
* precision vs compute capability (FP8 < 8.9, NVFP4 < 10.0, ...) fails as TensorRT does.

The simulated GPU is the first of ``TRTLLM_SIM_GPUS``; each ``rank{r}.engine`` records its SM and
the ``TRTLLM_SIM_VERSION`` so the runtime stand-ins can refuse a mismatched engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import (
    missing_rank_files,
    read_json,
    world_size_of,
    write_engine,
    write_json,
)
from trtllm_operator.dev.standins._common import (
    ToolError,
    log,
    require_gpus,
    run_tool,
    sim_version,
    step,
    warn,
)
from trtllm_operator.dev.standins._rules import check_blackwell_quantization, check_precision
from trtllm_operator.dev.standins.simgpu import SimGPU
from trtllm_operator.trtllm import sm_rules
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import TRTLLM_BUILD_12

TOOL: Final = "trtllm-build"
ENABLE_DISABLE: Final = ["enable", "disable"]
LOG_LEVELS: Final = ["internal_error", "error", "warning", "info", "verbose", "debug", "trace"]
REDUCE_FUSION_ARCHS: Final = frozenset({"LlamaForCausalLM", "Gemma2ForCausalLM", "MedusaForCausalLM"})
FP8_FMHA_ALGOS: Final = frozenset({"FP8", "W4A8_AWQ", "NVFP4"})
DEFAULT_MAX_SEQ_LEN: Final = 2048
# flag -> (choices, default); dtype-valued plugins first, then the enable/disable switches.
DTYPE_PLUGINS: Final[dict[str, tuple[list[str], str]]] = {
    "gpt_attention_plugin": (["auto", "float16", "bfloat16", "float32", "disable"], "auto"),
    "gemm_plugin": (["auto", "float16", "bfloat16", "fp8", "nvfp4", "disable"], "disable"),
    "gemm_swiglu_plugin": (["fp8", "disable"], "disable"),
    "low_latency_gemm_plugin": (["fp8", "disable"], "disable"),
}
SWITCHES: Final[dict[str, str]] = {
    "reduce_fusion": "disable",
    "user_buffer": "disable",
    "use_fused_mlp": "enable",
    "context_fmha": "enable",
    "use_paged_context_fmha": "enable",
    "use_fp8_context_fmha": "enable",
    "remove_input_padding": "enable",
    "multiple_profiles": "disable",
    "norm_quant_fusion": "disable",
}


def build_parser() -> argparse.ArgumentParser:
    """Every flag of the real trtllm-build 1.2 (``cli_tables.TRTLLM_BUILD_12``: build.py + plugin.py).

    Defaults the stand-in's own logic reads are the effective ones (kv_cache_type is SUPPRESSed and
    resolved to paged; gemm_plugin None means off)."""
    parser = to_argparse(TRTLLM_BUILD_12, description=__doc__.splitlines()[0])
    parser.set_defaults(kv_cache_type="paged", gemm_plugin="disable")
    return parser


def given_flags(argv: Sequence[str]) -> set[str]:
    """Long flags present on the command line (abbreviations are disabled, so this is exact)."""
    return {token.split("=", 1)[0] for token in argv if token.startswith("--")}


@dataclass
class PluginConfig:
    """The ``build_config.plugin_config`` of the engine config (config key names)."""

    dtype: str
    gpt_attention_plugin: str | None
    gemm_plugin: str | None
    gemm_swiglu_plugin: str | None
    low_latency_gemm_plugin: str | None
    reduce_fusion: bool
    user_buffer: bool
    use_fused_mlp: bool
    context_fmha: bool
    use_paged_context_fmha: bool
    use_fp8_context_fmha: bool
    remove_input_padding: bool
    multiple_profiles: bool
    norm_quant_fusion: bool
    paged_kv_cache: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace, dtype: str, kv_cache_type: str) -> PluginConfig:
        values: dict[str, Any] = {"dtype": dtype, "paged_kv_cache": kv_cache_type == "paged"}
        for flag in DTYPE_PLUGINS:
            value = getattr(args, flag)
            values[flag] = None if value == "disable" else value
        for flag in SWITCHES:
            values[flag] = getattr(args, flag) == "enable"
        return cls(**values)


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: dict[str, Any]
    world_size: int

    @property
    def architecture(self) -> str:
        return str(self.config.get("architecture"))

    @property
    def dtype(self) -> str:
        return str(self.config.get("dtype", "float16"))

    @property
    def tp_size(self) -> int:
        return int(self.config["mapping"].get("tp_size", 1))

    @property
    def quant_algo(self) -> str | None:
        value = (self.config.get("quantization") or {}).get("quant_algo")
        return str(value) if value else None

    @property
    def kv_algo(self) -> str | None:
        value = (self.config.get("quantization") or {}).get("kv_cache_quant_algo")
        return str(value) if value else None


def load_checkpoint(checkpoint_dir: str | None) -> Checkpoint:
    if checkpoint_dir is None:
        raise ToolError("--checkpoint_dir is required to build from a checkpoint", "AssertionError")
    path = Path(checkpoint_dir)
    config = read_json(path / "config.json")
    if not isinstance(config.get("architecture"), str):
        raise ToolError(f"{path / 'config.json'} has no 'architecture'", "KeyError")
    world = world_size_of(config, path / "config.json")
    missing = missing_rank_files(path, world, "safetensors")
    if missing:
        raise ToolError(f"[Errno 2] No such file or directory: '{path / missing[0]}'", "FileNotFoundError")
    return Checkpoint(path, config, world)


def resolve_kv_cache_type(args: argparse.Namespace, flags: set[str]) -> str:
    if args.paged_kv_cache is None:
        return str(args.kv_cache_type)
    warn("--paged_kv_cache is deprecated, please use --kv_cache_type instead.")
    implied = "paged" if args.paged_kv_cache == "enable" else "continuous"
    if "--kv_cache_type" in flags and args.kv_cache_type != implied:
        raise ToolError(
            f"--paged_kv_cache {args.paged_kv_cache} conflicts with --kv_cache_type {args.kv_cache_type}",
            "ValueError",
        )
    return implied


@dataclass(frozen=True)
class Limits:
    max_batch_size: int
    max_input_len: int
    max_seq_len: int
    max_num_tokens: int
    max_beam_width: int


def resolve_limits(args: argparse.Namespace, ckpt: Checkpoint) -> Limits:
    max_seq_len = args.max_seq_len
    if max_seq_len is None:
        max_seq_len = int(ckpt.config.get("max_position_embeddings") or DEFAULT_MAX_SEQ_LEN)
        log(f"max_seq_len is not specified, using deduced value {max_seq_len}")
    max_input_len = args.max_input_len
    if max_input_len > max_seq_len:
        warn(f"max_input_len ({max_input_len}) is larger than max_seq_len ({max_seq_len}), clipping it.")
        max_input_len = max_seq_len
    max_num_tokens = args.max_num_tokens
    if max_num_tokens > args.max_batch_size * max_seq_len:
        limit = args.max_batch_size * max_seq_len
        warn(
            f"max_num_tokens ({max_num_tokens}) shouldn't be greater than max_seq_len * max_batch_size "
            f"({limit}), specifying to max_seq_len * max_batch_size ({limit})."
        )
        max_num_tokens = limit
    return Limits(args.max_batch_size, max_input_len, max_seq_len, max_num_tokens, args.max_beam_width)


def validate_plugins_for_sm(plugins: PluginConfig, sm: int) -> None:
    """``PluginConfig.validate``: plugins the SM 100 kernels lack (``trtllm/sm_rules.py``)."""
    for name in sm_rules.PLUGINS_UNSUPPORTED_ON_SM.get(sm, ()):
        value = getattr(plugins, name, None)
        if value is not None and value is not False:
            raise ToolError(f"{name}={value} is not supported on SM {sm}.", "NotImplementedError")


def check_gemm_swiglu(plugins: PluginConfig, ckpt: Checkpoint, sm: int) -> None:
    if plugins.gemm_swiglu_plugin is None:
        return
    # Its only value is fp8 (PluginConfig: Literal["fp8", None]); the SM rule is validate()'s (SM 100).
    if ckpt.quant_algo != "FP8":
        raise ToolError(
            f"gemm_swiglu_plugin is only supported for FP8 precision (quant_algo={ckpt.quant_algo}, SM {sm})."
        )
    if not plugins.use_fused_mlp:
        warn("gemm_swiglu_plugin has no effect without --use_fused_mlp enable.")


def apply_fusion_overrides(plugins: PluginConfig, ckpt: Checkpoint) -> None:
    if plugins.reduce_fusion and (ckpt.tp_size == 1 or ckpt.architecture not in REDUCE_FUSION_ARCHS):
        warn("Overriding reduce_fusion to False")
        plugins.reduce_fusion = False
    if plugins.user_buffer and not plugins.reduce_fusion:
        warn("Overriding user_buffer to False")
        plugins.user_buffer = False
    if plugins.norm_quant_fusion and (
        plugins.reduce_fusion or ckpt.architecture != "LlamaForCausalLM" or ckpt.quant_algo != "NVFP4"
    ):
        warn("Overriding norm_quant_fusion to False")
        plugins.norm_quant_fusion = False


def _disable_fp8_fmha(plugins: PluginConfig, ckpt: Checkpoint, reason: str) -> None:
    if plugins.use_fp8_context_fmha:
        plugins.use_fp8_context_fmha = False
        warn(reason)
    if plugins.use_paged_context_fmha and ckpt.kv_algo == "FP8":
        plugins.use_paged_context_fmha = False
        warn("FP8 Paged Context FMHA is disabled because FP8 context FMHA is disabled.")


def apply_fmha_rules(plugins: PluginConfig, ckpt: Checkpoint, sm: int) -> None:
    if not plugins.context_fmha:
        plugins.use_fp8_context_fmha = False
        plugins.use_paged_context_fmha = False
        warn("Context FMHA is disabled, FP8 Context FMHA and Paged Context FMHA are disabled.")
    elif ckpt.quant_algo not in FP8_FMHA_ALGOS:
        _disable_fp8_fmha(
            plugins,
            ckpt,
            "FP8 Context FMHA is disabled because it must be used together with the fp8 quantization "
            "workflow.",
        )
    elif sm < 89:
        _disable_fp8_fmha(
            plugins, ckpt, "FP8 context FMHA is disabled because it is only supported on Ada and Hopper Arch."
        )
    elif plugins.use_paged_context_fmha:
        if ckpt.kv_algo != "FP8" and plugins.use_fp8_context_fmha:
            plugins.use_fp8_context_fmha = False
            warn("FP8 Paged Context FMHA is disabled because it must be used together with fp8 KV Cache.")
        elif ckpt.kv_algo == "FP8" and not plugins.use_fp8_context_fmha:
            plugins.use_fp8_context_fmha = True
            warn("FP8 Context FMHA is enabled to support FP8 Paged Context FMHA.")
    if plugins.use_paged_context_fmha and ckpt.kv_algo == "INT8":
        plugins.use_paged_context_fmha = False
        warn("Paged Context FMHA is disabled because it doesn't work with int8 kv cache currently.")


def resolve_plugins(
    args: argparse.Namespace, flags: set[str], ckpt: Checkpoint, sm: int, kv_cache_type: str
) -> PluginConfig:
    plugins = PluginConfig.from_args(args, ckpt.dtype, kv_cache_type)
    validate_plugins_for_sm(plugins, sm)
    check_gemm_swiglu(plugins, ckpt, sm)
    apply_fusion_overrides(plugins, ckpt)
    apply_fmha_rules(plugins, ckpt, sm)
    check_blackwell_quantization(sm, ckpt.quant_algo, ckpt.kv_algo)
    if ckpt.quant_algo == "NVFP4" and "--gemm_plugin" not in flags:
        log(
            "NVFP4 quantization detected, by default enabling NVFP4 GEMM plugin. To use OOTB GEMM, "
            'please explicitly set gemm_plugin to "disable"'
        )
        plugins.gemm_plugin = "nvfp4"
    return plugins


def engine_config(
    ckpt: Checkpoint, limits: Limits, plugins: PluginConfig, kv_cache_type: str, strip_plan: bool
) -> dict[str, Any]:
    """The engine ``config.json``; ``kv_cache_type`` is serialized as the real enum name (``PAGED``)."""
    pretrained = {key: value for key, value in ckpt.config.items() if key != "calibration"}
    fp8 = ckpt.quant_algo == "FP8" or ckpt.kv_algo == "FP8"
    build: dict[str, Any] = {**asdict(limits), "kv_cache_type": kv_cache_type.upper(), "strongly_typed": fp8}
    build["use_strip_plan"] = strip_plan
    build["plugin_config"] = asdict(plugins)
    return {"version": sim_version(), "pretrained_config": pretrained, "build_config": build}


def write_engines(out: Path, ckpt: Checkpoint, gpu: SimGPU, config: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = json.dumps(config, sort_keys=True)
    for rank in range(ckpt.world_size):
        step(f"Building rank {rank}/{ckpt.world_size} on {gpu.name} (SM {gpu.sm})")
        header = {
            "rank": rank,
            "world_size": ckpt.world_size,
            "sm": gpu.sm,
            "compute_capability": gpu.compute_capability,
            "gpu_name": gpu.name,
            "tensorrt_llm_version": config["version"],
            "dtype": ckpt.dtype,
            "quant_algo": ckpt.quant_algo,
            "strip_plan": config["build_config"]["use_strip_plan"],
        }
        write_engine(out / f"rank{rank}.engine", header, seed=f"{fingerprint}/rank{rank}")
        log(f"Serialized the engine to {out / f'rank{rank}.engine'}")
    write_json(out / "config.json", config)


def execute(args: argparse.Namespace, flags: set[str]) -> None:
    gpu = require_gpus()[0]
    ckpt = load_checkpoint(args.checkpoint_dir)
    step(f"Loaded checkpoint {ckpt.path}: {ckpt.architecture} {ckpt.dtype} world_size={ckpt.world_size}")
    check_precision(gpu.sm, ckpt.quant_algo, ckpt.kv_algo, ckpt.dtype)
    limits = resolve_limits(args, ckpt)
    kv_cache_type = resolve_kv_cache_type(args, flags)
    plugins = resolve_plugins(args, flags, ckpt, gpu.sm, kv_cache_type)
    config = engine_config(ckpt, limits, plugins, kv_cache_type, bool(args.strip_plan))
    write_engines(Path(args.output_dir), ckpt, gpu, config)
    log("Total time of building all engines: 00:00:00")


def main(argv: Sequence[str] | None = None) -> int:
    tokens = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(tokens)
    return run_tool(TOOL, lambda: execute(args, given_flags(tokens)))
