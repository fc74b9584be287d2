"""TensorRT-LLM's command lines, per supported release line, transcribed from the upstream parsers.

One source of truth for what each tool accepts. The renderer refuses (drops, with a note) what a
table rejects, admission's CEL enums come from :data:`EVAL_TASKS`, and the stand-ins build their
argparse parsers from these tables (``to_argparse``), so a stand-in accepts exactly what the real
parser accepts and rejects the rest.

Two lines:

* ``1.2`` -- the last line with the TensorRT engine path (``--backend tensorrt``, ``trtllm-build``,
  ``examples/quantization/quantize.py``, ``benchmarks/cpp/prepare_dataset.py``).
* ``1.3`` -- the PyTorch-only line (the engine path removed upstream; see trtllm.md):
  ``trtllm-bench ... prepare-dataset`` replaces the benchmarks/cpp script.

Every table names the file and commit it was read at (through the code index: ``read_file`` of
``NVIDIA/TensorRT-LLM``). The index does not map commits to release tags, so each ``version``
string says how the commit was placed on a line. Facts, written in our own code; no upstream code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from trtllm_operator.trtllm.cli import Command, Opt, Source, choice, opt, switch

Line = Literal["1.2", "1.3"]
LINES: Final[tuple[Line, ...]] = ("1.2", "1.3")

# --- sources -----------------------------------------------------------------------------------------
_PRE_REMOVAL = "1.2 line: main before the engine-path removal"
BUILD_SRC: Final = Source(
    "tensorrt_llm/commands/build.py", "65f1d1536e18aea3380e6e270e00895a709333eb", _PRE_REMOVAL
)
PLUGIN_SRC: Final = Source(
    "tensorrt_llm/plugin/plugin.py", "c20322ffd3dc0740ca530c9fad989b22e64f6e06", _PRE_REMOVAL
)
QUANTIZE_SRC: Final = Source(
    "examples/quantization/quantize.py", "c8c6df08bd0ead54cd47f7973e1e425c28a174cd", _PRE_REMOVAL
)
CONVERT_SRC: Final = Source(
    "examples/models/core/llama/convert_checkpoint.py",
    "368f8f2ade001e8fcb955be39e4812f918d7fb92",
    "1.2 line: imports emit_engine_arch_deprecation (the engine path's last releases); parse_arguments()",
)
PREPARE_CPP_SRC: Final = Source(
    "benchmarks/cpp/prepare_dataset.py",
    "027cd518e3b63809a5c5799187991e7f1164fb12",
    "1.2 line; options as in trtllm.md (the commit is the index's copy of the file)",
)
PREPARE_BENCH_SRC: Final = Source(
    "tensorrt_llm/bench/dataset/prepare_dataset.py + prepare_synthetic_data.py",
    "0c8de69a1ca6213eebb20a51873890ff128666c2",
    "1.3 line (prepare_synthetic_data.py @ f00d21a3c0990c7f1ec1176ca85936b9c5f540cd)",
)
BENCH_SRC: Final = Source(
    "tensorrt_llm/bench/benchmark/throughput.py",
    "56851033051a6f9bd50e22219db64d68722a6f01",
    "1.2 and 1.3 lines",
)
EVAL_12_SRC: Final = Source(
    "tensorrt_llm/commands/eval.py", "01d0cc69952a180c71b7e76f8384cffb0583cf1a", _PRE_REMOVAL
)
EVAL_13_SRC: Final = Source(
    "tensorrt_llm/commands/eval.py",
    "2a9abd9536aa62ad3e4b9314be9286b1b1be523b",
    "1.3 line: the newest stored eval.py (adds mmmu, --disable_kv_cache_reuse); --backend limited to "
    "pytorch per docs/source/legacy/tensorrt-backend-removal.md",
)
SERVE_SRC: Final = Source(
    "tensorrt_llm/commands/serve.py", "00209af149e7774406881a37283dce303571eb11", _PRE_REMOVAL
)
OPENAI_SERVER_SRC: Final = Source(
    "tensorrt_llm/serve/openai_server.py",
    "index id 36409600292",
    "OpenAIServer.__init__: the model name is the MODEL directory's basename (self.model = model_dir.name)",
)

# --- shared vocabularies -----------------------------------------------------------------------------
#: tensorrt_llm/logger.py severity_map keys.
LOG_LEVELS: Final = ("internal_error", "error", "warning", "info", "verbose", "debug", "trace")
ENABLE_DISABLE: Final = ("enable", "disable")
#: plugin.py DefaultPluginDtype (+ None, spelled "disable" on the command line).
PLUGIN_DTYPES: Final = ("auto", "float16", "float32", "bfloat16", "int32", "disable")

# --- trtllm-build (1.2) -------------------------------------------------------------------------------
_BUILD_MAIN: Final = (
    opt("--checkpoint_dir"),
    opt("--model_config"),
    opt("--build_config"),
    opt("--model_cls_file"),
    opt("--model_cls_name"),
    opt("--output_dir", default="engine_outputs"),
    opt("--max_batch_size", kind="int", default=2048),
    opt("--max_input_len", kind="int", default=1024),
    opt("--max_seq_len", "--max_decoder_seq_len", kind="int"),
    opt("--max_beam_width", kind="int", default=1),
    opt("--max_num_tokens", kind="int", default=8192),
    opt("--opt_num_tokens", kind="int"),
    opt("--max_encoder_input_len", kind="int", default=1024),
    opt("--max_prompt_embedding_table_size", "--max_multimodal_len", kind="int", default=0),
    # enum_type(KVCacheType): KVCacheType.from_string of the lower-case names.
    choice("--kv_cache_type", ("continuous", "paged", "disabled")),
    opt("--paged_kv_cache"),  # a str (deprecated spelling of --kv_cache_type paged)
    opt("--input_timing_cache"),
    opt("--output_timing_cache", default="model.cache"),
    choice("--profiling_verbosity", ("layer_names_only", "detailed", "none"), "layer_names_only"),
    switch("--strip_plan"),
    switch("--weight_sparsity"),
    switch("--weight_streaming"),
    switch("--fast_build"),
    opt("--workers", kind="int", default=1),
    choice("--log_level", LOG_LEVELS, "info"),
    switch("--enable_debug_output"),
    opt("--visualize_network"),
    switch("--dry_run"),
    switch("--monitor_memory"),
    choice("--logits_dtype", ("float16", "float32")),
    switch("--gather_context_logits"),
    switch("--gather_generation_logits"),
    switch("--gather_all_token_logits"),
    Opt(("--lora_dir",), nargs="+"),
    choice("--lora_ckpt_source", ("hf", "nemo"), "hf"),
    Opt(("--lora_target_modules",), nargs="+"),  # choices: LoraManager.LORA_MODULE_IDS (not transcribed)
    opt("--max_lora_rank", kind="int", default=64),
    choice(
        "--speculative_decoding_mode",
        ("draft_tokens_external", "lookahead_decoding", "medusa", "explicit_draft_tokens", "eagle"),
    ),
    opt("--max_draft_len", kind="int", default=0),
)
#: plugin.py cli_plugin_args, typed from the PluginConfig fields (add_plugin_argument).
_BUILD_PLUGINS: Final = (
    choice("--bert_attention_plugin", PLUGIN_DTYPES, "auto"),
    choice("--gpt_attention_plugin", PLUGIN_DTYPES, "auto"),
    choice("--gemm_plugin", ("auto", "float16", "float32", "bfloat16", "int32", "fp8", "nvfp4", "disable")),
    choice("--gemm_swiglu_plugin", ("fp8", "disable"), "disable"),
    choice("--fp8_rowwise_gemm_plugin", PLUGIN_DTYPES, "disable"),
    choice("--lora_plugin", PLUGIN_DTYPES, "disable"),
    choice("--dora_plugin", ENABLE_DISABLE, "disable"),
    choice("--moe_plugin", PLUGIN_DTYPES, "auto"),
    choice("--mamba_conv1d_plugin", PLUGIN_DTYPES, "auto"),
    choice("--nccl_plugin", PLUGIN_DTYPES, "auto"),
    choice("--low_latency_gemm_plugin", ("fp8", "disable"), "disable"),
    choice("--low_latency_gemm_swiglu_plugin", ("fp8", "disable"), "disable"),
    choice("--gemm_allreduce_plugin", ("float16", "bfloat16", "disable"), "disable"),
    choice("--context_fmha", ENABLE_DISABLE, "enable"),
    choice("--bert_context_fmha_fp32_acc", ENABLE_DISABLE, "disable"),
    choice("--remove_input_padding", ENABLE_DISABLE, "enable"),
    opt("--tokens_per_block", kind="int", default=32),
    choice("--use_paged_context_fmha", ENABLE_DISABLE, "enable"),
    choice("--use_fp8_context_fmha", ENABLE_DISABLE, "enable"),
    choice("--fuse_fp4_quant", ENABLE_DISABLE, "disable"),
    choice("--multiple_profiles", ENABLE_DISABLE, "disable"),
    choice("--paged_state", ENABLE_DISABLE, "enable"),
    choice("--streamingllm", ENABLE_DISABLE, "disable"),
    choice("--norm_quant_fusion", ENABLE_DISABLE, "disable"),
    choice("--reduce_fusion", ENABLE_DISABLE, "disable"),
    choice("--user_buffer", ENABLE_DISABLE, "disable"),
    choice("--use_fused_mlp", ENABLE_DISABLE, "enable"),
    choice("--pp_reduce_scatter", ENABLE_DISABLE, "disable"),
)
TRTLLM_BUILD_12: Final = Command("trtllm-build", BUILD_SRC, _BUILD_MAIN + _BUILD_PLUGINS)

# --- quantize.py (1.2) --------------------------------------------------------------------------------
QFORMATS_12: Final = (
    "nvfp4",
    "fp8",
    "fp8_pc_pt",
    "int8_sq",
    "int4_awq",
    "w4a8_awq",
    "int8_wo",
    "int4_wo",
    "full_prec",
)
QUANTIZE_12: Final = Command(
    "quantize.py",
    QUANTIZE_SRC,
    (
        opt("--model_dir"),
        opt("--nemo_ckpt_path"),
        choice("--decoder_type", ("gptnext", "llama"), "gptnext"),
        choice("--device", ("cuda", "cpu"), "cuda"),
        choice("--device_map", ("auto", "sequential", "cpu", "gpu"), "auto"),
        opt("--calib_dataset", default="cnn_dailymail"),
        opt("--calib_tp_size", kind="int", default=1),
        opt("--calib_pp_size", kind="int", default=1),
        choice("--dtype", ("auto", "float16", "bfloat16", "float32"), "auto"),
        choice("--qformat", QFORMATS_12, "full_prec"),
        opt("--seed", kind="int", default=1234),
        opt("--tokenizer_max_seq_length", kind="int", default=2048),
        opt("--batch_size", kind="int", default=1),
        opt("--calib_size", kind="int", default=512),
        opt("--calib_max_seq_length", kind="int", default=512),
        opt("--output_dir", default="exported_model"),
        opt("--tp_size", kind="int", default=1),
        opt("--pp_size", kind="int", default=1),
        opt("--cp_size", kind="int", default=1),
        opt("--awq_block_size", kind="int", default=128),
        choice("--kv_cache_dtype", ("int8", "fp8")),
        switch("--quantize_lm_head"),
        opt("--num_medusa_heads", kind="int", default=4),
        opt("--num_medusa_layers", kind="int", default=1),
        opt("--max_draft_len", kind="int", default=63),
        opt("--medusa_hidden_act", default="silu"),
        opt("--medusa_model_dir"),
        switch("--quant_medusa_head"),
        opt("--autoq_format"),
        opt("--auto_quantize_bits", kind="float"),
    ),
)

# --- convert_checkpoint.py (1.2) ----------------------------------------------------------------------
#: Which examples/models/core/<family>/convert_checkpoint.py the renderer can emit, and where each parser
#: was read. Mixtral has no script of its own: its README runs ``../llama/convert_checkpoint.py``
#: (MIXTRAL_README_SRC), so the renderer sends MixtralForCausalLM to llama's.
CONVERT_QWEN_SRC: Final = Source(
    "examples/models/core/qwen/convert_checkpoint.py",
    "0df9aaf38338424867a1ca1faa71173501205001",
    "1.2 line UNVERIFIED: the index holds 8 undated versions and none imports emit_engine_arch_deprecation; "
    "this one has int8_gptq (W8A16_GPTQ), the copy @ 65b31db1b401 lacks it; the flags are otherwise the same",
)
CONVERT_GEMMA_SRC: Final = Source(
    "examples/models/core/gemma/convert_checkpoint.py",
    "310decb9aa6ed4a55101e6625b095559ee77a66d",
    "1.2 line: imports emit_engine_arch_deprecation (the engine path's last releases); parse_arguments()",
)
CONVERT_PHI_SRC: Final = Source(
    "examples/models/core/phi/convert_checkpoint.py",
    "10c1d594d3078c5e9f425373bc15763e87084a07",
    "1.2 line: imports emit_engine_arch_deprecation (the engine path's last releases); parse_arguments()",
)
MIXTRAL_README_SRC: Final = Source(
    "examples/models/core/mixtral/README.md",
    "10c1d594d3078c5e9f425373bc15763e87084a07",
    "no examples/models/core/mixtral/convert_checkpoint.py in the index; the README runs ../llama/'s",
)

_CONVERT_DTYPE: Final = choice("--dtype", ("auto", "float16", "bfloat16", "float32"), "auto")


def _weight_only_precision(*choices: str) -> Opt:
    """``nargs='?'``, ``const='int8'``, default int8 (llama, qwen, phi): a bare flag means int8."""
    return Opt(
        ("--weight_only_precision",), kind="choice", choices=choices, default="int8", nargs="?", const="int8"
    )


#: The arguments llama, qwen and phi share (same names, types and defaults in all three).
_CONVERT_MOE: Final = (
    opt("--moe_tp_size", kind="int", default=-1),
    opt("--moe_ep_size", kind="int", default=-1),
)
_CONVERT_OUT: Final = (
    opt("--output_dir", default="tllm_checkpoint"),
    opt("--workers", kind="int", default=1),
)
_CONVERT_TP_PP: Final = (opt("--tp_size", kind="int", default=1), opt("--pp_size", kind="int", default=1))
#: SmoothQuant / KV / embedding arguments llama and qwen share.
_CONVERT_SQ: Final = (
    opt("--smoothquant", "-sq", kind="float"),
    switch("--per_channel"),
    switch("--per_token"),
    switch("--int8_kv_cache"),
)
_CONVERT_EMBEDDING: Final = (
    switch("--use_parallel_embedding"),
    choice("--embedding_sharding_dim", ("0", "1"), "0"),  # type=int, choices [0, 1]
)

#: llama's parse_arguments() (also Mistral's and, per its README, Mixtral's).
CONVERT_12: Final = Command(
    "convert_checkpoint.py",
    CONVERT_SRC,
    (
        opt("--model_dir"),
        opt("--meta_ckpt_dir"),
        *_CONVERT_TP_PP,
        opt("--moe_tp_size", kind="int", default=-1),
        opt("--cp_size", kind="int", default=1),
        opt("--moe_ep_size", kind="int", default=-1),
        _CONVERT_DTYPE,
        opt("--vocab_size", kind="int", default=32000),
        opt("--n_positions", kind="int", default=2048),
        opt("--n_layer", kind="int", default=32),
        opt("--n_head", kind="int", default=32),
        opt("--n_kv_head", kind="int"),
        opt("--n_embd", kind="int", default=4096),
        opt("--inter_size", kind="int", default=11008),
        opt("--multiple_of", kind="int"),
        opt("--ffn_dim_multiplier", kind="float"),
        opt("--rms_norm_eps", kind="float", default=1e-06),
        switch("--use_weight_only"),
        switch("--disable_weight_only_quant_plugin"),
        _weight_only_precision("int8", "int4", "int8_gptq", "int4_gptq", "int4_awq"),
        opt("--calib_dataset", default="ccdv/cnn_dailymail"),
        opt("--calib_size", kind="int", default=512),
        opt("--calib_max_seq_length", kind="int", default=512),
        opt("--smoothquant", "-sq", kind="float"),
        switch("--use_qserve"),
        switch("--per_channel"),
        switch("--per_token"),
        switch("--int8_kv_cache"),
        switch("--fp8_kv_cache"),
        opt("--quant_ckpt_path"),
        switch("--use_fp8"),
        switch("--use_nvfp4"),
        switch("--use_fp8_rowwise"),
        switch("--use_meta_fp8_rowwise_recipe"),
        switch("--per_group"),
        switch("--load_by_shard"),
        opt("--hidden_act", default="silu"),
        opt("--rotary_base", kind="float", default=10000.0),
        opt("--group_size", kind="int", default=128),
        switch("--load_model_on_cpu"),
        *_CONVERT_EMBEDDING,
        *_CONVERT_OUT,
        opt("--moe_num_experts", kind="int", default=0),
        opt("--moe_top_k", kind="int", default=0),
        opt("--moe_renorm_mode", kind="int"),  # default MoeConfig.ExpertScaleNormalizationMode.RENORMALIZE
        switch("--save_config_only"),
        switch("--remove_duplicated_kv_heads"),
        opt("--log_level", default="info"),  # a free str here, unlike trtllm-build's choice
    ),
)
#: qwen's parse_arguments(): --model_dir is required here (default None elsewhere).
CONVERT_QWEN_12: Final = Command(
    "convert_checkpoint.py",
    CONVERT_QWEN_SRC,
    (
        opt("--model_dir", required=True),
        *_CONVERT_TP_PP,
        opt("--cp_size", kind="int", default=1),
        _CONVERT_DTYPE,
        switch("--use_weight_only"),
        switch("--disable_weight_only_quant_plugin"),
        _weight_only_precision("int8", "int4", "int4_gptq", "int8_gptq"),
        opt("--calib_dataset", default="ccdv/cnn_dailymail"),
        *_CONVERT_SQ,
        switch("--per_group"),
        opt("--group_size", kind="int", default=128),
        switch("--load_model_on_cpu"),
        *_CONVERT_EMBEDDING,
        *_CONVERT_OUT,
        *_CONVERT_MOE,
    ),
)
#: gemma's parse_arguments(): its own spellings. No --tp_size/--pp_size (--world-size is the TP size; no
#: pipeline parallelism), dashed names with underscore aliases, --model-dir and --output-model-dir
#: required, and --ckpt-type (jax/keras/torch/hf) has no default: main() indexes CKPT_PARSER with it.
CONVERT_GEMMA_12: Final = Command(
    "convert_checkpoint.py",
    CONVERT_GEMMA_SRC,
    (
        choice("--ckpt-type", ("jax", "keras", "torch", "hf")),  # type=CheckpointType, choices its members
        Opt(("--model-dir", "--model_dir"), required=True),  # type=Path
        Opt(("--output-model-dir", "--output_dir"), required=True),  # type=Path
        opt("--world-size", kind="int", default=1),
        switch("--use_weight_only"),
        choice(
            "--weight_only_precision",
            ("int8", "int4", "w4a8_awq", "w4a16_awq"),
            None,
            "--use-weight-only-with-precision",
        ),  # one value, no default (asserted non-None when --use_weight_only)
        switch("--use-int8-weight-only-embedding"),
        _CONVERT_DTYPE,
        switch("--enable_fp8"),
        switch("--fp8_kv_cache"),
        opt("--quant_ckpt_path"),
        opt("--calib_dataset", default="ccdv/cnn_dailymail"),
        switch("--use_smooth_quant"),
        switch("--int8_kv_cache", "--calibrate_kv_cache", "-kv"),
        switch("--per_channel"),
        switch("--per_token"),
        opt("--smoothquant", "--use_smooth_quant_plugin", "-sq", kind="float"),
        opt("--tokenizer_dir"),
        switch("--load_model_on_cpu"),
    ),
)
#: phi's parse_arguments() (main() then asserts pp_size == 1: no pipeline parallelism).
CONVERT_PHI_12: Final = Command(
    "convert_checkpoint.py",
    CONVERT_PHI_SRC,
    (
        opt("--model_dir"),
        *_CONVERT_TP_PP,
        _CONVERT_DTYPE,
        switch("--use_weight_only"),
        _weight_only_precision("int8", "int4"),
        *_CONVERT_MOE,
        *_CONVERT_OUT,
    ),
)
#: examples/models/core/<family>/convert_checkpoint.py -> its parser, for every family the renderer emits.
CONVERT_12_BY_FAMILY: Final[dict[str, Command]] = {
    "llama": CONVERT_12,
    "qwen": CONVERT_QWEN_12,
    "gemma": CONVERT_GEMMA_12,
    "phi": CONVERT_PHI_12,
}
#: Families without a pipeline-parallel convert path (gemma: no --pp_size; phi: asserts pp_size == 1).
CONVERT_NO_PP: Final = frozenset({"gemma", "phi"})

#: Hugging Face architecture -> examples/models/core/<family>/convert_checkpoint.py (each family's parser
#: in ``cli_tables.CONVERT_12_BY_FAMILY``). Mixtral has no script of its own: its README runs llama's.
CONVERT_FAMILY: Final[dict[str, str]] = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma",
    "MixtralForCausalLM": "llama",
    "Phi3ForCausalLM": "phi",
}
#: Architectures whose convert_checkpoint.py has no pipeline parallelism (refused at admission).
CONVERT_NO_PP_ARCHITECTURES: Final = tuple(sorted(a for a, f in CONVERT_FAMILY.items() if f in CONVERT_NO_PP))


def convert_family(script: str) -> str | None:
    """The family of a ``…/models/core/<family>/convert_checkpoint.py`` path (None for any other path)."""
    parts = script.split("/")
    if len(parts) >= 3 and parts[-1] == "convert_checkpoint.py" and parts[-3] == "core":
        return parts[-2]
    return None


# --- dataset preparation ------------------------------------------------------------------------------
_NORM_DIST_OPTS: Final = tuple(
    opt(f"--{name}", kind="int", required=True)
    for name in ("num-requests", "input-mean", "input-stdev", "output-mean", "output-stdev")
)
_UNIF_DIST_OPTS: Final = tuple(
    opt(f"--{name}", kind="int", required=True)
    for name in ("num-requests", "input-min", "input-max", "output-min", "output-max")
)


def _dataset_subcommands(prog: str, src: Source) -> tuple[Command, ...]:
    return (
        Command(f"{prog} token-norm-dist", src, _NORM_DIST_OPTS, style="click"),
        Command(f"{prog} token-unif-dist", src, _UNIF_DIST_OPTS, style="click"),
    )


PREPARE_DATASET_12: Final = Command(
    "prepare_dataset.py",
    PREPARE_CPP_SRC,
    (
        opt("--tokenizer", required=True),
        opt("--output", default="preprocessed_dataset.json"),
        switch("--stdout"),
        opt("--random-seed", kind="int", default=420),
        opt("--task-id", kind="int", default=-1),
        Opt(("--rand-task-id",), kind="int", nargs=2),
        opt("--lora-dir"),
        choice("--log-level", ("info", "debug"), "info"),
    ),
    subcommands=_dataset_subcommands("prepare_dataset.py", PREPARE_CPP_SRC),
    style="click",
)
_PREPARE_BENCH: Final = Command(
    "trtllm-bench prepare-dataset",
    PREPARE_BENCH_SRC,
    (
        opt("--output", default="preprocessed_dataset.json"),
        opt("--random-seed", kind="int", default=420),
        opt("--task-id", kind="int", default=-1),
        Opt(("--rand-task-id",), kind="int", nargs=2),
        opt("--lora-dir"),
        choice("--log-level", ("info", "debug"), "info"),
        switch("--trust-remote-code"),
    ),
    subcommands=(
        *_dataset_subcommands("trtllm-bench prepare-dataset", PREPARE_BENCH_SRC),
        Command("trtllm-bench prepare-dataset real-dataset", PREPARE_BENCH_SRC, (), style="click"),
    ),
    style="click",
)

# --- trtllm-bench ------------------------------------------------------------------------------------
_THROUGHPUT_OPTS: Final = (
    opt("--engine_dir"),
    choice("--backend", ("pytorch", "tensorrt", "_autodeploy"), "pytorch"),
    opt("--custom_module_dirs"),
    opt("--extra_llm_api_options"),
    opt("--sampler_options"),
    opt("--max_batch_size", kind="int"),
    opt("--max_num_tokens", kind="int"),
    opt("--max_seq_len", kind="int"),
    opt("--beam_width", kind="int", default=1),
    opt("--kv_cache_free_gpu_mem_fraction", kind="float", default=0.9),
    opt("--dataset"),
    switch("--no_skip_tokenizer_init"),
    opt("--eos_id", kind="int", default=-1),
    choice("--modality", ("image", "video")),
    choice("--image_data_format", ("pt", "pil"), "pt"),
    choice("--data_device", ("cuda", "cpu"), "cuda"),
    opt("--max_input_len", kind="int", default=4096),
    opt("--num_requests", kind="int", default=0),
    opt("--warmup", kind="int", default=2),
    opt("--target_input_len", kind="int"),
    opt("--target_output_len", kind="int"),
    opt("--tp", kind="int", default=1),
    opt("--pp", kind="int", default=1),
    opt("--ep", kind="int"),
    opt("--cluster_size", kind="int"),
    opt("--concurrency", kind="int", default=-1),
    switch("--streaming"),
    opt("--report_json"),
    opt("--iteration_log"),
    opt("--output_json"),
    opt("--request_json"),
    switch("--enable_chunked_context", "--disable_chunked_context"),
    choice("--scheduler_policy", ("guaranteed_no_evict", "max_utilization"), "guaranteed_no_evict"),
)
#: Global options of tensorrt_llm/commands/bench.py (as the stand-in had them; bench.py not re-read).
_BENCH_GLOBAL: Final = (
    opt("--model", "-m", required=True),
    opt("--model_path"),
    opt("--workspace", "-w", default="/tmp"),
    choice("--log_level", LOG_LEVELS, "info"),
)


def _bench(line: Line) -> Command:
    throughput = Command("trtllm-bench throughput", BENCH_SRC, _THROUGHPUT_OPTS, style="click")
    if line == "1.3":
        opts = tuple(
            o if o.name != "--backend" else choice("--backend", ("pytorch", "_autodeploy"), "pytorch")
            for o in _THROUGHPUT_OPTS
        )
        throughput = Command("trtllm-bench throughput", BENCH_SRC, opts, style="click")
        subs: tuple[Command, ...] = (throughput, _PREPARE_BENCH)
    else:
        subs = (throughput,)
    return Command("trtllm-bench", BENCH_SRC, _BENCH_GLOBAL, subcommands=subs, style="click")


# --- trtllm-eval -------------------------------------------------------------------------------------
#: Tasks registered with main.add_command in eval.py at each line (no humaneval at any version).
EVAL_TASKS: Final[dict[Line, tuple[str, ...]]] = {
    "1.2": ("cnn_dailymail", "mmlu", "gsm8k", "gpqa_diamond", "gpqa_main", "gpqa_extended", "json_mode_eval"),
    "1.3": (
        "cnn_dailymail",
        "mmlu",
        "gsm8k",
        "gpqa_diamond",
        "gpqa_main",
        "gpqa_extended",
        "json_mode_eval",
        "mmmu",
    ),
}
#: The task classes' ``command`` options. The index holds many versions of each file and does not date
#: them, so each line takes the version whose task list matches that line's eval.py: for 1.2 an
#: lm_eval.py without the MMMU class (eval.py @ 01d0cc69 registers no mmmu), for 1.3 one with MMMU but
#: without the later MMMUPro (eval.py @ 2a9abd95 registers mmmu, not mmmu_pro). A version the index
#: names by id only is cited by that id (read_file id=...).
EVAL_TASK_SRC: Final[dict[Line, dict[str, Source]]] = {
    "1.2": {
        "cnn_dailymail": Source(
            "tensorrt_llm/evaluate/cnn_dailymail.py",
            "index id 252021908",
            "the newest stored version (help texts, --apply_chat_template, no --check_accuracy); both lines",
        ),
        "mmlu": Source(
            "tensorrt_llm/evaluate/mmlu.py",
            "0c8de69a1ca6213eebb20a51873890ff128666c2",
            "the newest stored version (--chat_template_kwargs); both lines (UNVERIFIED for 1.2)",
        ),
        "lm_eval": Source(
            "tensorrt_llm/evaluate/lm_eval.py",
            "index id 2510327421",
            "1.2 line: gsm8k and gpqa_* end the file (no MMMU class), as eval.py @ 01d0cc69 imports",
        ),
        "json_mode_eval": Source(
            "tensorrt_llm/evaluate/json_mode_eval.py",
            "index id 31948579",
            "before --output_dir (which came with lm_eval.py's MMMUPro-era options); both lines",
        ),
    },
    "1.3": {
        "lm_eval": Source(
            "tensorrt_llm/evaluate/lm_eval.py",
            "00dc3b46824cce5a8b5fa166012a9dd45e027527",
            "1.3 line: has MMMU, no MMMUPro, as eval.py @ 2a9abd95 imports",
        ),
    },
}
EVAL_TASK_SRC["1.3"] = {**EVAL_TASK_SRC["1.2"], **EVAL_TASK_SRC["1.3"]}


def _task_opts(*, max_in: int, max_out: int, extra: tuple[Opt, ...] = ()) -> tuple[Opt, ...]:
    """dataset_path / num_samples / random_seed first, the task's own options, then the two lengths."""
    return (
        opt("--dataset_path"),
        opt("--num_samples", kind="int"),
        opt("--random_seed", kind="int", default=0),
        *extra,
        opt("--max_input_length", kind="int", default=max_in),
        opt("--max_output_length", kind="int", default=max_out),
    )


