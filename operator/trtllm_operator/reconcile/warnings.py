"""Warnings an engine can build with but should not: each is a message with the fix, or None.

They back the CalibrationDomainMismatch and InflightBatchingDisabled warning conditions and the
comments ``trtllm-operator render`` prints. Pure functions of the spec (and the flag decision).
"""

from __future__ import annotations

from typing import Final

from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.render.presets import FlagDecision

#: Named calibration datasets quantize.py knows: what they contain and the model domains they suit.
CALIBRATION_DATASETS: Final[dict[str, tuple[str, frozenset[str]]]] = {
    "cnn_dailymail": ("news summaries", frozenset({"general"})),
    "pileval": ("general web text", frozenset({"general"})),
    "scienceqa": ("science QA", frozenset({"general"})),
}
#: What to calibrate a model of each domain on.
DOMAIN_SAMPLES: Final[dict[str, str]] = {
    "general": "general text",
    "code": "code",
    "math": "math problem",
    "chat": "chat conversation",
    "multilingual": "multilingual text",
}
_UNQUANTIZED: Final = frozenset({"fp16", "bf16"})
_UNQUANTIZED_KV: Final = frozenset({"auto", "fp16"})


def needs_calibration(spec: TRTEngineSpec) -> bool:
    """Quantized weights or a quantized (fp8/int8) KV cache need calibration data; fp16/bf16 don't."""
    return spec.precision not in _UNQUANTIZED or spec.kvCacheDtype not in _UNQUANTIZED_KV


def calibration_domain_mismatch(spec: TRTEngineSpec) -> str | None:
    """A message with the fix when the calibration data is from another domain than the model.

    None when nothing is calibrated, when the dataset is the user's own (pvc://: we can't know what
    it holds) or when it suits the model's domain.
    """
    if not needs_calibration(spec):
        return None
    dataset = spec.calibration.dataset
    known = CALIBRATION_DATASETS.get(dataset)
    if known is None:
        return None
    content, suits = known
    domain = spec.model.domain
    if domain in suits:
        return None
    return (
        f"calibration dataset {dataset} ({content}) does not match model domain {domain}: calibrate on "
        f"{DOMAIN_SAMPLES[domain]} samples, e.g. calibration.dataset: pvc://<claim>/calib/{domain} "
        "(quantization scales fitted to other text clip the activations this model sees and cost accuracy)"
        + _gate_hint(spec)
    )


#: trtllm-eval has no task for these domains (no humaneval at any version): gate on perplexity instead.
_NO_TRTLLM_EVAL_TASK: Final = frozenset({"code", "multilingual", "chat"})


def _gate_hint(spec: TRTEngineSpec) -> str:
    """How to catch the damage: for a domain trtllm-eval has no task for, the perplexity gate."""
    if spec.model.domain not in _NO_TRTLLM_EVAL_TASK:
        return ""
    tasks = spec.validation.accuracy.tasks if spec.validation and spec.validation.accuracy else []
    if any(t.name == "perplexity" for t in tasks):
        return ""
    return (
        f"; trtllm-eval has no {spec.model.domain} task, so gate the engine on perplexity over held-out "
        f"{DOMAIN_SAMPLES[spec.model.domain]} text: validation.accuracy.tasks: [{{name: perplexity, "
        "dataset: pvc://<claim>/eval/" + spec.model.domain + ", baseline: ..., maxDrop: ...}]"
    )


def inflight_batching_warning(decision: FlagDecision) -> str | None:
    """A message when spec.build.extraArgs take away what in-flight batching needs, else None."""
    if not decision.ifb_disabling:
        return None
    overrides = ", ".join(decision.ifb_disabling)
    return (
        f"spec.build.extraArgs disable in-flight batching ({overrides}): the runtime needs the GPT attention "
        "plugin, packed input (remove_input_padding) and a paged KV cache to batch requests in flight, "
        "and serving throughput drops sharply without it. Remove these overrides, or set "
        "spec.build.acceptInflightBatchingDisabled: true to accept such an engine (verification fails it "
        "otherwise)."
    )
