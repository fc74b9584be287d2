"""trtllm-build flags per tuning preset, GPU architecture and precision — as a table, not as branching.

Each row says which flag to pass, when it applies and why (from NVIDIA's TensorRT-LLM performance
tuning guide and ``shared/reference/trtllm.md``). :func:`build_flags` picks the rows that apply to a
spec and a target compute capability, adds the sizes from ``spec.build`` and applies
``spec.build.extraArgs`` on top. ``docs/presets.md`` is written from these tables (a unit test keeps
the two in step).

Two kinds of tables:

* :data:`RECIPES` — complete, published flag sets reproduced verbatim when their conditions match
  (the seed's measured FP8 Llama-3.3-70B on 4 H100s build). Adding flags to a measured recipe would
  make our benchmark incomparable with the published numbers.
* :data:`RULES` — one row per flag choice, for every other combination.

:data:`LIMITS` holds what TensorRT-LLM itself accepts; no preset row may break it (tested), and
user overrides that break it are kept but reported in the notes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from trtllm_operator.api.engine import TRTEngineSpec
from trtllm_operator.gpu import ComputeCapability, arch_name
from trtllm_operator.trtllm import sm_rules
from trtllm_operator.trtllm.cli import check_argv
from trtllm_operator.trtllm.cli_tables import TRTLLM_BUILD_12

CC = ComputeCapability
#: Architectures TensorRT-LLM applies reduce fusion (and so user buffers) to; it forces both off otherwise.
REDUCE_FUSION_ARCHS: Final = frozenset({"LlamaForCausalLM", "Gemma2ForCausalLM", "MedusaForCausalLM"})
#: Flags the operator sets itself; extraArgs can't move the checkpoint or the output directory.
RESERVED_FLAGS: Final = frozenset({"checkpoint_dir", "output_dir"})
#: Overrides that take away what in-flight batching needs (GPT attention plugin, packed input, paged KV).
IFB_DISABLING: Final[tuple[tuple[str, str], ...]] = (
    ("gpt_attention_plugin", "disable"),
    ("remove_input_padding", "disable"),
    ("kv_cache_type", "continuous"),
    ("paged_kv_cache", "disable"),
)
#: spec.build field -> trtllm-build flag.
SIZE_FLAGS: Final[tuple[tuple[str, str], ...]] = (
    ("maxBatchSize", "max_batch_size"),
    ("maxNumTokens", "max_num_tokens"),
    ("maxInputLen", "max_input_len"),
    ("maxSeqLen", "max_seq_len"),
)

FP16_BF16: Final = frozenset({"fp16", "bf16"})
WEIGHT_ONLY_AWQ: Final = frozenset({"int8_wo", "int4_wo", "int4_awq", "w4a8_awq"})


@dataclass(frozen=True)
class Target:
    """What a flag decision depends on."""

    preset: str
    precision: str
    kv_cache_dtype: str
    cc: ComputeCapability
    tensor: int
    architecture: str | None


@dataclass(frozen=True)
class When:
    """Conditions of a row; empty fields match anything. ``cc_min`` inclusive, ``cc_below`` exclusive."""

    precisions: frozenset[str] | None = None
    kv_cache: frozenset[str] | None = None
    cc_min: ComputeCapability | None = None
    cc_below: ComputeCapability | None = None
    cc_except: frozenset[ComputeCapability] | None = None  # refused on exactly these (PluginConfig.validate)
    min_tensor: int = 1
    architectures: frozenset[str] | None = None

    def selects(self, t: Target) -> bool:
        """Whether the row is about this precision at all (otherwise it's not worth a note)."""
        return self.precisions is None or t.precision in self.precisions

    def miss(self, t: Target) -> str | None:
        """Why the row doesn't apply to ``t`` (a phrase for the notes), or None when it does."""
        if not self.selects(t):
            return f"only for {self.describe_dtypes()}"
        if self.kv_cache is not None and t.kv_cache_dtype not in self.kv_cache:
            return f"not with a {t.kv_cache_dtype} KV cache"
        below = self.cc_below is not None and t.cc >= self.cc_below
        if self.cc_except is not None and t.cc in self.cc_except:
            refused = " / ".join(str(cc) for cc in sorted(self.cc_except))
            return f"refused on compute capability {refused}; the target is {t.cc} ({arch_name(t.cc)})"
        if (self.cc_min is not None and t.cc < self.cc_min) or below:
            return f"only on {self.describe_cc()}; the target is {t.cc} ({arch_name(t.cc)})"
        if t.tensor < self.min_tensor:
            return f"needs tensor parallelism ≥ {self.min_tensor} (spec.parallelism.tensor is {t.tensor})"
        if self.architectures is not None and t.architecture not in self.architectures:
            names = ", ".join(sorted(self.architectures))
            if t.architecture is None:
                return f"spec.model.architecture is not set and this flag only works for {names}"
            return f"only for {names} (the model is {t.architecture})"
        return None

    def describe_dtypes(self) -> str:
        parts = []
        if self.precisions is not None:
            parts.append("precision " + "/".join(sorted(self.precisions)))
        if self.kv_cache is not None:
            parts.append("KV cache " + "/".join(sorted(self.kv_cache)))
        return ", ".join(parts) or "any precision"

    def describe_cc(self) -> str:
        lo, hi = self.cc_min, self.cc_below
        if self.cc_except is not None:
            return "compute capability other than " + " / ".join(str(cc) for cc in sorted(self.cc_except))
        if lo is not None and lo.minor == 0 and hi == CC(lo.major + 1, 0):
            return f"compute capability {lo.major}.x ({arch_name(lo)})"
        if lo is not None and hi is not None:
            return f"compute capability ≥ {lo} and < {hi}"
        if lo is not None:
            return f"compute capability ≥ {lo}"
        if hi is not None:
            return f"compute capability < {hi}"
        return "any GPU"

    def describe(self) -> str:
        """The 'applies when' column of docs/presets.md."""
        parts = [self.describe_dtypes()]
        if self.cc_min is not None or self.cc_below is not None or self.cc_except is not None:
            parts.append(self.describe_cc())
        if self.min_tensor > 1:
            parts.append(f"tensor parallelism ≥ {self.min_tensor}")
        if self.architectures is not None:
            parts.append("architecture " + " / ".join(sorted(self.architectures)))
        return "; ".join(parts)


@dataclass(frozen=True)
class FlagRule:
    """One row: pass ``--flag value`` for these presets when ``when`` holds, because ``why``."""

    presets: frozenset[str]
    flag: str
    value: str
    why: str
    when: When = field(default_factory=When)
    requires: tuple[str, str] | None = None  # another flag that must end up with this value


@dataclass(frozen=True)
class Recipe:
    """A published, measured flag set used verbatim when ``when`` holds."""

    preset: str
    name: str
    when: When
    rows: tuple[FlagRule, ...]


THROUGHPUT, LATENCY, NONE = "throughput", "latency", "none"
_T, _L, _TL = frozenset({THROUGHPUT}), frozenset({LATENCY}), frozenset({THROUGHPUT, LATENCY})
HOPPER, BLACKWELL = CC(9, 0), CC(10, 0)
FP8: Final = frozenset({"fp8"})
_FP8_HOPPER = When(precisions=FP8, cc_min=HOPPER, cc_below=BLACKWELL)
_TP_FUSION = When(min_tensor=2, architectures=REDUCE_FUSION_ARCHS)
_FP8_TP_FUSION = When(precisions=FP8, min_tensor=2, architectures=REDUCE_FUSION_ARCHS)

_GEMM_DISABLE_FP8 = FlagRule(
    _TL,
    "gemm_plugin",
    "disable",
    "NVIDIA's FP8 guide: leave the cuBLASLt GEMM plugin off for FP8 so TensorRT picks its own FP8 "
    "GEMM kernels",
    When(precisions=FP8),
)
_REDUCE_FUSION = FlagRule(
    _TL,
    "reduce_fusion",
    "enable",
    "fuses the ResidualAdd + RMSNorm after each all-reduce into the all-reduce kernel; TensorRT-LLM only "
    "applies it with TP > 1 on Llama-family architectures",
    _TP_FUSION,
)
_USER_BUFFER = FlagRule(
    _T,
    "user_buffer",
    "enable",
    "user buffers remove a copy into the all-reduce's shared buffer; FP8 Llama only, and only together "
    "with reduce fusion",
    _FP8_TP_FUSION,
    requires=("reduce_fusion", "enable"),
)
_GEMM_SWIGLU = FlagRule(
    _T,
    "gemm_swiglu_plugin",
    "fp8",
    "fuses the gated-MLP GEMMs and SwiGLU into one FP8 kernel; only supported for FP8 on Hopper (may cost a "
    "little accuracy: one quantization scale is dropped)",
    _FP8_HOPPER,
)

#: Published recipes, checked before the rules.
RECIPES: Final[tuple[Recipe, ...]] = (
    Recipe(
        THROUGHPUT,
        "NVIDIA's tuned FP8 Llama-3.3-70B build on 4 H100s (trtllm.md worked example)",
        When(
            precisions=FP8, cc_min=HOPPER, cc_below=BLACKWELL, min_tensor=2, architectures=REDUCE_FUSION_ARCHS
        ),
        (_GEMM_DISABLE_FP8, _REDUCE_FUSION, _USER_BUFFER, _GEMM_SWIGLU),
    ),
)

#: Per-flag choices, in the order flags are emitted.
RULES: Final[tuple[FlagRule, ...]] = (
    FlagRule(
        _TL,
        "gemm_plugin",
        "auto",
        "FP16/BF16 GEMMs through cuBLASLt: NVIDIA recommends the GEMM plugin for FP16/BF16 (faster, "
        "less memory)",
        When(precisions=FP16_BF16),
    ),
    _GEMM_DISABLE_FP8,
    FlagRule(
        _TL,
        "gemm_plugin",
        "disable",
        "ModelOpt exports SmoothQuant as Q/DQ layers that TensorRT's INT8 kernels run; ModelOpt's build "
        "script leaves the GEMM plugin off, as for FP8",
        When(precisions=frozenset({"int8_sq"})),
    ),
    FlagRule(
        _TL,
        "gemm_plugin",
        "auto",
        "the weight-only/AWQ GEMMs come from TensorRT-LLM plugins; auto runs the remaining GEMMs "
        "(e.g. lm_head) through cuBLASLt in the activation dtype, as ModelOpt's build script does",
        When(precisions=WEIGHT_ONLY_AWQ),
    ),
    FlagRule(
        _TL,
        "gemm_plugin",
        "nvfp4",
        "FP4 GEMMs run in the nvfp4 GEMM plugin (TensorRT-LLM's and ModelOpt's NVFP4 builds pass it)",
        When(precisions=frozenset({"nvfp4"}), cc_min=BLACKWELL),
    ),
    _REDUCE_FUSION,
    _USER_BUFFER,
    _GEMM_SWIGLU,
    FlagRule(
        _L,
        "low_latency_gemm_plugin",
        "fp8",
        "FP8 GEMM kernels tuned for small batches; NVIDIA recommends trying it for low-latency FP8 on Hopper "
        "(rejected on SM ≥ 10.0)",
        _FP8_HOPPER,
    ),
    FlagRule(
        _L,
        "low_latency_gemm_swiglu_plugin",
        "fp8",
        "the small-batch variant of the FP8 GEMM + SwiGLU fusion, which NVIDIA's FP8 guide suggests when "
        "latency matters (Hopper only)",
        _FP8_HOPPER,
    ),
    FlagRule(
        _T,
        "use_paged_context_fmha",
        "enable",
        "paged context attention enables chunked prefill and KV-cache reuse; trtllm-bench's tuned builds "
        "turn it on (TensorRT-LLM turns it off with an INT8 KV cache)",
        When(kv_cache=frozenset({"auto", "fp16", "fp8"}), cc_min=CC(8, 0)),
    ),
    FlagRule(
        _TL,
        "multiple_profiles",
        "enable",
        "several TensorRT optimization profiles so small and large batches each get tuned kernels; costs "
        "build time only (trtllm-bench's tuned builds turn it on)",
    ),
    FlagRule(
        _L,
        "max_batch_size",
        "64",
        "a small batch bound keeps the optimization profiles at the batch sizes latency serving runs and "
        "leaves memory to the KV cache; spec.build.maxBatchSize overrides it",
    ),
)


#: What TensorRT-LLM itself accepts (trtllm.md); no preset row may break it. Value "*": any value but off.
def _validate_refuses(plugin: str) -> frozenset[ComputeCapability]:
    """The compute capabilities ``PluginConfig.validate()`` refuses ``plugin`` on (``trtllm/sm_rules.py``)."""
    return frozenset(
        CC(sm // 10, sm % 10)
        for sm, plugins in sm_rules.PLUGINS_UNSUPPORTED_ON_SM.items()
        if plugin in plugins
    )


def _fp8_plugin_limit(plugin: str, why: str) -> FlagRule:
    return FlagRule(_TL, plugin, "*", why, When(precisions=FP8, cc_except=_validate_refuses(plugin)))


#: What TensorRT-LLM 1.2 enforces, cited in ``trtllm/sm_rules.py``: PluginConfig.validate() refuses the
#: FP8 GEMM plugins on SM 100 exactly; build() forces reduce_fusion off with TP 1 or outside
#: Llama/Gemma2/Medusa, and user_buffer off whenever reduce_fusion is off.
LIMITS: Final[tuple[FlagRule, ...]] = (
    _fp8_plugin_limit(
        "gemm_swiglu_plugin",
        "its only value is fp8 (FP8 checkpoints); PluginConfig.validate() refuses it on SM 100",
    ),
    _fp8_plugin_limit(
        "low_latency_gemm_swiglu_plugin",
        "its only value is fp8 (FP8 checkpoints); PluginConfig.validate() refuses it on SM 100",
    ),
    _fp8_plugin_limit("low_latency_gemm_plugin", "an FP8 GEMM; PluginConfig.validate() refuses it on SM 100"),
    FlagRule(
        _TL,
        "reduce_fusion",
        "*",
        "forced off unless TP > 1 and the architecture is Llama/Gemma2/Medusa",
        _TP_FUSION,
    ),
    FlagRule(
        _TL,
        "user_buffer",
        "*",
        "forced off whenever reduce fusion is off (build() checks nothing else; 'FP8 LLAMA' is only help)",
        _TP_FUSION,
        requires=("reduce_fusion", "enable"),
    ),
    FlagRule(
        _TL,
        "use_paged_context_fmha",
        "*",
        "turned off with an INT8 KV cache",
        When(kv_cache=frozenset({"auto", "fp16", "fp8"})),
    ),
    FlagRule(
        _TL,
        "gemm_plugin",
        "nvfp4",
        "FP4 GEMMs need Blackwell (SM ≥ 10.0)",
        When(cc_min=BLACKWELL),
    ),
)
_OFF_VALUES: Final = frozenset({"disable", "None", "none"})


@dataclass(frozen=True)
class FlagDecision:
    """The final trtllm-build flags (without leading dashes; "" marks a switch such as --strip_plan)."""

    flags: dict[str, str]
    notes: list[str]
    ifb_disabling: list[str]
    recipe: str | None = None


def parse_extra_args(args: Iterable[str]) -> tuple[dict[str, str], list[str]]:
    """``["--flag", "value", "--switch", "--k=v"]`` -> ({flag: value, switch: "", k: v}, notes)."""
    tokens = list(args)
    parsed: dict[str, str] = {}
    notes: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith("--") or len(token) == 2:
            notes.append(f"ignored spec.build.extraArgs entry {token!r}: expected --flag [value]")
            continue
        key, eq, value = token[2:].partition("=")
        if not eq and i < len(tokens) and not tokens[i].startswith("--"):
            value = tokens[i]
            i += 1
        parsed[key] = value
    return parsed, notes


def limit_violation(flag: str, value: str, t: Target, flags: dict[str, str]) -> str | None:
    """Why TensorRT-LLM won't take ``--flag value`` for ``t`` (given the other ``flags``), or None."""
    if value in _OFF_VALUES:
        return None
    for limit in LIMITS:
        if limit.flag != flag or limit.value not in ("*", value):
            continue
        if miss := limit.when.miss(t):
            return f"{limit.why}: {miss}"
        if limit.requires and flags.get(limit.requires[0]) != limit.requires[1]:
            return f"{limit.why}: --{limit.requires[0]} is not {limit.requires[1]}"
    return None


def _note_missing(rows: Iterable[FlagRule], t: Target, emitted: dict[str, str]) -> list[str]:
    """Notes for rows of this preset and dtype that were left out because of the GPU, TP or model."""
    notes: list[str] = []
    for row in rows:
        if t.preset not in row.presets or row.flag in emitted or not row.when.selects(t):
            continue
        if (miss := row.when.miss(t)) and (note := f"left out --{row.flag} {row.value}: {miss}") not in notes:
            notes.append(note)
    return notes


def _preset_flags(t: Target) -> tuple[dict[str, str], Recipe | None]:
    for recipe in RECIPES:
        if recipe.preset == t.preset and recipe.when.miss(t) is None:
            return {r.flag: r.value for r in recipe.rows}, recipe
    flags: dict[str, str] = {}
    for row in RULES:
        if t.preset in row.presets and row.flag not in flags and row.when.miss(t) is None:
            flags[row.flag] = row.value
    return flags, None


def _drop_unmet_requirements(flags: dict[str, str], preset_keys: set[str], notes: list[str]) -> None:
    for row in (*RULES, *(r for recipe in RECIPES for r in recipe.rows)):
        if row.requires and row.flag in preset_keys and flags.get(row.flag) == row.value:
            need_flag, need_value = row.requires
            if flags.get(need_flag) != need_value:
                del flags[row.flag]
                notes.append(f"left out --{row.flag} {row.value}: needs --{need_flag} {need_value}")


def build_flags(spec: TRTEngineSpec, cc: ComputeCapability, architecture: str | None) -> FlagDecision:
    """Preset rows for this target, then spec.build sizes, then spec.build.extraArgs on top."""
    build = spec.build
    t = Target(build.preset, spec.precision, spec.kvCacheDtype, cc, spec.parallelism.tensor, architecture)
    flags, recipe = _preset_flags(t)
    notes = [f"using {recipe.name} verbatim"] if recipe else []
    preset_keys = set(flags)
    for field_name, flag in SIZE_FLAGS:
        value = getattr(build, field_name)
        if value is not None:
            flags[flag] = str(value)
            preset_keys.discard(flag)
    overrides, parse_notes = parse_extra_args(build.extraArgs)
    notes.extend(parse_notes)
    for flag, value in overrides.items():
        if flag in RESERVED_FLAGS:
            notes.append(f"ignored --{flag} from spec.build.extraArgs: the operator sets it")
            continue
        if rejected := check_argv(TRTLLM_BUILD_12, flags_argv({flag: value})):
            notes.append(
                f"left out --{flag} {value} from spec.build.extraArgs: the real parser rejects it "
                f"({rejected[0]}; {TRTLLM_BUILD_12.source.cite()})"
            )
            continue
        flags[flag] = value
        preset_keys.discard(flag)
    _drop_unmet_requirements(flags, preset_keys, notes)
    if recipe is None:
        notes.extend(_note_missing(RULES, t, flags))
    for flag in (overrides.keys() - RESERVED_FLAGS) & flags.keys():
        if problem := limit_violation(flag, flags[flag], t, flags):
            source = f"--{flag} {flags[flag]} from spec.build.extraArgs"
            notes.append(f"{source}: {problem}; trtllm-build will reject or ignore it")
    ifb = [
        f"--{flag} {value}" for flag, value in IFB_DISABLING if flags.get(flag) == value and flag in overrides
    ]
    return FlagDecision(flags=flags, notes=notes, ifb_disabling=ifb, recipe=recipe.name if recipe else None)


def flags_argv(flags: dict[str, str]) -> list[str]:
    """``{"gemm_plugin": "auto", "strip_plan": ""}`` -> ``["--gemm_plugin", "auto", "--strip_plan"]``."""
    argv: list[str] = []
    for flag, value in flags.items():
        argv.append(f"--{flag}")
        if value != "":
            argv.append(value)
    return argv
