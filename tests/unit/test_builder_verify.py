"""Verification of built artifacts: every broken config variant is caught with a message naming it."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from trtllm_operator.api import reasons
from trtllm_operator.builder.verify import EXPECTED_QUANT_ALGO, verify_dir, verify_pytorch, verify_tensorrt

from .builder_support import make_plan

PLAN = make_plan()  # tensorrt, fp8 weights, fp8 KV cache, TP 2


def engine_config() -> dict[str, Any]:
    """An engine config.json as trtllm-build writes it for PLAN."""
    return {
        "version": "1.2.0",
        "pretrained_config": {
            "architecture": "LlamaForCausalLM",
            "dtype": "bfloat16",
            "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"},
            "mapping": {"world_size": 2, "tp_size": 2, "pp_size": 1},
        },
        "build_config": {
            "max_batch_size": 64,
            "kv_cache_type": "PAGED",
            "plugin_config": {
                "gpt_attention_plugin": "auto",
                "remove_input_padding": True,
                "paged_kv_cache": True,
            },
        },
    }


FILES = {"config.json": 900, "rank0.engine": 4096, "rank1.engine": 4096}


def test_a_good_engine_passes_and_facts_are_recorded() -> None:
    result = verify_tensorrt(PLAN, engine_config(), FILES)
    assert result.ok, result.findings
    assert result.facts == {"trtllm_version": "1.2.0", "dtype": "bfloat16", "inflight_batching": True}


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            node = node[part]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value

    return mutate


_DELETE = object()


@pytest.mark.parametrize(
    ("mutate", "reason", "message"),
    [
        (
            _set("pretrained_config.quantization.quant_algo", "W8A16"),
            reasons.VERIFICATION_FAILED,
            'config.json: pretrained_config.quantization.quant_algo is "W8A16", expected "FP8" '
            "(precision fp8)",
        ),
        (
            _set("pretrained_config.quantization.quant_algo", _DELETE),
            reasons.VERIFICATION_FAILED,
            'config.json: pretrained_config.quantization.quant_algo is missing, expected "FP8" '
            "(precision fp8)",
        ),
        (
            _set("pretrained_config.quantization.kv_cache_quant_algo", None),
            reasons.VERIFICATION_FAILED,
            'config.json: pretrained_config.quantization.kv_cache_quant_algo is null, expected "FP8" '
            "(kvCacheDtype fp8)",
        ),
        (
            _set("pretrained_config.mapping.tp_size", 1),
            reasons.VERIFICATION_FAILED,
            "config.json: pretrained_config.mapping.tp_size is 1, expected 2 (tensor 2 x pipeline 1)",
        ),
        (
            _set("pretrained_config.mapping.pp_size", 2),
            reasons.VERIFICATION_FAILED,
            "config.json: pretrained_config.mapping.pp_size is 2, expected 1 (tensor 2 x pipeline 1)",
        ),
        (
            _set("pretrained_config.mapping.world_size", 4),
            reasons.VERIFICATION_FAILED,
            "config.json: pretrained_config.mapping.world_size is 4, expected 2 (tensor 2 x pipeline 1)",
        ),
        (
            _set("build_config.plugin_config.gpt_attention_plugin", None),
            reasons.INFLIGHT_BATCHING_DISABLED,
            "config.json: build_config.plugin_config.gpt_attention_plugin is null, expected enabled",
        ),
        (
            _set("build_config.plugin_config.gpt_attention_plugin", "disable"),
            reasons.INFLIGHT_BATCHING_DISABLED,
            'config.json: build_config.plugin_config.gpt_attention_plugin is "disable", expected enabled',
        ),
        (
            _set("build_config.plugin_config.remove_input_padding", False),
            reasons.INFLIGHT_BATCHING_DISABLED,
            "config.json: build_config.plugin_config.remove_input_padding is false, expected true",
        ),
        (
            _set("build_config.kv_cache_type", "CONTINUOUS"),
            reasons.INFLIGHT_BATCHING_DISABLED,
            'config.json: build_config.kv_cache_type is "CONTINUOUS", expected "paged"',
        ),
    ],
)
def test_each_broken_engine_config_is_caught(
    mutate: Callable[[dict[str, Any]], None], reason: str, message: str
) -> None:
    config = engine_config()
    mutate(config)
    result = verify_tensorrt(PLAN, config, FILES)

    assert not result.ok
    [finding] = result.findings
    assert finding.reason == reason
    assert finding.message.startswith(message), finding.message


def test_paged_kv_cache_flag_is_read_when_kv_cache_type_is_absent() -> None:
    config = engine_config()
    del config["build_config"]["kv_cache_type"]
    assert verify_tensorrt(PLAN, config, FILES).ok
    config["build_config"]["plugin_config"]["paged_kv_cache"] = False
    [finding] = verify_tensorrt(PLAN, config, FILES).findings
    assert finding.message.startswith(
        "config.json: build_config.plugin_config.paged_kv_cache is false, expected true"
    )
    assert "acceptInflightBatchingDisabled" in finding.message


def test_disabled_inflight_batching_can_be_accepted_as_a_warning() -> None:
    config = engine_config()
    config["build_config"]["plugin_config"]["remove_input_padding"] = False
    accepting = PLAN.model_copy(update={"accept_inflight_batching_disabled": True})
    result = verify_tensorrt(accepting, config, FILES)

    assert result.ok
    assert result.warnings == [
        "in-flight batching disabled (accepted): config.json: "
        "build_config.plugin_config.remove_input_padding is false, expected true"
    ]
    assert result.facts["inflight_batching"] is False


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"config.json": 900, "rank0.engine": 4096},
            "rank1.engine is missing (world size 2 needs one engine per rank)",
        ),
        ({"config.json": 900, "rank0.engine": 4096, "rank1.engine": 0}, "rank1.engine is empty (0 bytes)"),
    ],
)
def test_every_rank_engine_must_exist_and_be_non_empty(files: dict[str, int], message: str) -> None:
    [finding] = verify_tensorrt(PLAN, engine_config(), files).findings
    assert finding.message == message


def test_unquantized_engines_check_the_dtype() -> None:
    bf16 = PLAN.model_copy(update={"precision": "bf16", "kv_cache_dtype": "auto"})
    config = engine_config()
    config["pretrained_config"]["quantization"] = {"quant_algo": None, "kv_cache_quant_algo": None}
    assert verify_tensorrt(bf16, config, FILES).ok
    config["pretrained_config"]["dtype"] = "float16"
    [finding] = verify_tensorrt(bf16, config, FILES).findings
    assert (
        finding.message
        == 'config.json: pretrained_config.dtype is "float16", expected "bfloat16" (precision bf16)'
    )


def test_every_precision_has_an_expected_quant_algo() -> None:
    assert EXPECTED_QUANT_ALGO == {
        "fp8": "FP8",
        "int8_sq": "W8A8_SQ_PER_CHANNEL",
        "int4_awq": "W4A16_AWQ",
        "w4a8_awq": "W4A8_AWQ",
        "int8_wo": "W8A16",
        "int4_wo": "W4A16",
        "nvfp4": "NVFP4",
        "fp16": None,
        "bf16": None,
    }


# --- pytorch backend -------------------------------------------------------------------------------

TORCH_PLAN = PLAN.model_copy(update={"backend": "pytorch", "tensor": 1})
HF_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8"},
}
HF_QUANT: dict[str, Any] = {
    "producer": {"name": "modelopt", "version": "0.37.0"},
    "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]},
}
HF_FILES = {"config.json": 500, "hf_quant_config.json": 200, "model.safetensors": 4096}


def test_a_good_modelopt_checkpoint_passes() -> None:
    result = verify_pytorch(TORCH_PLAN, HF_CONFIG, HF_QUANT, HF_FILES)
    assert result.ok, result.findings
    assert result.facts["exclude_modules"] == ["lm_head"]
    assert result.facts["producer"] == {"name": "modelopt", "version": "0.37.0"}


@pytest.mark.parametrize(
    ("config_patch", "quant_patch", "files", "message"),
    [
        (
            {"quantization_config": {"quant_method": "fp8"}},
            None,
            HF_FILES,
            'config.json: quantization_config.quant_method is "fp8", expected "modelopt" (precision fp8)',
        ),
        (
            {},
            {"quant_algo": "NVFP4"},
            HF_FILES,
            'hf_quant_config.json: quantization.quant_algo is "NVFP4", expected "FP8" (precision fp8)',
        ),
        (
            {},
            {"kv_cache_quant_algo": None},
            HF_FILES,
            'hf_quant_config.json: quantization.kv_cache_quant_algo is null, expected "FP8" '
            "(kvCacheDtype fp8)",
        ),
        (
            {},
            {},
            {"config.json": 500, "hf_quant_config.json": 200, "model.safetensors": 0},
            "no non-empty *.safetensors file in the checkpoint (expected the exported weights)",
        ),
    ],
)
def test_each_broken_modelopt_checkpoint_is_caught(
    config_patch: dict[str, Any], quant_patch: dict[str, Any] | None, files: dict[str, int], message: str
) -> None:
    config = copy.deepcopy(HF_CONFIG) | config_patch
    hf_quant = copy.deepcopy(HF_QUANT)
    hf_quant["quantization"] |= quant_patch or {}
    [finding] = verify_pytorch(TORCH_PLAN, config, hf_quant, files).findings
    assert finding.message == message


def test_a_quantized_checkpoint_needs_hf_quant_config() -> None:
    [finding] = verify_pytorch(TORCH_PLAN, HF_CONFIG, None, HF_FILES).findings
    assert finding.message == (
        'hf_quant_config.json is missing, expected quantization.quant_algo "FP8" (ModelOpt\'s '
        "export_hf_checkpoint writes it)"
    )


def test_an_unquantized_checkpoint_needs_no_hf_quant_config_but_the_right_dtype() -> None:
    bf16 = TORCH_PLAN.model_copy(update={"precision": "bf16", "kv_cache_dtype": "auto"})
    plain = {"architectures": ["LlamaForCausalLM"], "torch_dtype": "bfloat16"}
    assert verify_pytorch(bf16, plain, None, HF_FILES).ok
    [finding] = verify_pytorch(bf16, plain | {"torch_dtype": "float32"}, None, HF_FILES).findings
    assert finding.message == 'config.json: torch_dtype is "float32", expected "bfloat16" (precision bf16)'


def test_verify_dir_reports_unreadable_config_files(tmp_path: Path) -> None:
    [missing] = verify_dir(PLAN, tmp_path).findings
    assert missing.message == f"config.json is missing in {tmp_path}"
    (tmp_path / "config.json").write_text("{oops")
    [broken] = verify_dir(PLAN, tmp_path).findings
    assert broken.message.startswith("config.json is not valid JSON: ")


def test_verify_dir_reads_the_engine_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(engine_config()))
    (tmp_path / "rank0.engine").write_bytes(b"x" * 10)
    (tmp_path / "rank1.engine").write_bytes(b"")
    [finding] = verify_dir(PLAN, tmp_path).findings
    assert finding.message == "rank1.engine is empty (0 bytes)"


def test_int4_weight_only_is_awq_shaped_in_a_modelopt_export() -> None:
    """ModelOpt 0.47 exports INT4_BLOCKWISE_WEIGHT_ONLY_CFG as W4A16_AWQ (seen on an H200)."""
    int4 = TORCH_PLAN.model_copy(update={"precision": "int4_wo", "kv_cache_dtype": "auto"})
    hf_quant = {"quantization": {"quant_algo": "W4A16_AWQ", "kv_cache_quant_algo": None}}
    config = HF_CONFIG | {"quantization_config": {"quant_method": "modelopt", "quant_algo": "W4A16_AWQ"}}
    assert verify_pytorch(int4, config, hf_quant, HF_FILES).ok
    engine = engine_config()
    engine["pretrained_config"]["quantization"] = {"quant_algo": "W4A16", "kv_cache_quant_algo": None}
    assert verify_tensorrt(
        PLAN.model_copy(update={"precision": "int4_wo", "kv_cache_dtype": "auto"}), engine, FILES
    ).ok
