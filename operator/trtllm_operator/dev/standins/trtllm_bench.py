"""Stand-in for ``trtllm-bench --model M [--model_path P] throughput ...``.

CLI: the global options of ``tensorrt_llm/commands/bench.py`` (``--model/-m`` required,
``--model_path``, ``--workspace/-w``, ``--log_level``) and, of ``throughput``, the options
``shared/reference/trtllm.md`` names (``--engine_dir --backend --dataset --concurrency --num_requests
--report_json --streaming --max_batch_size --max_num_tokens --tp --pp``). Deviations: ``--dataset``
is required (the real tool can read stdin), ``--backend`` offers only pytorch|tensorrt, and flags are
never abbreviated (click does not abbreviate either). As in the real ``BenchmarkEnvironment``,
``--model`` must be a model NAME, not a path (use ``--model_path`` for a local checkpoint).

Runtime checks: a GPU; for ``--backend tensorrt`` a loadable engine (``_rules.load_runnable_engine``:
enough GPUs, same SM and version, in-flight batching prerequisites) and the real "Engine supports a
max sequence of ..." check against the dataset; for pytorch, ``--tp x --pp`` GPUs and the Hub when no
``--model_path`` is given. Every dataset line is validated like ``InferenceRequest``.

Report: the layout of ``ReportUtility.get_statistics_dict`` in TensorRT-LLM
``tensorrt_llm/bench/dataclasses/reporting.py`` (main, 2025), with ``PercentileStats`` from
``bench/dataclasses/statistics.py`` (p50/p90/p95/p99/minimum/maximum/average) and ``DatasetMetadata``
from ``bench/dataclasses/general.py``::

    engine        model, model_path, engine_dir, version, backend ("TRT" | "Pytorch"), dtype,
                  kv_cache_dtype, quantization (+ max_input_length, max_sequence_length for TRT)
    world_info    tp_size, pp_size, ep_size, world_size, max_batch_size, max_num_tokens,
                  scheduling_policy, kv_cache_percentage, issue_rate
    request_info  num_requests, avg_num_concurrent_requests, avg_input_length, avg_output_length
    performance   total_latency_ms, avg_request_latency_ms, request_throughput_req_s,
                  system_output_throughput_tok_s, system_total_throughput_tok_s,
                  output_throughput_per_user_tok_s, output_throughput_per_gpu_tok_s,
                  request_latency_percentiles_ms{...}
    streaming_metrics (only with --streaming)  token_output_speed_tok_s, avg_ttft_ms, avg_tpot_ms,
                  tpot_percentiles{...}, ttft_percentiles{...}, gen_tps_percentiles{...}
    dataset       isl_stats, osl_stats, seq_len_stats, num_requests, dataset_path, max_isl, max_osl,
                  max_sequence_length, avg_isl, avg_osl, avg_sequence_length

Numbers: a roofline estimate (``trtllm_operator.gpu.perfmodel``) from the GPU (its NVML name), the
checkpoint's quantization and KV-cache dtype, the model's size (its config) and the world size;
overridden by ``TRTLLM_SIM_BENCH`` (a JSON object). Its keys are report leaf names
(``system_output_throughput_tok_s``, ``avg_ttft_ms``...) or section names holding a nested object.
``system_output_throughput_tok_s``, ``avg_ttft_ms``, ``avg_tpot_ms`` and ``avg_num_concurrent_requests``
feed the derivation, so the dependent figures (latencies, request throughput, per-GPU throughput)
stay consistent; throughput
wins when given, otherwise TTFT + TPOT set the request latency. Other keys are written as given.
An unknown key is an error (typos must not pass silently).

Deviation, on purpose: the report has one more top-level section, ``simulation`` (the stand-in's
name, the GPU row and model size the estimate used, and whether either was assumed), and the
summary says SIMULATED. A real trtllm-bench never writes that section: it is how the builder tells
a simulated figure from a measured one (``builder/reports.py``), so nothing downstream can present
a stand-in's number as a hardware measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._artifacts import load_hf_model, read_json, write_json
from trtllm_operator.dev.standins._common import (
    ToolError,
    hub_offline,
    log,
    require_gpus,
    run_tool,
    say,
    sim_version,
    step,
    warn,
)
from trtllm_operator.dev.standins._rules import check_precision, load_runnable_engine
from trtllm_operator.dev.standins.prepare_dataset import execute as prepare_execute
from trtllm_operator.dev.standins.simgpu import SimGPU
from trtllm_operator.gpu import perfmodel
from trtllm_operator.trtllm.cli import to_argparse
from trtllm_operator.trtllm.cli_tables import TABLES, line_of

TOOL: Final = "trtllm-bench"
ENV_BENCH: Final = "TRTLLM_SIM_BENCH"
LOG_LEVELS: Final = ["internal_error", "error", "warning", "info", "verbose", "debug", "trace"]
PRIMARY_KEYS: Final = (
    "system_output_throughput_tok_s",
    "avg_ttft_ms",
    "avg_tpot_ms",
    "avg_num_concurrent_requests",
)
HUB_OFFLINE_ERROR: Final = (
    "Cannot find an appropriate cached snapshot folder for the specified revision on the local disk and "
    "outgoing traffic has been disabled. To enable repo look-ups and downloads online, pass "
    "'local_files_only=False' as input."
)
#: What the ``simulation`` section says produced the numbers (``builder/reports.py`` keys on it).
SIMULATED_TOOL: Final = "trtllm-bench (simulated stand-in)"
# An NVML name the perf table has no row for gets the row of its architecture (min SM, row name).
_FALLBACK_ROWS: Final = ((100, "B200"), (90, "H100 SXM"), (89, "L40S"), (80, "A100 80GB"))
_SPREAD: Final = {"p50": 1.0, "p90": 1.1, "p95": 1.15, "p99": 1.25, "minimum": 0.8, "maximum": 1.3}


def build_parser() -> argparse.ArgumentParser:
    """Exactly the options of the real trtllm-bench at the simulated version (``cli_tables``)."""
    line = line_of(sim_version()) or "1.2"
    return to_argparse(TABLES[line].trtllm_bench, description=__doc__.splitlines()[0])


# --- dataset ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    task_id: int
    input_len: int
    output_len: int


def _field_error(where: str, field: str, problem: str) -> ToolError:
    return ToolError(
        f"1 validation error for InferenceRequest ({where}): {field}: {problem}",
        "pydantic_core._pydantic_core.ValidationError",
    )


def _int_field(record: dict[str, Any], field: str, where: str) -> int:
    if field not in record:
        raise _field_error(where, field, "Field required")
    value = record[field]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _field_error(where, field, f"Input should be a valid integer, got {value!r}")
    return value


def _input_len(record: dict[str, Any], task_id: int, where: str) -> int:
    input_ids = record.get("input_ids", record.get("logits"))
    if input_ids is not None:
        if not isinstance(input_ids, list) or not all(isinstance(t, int) for t in input_ids):
            raise _field_error(where, "input_ids", "Input should be a valid list of integers")
        return len(input_ids)
    prompt = record.get("prompt")
    if prompt is None:
        raise ToolError(f"prompt, input_ids, and turns for task {task_id} are all None.", "ValueError")
    return max(1, math.ceil(len(str(prompt).split()) * 1.3))


def parse_request(line: str, where: str) -> Request:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{where}: {exc}", "json.decoder.JSONDecodeError") from exc
    if not isinstance(record, dict):
        raise _field_error(where, "__root__", "Input should be an object")
    task_id = _int_field(record, "task_id", where)
    output_len = _int_field(record, "output_tokens", where)
    return Request(task_id, _input_len(record, task_id, where), output_len)


def load_dataset(path: Path, num_requests: int) -> list[Request]:
    """Every line validated (as the real loader does), then capped at ``num_requests`` (0 = all)."""
    if not path.is_file():
        raise ToolError(
            f"Invalid value for '--dataset': Path '{path}' does not exist.", "click.exceptions.BadParameter"
        )
    lines = [
        (n, line) for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()
    ]
    requests = [parse_request(line, f"{path}:{n}") for n, line in lines]
    if not requests:
        raise ToolError(f"dataset {path} holds no requests", "ValueError")
    return requests[:num_requests] if num_requests > 0 else requests


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """``PercentileStats.from_iterable``: index ``int(n * q)`` of the sorted values."""
    ordered = sorted(values)
    n = len(ordered)
    return {
        "p50": float(ordered[int(n * 0.50)]),
        "p90": float(ordered[int(n * 0.90)]),
        "p95": float(ordered[int(n * 0.95)]),
        "p99": float(ordered[int(n * 0.99)]),
        "minimum": float(ordered[0]),
        "maximum": float(ordered[-1]),
        "average": float(sum(values)) / n,
    }


def dataset_metadata(requests: Sequence[Request], path: Path) -> dict[str, Any]:
    isl = percentiles([r.input_len for r in requests])
    osl = percentiles([r.output_len for r in requests])
    seq = percentiles([r.input_len + r.output_len for r in requests])
    return {
        "isl_stats": isl,
        "osl_stats": osl,
        "seq_len_stats": seq,
        "num_requests": len(requests),
        "dataset_path": str(path.resolve()),
        "max_isl": int(isl["maximum"]),
        "max_osl": int(osl["maximum"]),
        "max_sequence_length": int(seq["maximum"]),
        "avg_isl": int(isl["average"]),
        "avg_osl": int(osl["average"]),
        "avg_sequence_length": int(seq["average"]),
    }


# --- the system under test -------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What is being benchmarked: the ``engine`` and ``world_info`` facts and the SM."""

    engine: dict[str, Any]
    tp_size: int
    pp_size: int
    max_batch_size: int
    max_num_tokens: int
    quant_algo: str | None
    sm: int
    gpu_name: str = ""
    kv_algo: str | None = None
    model_config: dict[str, Any] | None = None

    @property
    def world_size(self) -> int:
        return self.tp_size * self.pp_size


