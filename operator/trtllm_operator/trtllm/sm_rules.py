"""What TensorRT-LLM's engine builder itself refuses per GPU (SM version), transcribed from the source.

One table, read by the GPU knowledge (``gpu/knowledge.py``: placement, the build pod's preflight),
the CRD's CEL rules (``api/engine.py``: admission), the preset limits (``render/presets.py``) and the
trtllm-build stand-in, so the four cannot drift apart. It lives in ``trtllm/`` (the lowest layer)
because ``api`` may not import ``gpu``. SM versions are ``major * 10 + minor`` (9.0 -> 90), as
TensorRT-LLM's ``get_sm_version()`` returns them.

Sources, NVIDIA/TensorRT-LLM (1.2-era engine path; read through the code index):

* ``tensorrt_llm/builder.py`` @ ``14e801da3632eb71367b847e335c4f2b09098651``, ``build()``:
  ``if get_sm_version() >= 100 and get_sm_version() < 120:`` raises "INT8/INT4 quantization is not
  supported on SM>=100." for INT8/INT4 weight-only modes (``is_int8_weight_only``,
  ``is_int4_weight_only``: W8A16, W4A16, W4A16_AWQ and W4A8_AWQ, whose QuantMode is
  ``use_weight_only(use_int4_weights=True, per_group=True)``) and an INT8 KV cache, "SmoothQuant is not
  supported on SM>=100." (``has_act_and_weight_quant``: W8A8_SQ_*), and "Per-channel or per-token
  scaling is not supported on SM>=100." SM 12.x (RTX PRO 6000 Blackwell) is NOT refused.
* the same ``build()``: ``reduce_fusion`` is overridden to False when ``mapping.tp_size == 1`` or the
  architecture is not LlamaForCausalLM / Gemma2ForCausalLM / MedusaForCausalLM; ``user_buffer`` is
  overridden to False only ``if ... user_buffer and not ... reduce_fusion`` (no precision condition:
  "FP8 LLAMA only" is the flag's help text, not a check).
* ``tensorrt_llm/plugin/plugin.py`` @ ``c20322ffd3dc0740ca530c9fad989b22e64f6e06``,
  ``PluginConfig.validate()``: ``unsupported_plugins = {100: [gemm_swiglu_plugin,
  fp8_rowwise_gemm_plugin, low_latency_gemm_plugin, low_latency_gemm_swiglu_plugin,
  bert_context_fmha_fp32_acc]}`` checked with ``if sm in unsupported_plugins`` — SM 100 exactly
  (B200/GB200), not 10.3 (B300) nor 12.0; raises ``NotImplementedError("{plugin}={val} is not
  supported on SM {sm}.")``.
"""

from __future__ import annotations

from typing import Final

#: ``builder.build()`` refuses the engine-path integer formats for ENGINE_INT_SM[0] <= sm < ENGINE_INT_SM[1].
ENGINE_INT_SM: Final = (100, 120)
#: ``spec.precision`` values whose checkpoint ``build()`` refuses in that range (weight-only INT8/INT4,
#: AWQ incl. W4A8, SmoothQuant).
ENGINE_INT_PRECISIONS: Final = frozenset({"int8_sq", "int8_wo", "int4_wo", "int4_awq", "w4a8_awq"})
#: ``PluginConfig.validate()``: SM version -> plugins it refuses there (any value but off).
PLUGINS_UNSUPPORTED_ON_SM: Final[dict[int, tuple[str, ...]]] = {
    100: (
        "gemm_swiglu_plugin",
        "fp8_rowwise_gemm_plugin",
        "low_latency_gemm_plugin",
        "low_latency_gemm_swiglu_plugin",
        "bert_context_fmha_fp32_acc",
    )
}


def engine_int_refused(sm: int) -> bool:
    """Whether ``build()`` refuses INT8/INT4/SmoothQuant (and an INT8 KV cache) on this SM."""
    return ENGINE_INT_SM[0] <= sm < ENGINE_INT_SM[1]


def plugin_refused(plugin: str, sm: int) -> bool:
    """Whether ``PluginConfig.validate()`` refuses ``plugin`` (set to anything but off) on this SM."""
    return plugin in PLUGINS_UNSUPPORTED_ON_SM.get(sm, ())


def sm_to_cc(sm: int) -> str:
    """100 -> "10.0" (how the CRD and the knowledge write a compute capability)."""
    return f"{sm // 10}.{sm % 10}"