_CHAT: Final = switch("--apply_chat_template")
_SYSTEM: Final = opt("--system_prompt")
_CHAT_KWARGS: Final = opt("--chat_template_kwargs")  # a JSON string (json.loads callback)
_CHECK: Final = (switch("--check_accuracy"),)


def _task_table(line: Line) -> dict[str, tuple[Opt, ...]]:
    """Each task's options at ``line`` (types, defaults as the click decorators have them)."""
    new = line == "1.3"
    kwargs = (_CHAT_KWARGS,) if new else ()
    thinking = (switch("--enable_thinking"),) if new else ()
    gpqa = _task_opts(max_in=4096, max_out=32768, extra=(_CHAT, *kwargs, _SYSTEM, *thinking))
    tasks = {
        "cnn_dailymail": _task_opts(max_in=924, max_out=100, extra=(opt("--rouge_path"), _CHAT, _SYSTEM)),
        "mmlu": (
            *_task_opts(
                max_in=4094,
                max_out=2,
                extra=(opt("--num_fewshot", kind="int", default=5), _CHAT, _CHAT_KWARGS, _SYSTEM),
            ),
            *_CHECK,
            opt("--accuracy_threshold", kind="float", default=30.0),
        ),
        "gsm8k": _task_opts(
            max_in=4096,
            max_out=256,
            extra=(_CHAT, *kwargs, switch("--fewshot_as_multiturn"), _SYSTEM),
        ),
        "gpqa_diamond": gpqa,
        "gpqa_main": gpqa,
        "gpqa_extended": gpqa,
        "json_mode_eval": _task_opts(max_in=1024, max_out=512, extra=(_SYSTEM,)),
    }
    if new:
        tasks["mmmu"] = _task_opts(max_in=8192, max_out=512, extra=(_CHAT_KWARGS, _SYSTEM))
    return tasks