def _runtime_limit(name: str, requested: int | None, engine_value: int) -> int:
    if requested is None:
        return engine_value
    if requested > engine_value:
        warn(f"Runtime {name} {requested} exceeds the engine's {engine_value}; using {engine_value}.")
        return engine_value
    return requested


def tensorrt_setup(args: argparse.Namespace, gpus: list[SimGPU], max_seq: int) -> Setup:
    if not args.engine_dir:
        raise ToolError("--engine_dir is required with --backend tensorrt", "ValueError")
    engine = load_runnable_engine(Path(args.engine_dir), gpus)
    pretrained, build = engine.pretrained, engine.build
    if max_seq > int(build["max_seq_len"]):
        raise ToolError(
            f"Engine supports a max sequence of {build['max_seq_len']}. Provided dataset contains a maximum "
            f"sequence of {max_seq}. Please rebuild a new engine to support this dataset."
        )
    mapping, quant = pretrained["mapping"], pretrained.get("quantization") or {}
    if (args.tp, args.pp) != (1, 1) and (args.tp, args.pp) != (mapping["tp_size"], mapping["pp_size"]):
        warn("--tp/--pp are ignored with --backend tensorrt: the engine's mapping is used.")
    info = {
        "backend": "TRT",
        "dtype": pretrained.get("dtype"),
        "kv_cache_dtype": quant.get("kv_cache_quant_algo"),
        "quantization": quant.get("quant_algo"),
        "max_input_length": build["max_input_len"],
        "max_sequence_length": build["max_seq_len"],
    }
    return Setup(
        engine=info,
        tp_size=int(mapping["tp_size"]),
        pp_size=int(mapping["pp_size"]),
        max_batch_size=_runtime_limit("max_batch_size", args.max_batch_size, int(build["max_batch_size"])),
        max_num_tokens=_runtime_limit("max_num_tokens", args.max_num_tokens, int(build["max_num_tokens"])),
        quant_algo=quant.get("quant_algo"),
        sm=gpus[0].sm,
        gpu_name=gpus[0].name,
        kv_algo=quant.get("kv_cache_quant_algo"),
        model_config=pretrained,
    )


