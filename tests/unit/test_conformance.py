"""Conformance: every argv we render parses with the real TensorRT-LLM parser of the image's version.

Renders every sample TRTEngine and a matrix of specs (precision x backend x GPU x TP, with the
benchmark and accuracy gates), plus the trtllm-serve argv of each, and parses every TensorRT-LLM
command line with ``trtllm/cli_tables.py``. Then checks, flag by flag, that every stand-in's parser
is built from the same tables.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from trtllm_operator.api.engine import EngineStatus, TRTEngine, TRTEngineSpec
from trtllm_operator.api.service import InferenceServiceSpec
from trtllm_operator.dev.standins import (
    convert_checkpoint,
    prepare_dataset,
    quantize,
    trtllm_bench,
    trtllm_build,
    trtllm_eval,
)
from trtllm_operator.gpu import ComputeCapability, compatibility_problems
from trtllm_operator.gpu.knowledge import parse_cc
from trtllm_operator.reconcile.placement import Placement
from trtllm_operator.render.conformance import argv_problems, plan_problems
from trtllm_operator.render.names import build_config_hash
from trtllm_operator.render.plan import RenderConfig, render_plan
from trtllm_operator.render.serving import serve_args
from trtllm_operator.trtllm.cli import Command, check_argv, to_argparse
from trtllm_operator.trtllm.cli_tables import (
    CONVERT_12,
    CONVERT_12_BY_FAMILY,
    CONVERT_GEMMA_12,
    CONVERT_PHI_12,
    CONVERT_QWEN_12,
    EVAL_TASKS,
    PREPARE_DATASET_12,
    QUANTIZE_12,
    TABLES,
    TRTLLM_BUILD_12,
    tables_for,
)

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "samples"
PRECISIONS = ("fp16", "bf16", "fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4", "int8_wo", "int4_wo")
BACKENDS = {
    "tensorrt": "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
    "pytorch": "nvcr.io/nvidia/tensorrt-llm/release:1.3.0",
}
GPUS = {
    "A100": ComputeCapability(8, 0),
    "L40S": ComputeCapability(8, 9),
    "H100": ComputeCapability(9, 0),
    "B200": ComputeCapability(10, 0),
}
TPS = (1, 2, 4, 8)


def _spec(precision: str, backend: str, cc: ComputeCapability, tp: int) -> dict[str, Any]:
    return {
        "model": {"source": "hf://meta-llama/Llama-3.1-8B-Instruct", "architecture": "LlamaForCausalLM"},
        "image": BACKENDS[backend],
        "backend": backend,
        "precision": precision,
        "parallelism": {"tensor": tp},
        "target": {"computeCapability": str(cc)},
        "storage": {"existingClaim": "engines"},
        "validation": {
            "benchmark": {"inputLength": 128, "outputLength": 128},
            "accuracy": {"tasks": [{"name": "mmlu", "baseline": {"value": 0.6}, "maxDrop": 0.02}]},
        },
    }


def _render(spec: TRTEngineSpec, cc: ComputeCapability) -> Any:
    placement = Placement(cc, None, spec.parallelism.tensor * spec.parallelism.pipeline, 1, "test")
    return render_plan("ml", "m", spec, 1, build_config_hash(spec), placement, RenderConfig())


def _serve_problems(spec: TRTEngineSpec, cc: ComputeCapability) -> list[str]:
    engine = EngineStatus(revision=1, uri="pvc://engines/engines/m/abc", computeCapability=str(cc))
    argv = serve_args(InferenceServiceSpec.model_validate({"engineRef": {"name": "m"}}), "m", spec, engine)
    return argv_problems(argv, tables_for(spec.backend, spec.image))


MATRIX = [
    (p, b, g, tp)
    for p, b, (g, cc), tp in itertools.product(PRECISIONS, BACKENDS, GPUS.items(), TPS)
    if not compatibility_problems(p, "auto", b, cc)
]


def test_the_matrix_is_not_empty() -> None:
    assert len(MATRIX) > 60
    assert {b for _, b, _, _ in MATRIX} == set(BACKENDS)


@pytest.mark.parametrize(("precision", "backend", "gpu", "tp"), MATRIX)
def test_every_rendered_argv_parses(precision: str, backend: str, gpu: str, tp: int) -> None:
    spec = TRTEngineSpec.model_validate(_spec(precision, backend, GPUS[gpu], tp))
    plan = _render(spec, GPUS[gpu])
    assert plan_problems(plan) == []
    assert _serve_problems(spec, GPUS[gpu]) == []


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("trtengine-*.yaml")), ids=lambda p: p.name)
def test_every_sample_renders_argv_the_real_parsers_accept(path: Path) -> None:
    engine = TRTEngine.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    spec = engine.spec
    cc = (
        parse_cc(spec.target.computeCapability)
        if spec.target and spec.target.computeCapability
        else ComputeCapability(9, 0)
    )
    plan = _render(spec, cc)
    assert [s.name for s in plan.steps if s.name in ("benchmark", "accuracy", "build", "quantize")]
    assert plan_problems(plan) == []
    assert _serve_problems(spec, cc) == []


def test_extra_args_the_real_parser_rejects_are_left_out_with_a_note() -> None:
    spec = TRTEngineSpec.model_validate(
        {
            **_spec("fp8", "tensorrt", GPUS["H100"], 1),
            "build": {
                "extraArgs": ["--gemm_plugin", "float64", "--tokens_per_block", "64", "--no_such_flag", "1"]
            },
        }
    )
    plan = _render(spec, GPUS["H100"])
    assert plan.build_flags["tokens_per_block"] == "64"  # a real flag the old stand-in refused
    assert "no_such_flag" not in plan.build_flags
    assert plan.build_flags.get("gemm_plugin") != "float64"
    assert any("--no_such_flag" in n and "rejects" in n for n in plan.notes)
    assert plan_problems(plan) == []


class TestChecker:
    def test_humaneval_is_no_such_command(self) -> None:
        argv = ["--model", "/e", "--backend", "tensorrt", "humaneval"]
        problems = check_argv(TABLES["1.2"].trtllm_eval, argv)
        assert problems
        assert "No such command 'humaneval'" in problems[0]
        assert "mmlu" in problems[0]

    def test_tensorrt_backend_is_gone_in_1_3(self) -> None:
        assert check_argv(TABLES["1.3"].trtllm_eval, ["--model", "/e", "--backend", "tensorrt", "mmlu"])
        assert TABLES["1.3"].trtllm_build is None

    def test_dataset_script_has_stdout_only_in_1_2(self) -> None:
        norm = [
            "token-norm-dist",
            "--num-requests",
            "1",
            "--input-mean",
            "1",
            "--input-stdev",
            "0",
            "--output-mean",
            "1",
            "--output-stdev",
            "0",
        ]
        assert check_argv(PREPARE_DATASET_12, ["--stdout", "--tokenizer", "t", *norm]) == []
        bench = ["--model", "m", "prepare-dataset", "--stdout", *norm]
        assert check_argv(TABLES["1.3"].trtllm_bench, bench)
        assert (
            check_argv(
                TABLES["1.3"].trtllm_bench, ["--model", "m", "prepare-dataset", "--output", "o", *norm]
            )
            == []
        )

    def test_bad_values_are_named(self) -> None:
        assert check_argv(TRTLLM_BUILD_12, ["--max_batch_size", "many"]) == [
            "trtllm-build: argument --max_batch_size: invalid int value: 'many'"
        ]
        assert check_argv(TRTLLM_BUILD_12, ["--gemm_plugin", "float32", "--paged_kv_cache", "enable"]) == []
        assert check_argv(QUANTIZE_12, ["--qformat", "int3"])


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings} - {"-h", "--help"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _table_options(cmd: Command) -> set[str]:
    return {n for o in cmd.options for n in o.names}


def _agree(parser: argparse.ArgumentParser, cmd: Command) -> None:
    assert _option_strings(parser) == _table_options(cmd), cmd.prog
    subs = _subparsers(parser)
    assert sorted(subs) == sorted(cmd.sub_names), cmd.prog
    for sub in cmd.subcommands:
        _agree(subs[sub.prog.rsplit(" ", 1)[-1]], sub)


@pytest.mark.parametrize(
    ("module", "table"),
    [
        (trtllm_build, TRTLLM_BUILD_12),
        (quantize, QUANTIZE_12),
        (prepare_dataset, PREPARE_DATASET_12),
        (convert_checkpoint, CONVERT_12),
    ],
    ids=["trtllm-build", "quantize.py", "prepare_dataset.py", "convert_checkpoint.py"],
)
def test_standin_agrees_with_the_table_flag_by_flag(module: Any, table: Command) -> None:
    _agree(module.build_parser(), table)


@pytest.mark.parametrize("version", ["1.2.0", "1.3.0"])
def test_standin_bench_agrees_per_version(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRTLLM_SIM_VERSION", version)
    _agree(trtllm_bench.build_parser(), TABLES["1.2" if version.startswith("1.2") else "1.3"].trtllm_bench)


def test_admission_task_enum_is_the_tables_tasks_and_perplexity() -> None:
    from typing import get_args

    from trtllm_operator.api.engine import AccuracyTaskName

    tasks = {t for line in TABLES.values() for t in line.eval_tasks}
    assert set(get_args(AccuracyTaskName)) == tasks | {"perplexity"}
    assert "humaneval" not in get_args(AccuracyTaskName)


@pytest.mark.parametrize("version", ["1.2.0", "1.3.0"])
def test_standin_eval_agrees_per_version(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Global options, the task list and every task's options, flag by flag, at each line."""
    monkeypatch.setenv("TRTLLM_SIM_VERSION", version)
    line = "1.2" if version.startswith("1.2") else "1.3"
    table = TABLES[line].trtllm_eval
    _agree(trtllm_eval.build_parser(), table)
    assert table.sub_names == list(EVAL_TASKS[line])


