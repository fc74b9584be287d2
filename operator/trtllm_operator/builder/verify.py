"""Verify the built artifact against the plan before it is published.

TensorRT-LLM tools exit 0 in situations we must not accept: a quantize.py that fell back to another
format, a build whose user override disabled the GPT attention plugin (the server then refuses
in-flight batching: "TrtGptModelInflightBatching requires GPT attention/Mamba Conv 1d plugin with
packed input and paged KV cache"), a rank file that was never written. Publishing such an artifact
turns a build-time error into a serving-time outage, so every property the operator promised in
status is read back from the artifact's own config files.

Verification is pure — :func:`verify_tensorrt` and :func:`verify_pytorch` take parsed JSON and a
``{relative path: size}`` listing — so every broken variant is a unit test. Each finding names the
file, the key, the expected and the found value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from trtllm_operator.api import reasons
from trtllm_operator.api.plan import BuildPlan

CONFIG: Final = "config.json"
HF_QUANT_CONFIG: Final = "hf_quant_config.json"
_MISSING: Final = object()

#: ``quantization.quant_algo`` that each precision must produce (TensorRT-LLM's QuantAlgo names).
EXPECTED_QUANT_ALGO: Final[dict[str, str | None]] = {
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
#: The PyTorch backend's artifact is a ModelOpt export; seen with ModelOpt 0.47: INT4 block-wise
#: weight-only (``INT4_BLOCKWISE_WEIGHT_ONLY_CFG``) is exported as ``W4A16_AWQ`` (AWQ layout, unit
#: pre-quant scales), the format TensorRT-LLM's INT4 weight-only kernels read.
EXPECTED_QUANT_ALGO_PYTORCH: Final[dict[str, str | None]] = EXPECTED_QUANT_ALGO | {"int4_wo": "W4A16_AWQ"}
EXPECTED_KV_ALGO: Final[dict[str, str | None]] = {"fp8": "FP8", "int8": "INT8"}
EXPECTED_DTYPE: Final[dict[str, str]] = {"fp16": "float16", "bf16": "bfloat16"}
IFB_HINT: Final = (
    "in-flight batching needs the GPT attention plugin, packed input (remove_input_padding) and a paged "
    "KV cache; remove the override, or set spec.build.acceptInflightBatchingDisabled"
)


@dataclass(frozen=True)
class Finding:
    """One way the artifact differs from the plan."""

    reason: str
    message: str


@dataclass
class Verification:
    """Findings (any one fails the build), warnings, and facts recorded in the manifest."""

    findings: list[Finding] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def fail(self, message: str, reason: str = reasons.VERIFICATION_FAILED) -> None:
        self.findings.append(Finding(reason, message))


def lookup(data: Mapping[str, Any], dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; ``_MISSING`` when any level is absent or not an object."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _show(value: Any) -> str:
    return "missing" if value is _MISSING else json.dumps(value)


def expect(
    result: Verification, file: str, data: Mapping[str, Any], key: str, expected: Any, why: str
) -> None:
    """Record a finding unless ``data[key] == expected`` (a missing key equals an expected null)."""
    found = lookup(data, key)
    if found == expected or (found is _MISSING and expected is None):
        return
    result.fail(f"{file}: {key} is {_show(found)}, expected {json.dumps(expected)} ({why})")


def expected_quant_algo(plan: BuildPlan) -> str | None:
    table = EXPECTED_QUANT_ALGO_PYTORCH if plan.backend == "pytorch" else EXPECTED_QUANT_ALGO
    return table[plan.precision]


def _expect_quantization(
    result: Verification, plan: BuildPlan, file: str, data: Mapping[str, Any], prefix: str
) -> None:
    why = f"precision {plan.precision}"
    expect(result, file, data, f"{prefix}quant_algo", expected_quant_algo(plan), why)
    kv = EXPECTED_KV_ALGO.get(plan.kv_cache_dtype)
    expect(result, file, data, f"{prefix}kv_cache_quant_algo", kv, f"kvCacheDtype {plan.kv_cache_dtype}")


def _expect_dtype(
    result: Verification, plan: BuildPlan, file: str, data: Mapping[str, Any], *keys: str
) -> None:
    found = next((lookup(data, key) for key in keys if lookup(data, key) is not _MISSING), _MISSING)
    result.facts["dtype"] = None if found is _MISSING else found
    expected = EXPECTED_DTYPE.get(plan.precision)
    if expected is not None and found != expected:
        why = f"precision {plan.precision}"
        result.fail(f"{file}: {keys[0]} is {_show(found)}, expected {json.dumps(expected)} ({why})")


def _expect_mapping(result: Verification, plan: BuildPlan, config: Mapping[str, Any]) -> None:
    mapping = {"tp_size": plan.tensor, "pp_size": plan.pipeline, "world_size": plan.tensor * plan.pipeline}
    for key, expected in mapping.items():
        found = lookup(config, f"pretrained_config.mapping.{key}")
        if found != expected:
            result.fail(
                f"{CONFIG}: pretrained_config.mapping.{key} is {_show(found)}, expected {expected} "
                f"(tensor {plan.tensor} x pipeline {plan.pipeline})"
            )


def _plugin_off(value: Any) -> bool:
    return value is None or value is _MISSING or value is False or str(value).lower() == "disable"


def ifb_problems(config: Mapping[str, Any]) -> list[str]:
    """Why the engine could not run with in-flight batching (empty: it can)."""
    problems: list[str] = []
    plugins = "build_config.plugin_config"
    attention = lookup(config, f"{plugins}.gpt_attention_plugin")
    if _plugin_off(attention):
        problems.append(f"{CONFIG}: {plugins}.gpt_attention_plugin is {_show(attention)}, expected enabled")
    padding = lookup(config, f"{plugins}.remove_input_padding")
    if padding is not True:
        problems.append(f"{CONFIG}: {plugins}.remove_input_padding is {_show(padding)}, expected true")
    kv_type = lookup(config, "build_config.kv_cache_type")
    if kv_type is not _MISSING and kv_type is not None:
        if str(kv_type).lower() not in {"paged", "disabled"}:
            problems.append(f'{CONFIG}: build_config.kv_cache_type is {_show(kv_type)}, expected "paged"')
    else:
        paged = lookup(config, f"{plugins}.paged_kv_cache")
        if paged is not True:
            problems.append(f"{CONFIG}: {plugins}.paged_kv_cache is {_show(paged)}, expected true")
    return problems


def _check_ifb(result: Verification, plan: BuildPlan, config: Mapping[str, Any]) -> None:
    problems = ifb_problems(config)
    result.facts["inflight_batching"] = not problems
    if not problems:
        return
    message = "; ".join(problems) + f": {IFB_HINT}"
    if plan.accept_inflight_batching_disabled:
        result.warnings.append(f"in-flight batching disabled (accepted): {'; '.join(problems)}")
    else:
        result.fail(message, reasons.INFLIGHT_BATCHING_DISABLED)


def _check_rank_files(result: Verification, plan: BuildPlan, files: Mapping[str, int]) -> None:
    for rank in range(plan.tensor * plan.pipeline):
        name = f"rank{rank}.engine"
        if name not in files:
            result.fail(
                f"{name} is missing (world size {plan.tensor * plan.pipeline} needs one engine per rank)"
            )
        elif files[name] <= 0:
            result.fail(f"{name} is empty (0 bytes)")


def verify_tensorrt(plan: BuildPlan, config: Mapping[str, Any], files: Mapping[str, int]) -> Verification:
    """Check an engine directory's ``config.json`` and rank files against the plan."""
    result = Verification()
    version = config.get("version")
    result.facts.update(trtllm_version=str(version) if version else "unknown")
    _expect_quantization(result, plan, CONFIG, config, "pretrained_config.quantization.")
    _expect_mapping(result, plan, config)
    _expect_dtype(result, plan, CONFIG, config, "pretrained_config.dtype")
    _check_ifb(result, plan, config)
    _check_rank_files(result, plan, files)
    return result