def _task_source(line: Line, task: str) -> Source:
    srcs = EVAL_TASK_SRC[line]
    return srcs.get(task, srcs["lm_eval"])


_EVAL_GLOBAL: Final = (
    opt("--model", required=True),
    opt("--tokenizer"),
    choice("--log_level", LOG_LEVELS, "info"),
    opt("--max_beam_width", kind="int", default=1),
    opt("--max_batch_size", kind="int", default=2048),
    opt("--max_num_tokens", kind="int", default=8192),
    opt("--max_seq_len", kind="int"),
    opt("--tp_size", kind="int", default=1),
    opt("--pp_size", kind="int", default=1),
    opt("--ep_size", kind="int"),
    opt("--gpus_per_node", kind="int"),
    opt("--kv_cache_free_gpu_memory_fraction", kind="float", default=0.9),
    switch("--trust_remote_code"),
    opt("--extra_llm_api_options"),
)


def _eval(line: Line) -> Command:
    src = EVAL_12_SRC if line == "1.2" else EVAL_13_SRC
    backends = ("pytorch", "tensorrt") if line == "1.2" else ("pytorch",)
    extra = () if line == "1.2" else (switch("--disable_kv_cache_reuse"),)
    table = _task_table(line)
    tasks = tuple(
        Command(f"trtllm-eval {t}", _task_source(line, t), table[t], style="click") for t in EVAL_TASKS[line]
    )
    return Command(
        "trtllm-eval",
        src,
        (*_EVAL_GLOBAL, choice("--backend", backends, "pytorch"), *extra),
        subcommands=tasks,
        style="click",
    )