EVAL_CASES = [
    (backend, image, task)
    for backend, image in (
        ("tensorrt", BACKENDS["tensorrt"]),
        ("pytorch", BACKENDS["pytorch"]),
        ("pytorch", "nvcr.io/nvidia/tensorrt-llm/release:1.2.0"),
    )
    for task in TABLES["1.2" if image.endswith("1.2.0") else "1.3"].eval_tasks
]


@pytest.mark.parametrize(("backend", "image", "task"), EVAL_CASES)
def test_every_rendered_trtllm_eval_argv_parses(backend: str, image: str, task: str) -> None:
    """The accuracy step of each task, with a dataset and a sample count, parses at the image's line."""
    spec = _spec("fp8", backend, GPUS["H100"], 1)
    spec["image"] = image
    spec["validation"]["accuracy"] = {
        "tasks": [
            {
                "name": task,
                "dataset": "pvc://data/evals/" + task,
                "numSamples": 64,
                "baseline": {"value": 0.5},
                "maxDrop": 0.05,
            }
        ]
    }
    plan = _render(TRTEngineSpec.model_validate(spec), GPUS["H100"])
    accuracy = [s for s in plan.steps if s.name == "accuracy"]
    assert len(accuracy) == 1
    assert accuracy[0].argv[0] == "trtllm-eval"
    assert accuracy[0].argv.index(task) > accuracy[0].argv.index("--model")
    assert "--num_samples" in accuracy[0].argv
    assert "--dataset_path" in accuracy[0].argv
    assert plan_problems(plan) == []