def _hf_quantization(model_path: Path) -> dict[str, Any]:
    """ModelOpt's ``hf_quant_config.json`` (``{"quantization": {quant_algo, kv_cache_quant_algo}}``)."""
    path = model_path / "hf_quant_config.json"
    if not path.is_file():
        return {}
    quant = read_json(path).get("quantization")
    return quant if isinstance(quant, dict) else {}


def pytorch_setup(args: argparse.Namespace, gpus: list[SimGPU]) -> Setup:
    if args.tp < 1 or args.pp < 1:
        raise ToolError("--tp and --pp must be >= 1", "ValueError")
    if len(gpus) < args.tp * args.pp:
        raise ToolError(f"tp {args.tp} x pp {args.pp} needs {args.tp * args.pp} GPUs, {len(gpus)} visible.")
    dtype, quant, config = None, {}, None
    if args.model_path:
        hf = load_hf_model(args.model_path)
        dtype, quant, config = hf.torch_dtype, _hf_quantization(hf.path), hf.config
        check_precision(gpus[0].sm, quant.get("quant_algo"), quant.get("kv_cache_quant_algo"), dtype or "")
    elif hub_offline():
        raise ToolError(HUB_OFFLINE_ERROR, "huggingface_hub.errors.LocalEntryNotFoundError")
    else:
        step(f"Downloading {args.model} from the Hugging Face Hub (simulated)")
    info = {
        "backend": "Pytorch",
        "dtype": dtype,
        "kv_cache_dtype": quant.get("kv_cache_quant_algo"),
        "quantization": quant.get("quant_algo"),
    }
    return Setup(
        info,
        args.tp,
        args.pp,
        args.max_batch_size or 2048,
        args.max_num_tokens or 8192,
        quant.get("quant_algo"),
        gpus[0].sm,
        gpus[0].name,
        quant.get("kv_cache_quant_algo"),
        config,
    )