# --- trtllm-serve ------------------------------------------------------------------------------------
def _serve(line: Line) -> Command:
    backends = ("pytorch", "tensorrt", "_autodeploy", "trt") if line == "1.2" else ("pytorch", "_autodeploy")
    return Command(
        "trtllm-serve",
        SERVE_SRC,
        (
            opt("--tokenizer"),
            opt("--custom_tokenizer"),
            opt("--host", default="localhost"),
            opt("--port", kind="int", default=8000),
            choice("--backend", backends, "pytorch"),
            opt("--custom_module_dirs"),
            choice("--log_level", LOG_LEVELS, "info"),
            opt("--max_beam_width", kind="int", default=1),
            opt("--max_batch_size", kind="int", default=2048),
            opt("--max_num_tokens", kind="int", default=8192),
            opt("--max_seq_len", kind="int"),
            opt("--tensor_parallel_size", "--tp_size", kind="int", default=1),
            opt("--pipeline_parallel_size", "--pp_size", kind="int", default=1),
            opt("--context_parallel_size", "--cp_size", kind="int", default=1),
            opt("--moe_expert_parallel_size", "--ep_size", kind="int"),
            opt("--moe_cluster_parallel_size", "--cluster_size", kind="int"),
            opt("--gpus_per_node", kind="int"),
            opt(
                "--free_gpu_memory_fraction", "--kv_cache_free_gpu_memory_fraction", kind="float", default=0.9
            ),
            opt("--num_postprocess_workers", kind="int", default=0),
            switch("--trust_remote_code"),
            opt("--revision"),
            opt("--config", "--extra_llm_api_options"),
            opt("--reasoning_parser"),
            opt("--tool_parser"),
            opt("--metadata_server_config_file"),
            opt("--server_role"),
            switch("--fail_fast_on_attention_window_too_large"),
            opt("--otlp_traces_endpoint"),
            opt("--disagg_cluster_uri"),
            switch("--enable_chunked_prefill"),
            opt("--media_io_kwargs"),
            opt("--chat_template"),
        ),
        positionals=("model",),
        style="click",
        notes=(
            "No served-model-name option: the OpenAI model name is the MODEL directory's basename "
            f"({OPENAI_SERVER_SRC.cite()}).",
        ),
    )