class TestEvalTable:
    def test_unknown_option_task_and_value_are_refused(self) -> None:
        cmd = TABLES["1.2"].trtllm_eval
        base = ["--model", "/e", "--tokenizer", "/t"]
        assert check_argv(cmd, [*base, "gsm8k", "--fewshot_as_multiturn", "--apply_chat_template"]) == []
        assert check_argv(cmd, [*base, "gsm8k", "--num_fewshot", "3"])  # mmlu's, not gsm8k's
        assert check_argv(cmd, [*base, "cnn_dailymail", "--check_accuracy"])  # gone from cnn_dailymail
        assert check_argv(cmd, [*base, "mmlu", "--num_samples", "ten"])
        assert check_argv(cmd, [*base, "mmmu"])
        assert check_argv(cmd, ["mmlu"])  # --model is required

    def test_1_3_adds_mmmu_thinking_and_chat_template_kwargs(self) -> None:
        cmd = TABLES["1.3"].trtllm_eval
        assert (
            check_argv(
                cmd, ["--model", "m", "--disable_kv_cache_reuse", "mmmu", "--chat_template_kwargs", "{}"]
            )
            == []
        )
        assert check_argv(cmd, ["--model", "m", "gpqa_diamond", "--enable_thinking"]) == []
        assert check_argv(TABLES["1.2"].trtllm_eval, ["--model", "m", "gpqa_diamond", "--enable_thinking"])
        assert check_argv(TABLES["1.2"].trtllm_eval, ["--model", "m", "--disable_kv_cache_reuse", "mmlu"])

    def test_every_task_cites_its_source(self) -> None:
        for line in TABLES.values():
            for sub in line.trtllm_eval.subcommands:
                assert sub.source.path.startswith("tensorrt_llm/evaluate/"), sub.prog
                assert sub.source.commit, sub.prog
                assert sub.source.commit != "unverified", sub.prog