# --- the numbers -----------------------------------------------------------------------------------


def load_overrides() -> dict[str, Any]:
    raw = os.environ.get(ENV_BENCH, "").strip()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolError(f"{ENV_BENCH} is not valid JSON: {exc}", "ValueError") from exc
    if not isinstance(data, dict):
        raise ToolError(f"{ENV_BENCH} must be a JSON object", "ValueError")
    return data


def _primary(overrides: dict[str, Any], key: str) -> float | None:
    """A derivation input, given flat or inside any section object."""
    candidates = [overrides.get(key)] + [v.get(key) for v in overrides.values() if isinstance(v, dict)]
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def gpu_row(setup: Setup) -> tuple[perfmodel.GpuSpec, bool]:
    """The perf table's row for the GPU, and whether it was assumed from the architecture."""
    try:
        return perfmodel.gpu_spec(setup.gpu_name), False
    except perfmodel.PerfModelError:
        fallback = next((row for min_sm, row in _FALLBACK_ROWS if setup.sm >= min_sm), None)
        if fallback is None:
            raise ToolError(
                f"stand-in: no simulated performance figures for {setup.gpu_name} (SM {setup.sm})",
                "NotImplementedError",
            ) from None
        return next(spec for spec in perfmodel.GPUS if spec.name == fallback), True


@dataclass(frozen=True)
class Simulated:
    """The roofline estimate behind the default numbers, and what it assumed."""

    estimate: perfmodel.Estimate
    gpu: perfmodel.GpuSpec
    gpu_assumed: bool
    shape: perfmodel.ModelShape

    def section(self) -> dict[str, Any]:
        """The report's ``simulation`` section (absent from a real trtllm-bench report)."""
        return {
            "tool": SIMULATED_TOOL,
            "model": "roofline (trtllm_operator.gpu.perfmodel)",
            "gpu": self.gpu.name,
            "gpu_assumed": self.gpu_assumed,
            "model_params_billions": round(self.shape.params / 1e9, 2),
            "model_shape_assumed": self.shape.assumed,
            "batch": self.estimate.batch,
            "decode_bound": self.estimate.decode_bound,
        }


def simulate(setup: Setup, requests: Sequence[Request], concurrency: int) -> Simulated:
    gpu, assumed = gpu_row(setup)
    shape = perfmodel.shape_from_config(setup.model_config or {})
    n = len(requests)
    workload = perfmodel.Workload(
        isl=sum(r.input_len for r in requests) / n,
        osl=sum(r.output_len for r in requests) / n,
        concurrency=min(n, concurrency if concurrency > 0 else setup.max_batch_size),
        max_batch_size=setup.max_batch_size,
    )
    try:
        found = perfmodel.estimate(gpu, shape, setup.quant_algo, setup.kv_algo, setup.world_size, workload)
    except perfmodel.PerfModelError as exc:
        raise ToolError(f"stand-in: {exc}", "RuntimeError") from exc
    return Simulated(found, gpu, assumed, shape)


def spread(average: float) -> dict[str, float]:
    return {key: round(average * factor, 4) for key, factor in _SPREAD.items()} | {
        "average": round(average, 4)
    }