# --- per line ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tables:
    """Every tool of one release line (None: the tool does not exist there)."""

    line: Line
    trtllm_build: Command | None
    quantize: Command | None
    convert_checkpoint: Command | None  # llama's; every family's in convert_checkpoint_by_family
    prepare_dataset_script: Command | None
    trtllm_bench: Command
    trtllm_eval: Command
    trtllm_serve: Command
    convert_checkpoint_by_family: dict[str, Command] = field(default_factory=dict)

    @property
    def eval_tasks(self) -> tuple[str, ...]:
        return EVAL_TASKS[self.line]


TABLES: Final[dict[Line, Tables]] = {
    "1.2": Tables(
        "1.2",
        TRTLLM_BUILD_12,
        QUANTIZE_12,
        CONVERT_12,
        PREPARE_DATASET_12,
        _bench("1.2"),
        _eval("1.2"),
        _serve("1.2"),
        CONVERT_12_BY_FAMILY,
    ),
    "1.3": Tables("1.3", None, None, None, None, _bench("1.3"), _eval("1.3"), _serve("1.3")),
}

_TAG_RE: Final = re.compile(r":v?(\d+)\.(\d+)\.(\d+)((?:rc|\.post|\.dev|a|b)\d+)?(?:[-_.][A-Za-z0-9._-]*)?$")


def version_from_image(image: str) -> str | None:
    """TensorRT-LLM version from an image tag (``…/release:1.2.0rc3`` → ``1.2.0rc3``), or None."""
    ref = image.split("@", 1)[0]
    if "/" in ref.rsplit(":", 1)[-1]:
        return None  # a registry port, not a tag
    match = _TAG_RE.search(ref)
    if match is None:
        return None
    major, minor, patch, pre = match.groups()
    return f"{major}.{minor}.{patch}{pre or ''}"


def line_of(version: str | None) -> Line | None:
    """The release line a version belongs to (≤ 1.2 → "1.2", ≥ 1.3 → "1.3"), None when unknown."""
    if not version:
        return None
    match = re.match(r"^(\d+)\.(\d+)", version)
    if match is None:
        return None
    major, minor = int(match.group(1)), int(match.group(2))
    return "1.2" if (major, minor) <= (1, 2) else "1.3"


def tables_for(backend: str, image: str) -> Tables:
    """The tables for an engine: the image tag's line, else the backend's (tensorrt needs ≤ 1.2)."""
    line = line_of(version_from_image(image))
    if line is None or backend == "tensorrt":
        line = "1.2" if backend == "tensorrt" else (line or "1.3")
    return TABLES[line]
