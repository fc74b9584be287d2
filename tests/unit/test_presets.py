"""trtllm-build flag presets: the worked example, every rule that leaves a flag out, overrides, IFB."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.render.presets import (
    LIMITS,
    RECIPES,
    REDUCE_FUSION_ARCHS,
    RULES,
    Target,
    build_flags,
    flags_argv,
    limit_violation,
    parse_extra_args,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "presets.md"
LLAMA = "LlamaForCausalLM"
H100, L40S, A100, B200 = (
    ComputeCapability(9, 0),
    ComputeCapability(8, 9),
    ComputeCapability(8, 0),
    ComputeCapability(10, 0),
)


def spec(precision: str = "fp8", tensor: int = 1, kv: str = "auto", **build: Any) -> TRTEngineSpec:
    return TRTEngineSpec.model_validate(
        {
            "model": {"source": "hf://meta-llama/Llama-3.3-70B-Instruct"},
            "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
            "precision": precision,
            "kvCacheDtype": kv,
            "parallelism": {"tensor": tensor},
            "storage": {"existingClaim": "engines"},
            "build": build,
        }
    )


class TestWorkedExample:
    """trtllm.md: Llama-3.3-70B FP8 on 4x H100, throughput."""

    def test_flags_are_exactly_the_worked_example(self) -> None:
        decision = build_flags(spec("fp8", 4, "fp8", maxBatchSize=512, maxNumTokens=16384), H100, LLAMA)
        assert list(decision.flags.items()) == [
            ("gemm_plugin", "disable"),
            ("reduce_fusion", "enable"),
            ("user_buffer", "enable"),
            ("gemm_swiglu_plugin", "fp8"),
            ("max_batch_size", "512"),
            ("max_num_tokens", "16384"),
        ]
        assert " ".join(flags_argv(decision.flags)) == (
            "--gemm_plugin disable --reduce_fusion enable --user_buffer enable --gemm_swiglu_plugin fp8 "
            "--max_batch_size 512 --max_num_tokens 16384"
        )
        assert decision.recipe == RECIPES[0].name
        assert decision.ifb_disabling == []

    def test_without_sizes_only_the_four_tuning_flags(self) -> None:
        decision = build_flags(spec("fp8", 4, "fp8"), H100, LLAMA)
        assert " ".join(flags_argv(decision.flags)) == (
            "--gemm_plugin disable --reduce_fusion enable --user_buffer enable --gemm_swiglu_plugin fp8"
        )

    def test_fp8_kv_cache_is_not_a_build_flag(self) -> None:
        flags = build_flags(spec("fp8", 4, "fp8"), H100, LLAMA).flags
        assert not any("kv" in flag for flag in flags)

    @pytest.mark.parametrize("arch", sorted(REDUCE_FUSION_ARCHS))
    def test_recipe_covers_every_reduce_fusion_architecture(self, arch: str) -> None:
        assert build_flags(spec("fp8", 2), H100, arch).recipe is not None


class TestRulesThatDropFlags:
    @pytest.mark.parametrize("cc", [L40S, B200, ComputeCapability(12, 0)])
    def test_gemm_swiglu_only_on_hopper(self, cc: ComputeCapability) -> None:
        decision = build_flags(spec("fp8", 4), cc, LLAMA)
        assert "gemm_swiglu_plugin" not in decision.flags
        assert any(
            n.startswith("left out --gemm_swiglu_plugin fp8: only on compute capability 9.x")
            for n in decision.notes
        )

    @pytest.mark.parametrize("precision", ["fp16", "bf16", "int4_awq", "w4a8_awq"])
    def test_gemm_swiglu_only_for_fp8(self, precision: str) -> None:
        assert "gemm_swiglu_plugin" not in build_flags(spec(precision, 4), H100, LLAMA).flags

    def test_reduce_fusion_needs_tensor_parallelism(self) -> None:
        decision = build_flags(spec("fp8", 1), H100, LLAMA)
        assert "reduce_fusion" not in decision.flags
        assert "user_buffer" not in decision.flags
        assert (
            "left out --reduce_fusion enable: needs tensor parallelism ≥ 2 (spec.parallelism.tensor is 1)"
            in decision.notes
        )

    def test_reduce_fusion_needs_llama_family(self) -> None:
        decision = build_flags(spec("fp8", 4), H100, "Qwen2ForCausalLM")
        assert "reduce_fusion" not in decision.flags
        assert "user_buffer" not in decision.flags
        assert any("the model is Qwen2ForCausalLM" in n for n in decision.notes)

    def test_unknown_architecture_gets_no_reduce_fusion_and_says_why(self) -> None:
        decision = build_flags(spec("fp8", 4), H100, None)
        assert "reduce_fusion" not in decision.flags
        assert any(
            "--reduce_fusion" in n and "spec.model.architecture is not set" in n for n in decision.notes
        )

    def test_user_buffer_only_for_fp8(self) -> None:
        flags = build_flags(spec("bf16", 4), H100, LLAMA).flags
        assert flags["reduce_fusion"] == "enable"
        assert "user_buffer" not in flags

    def test_user_buffer_goes_when_an_override_turns_reduce_fusion_off(self) -> None:
        decision = build_flags(spec("fp8", 4, extraArgs=["--reduce_fusion", "disable"]), H100, LLAMA)
        assert decision.flags["reduce_fusion"] == "disable"
        assert "user_buffer" not in decision.flags
        assert "left out --user_buffer enable: needs --reduce_fusion enable" in decision.notes

    @pytest.mark.parametrize("preset", ["throughput", "latency"])
    @pytest.mark.parametrize("cc", [B200, ComputeCapability(10, 3), ComputeCapability(12, 0)])
    def test_no_swiglu_or_low_latency_plugins_on_blackwell(self, preset: str, cc: ComputeCapability) -> None:
        flags = build_flags(spec("fp8", 4, preset=preset), cc, LLAMA).flags
        assert not {"gemm_swiglu_plugin", "low_latency_gemm_plugin", "low_latency_gemm_swiglu_plugin"} & set(
            flags
        )

    def test_paged_context_fmha_not_with_int8_kv_cache(self) -> None:
        decision = build_flags(spec("int8_sq", 1, "int8"), A100, LLAMA)
        assert "use_paged_context_fmha" not in decision.flags
        assert "left out --use_paged_context_fmha enable: not with a int8 KV cache" in decision.notes
        assert (
            build_flags(spec("int8_sq", 1, "auto"), A100, LLAMA).flags["use_paged_context_fmha"] == "enable"
        )

    def test_nvfp4_gemm_plugin(self) -> None:
        assert build_flags(spec("nvfp4"), B200, LLAMA).flags["gemm_plugin"] == "nvfp4"


class TestThroughputChoices:
    @pytest.mark.parametrize(
        ("precision", "cc", "gemm"),
        [
            ("fp16", A100, "auto"),
            ("bf16", H100, "auto"),
            ("fp8", L40S, "disable"),
            ("int8_sq", A100, "disable"),
            ("int4_awq", A100, "auto"),
            ("int8_wo", A100, "auto"),
            ("w4a8_awq", H100, "auto"),
        ],
    )
    def test_gemm_plugin_per_precision(self, precision: str, cc: ComputeCapability, gemm: str) -> None:
        assert build_flags(spec(precision), cc, LLAMA).flags["gemm_plugin"] == gemm

    def test_bf16_single_gpu(self) -> None:
        decision = build_flags(spec("bf16"), A100, LLAMA)
        assert decision.flags == {
            "gemm_plugin": "auto",
            "use_paged_context_fmha": "enable",
            "multiple_profiles": "enable",
        }
        assert decision.recipe is None

    def test_fp8_hopper_without_tp_uses_rules(self) -> None:
        flags = build_flags(spec("fp8"), H100, LLAMA).flags
        assert flags == {
            "gemm_plugin": "disable",
            "gemm_swiglu_plugin": "fp8",
            "use_paged_context_fmha": "enable",
            "multiple_profiles": "enable",
        }


class TestLatencyAndNone:
    def test_latency_fp8_hopper(self) -> None:
        flags = build_flags(spec("fp8", 2, preset="latency"), H100, LLAMA).flags
        assert flags["low_latency_gemm_plugin"] == "fp8"
        assert flags["low_latency_gemm_swiglu_plugin"] == "fp8"
        assert flags["gemm_plugin"] == "disable"
        assert flags["reduce_fusion"] == "enable"
        assert flags["multiple_profiles"] == "enable"
        assert flags["max_batch_size"] == "64"
        assert "user_buffer" not in flags
        assert "gemm_swiglu_plugin" not in flags

    def test_latency_low_latency_gemm_only_on_hopper(self) -> None:
        decision = build_flags(spec("fp8", preset="latency"), L40S, LLAMA)
        assert "low_latency_gemm_plugin" not in decision.flags
        assert any(n.startswith("left out --low_latency_gemm_plugin fp8") for n in decision.notes)

    def test_spec_batch_size_replaces_latency_default(self) -> None:
        flags = build_flags(spec("bf16", preset="latency", maxBatchSize=8), H100, LLAMA).flags
        assert flags["max_batch_size"] == "8"

    def test_none_preset_only_sizes_and_overrides(self) -> None:
        build = {"preset": "none", "maxInputLen": 2048, "maxSeqLen": 4096, "extraArgs": ["--strip_plan"]}
        decision = build_flags(spec("fp8", 4, **build), H100, LLAMA)
        assert decision.flags == {"max_input_len": "2048", "max_seq_len": "4096", "strip_plan": ""}
        assert decision.notes == []


class TestOverrides:
    def test_override_replaces_in_place_and_appends(self) -> None:
        extra = ["--gemm_plugin", "fp8", "--log_level=verbose", "--fast_build"]
        decision = build_flags(spec("fp8", 4, maxBatchSize=512, extraArgs=extra), H100, LLAMA)
        assert list(decision.flags) == [
            "gemm_plugin",
            "reduce_fusion",
            "user_buffer",
            "gemm_swiglu_plugin",
            "max_batch_size",
            "log_level",
            "fast_build",
        ]
        assert decision.flags["gemm_plugin"] == "fp8"
        assert decision.flags["log_level"] == "verbose"
        assert flags_argv(decision.flags)[-3:] == ["--log_level", "verbose", "--fast_build"]

    def test_override_beats_spec_sizes(self) -> None:
        flags = build_flags(
            spec("bf16", maxBatchSize=256, extraArgs=["--max_batch_size", "128"]), A100, LLAMA
        ).flags
        assert flags["max_batch_size"] == "128"

    def test_operator_owned_flags_are_ignored(self) -> None:
        decision = build_flags(
            spec("bf16", extraArgs=["--output_dir", "/tmp/x", "--checkpoint_dir=/y"]), A100, LLAMA
        )
        assert "output_dir" not in decision.flags
        assert "checkpoint_dir" not in decision.flags
        assert "ignored --output_dir from spec.build.extraArgs: the operator sets it" in decision.notes

    def test_override_breaking_a_limit_is_kept_and_reported(self) -> None:
        decision = build_flags(spec("fp8", extraArgs=["--gemm_swiglu_plugin", "fp8"]), B200, LLAMA)
        assert decision.flags["gemm_swiglu_plugin"] == "fp8"
        assert any(
            n.startswith("--gemm_swiglu_plugin fp8 from spec.build.extraArgs: its only value is fp8")
            and "refused on compute capability 10.0" in n
            for n in decision.notes
        )
        assert not any(n.startswith("left out --gemm_swiglu_plugin") for n in decision.notes)

    def test_parse_extra_args(self) -> None:
        parsed, notes = parse_extra_args(["--a", "1", "--b", "--c=x=y", "oops", "--d", "-1", "--"])
        assert parsed == {"a": "1", "b": "", "c": "x=y", "d": "-1"}
        assert notes == [
            "ignored spec.build.extraArgs entry 'oops': expected --flag [value]",
            "ignored spec.build.extraArgs entry '--': expected --flag [value]",
        ]


class TestInflightBatching:
    @pytest.mark.parametrize(
        "extra",
        [
            ["--gpt_attention_plugin", "disable"],
            ["--remove_input_padding", "disable"],
            ["--kv_cache_type", "continuous"],
            ["--paged_kv_cache=disable"],
        ],
    )
    def test_each_disabling_override_is_detected(self, extra: list[str]) -> None:
        decision = build_flags(spec("bf16", extraArgs=extra), A100, LLAMA)
        flag, _, value = " ".join(extra).replace("=", " ").partition(" ")
        assert decision.ifb_disabling == [f"{flag} {value}"]

    def test_harmless_overrides_are_not_flagged(self) -> None:
        extra = [
            "--kv_cache_type",
            "paged",
            "--gpt_attention_plugin",
            "auto",
            "--remove_input_padding",
            "enable",
        ]
        assert build_flags(spec("bf16", extraArgs=extra), A100, LLAMA).ifb_disabling == []

    def test_all_four_in_table_order(self) -> None:
        extra = ["--paged_kv_cache", "disable", "--gpt_attention_plugin", "disable"]
        decision = build_flags(spec("bf16", extraArgs=extra), A100, LLAMA)
        assert decision.ifb_disabling == ["--gpt_attention_plugin disable", "--paged_kv_cache disable"]


GRID_CCS = [ComputeCapability(*cc) for cc in [(7, 0), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0), (12, 0)]]


def test_no_preset_ever_breaks_a_tensorrt_llm_limit() -> None:
    precisions = ["fp16", "bf16", "fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "int8_wo", "int4_wo"]
    combos = itertools.product(
        ["throughput", "latency", "none"],
        precisions,
        ["auto", "fp8", "int8"],
        GRID_CCS,
        [1, 2, 8],
        [LLAMA, "Qwen2ForCausalLM", None],
    )
    checked = 0
    for preset, precision, kv, cc, tensor, arch in combos:
        decision = build_flags(spec(precision, tensor, kv, preset=preset), cc, arch)
        target = Target(preset, precision, kv, cc, tensor, arch)
        for flag, value in decision.flags.items():
            assert limit_violation(flag, value, target, decision.flags) is None, (
                preset,
                precision,
                kv,
                cc,
                tensor,
                arch,
                flag,
            )
        checked += 1
    assert checked == 3 * 9 * 3 * 7 * 3 * 3


def test_every_row_has_a_why() -> None:
    rows = [*RULES, *LIMITS, *(r for recipe in RECIPES for r in recipe.rows)]
    assert all(len(row.why) > 20 for row in rows)


def test_docs_mention_every_flag_and_why() -> None:
    doc = DOC.read_text(encoding="utf-8")
    rows = [*RULES, *LIMITS, *(r for recipe in RECIPES for r in recipe.rows)]
    missing = [(r.flag, r.why) for r in rows if f"`--{r.flag}`" not in doc or r.why not in doc]
    assert missing == []
    for recipe in RECIPES:
        assert recipe.name in doc
    for row in RULES:
        assert f"| `--{row.flag}` | `{row.value}` | {row.when.describe()} | {row.why} |" in doc