@dataclass(frozen=True)
class Timing:
    throughput: float  # output tok/s
    total_s: float
    latency_s: float  # average request latency
    ttft_ms: float
    tpot_ms: float
    concurrency: float


def derive_timing(
    setup: Setup,
    requests: Sequence[Request],
    concurrency: int,
    overrides: dict[str, Any],
    sim: perfmodel.Estimate,
) -> Timing:
    """Throughput -> total time -> request latency (Little's law); TTFT/TPOT fill the latency.

    Given TTFT/TPOT are kept verbatim; a request is never faster than TTFT + TPOT x (OSL - 1), so
    such overrides can lengthen the request latency (the throughput, when given, is kept too).
    """
    n = len(requests)
    osl = sum(r.output_len for r in requests) / n
    decode_steps = max(osl - 1, 0)
    given_c = _primary(overrides, "avg_num_concurrent_requests")
    conc = given_c or float(min(n, concurrency if concurrency > 0 else setup.max_batch_size))
    t_given, ttft_given, tpot_given = (_primary(overrides, key) for key in PRIMARY_KEYS[:3])
    if t_given is None and ttft_given is not None and tpot_given is not None:
        latency_s = (ttft_given + tpot_given * decode_steps) / 1000
        total_s = n * latency_s / conc
        return Timing(n * osl / total_s, total_s, latency_s, ttft_given, tpot_given, conc)
    throughput = t_given or sim.output_tok_s
    total_s = n * osl / throughput
    latency_ms = conc * total_s / n * 1000
    scale = 1.0 if t_given is None else sim.output_tok_s / t_given  # slower given -> longer latencies
    ttft = ttft_given if ttft_given is not None else sim.ttft_ms * scale
    tpot = tpot_given if tpot_given is not None else sim.tpot_ms * scale
    latency_ms = max(latency_ms, ttft + tpot * decode_steps)
    return Timing(throughput, total_s, latency_ms / 1000, ttft, tpot, conc)


def performance(timing: Timing, requests: Sequence[Request], world_size: int) -> dict[str, Any]:
    n = len(requests)
    tokens = sum(r.input_len + r.output_len for r in requests)
    osl = sum(r.output_len for r in requests) / n
    return {
        "total_latency_ms": round(timing.total_s * 1000, 4),
        "avg_request_latency_ms": round(timing.latency_s * 1000, 4),
        "request_throughput_req_s": round(n / timing.total_s, 4),
        "system_output_throughput_tok_s": round(timing.throughput, 4),
        "system_total_throughput_tok_s": round(tokens / timing.total_s, 4),
        "output_throughput_per_user_tok_s": round(osl / timing.latency_s, 4),
        "output_throughput_per_gpu_tok_s": round(timing.throughput / world_size, 4),
        "request_latency_percentiles_ms": spread(timing.latency_s * 1000),
    }