def _needs_hf_quant_config(plan: BuildPlan) -> bool:
    return EXPECTED_QUANT_ALGO[plan.precision] is not None or plan.kv_cache_dtype in EXPECTED_KV_ALGO


def _check_hf_quant(result: Verification, plan: BuildPlan, hf_quant: Mapping[str, Any] | None) -> None:
    if hf_quant is None:
        if _needs_hf_quant_config(plan):
            expected = json.dumps(expected_quant_algo(plan))
            result.fail(
                f"{HF_QUANT_CONFIG} is missing, expected quantization.quant_algo {expected} "
                "(ModelOpt's export_hf_checkpoint writes it)"
            )
        return
    _expect_quantization(result, plan, HF_QUANT_CONFIG, hf_quant, "quantization.")
    excluded = lookup(hf_quant, "quantization.exclude_modules")
    result.facts["exclude_modules"] = excluded if isinstance(excluded, list) else []
    producer = lookup(hf_quant, "producer")
    if isinstance(producer, Mapping):
        result.facts["producer"] = {str(k): str(v) for k, v in producer.items()}


def verify_pytorch(
    plan: BuildPlan, config: Mapping[str, Any], hf_quant: Mapping[str, Any] | None, files: Mapping[str, int]
) -> Verification:
    """Check a (ModelOpt-quantized) Hugging Face checkpoint against the plan."""
    result = Verification()
    if EXPECTED_QUANT_ALGO[plan.precision] is not None:
        expect(
            result,
            CONFIG,
            config,
            "quantization_config.quant_method",
            "modelopt",
            f"precision {plan.precision}",
        )
    _check_hf_quant(result, plan, hf_quant)
    _expect_dtype(result, plan, CONFIG, config, "torch_dtype", "dtype")
    weights = [name for name, size in files.items() if name.endswith(".safetensors") and size > 0]
    if not weights:
        result.fail("no non-empty *.safetensors file in the checkpoint (expected the exported weights)")
    return result


def list_files(root: Path) -> dict[str, int]:
    """``{relative posix path: size}`` of every regular file under ``root``."""
    return {
        path.relative_to(root).as_posix(): path.stat().st_size
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; ``ValueError`` naming the file when it is missing or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"{path.name} is missing in {path.parent}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} must hold a JSON object, found {type(data).__name__}")
    return data


def verify_dir(plan: BuildPlan, artifact: Path) -> Verification:
    """Read ``artifact``'s config files and verify them (the I/O shell around the pure checks)."""
    try:
        config = read_json_object(artifact / CONFIG)
        hf_quant_path = artifact / HF_QUANT_CONFIG
        hf_quant = read_json_object(hf_quant_path) if hf_quant_path.exists() else None
    except ValueError as exc:
        result = Verification()
        result.fail(str(exc))
        return result
    files = list_files(artifact)
    if plan.backend == "tensorrt":
        return verify_tensorrt(plan, config, files)
    return verify_pytorch(plan, config, hf_quant, files)