def test_convert_checkpoint_table_is_the_real_parser_not_just_what_we_render() -> None:
    ok = ["--model_dir", "m", "--workers", "4", "--load_by_shard", "--use_parallel_embedding"]
    assert check_argv(CONVERT_12, [*ok, "--embedding_sharding_dim", "1", "-sq", "0.5", "--per_token"]) == []
    assert check_argv(CONVERT_12, ["--model_dir", "m", "--qformat", "fp8"])  # quantize.py's, not this one's
    assert check_argv(CONVERT_12, ["--model_dir", "m", "--workers", "two"])
    assert check_argv(CONVERT_12, ["--model_dir", "m", "--weight_only_precision", "int3"])
    assert check_argv(CONVERT_12, ["--model_dir", "m", "--embedding_sharding_dim", "2"])
    assert TABLES["1.3"].convert_checkpoint is None


# --- convert_checkpoint.py: one parser per family -----------------------------------------------------

CONVERT_ARCHS = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "llama",
    "MixtralForCausalLM": "llama",
    "Qwen2ForCausalLM": "qwen",
    "GemmaForCausalLM": "gemma",
    "Gemma2ForCausalLM": "gemma",
    "Phi3ForCausalLM": "phi",
}


@pytest.mark.parametrize(("architecture", "tp"), list(itertools.product(CONVERT_ARCHS, (1, 4))))
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_every_rendered_convert_argv_parses_with_its_family_table(
    architecture: str, tp: int, precision: str
) -> None:
    spec = _spec(precision, "tensorrt", GPUS["H100"], tp)
    spec["model"]["architecture"] = architecture
    spec["kvCacheDtype"] = "auto"
    plan = _render(TRTEngineSpec.model_validate(spec), GPUS["H100"])
    convert = [s for s in plan.steps if s.name == "convert"]
    assert len(convert) == 1
    script = convert[0].argv[1]
    family = CONVERT_ARCHS[architecture]
    assert script.endswith(f"/models/core/{family}/convert_checkpoint.py")
    assert check_argv(CONVERT_12_BY_FAMILY[family], convert[0].argv[2:]) == []
    assert plan_problems(plan) == []