def streaming_metrics(timing: Timing) -> dict[str, Any]:
    speed = 1000 / timing.tpot_ms if timing.tpot_ms > 0 else 0.0
    return {
        "token_output_speed_tok_s": round(speed, 4),
        "avg_ttft_ms": round(timing.ttft_ms, 4),
        "avg_tpot_ms": round(timing.tpot_ms, 4),
        "tpot_percentiles": spread(timing.tpot_ms),
        "ttft_percentiles": spread(timing.ttft_ms),
        "gen_tps_percentiles": spread(speed),
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def apply_overrides(report: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Write every override into the report; a key no section knows is an error."""
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(report.get(key), dict):
            _merge(report[key], value)
            continue
        holders = [section for section in report.values() if isinstance(section, dict) and key in section]
        if not holders:
            raise ToolError(f"{ENV_BENCH}: unknown report key {key!r}", "ValueError")
        for section in holders:
            _merge(section, {key: value})


def build_report(args: argparse.Namespace, setup: Setup, requests: Sequence[Request]) -> dict[str, Any]:
    overrides = load_overrides()
    sim = simulate(setup, requests, args.concurrency)
    timing = derive_timing(setup, requests, args.concurrency, overrides, sim.estimate)
    n = len(requests)
    engine = {
        "model": args.model,
        "model_path": str(args.model_path),
        "engine_dir": str(Path(args.engine_dir).resolve()) if args.engine_dir else "None",
        "version": sim_version(),
    } | setup.engine
    report: dict[str, Any] = {
        "engine": engine,
        "world_info": {
            "tp_size": setup.tp_size,
            "pp_size": setup.pp_size,
            "ep_size": 1,
            "world_size": setup.world_size,
            "max_batch_size": setup.max_batch_size,
            "max_num_tokens": setup.max_num_tokens,
            "scheduling_policy": "GUARANTEED_NO_EVICT",
            "kv_cache_percentage": 0.9,
            "issue_rate": round(n / timing.total_s, 4),
        },
        "request_info": {
            "num_requests": n,
            "avg_num_concurrent_requests": round(timing.concurrency, 4),
            "avg_input_length": sum(r.input_len for r in requests) / n,
            "avg_output_length": sum(r.output_len for r in requests) / n,
        },
        "performance": performance(timing, requests, setup.world_size),
        "streaming_metrics": streaming_metrics(timing),
        "dataset": dataset_metadata(requests, Path(args.dataset)),
        "simulation": sim.section(),
    }
    apply_overrides(report, overrides)
    if not args.streaming:
        del report["streaming_metrics"]
    return report


def print_summary(report: dict[str, Any]) -> None:
    """The PERFORMANCE OVERVIEW block of ``ReportUtility.report_statistics``."""
    perf, streaming = report["performance"], report.get("streaming_metrics")
    say("===========================================================")
    say("= PERFORMANCE OVERVIEW ")
    say("===========================================================")
    say(f"SIMULATED by {SIMULATED_TOOL}: a roofline estimate, not a measurement")
    say(f"Request Throughput (req/sec):                     {perf['request_throughput_req_s']:.4f}")
    say(f"Total Output Throughput (tokens/sec):             {perf['system_output_throughput_tok_s']:.4f}")
    say(f"Total Token Throughput (tokens/sec):              {perf['system_total_throughput_tok_s']:.4f}")
    say(f"Total Latency (ms):                               {perf['total_latency_ms']:.4f}")
    say(f"Average request latency (ms):                     {perf['avg_request_latency_ms']:.4f}")
    say(f"Per User Output Throughput [w/ ctx] (tps/user):   {perf['output_throughput_per_user_tok_s']:.4f}")
    say(f"Per GPU Output Throughput (tps/gpu):              {perf['output_throughput_per_gpu_tok_s']:.4f}")
    if streaming:
        say(f"Average time-to-first-token [TTFT] (ms):          {streaming['avg_ttft_ms']:.4f}")
        say(f"Average time-per-output-token [TPOT] (ms):        {streaming['avg_tpot_ms']:.4f}")


def prepare_dataset(args: argparse.Namespace) -> None:
    """``trtllm-bench prepare-dataset`` (1.3+): the tokenizer is --model_path, else the --model name."""
    args.tokenizer, args.stdout = args.model_path or args.model, False
    if args.subcommand != "token-norm-dist":
        raise ToolError(
            f"stand-in: only token-norm-dist is simulated, not {args.subcommand}", "NotImplementedError"
        )
    args.command = args.subcommand
    prepare_execute(args)


def execute(args: argparse.Namespace) -> None:
    if args.command == "prepare-dataset":
        prepare_dataset(args)
        return
    if args.dataset is None:
        raise ToolError("stand-in: --dataset is required (the real tool could read stdin)", "ValueError")
    if Path(args.model).exists():  # BenchmarkEnvironment.verify_model_name, before anything else
        raise ToolError("Model is a file or directory, please provide a model name.", "ValueError")
    gpus = require_gpus()
    log("Preparing to run throughput benchmark...")
    requests = load_dataset(Path(args.dataset), args.num_requests)
    max_seq = max(r.input_len + r.output_len for r in requests)
    step(f"Loaded {len(requests)} requests from {args.dataset} (max sequence {max_seq})")
    setup = tensorrt_setup(args, gpus, max_seq) if args.backend == "tensorrt" else pytorch_setup(args, gpus)
    step("Running warmup.")
    step(f"Running {len(requests)} requests (concurrency {args.concurrency}, streaming {args.streaming})")
    report = build_report(args, setup, requests)
    log("Benchmark done. Reporting results...")
    if args.report_json:
        log(f"Writing report to '{args.report_json}'.")
        write_json(Path(args.report_json), report)
    print_summary(report)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_tool(TOOL, lambda: execute(args))
