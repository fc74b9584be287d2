"""Warnings: calibration data from another domain, overrides that disable in-flight batching."""

from __future__ import annotations

from typing import Any

import pytest

from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.gpu import ComputeCapability
from trtllm_operator.reconcile.warnings import (
    calibration_domain_mismatch,
    inflight_batching_warning,
    needs_calibration,
)
from trtllm_operator.render.presets import FlagDecision, build_flags


def spec(
    domain: str = "general",
    dataset: str = "cnn_dailymail",
    precision: str = "fp8",
    kv: str = "auto",
    **extra: Any,
) -> TRTEngineSpec:
    return TRTEngineSpec.model_validate(
        {
            "model": {"source": "hf://bigcode/starcoder2-15b", "domain": domain},
            "image": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
            "precision": precision,
            "kvCacheDtype": kv,
            "calibration": {"dataset": dataset},
            "storage": {"existingClaim": "engines"},
            **extra,
        }
    )


class TestCalibrationDomain:
    def test_code_model_on_news(self) -> None:
        assert calibration_domain_mismatch(spec("code", "cnn_dailymail")) == (
            "calibration dataset cnn_dailymail (news summaries) does not match model domain code: "
            "calibrate on code samples, e.g. calibration.dataset: pvc://<claim>/calib/code (quantization "
            "scales fitted to other text clip the activations this model sees and cost accuracy); "
            "trtllm-eval has no code task, so gate the engine on perplexity over held-out code text: "
            "validation.accuracy.tasks: [{name: perplexity, dataset: pvc://<claim>/eval/code, baseline: ..., "
            "maxDrop: ...}]"
        )

    def test_code_model_with_a_perplexity_gate_gets_no_gate_hint(self) -> None:
        gate = {
            "tasks": [
                {"name": "perplexity", "dataset": "pvc://d/eval", "baseline": {"value": 2}, "maxDrop": 0.1}
            ]
        }
        message = calibration_domain_mismatch(spec("code", "cnn_dailymail", validation={"accuracy": gate}))
        assert message is not None
        assert "perplexity" not in message

    @pytest.mark.parametrize("domain", ["code", "math", "chat", "multilingual"])
    @pytest.mark.parametrize("dataset", ["cnn_dailymail", "pileval"])
    def test_every_specialised_domain_on_generic_data_warns(self, domain: str, dataset: str) -> None:
        message = calibration_domain_mismatch(spec(domain, dataset))
        assert message is not None
        assert message.startswith(f"calibration dataset {dataset} (")
        assert f"does not match model domain {domain}" in message
        assert f"pvc://<claim>/calib/{domain}" in message

    def test_pileval_description(self) -> None:
        message = calibration_domain_mismatch(spec("math", "pileval"))
        assert message is not None
        assert "pileval (general web text)" in message
        assert "calibrate on math problem samples" in message

    def test_scienceqa_on_chat_model(self) -> None:
        message = calibration_domain_mismatch(spec("chat", "scienceqa"))
        assert message is not None
        assert "scienceqa (science QA)" in message

    @pytest.mark.parametrize("dataset", ["cnn_dailymail", "pileval", "scienceqa"])
    def test_general_model_on_named_data_is_fine(self, dataset: str) -> None:
        assert calibration_domain_mismatch(spec("general", dataset)) is None

    def test_own_dataset_is_not_judged(self) -> None:
        assert calibration_domain_mismatch(spec("code", "pvc://data/calib/news")) is None

    @pytest.mark.parametrize("precision", ["fp16", "bf16"])
    @pytest.mark.parametrize("kv", ["auto", "fp16"])
    def test_unquantized_needs_no_calibration(self, precision: str, kv: str) -> None:
        s = spec("code", "cnn_dailymail", precision, kv)
        assert not needs_calibration(s)
        assert calibration_domain_mismatch(s) is None

    def test_quantized_kv_cache_on_bf16_is_calibrated(self) -> None:
        s = spec("code", "cnn_dailymail", "bf16", "fp8")
        assert needs_calibration(s)
        assert calibration_domain_mismatch(s) is not None

    def test_unknown_named_dataset_is_not_judged(self) -> None:
        assert calibration_domain_mismatch(spec("code", "wikitext")) is None


class TestInflightBatching:
    def test_no_warning_without_disabling_overrides(self) -> None:
        assert inflight_batching_warning(FlagDecision(flags={}, notes=[], ifb_disabling=[])) is None

    def test_warning_names_overrides_and_the_fix(self) -> None:
        extra = ["--gpt_attention_plugin", "disable", "--paged_kv_cache", "disable"]
        decision = build_flags(spec(build={"extraArgs": extra}), ComputeCapability(9, 0), "LlamaForCausalLM")
        message = inflight_batching_warning(decision)
        assert message is not None
        assert message.startswith(
            "spec.build.extraArgs disable in-flight batching "
            "(--gpt_attention_plugin disable, --paged_kv_cache disable)"
        )
        assert "spec.build.acceptInflightBatchingDisabled: true" in message
        assert "Remove these overrides" in message