def test_a_convert_argv_is_checked_with_its_own_family_table() -> None:
    """llama's flags are not gemma's: the path picks the table, and a script upstream lacks is refused."""
    tables = TABLES["1.2"]
    llama_argv = ["--model_dir", "m", "--output_dir", "o", "--tp_size", "2", "--pp_size", "1"]
    root = "/app/tensorrt_llm/examples/models/core"
    assert argv_problems(["python3", f"{root}/llama/convert_checkpoint.py", *llama_argv], tables) == []
    gemma = argv_problems(["python3", f"{root}/gemma/convert_checkpoint.py", *llama_argv], tables)
    assert "unrecognized arguments: --tp_size" in gemma[0]
    phi = argv_problems(
        ["python3", f"{root}/phi/convert_checkpoint.py", *llama_argv, "--load_by_shard"], tables
    )
    assert phi == ["convert_checkpoint.py: unrecognized arguments: --load_by_shard"]
    mixtral = argv_problems(["python3", f"{root}/mixtral/convert_checkpoint.py", *llama_argv], tables)
    assert mixtral
    assert "does not exist" in mixtral[0]


@pytest.mark.parametrize("family", sorted(CONVERT_12_BY_FAMILY))
def test_standin_convert_agrees_with_its_family_table_flag_by_flag(family: str) -> None:
    _agree(convert_checkpoint.build_parser(family), CONVERT_12_BY_FAMILY[family])


@pytest.mark.parametrize(
    ("script", "family"),
    [
        ("/app/tensorrt_llm/examples/models/core/gemma/convert_checkpoint.py", "gemma"),
        ("/app/tensorrt_llm/examples/models/core/qwen/convert_checkpoint.py", "qwen"),
        ("hack/standins/bin/convert_checkpoint.py", "llama"),
    ],
)
def test_standin_picks_the_table_by_its_path(script: str, family: str) -> None:
    assert convert_checkpoint.family_of(script) == family


def test_family_tables_differ_where_upstream_does() -> None:
    assert check_argv(CONVERT_QWEN_12, ["--output_dir", "o"]) == [
        "convert_checkpoint.py: the following arguments are required: --model_dir"
    ]
    assert check_argv(CONVERT_QWEN_12, ["--model_dir", "m", "--weight_only_precision", "int8_gptq"]) == []
    assert check_argv(CONVERT_PHI_12, ["--model_dir", "m", "--weight_only_precision", "int4_gptq"])
    gemma = ["--ckpt-type", "hf", "--model-dir", "m", "--output-model-dir", "o", "--world-size", "2"]
    assert check_argv(CONVERT_GEMMA_12, [*gemma, "--use-weight-only-with-precision", "w4a8_awq", "-kv"]) == []
    assert check_argv(CONVERT_GEMMA_12, ["--ckpt-type", "flax", "--model_dir", "m", "--output_dir", "o"])
    assert check_argv(CONVERT_GEMMA_12, ["--model_dir", "m"]) == [
        "convert_checkpoint.py: the following arguments are required: --output-model-dir"
    ]
    # gemma's --weight_only_precision takes exactly one value (no nargs='?' there)
    assert check_argv(CONVERT_GEMMA_12, [*gemma, "--weight_only_precision"])


@pytest.mark.parametrize("table", [CONVERT_12, CONVERT_QWEN_12, CONVERT_PHI_12], ids=["llama", "qwen", "phi"])
def test_weight_only_precision_value_is_optional(table: Command) -> None:
    """nargs='?', const='int8': a bare flag is int8, before another flag or at the end."""
    base = ["--model_dir", "m", "--use_weight_only"]
    assert check_argv(table, [*base, "--weight_only_precision"]) == []
    assert check_argv(table, [*base, "--weight_only_precision", "--tp_size", "2"]) == []
    assert check_argv(table, [*base, "--weight_only_precision", "int4"]) == []
    assert check_argv(table, [*base, "--weight_only_precision", "int3"])
    parser = to_argparse(table)
    assert parser.parse_args([*base, "--weight_only_precision"]).weight_only_precision == "int8"
    assert parser.parse_args([*base, "--weight_only_precision", "int4"]).weight_only_precision == "int4"
    assert parser.parse_args(base).weight_only_precision == "int8"
