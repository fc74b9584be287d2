"""The TensorRT-LLM stand-ins (``hack/standins/bin/*``), run as real subprocesses.

trtllm-bench report shape (mirrors TensorRT-LLM ``tensorrt_llm/bench/dataclasses/reporting.py``,
``ReportUtility.get_statistics_dict``): the report is NESTED, not flat --

* ``engine``: model, model_path, engine_dir, version, backend, dtype, kv_cache_dtype, quantization
  (+ max_input_length, max_sequence_length for the TensorRT backend);
* ``world_info``: tp_size, pp_size, ep_size, world_size, max_batch_size, max_num_tokens, ...;
* ``request_info``: num_requests, avg_num_concurrent_requests, avg_input_length, avg_output_length;
* ``performance``: total_latency_ms, avg_request_latency_ms, request_throughput_req_s,
  system_output_throughput_tok_s, system_total_throughput_tok_s, output_throughput_per_user_tok_s,
  output_throughput_per_gpu_tok_s, request_latency_percentiles_ms;
* ``streaming_metrics`` (only with ``--streaming``): token_output_speed_tok_s, avg_ttft_ms,
  avg_tpot_ms, tpot_percentiles, ttft_percentiles, gen_tps_percentiles;
* ``dataset``: isl_stats, osl_stats, seq_len_stats, num_requests, max_isl, avg_osl, ...

Every percentile block holds p50, p90, p95, p99, minimum, maximum and average.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit.builder_support import A100, B200, BIN, GPU, H100, L40S, load_shim
from trtllm_operator.builder.reports import ScoreScanner
from trtllm_operator.dev.standins import SHIM_DIR, standin_env
from trtllm_operator.dev.standins.simgpu import (
    default_uuid,
    load_sim_gpus,
    sim_env_for_node_labels,
    sim_gpus_for_node_labels,
)
from trtllm_operator.trtllm.cli_tables import TABLES

_SCRUBBED = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH")


def run(
    tool: str, *args: str | Path, gpus: list[dict[str, Any]] | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run one stand-in the way the builder does: its executable, a clean TRTLLM_SIM_* environment."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRTLLM_SIM_") and k not in _SCRUBBED}
    environ["TRTLLM_SIM_GPUS"] = json.dumps([H100] if gpus is None else gpus)
    environ.update(env)
    return subprocess.run(
        [sys.executable, str(BIN / tool), *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def last_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, f"expected exit 1, got {result.returncode}: {result.stdout}{result.stderr}"
    return result.stderr.strip().splitlines()[-1]


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("standins")


@pytest.fixture(scope="module")
def model(work: Path) -> Path:
    path = work / "llama"
    path.mkdir()
    config = {
        "architectures": ["LlamaForCausalLM"],
        "torch_dtype": "bfloat16",
        "num_hidden_layers": 4,
        "max_position_embeddings": 4096,
        "vocab_size": 1000,
    }
    (path / "config.json").write_text(json.dumps(config))
    return path


def quantize(model: Path, out: Path, *args: str, gpus: list[dict[str, Any]] | None = None) -> Path:
    ok(run("quantize.py", "--model_dir", model, "--output_dir", out, *args, gpus=gpus))
    return out


@pytest.fixture(scope="module")
def fp8_tp4(model: Path, work: Path) -> Path:
    return quantize(model, work / "fp8-tp4", "--qformat", "fp8", "--kv_cache_dtype", "fp8", "--tp_size", "4")


@pytest.fixture(scope="module")
def fp8_tp1(model: Path, work: Path) -> Path:
    return quantize(model, work / "fp8-tp1", "--qformat", "fp8", "--kv_cache_dtype", "fp8")


@pytest.fixture(scope="module")
def engine_tp4(fp8_tp4: Path, work: Path) -> Path:
    out = work / "engine-tp4"
    flags = ["--reduce_fusion", "enable", "--user_buffer", "enable", "--gemm_swiglu_plugin", "fp8"]
    ok(
        run(
            "trtllm-build",
            "--checkpoint_dir",
            fp8_tp4,
            "--output_dir",
            out,
            *flags,
            "--max_batch_size",
            "512",
        )
    )
    return out


NORM_DIST = (
    "token-norm-dist --input-mean 16 --output-mean 8 --input-stdev 0 --output-stdev 0 --num-requests 5"
)
TOKENIZER = "meta-llama/Llama-3.3-70B-Instruct"


@pytest.fixture(scope="module")
def dataset(work: Path) -> Path:
    result = ok(run("prepare_dataset.py", "--tokenizer", TOKENIZER, "--stdout", *NORM_DIST.split()))
    path = work / "dataset.jsonl"
    path.write_text(result.stdout)
    return path


def bench(engine: Path, dataset: Path, *extra: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """trtllm-bench throughput on the TensorRT backend; four simulated H100s unless ``gpus`` (JSON) says."""
    gpus: list[GPU] = json.loads(env.pop("gpus")) if "gpus" in env else [H100] * 4
    args: list[str | Path] = ["--model", TOKENIZER, "throughput", "--engine_dir", engine]
    args += ["--backend", "tensorrt", "--dataset", dataset]
    return run("trtllm-bench", *args, *extra, gpus=gpus, **env)


# --- argument parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tool", "args", "said"),
    [
        ("quantize.py", ["--model_dir", "m", "--qformatt", "fp8"], "unrecognized arguments: --qformatt"),
        ("convert_checkpoint.py", ["--model_dir", "m", "--tp", "2"], "unrecognized arguments: --tp"),
        ("trtllm-build", ["--checkpoint_dir", "c", "--max_batchsize", "8"], "unrecognized arguments"),
        # abbreviations are rejected, never guessed
        ("trtllm-build", ["--checkpoint", "c"], "unrecognized arguments: --checkpoint"),
        # click CLIs: click's wording, same exit status
        (
            "trtllm-bench",
            ["--model", "m", "throughput", "--dataset", "d", "--concurency", "4"],
            "Error: No such option: --concurency",
        ),
        ("trtllm-eval", ["--model", "m", "gsm8k", "--dataset", "d"], "Error: No such option: --dataset"),
        (
            "trtllm-eval",
            ["--model", "m", "cnn_dailymail", "--check_accuracy"],
            "No such option: --check_accuracy",
        ),
        ("trtllm-eval", ["gsm8k"], "Error: Missing option '--model'."),
        (
            "prepare_dataset.py",
            [
                "--tokenizer",
                "t",
                "--std-out",
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
            ],
            "Error: No such option: --std-out",
        ),
    ],
)
def test_unknown_flag_fails_like_the_real_parser(tool: str, args: list[str], said: str) -> None:
    result = run(tool, *args)
    assert result.returncode == 2
    assert said in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("tool", "args", "said"),
    [
        ("quantize.py", ["--model_dir", "m", "--qformat", "fp4"], "invalid choice: 'fp4'"),
        (
            "trtllm-build",
            ["--checkpoint_dir", "c", "--gemm_swiglu_plugin", "bfloat16"],
            "invalid choice: 'bfloat16'",
        ),
        ("trtllm-build", ["--checkpoint_dir", "c", "--kv_cache_type", "pagedd"], "invalid choice: 'pagedd'"),
        ("trtllm-eval", ["--model", "m", "humaneval"], "Error: No such command 'humaneval'."),
        ("trtllm-eval", ["--model", "m", "mmmu"], "Error: No such command 'mmmu'."),  # 1.3 only
        (
            "trtllm-eval",
            ["--model", "m", "--backend", "trt", "mmlu"],
            "Error: Invalid value for '--backend': 'trt' is not one of 'pytorch', 'tensorrt'.",
        ),
    ],
)
def test_bad_choice_fails_like_the_real_parser(tool: str, args: list[str], said: str) -> None:
    result = run(tool, *args)
    assert result.returncode == 2
    assert said in result.stderr


def test_eval_tasks_and_options_follow_the_simulated_version() -> None:
    assert (
        "No such command 'mmmu'"
        in run("trtllm-eval", "--model", "m", "mmmu", TRTLLM_SIM_VERSION="1.2.0").stderr
    )
    on_13 = run("trtllm-eval", "--model", "m", "--backend", "tensorrt", "mmmu", TRTLLM_SIM_VERSION="1.3.0")
    assert on_13.returncode == 2
    assert "Invalid value for '--backend': 'tensorrt' is not one of 'pytorch'." in on_13.stderr
    thinking = ["--model", "m", "gpqa_main", "--enable_thinking"]
    assert (
        "No such option: --enable_thinking"
        in run("trtllm-eval", *thinking, TRTLLM_SIM_VERSION="1.2.0").stderr
    )
    assert "No such option" not in run("trtllm-eval", *thinking, TRTLLM_SIM_VERSION="1.3.0").stderr


# --- quantize.py ------------------------------------------------------------------------------------


def test_quantize_fp8_writes_fp8_checkpoint_with_a_rank_file_per_rank(fp8_tp4: Path) -> None:
    config = load(fp8_tp4 / "config.json")
    assert config["architecture"] == "LlamaForCausalLM"
    assert config["dtype"] == "bfloat16"  # --dtype auto takes the model's torch_dtype
    assert config["quantization"] == {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}
    assert config["mapping"] == {"world_size": 4, "tp_size": 4, "pp_size": 1, "cp_size": 1}
    assert config["calibration"] == {
        "dataset": "cnn_dailymail",
        "size": 512,
        "max_seq_length": 512,
        "sha256": None,
    }
    ranks = sorted(p.name for p in fp8_tp4.glob("rank*.safetensors"))
    assert ranks == [f"rank{r}.safetensors" for r in range(4)]
    blob = (fp8_tp4 / "rank3.safetensors").read_bytes()
    (length,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + length])
    assert header["__metadata__"]["rank"] == "3"
    assert header["__metadata__"]["quant_algo"] == "FP8"
    assert len(blob) == 8 + length + header["weights"]["data_offsets"][1]
    assert (fp8_tp4 / "rank0.safetensors").read_bytes() != blob


@pytest.mark.parametrize(
    ("gpu", "args", "message"),
    [
        (A100, ["--qformat", "fp8"], "Networks with FP8 precision require hardware with FP8 support."),
        (A100, ["--qformat", "int8_sq", "--kv_cache_dtype", "fp8"], "require hardware with FP8 support"),
        (H100, ["--qformat", "nvfp4"], "FP4 Gemm not supported before Blackwell"),
    ],
)
def test_quantize_rejects_precision_the_gpu_lacks(
    model: Path, tmp_path: Path, gpu: dict[str, Any], args: list[str], message: str
) -> None:
    result = run("quantize.py", "--model_dir", model, "--output_dir", tmp_path / "out", *args, gpus=[gpu])
    assert result.returncode == 1
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


def test_quantize_without_gpu_fails_like_the_real_script(model: Path, tmp_path: Path) -> None:
    result = run("quantize.py", "--model_dir", model, "--output_dir", tmp_path / "out", gpus=[])
    assert last_error(result) == "OSError: GPU is required for inference."


def test_quantize_caps_awq_calibration_at_32(model: Path, tmp_path: Path) -> None:
    result = ok(run("quantize.py", "--model_dir", model, "--output_dir", tmp_path, "--qformat", "int4_awq"))
    assert "Using calib_size=32 instead" in result.stdout
    config = load(tmp_path / "config.json")
    assert config["calibration"]["size"] == 32
    assert config["quantization"]["quant_algo"] == "W4A16_AWQ"
    assert config["quantization"]["group_size"] == 128


def test_quantize_hashes_the_local_calibration_samples_it_used(model: Path, tmp_path: Path) -> None:
    calib = tmp_path / "calib"
    (calib / "data").mkdir(parents=True)
    (calib / "a.txt").write_text("first line\n\nsecond line\n")
    (calib / "data" / "b.jsonl").write_text('{"text": "third"}\n{"text": "fourth"}\n')
    out = tmp_path / "ckpt"
    args = ["--qformat", "fp8", "--calib_dataset", str(calib), "--calib_size", "3"]
    ok(run("quantize.py", "--model_dir", model, "--output_dir", out, *args, HF_HUB_OFFLINE="1"))
    expected = hashlib.sha256(b"first line\0second line\0third\0").hexdigest()
    assert load(out / "config.json")["calibration"] == {
        "dataset": str(calib),
        "size": 3,
        "max_seq_length": 512,
        "sha256": expected,
    }


def test_quantize_named_dataset_needs_the_hub(model: Path, tmp_path: Path) -> None:
    result = run(
        "quantize.py", "--model_dir", model, "--output_dir", tmp_path, "--qformat", "fp8", HF_HUB_OFFLINE="1"
    )
    assert last_error(result).startswith("ConnectionError: Couldn't reach 'cnn_dailymail' on the Hub")


def test_quantize_explains_a_missing_model_config(tmp_path: Path) -> None:
    result = run("quantize.py", "--model_dir", tmp_path, "--output_dir", tmp_path / "out")
    assert last_error(result) == f"OSError: {tmp_path} does not appear to have a file named config.json."


def test_convert_checkpoint_writes_an_unquantized_checkpoint(model: Path, tmp_path: Path) -> None:
    ok(
        run(
            "convert_checkpoint.py",
            "--model_dir",
            model,
            "--output_dir",
            tmp_path,
            "--dtype",
            "float16",
            "--pp_size",
            "2",
        )
    )
    config = load(tmp_path / "config.json")
    assert config["quantization"] == {"quant_algo": None, "kv_cache_quant_algo": None}
    assert config["dtype"] == "float16"
    assert config["mapping"]["world_size"] == 2
    assert {p.name for p in tmp_path.glob("rank*")} == {"rank0.safetensors", "rank1.safetensors"}


def family_script(tmp_path: Path, family: str) -> Path:
    """The stand-in linked where the dev cluster links it: examples/models/core/<family>/."""
    path = tmp_path / "examples" / "models" / "core" / family / "convert_checkpoint.py"
    path.parent.mkdir(parents=True)
    path.symlink_to(BIN / "convert_checkpoint.py")
    return path


def run_script(script: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRTLLM_SIM_") and k not in _SCRUBBED}
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
    )


def test_convert_checkpoint_takes_its_family_parser_from_its_path(model: Path, tmp_path: Path) -> None:
    gemma = family_script(tmp_path, "gemma")
    out = tmp_path / "ckpt"
    ok(run_script(gemma, "--ckpt-type", "hf", "--model_dir", model, "--output_dir", out, "--world-size", "2"))
    assert load(out / "config.json")["mapping"]["world_size"] == 2
    refused = run_script(gemma, "--model_dir", model, "--output_dir", out, "--tp_size", "2")
    assert refused.returncode == 2
    assert "unrecognized arguments: --tp_size 2" in refused.stderr
    no_type = run_script(gemma, "--model_dir", model, "--output_dir", out)
    assert last_error(no_type) == "KeyError: None"  # CKPT_PARSER[args.ckpt_type] with no --ckpt-type
    phi = family_script(tmp_path, "phi")
    assert last_error(run_script(phi, "--model_dir", model, "--pp_size", "2")) == (
        "AssertionError: Pipeline parallelism is not supported."
    )


# --- trtllm-build -----------------------------------------------------------------------------------


def plugins_of(engine: Path) -> dict[str, Any]:
    value: dict[str, Any] = load(engine / "config.json")["build_config"]["plugin_config"]
    return value


def test_build_engine_config_layout(engine_tp4: Path, fp8_tp4: Path) -> None:
    config = load(engine_tp4 / "config.json")
    assert set(config) == {"version", "pretrained_config", "build_config"}
    assert config["version"] == "1.2.0"
    pretrained = config["pretrained_config"]
    assert pretrained["architecture"] == "LlamaForCausalLM"
    assert pretrained["quantization"] == {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}
    assert pretrained["mapping"]["world_size"] == 4
    assert "calibration" not in pretrained
    build = config["build_config"]
    assert {k: build[k] for k in ("max_batch_size", "max_input_len", "max_num_tokens", "max_beam_width")} == {
        "max_batch_size": 512,
        "max_input_len": 1024,
        "max_num_tokens": 8192,
        "max_beam_width": 1,
    }
    assert build["max_seq_len"] == 4096  # deduced from max_position_embeddings
    assert build["kv_cache_type"] == "PAGED"
    plugins = build["plugin_config"]
    assert plugins["gpt_attention_plugin"] == "auto"
    assert plugins["gemm_plugin"] is None
    assert plugins["gemm_swiglu_plugin"] == "fp8"
    assert plugins["low_latency_gemm_plugin"] is None
    booleans = {
        "reduce_fusion": True,
        "user_buffer": True,
        "use_fused_mlp": True,
        "context_fmha": True,
        "use_paged_context_fmha": True,
        "use_fp8_context_fmha": True,
        "remove_input_padding": True,
        "multiple_profiles": False,
        "norm_quant_fusion": False,
        "paged_kv_cache": True,
    }
    assert {k: plugins[k] for k in booleans} == booleans
    assert sorted(p.name for p in engine_tp4.glob("rank*.engine")) == [f"rank{r}.engine" for r in range(4)]


def test_build_forces_reduce_fusion_off_at_tp1(fp8_tp1: Path, tmp_path: Path) -> None:
    result = ok(
        run(
            "trtllm-build", "--checkpoint_dir", fp8_tp1, "--output_dir", tmp_path, "--reduce_fusion", "enable"
        )
    )
    assert "Overriding reduce_fusion to False" in result.stdout
    assert plugins_of(tmp_path)["reduce_fusion"] is False


def test_build_forces_user_buffer_off_without_reduce_fusion(fp8_tp4: Path, tmp_path: Path) -> None:
    result = ok(
        run("trtllm-build", "--checkpoint_dir", fp8_tp4, "--output_dir", tmp_path, "--user_buffer", "enable")
    )
    assert "Overriding user_buffer to False" in result.stdout
    assert plugins_of(tmp_path)["user_buffer"] is False


def test_build_continuous_kv_cache_via_deprecated_flag(fp8_tp1: Path, tmp_path: Path) -> None:
    result = ok(
        run(
            "trtllm-build",
            "--checkpoint_dir",
            fp8_tp1,
            "--output_dir",
            tmp_path,
            "--paged_kv_cache",
            "disable",
        )
    )
    assert "--paged_kv_cache is deprecated" in result.stdout
    build = load(tmp_path / "config.json")["build_config"]
    assert build["kv_cache_type"] == "CONTINUOUS"
    assert build["plugin_config"]["paged_kv_cache"] is False


def test_build_gemm_swiglu_is_refused_only_on_sm_100(fp8_tp1: Path, tmp_path: Path) -> None:
    """PluginConfig.validate() (plugin.py @ c20322ffd3dc) refuses it on SM 100 exactly, nowhere else."""
    args: list[str | Path] = ["--checkpoint_dir", fp8_tp1, "--gemm_swiglu_plugin", "fp8"]
    ok(run("trtllm-build", *args, "--output_dir", tmp_path / "hopper", gpus=[H100]))
    assert plugins_of(tmp_path / "hopper")["gemm_swiglu_plugin"] == "fp8"
    ok(run("trtllm-build", *args, "--output_dir", tmp_path / "ada", gpus=[L40S]))


@pytest.mark.parametrize(
    ("qformat", "message"),
    [
        ("int8_sq", "RuntimeError: SmoothQuant is not supported on SM>=100."),
        ("int4_awq", "RuntimeError: INT8/INT4 quantization is not supported on SM>=100."),
    ],
)
def test_build_on_sm100_rejects_int8_and_int4(
    model: Path, tmp_path: Path, qformat: str, message: str
) -> None:
    ckpt = quantize(model, tmp_path / "ckpt", "--qformat", qformat, "--calib_size", "8", gpus=[B200])
    assert (
        last_error(run("trtllm-build", "--checkpoint_dir", ckpt, "--output_dir", tmp_path / "e", gpus=[B200]))
        == message
    )


def test_build_on_sm100_rejects_the_gemm_swiglu_plugin(fp8_tp1: Path, tmp_path: Path) -> None:
    result = run(
        "trtllm-build",
        "--checkpoint_dir",
        fp8_tp1,
        "--gemm_swiglu_plugin",
        "fp8",
        "--output_dir",
        tmp_path,
        gpus=[B200],
    )
    assert last_error(result) == "NotImplementedError: gemm_swiglu_plugin=fp8 is not supported on SM 100."


def test_build_fp8_checkpoint_fails_on_ampere(fp8_tp1: Path, tmp_path: Path) -> None:
    result = run("trtllm-build", "--checkpoint_dir", fp8_tp1, "--output_dir", tmp_path, gpus=[A100])
    assert "Networks with FP8 precision require hardware with FP8 support." in result.stderr
    assert result.returncode == 1


def test_build_missing_rank_file_is_an_error(fp8_tp4: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ckpt"
    broken.mkdir()
    for name in ("config.json", "rank0.safetensors", "rank1.safetensors", "rank3.safetensors"):
        (broken / name).write_bytes((fp8_tp4 / name).read_bytes())
    result = run("trtllm-build", "--checkpoint_dir", broken, "--output_dir", tmp_path / "engine")
    assert (
        last_error(result)
        == f"FileNotFoundError: [Errno 2] No such file or directory: '{broken / 'rank2.safetensors'}'"
    )
    assert not (tmp_path / "engine").exists()


def test_build_needs_a_gpu(fp8_tp1: Path, tmp_path: Path) -> None:
    result = run("trtllm-build", "--checkpoint_dir", fp8_tp1, "--output_dir", tmp_path, gpus=[])
    assert last_error(result).startswith("RuntimeError: Found no NVIDIA driver on your system.")


def test_simulated_failure_is_injected_by_tool_name(fp8_tp1: Path, tmp_path: Path) -> None:
    result = run(
        "trtllm-build",
        "--checkpoint_dir",
        fp8_tp1,
        "--output_dir",
        tmp_path / "e",
        TRTLLM_SIM_FAIL="trtllm-build",
    )
    assert last_error(result) == "RuntimeError: simulated failure in trtllm-build"
    assert len(result.stdout.splitlines()) >= 2
    assert not (tmp_path / "e").exists()
    other = run("quantize.py", "--model_dir", tmp_path, TRTLLM_SIM_FAIL="trtllm-build")
    assert "simulated failure" not in other.stderr


# --- prepare_dataset.py / trtllm-bench / trtllm-eval -------------------------------------------------


def test_prepare_dataset_writes_one_request_per_line(dataset: Path) -> None:
    lines = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert [line["task_id"] for line in lines] == [0, 1, 2, 3, 4]
    assert all(len(line["input_ids"]) == 16 and line["output_tokens"] == 8 for line in lines)
    assert all(set(line) == {"task_id", "input_ids", "output_tokens"} for line in lines)


def test_prepare_dataset_output_file_matches_stdout(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.jsonl"
    result = ok(run("prepare_dataset.py", "--tokenizer", TOKENIZER, "--output", out, *NORM_DIST.split()))
    assert out.read_text() == dataset.read_text()
    assert "Wrote 5 requests" in result.stdout


def test_bench_report_is_nested_and_takes_overrides(engine_tp4: Path, dataset: Path, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    overrides = json.dumps({"system_output_throughput_tok_s": 6049, "avg_ttft_ms": 88.0})
    flags: list[str | Path] = ["--concurrency", "4", "--report_json", path, "--streaming"]
    result = ok(bench(engine_tp4, dataset, *flags, TRTLLM_SIM_BENCH=overrides))
    assert "Total Output Throughput (tokens/sec):             6049.0000" in result.stdout
    report = load(path)
    sections = {"engine", "world_info", "request_info", "performance", "streaming_metrics", "dataset"}
    assert set(report) == sections | {"simulation"}  # the stand-in's one extra section: never a real report's
    assert report["simulation"]["tool"] == "trtllm-bench (simulated stand-in)"
    assert "SIMULATED" in result.stdout
    perf = report["performance"]
    assert perf["system_output_throughput_tok_s"] == 6049
    assert perf["output_throughput_per_gpu_tok_s"] == pytest.approx(6049 / 4)
    assert perf["request_throughput_req_s"] == pytest.approx(6049 / 8, rel=1e-3)  # 8 output tokens each
    percentile_keys = {"p50", "p90", "p95", "p99", "minimum", "maximum", "average"}
    assert set(perf["request_latency_percentiles_ms"]) == percentile_keys
    streaming = report["streaming_metrics"]
    assert streaming["avg_ttft_ms"] == 88.0
    assert streaming["avg_tpot_ms"] > 0
    assert set(streaming["ttft_percentiles"]) == percentile_keys
    assert report["request_info"] == {
        "num_requests": 5,
        "avg_num_concurrent_requests": 4.0,
        "avg_input_length": 16.0,
        "avg_output_length": 8.0,
    }
    assert (report["engine"]["backend"], report["engine"]["quantization"]) == ("TRT", "FP8")
    assert report["world_info"]["world_size"] == 4
    assert report["dataset"]["max_sequence_length"] == 24


def test_bench_without_streaming_has_no_streaming_block(
    engine_tp4: Path, dataset: Path, tmp_path: Path
) -> None:
    ok(bench(engine_tp4, dataset, "--report_json", tmp_path / "report.json"))
    report = load(tmp_path / "report.json")
    assert "streaming_metrics" not in report
    assert report["performance"]["system_output_throughput_tok_s"] > 0


def test_bench_rejects_an_unknown_override(engine_tp4: Path, dataset: Path) -> None:
    result = bench(engine_tp4, dataset, TRTLLM_SIM_BENCH='{"output_tok_s": 1}')
    assert last_error(result) == "ValueError: TRTLLM_SIM_BENCH: unknown report key 'output_tok_s'"


def test_bench_refuses_an_engine_built_for_another_sm(engine_tp4: Path, dataset: Path) -> None:
    result = bench(engine_tp4, dataset, gpus=json.dumps([L40S] * 4))
    assert "incompatible device, expecting compute 8.9 got compute 9.0" in result.stderr
    assert result.returncode == 1


def test_bench_refuses_an_engine_of_another_version(engine_tp4: Path, dataset: Path) -> None:
    result = bench(engine_tp4, dataset, TRTLLM_SIM_VERSION="1.1.0")
    assert "expecting library version of TensorRT-LLM 1.1.0 got 1.2.0" in result.stderr
    assert result.returncode == 1


def test_bench_pytorch_backend_reads_the_modelopt_checkpoint(
    model: Path, dataset: Path, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "fp8-hf"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text((model / "config.json").read_text())
    quant = {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
    (checkpoint / "hf_quant_config.json").write_text(json.dumps(quant))
    args: list[str | Path] = ["--model", TOKENIZER, "--model_path", checkpoint, "throughput", "--tp", "2"]
    args += ["--dataset", dataset, "--report_json", tmp_path / "r.json"]
    ok(run("trtllm-bench", *args, gpus=[H100] * 2, HF_HUB_OFFLINE="1"))
    report = load(tmp_path / "r.json")
    assert report["engine"]["backend"] == "Pytorch"
    assert (report["engine"]["quantization"], report["engine"]["kv_cache_dtype"]) == ("FP8", "FP8")
    assert report["world_info"]["world_size"] == 2
    fp8_on_ampere = last_error(run("trtllm-bench", *args, gpus=[A100] * 2))
    assert fp8_on_ampere == "RuntimeError: Networks with FP8 precision require hardware with FP8 support."
    no_local_copy = run(
        "trtllm-bench", "--model", TOKENIZER, "throughput", "--dataset", dataset, HF_HUB_OFFLINE="1"
    )
    assert "outgoing traffic has been disabled" in last_error(no_local_copy)


def test_bench_validates_every_dataset_line(engine_tp4: Path, dataset: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(dataset.read_text() + '{"task_id": 7, "output_tokens": 8}\n')
    result = bench(engine_tp4, bad)
    assert last_error(result) == "ValueError: prompt, input_ids, and turns for task 7 are all None."


def test_eval_prints_the_score_and_writes_the_report(engine_tp4: Path, model: Path, tmp_path: Path) -> None:
    report = tmp_path / "eval.json"
    args: list[str | Path] = ["--model", engine_tp4, "--backend", "tensorrt", "--tokenizer", model, "gsm8k"]
    env = {"TRTLLM_SIM_EVAL": '{"gsm8k": 81.5}', "TRTLLM_SIM_EVAL_REPORT": str(report)}
    result = ok(run("trtllm-eval", *args, gpus=[H100] * 4, **env))
    assert "lm-eval gsm8k average accuracy: 81.50" in result.stdout
    assert load(report) == {"task": "gsm8k", "score": 81.5}
    failed = run("trtllm-eval", "--model", model, "mmlu", "--check_accuracy", TRTLLM_SIM_EVAL='{"mmlu": 20}')
    assert last_error(failed) == "AssertionError: Expected accuracy >= 30.0, but got 20.0."


@pytest.mark.parametrize("task", TABLES["1.3"].eval_tasks)
def test_every_eval_task_prints_a_score_line_the_builder_reads_as_that_task(model: Path, task: str) -> None:
    """The stand-in logs each task the way the real one does, and builder/reports.py maps it back."""
    result = ok(run("trtllm-eval", "--model", model, task, TRTLLM_SIM_VERSION="1.3.0"))
    scanner = ScoreScanner()
    for line in result.stdout.splitlines():
        scanner.feed(line)
    assert scanner.score is not None, result.stdout
    assert scanner.score.task == task
    assert "None" not in result.stdout


# --- simulated GPUs and the pynvml shim --------------------------------------------------------------


def test_pynvml_shim_reports_the_simulated_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = load_shim()
    monkeypatch.setenv(
        "TRTLLM_SIM_GPUS", json.dumps([H100, {**A100, "memory_free_mib": 1000, "uuid": "GPU-a"}])
    )
    monkeypatch.setenv("TRTLLM_SIM_CUDA_DRIVER", "12080")
    monkeypatch.delenv("TRTLLM_SIM_DRIVER", raising=False)
    nvml.nvmlInit()
    try:
        assert nvml.nvmlDeviceGetCount() == 2
        h100, a100 = nvml.nvmlDeviceGetHandleByIndex(0), nvml.nvmlDeviceGetHandleByIndex(1)
        assert nvml.nvmlDeviceGetName(h100) == "NVIDIA H100 80GB HBM3"
        assert nvml.nvmlDeviceGetCudaComputeCapability(h100) == (9, 0)
        memory = nvml.nvmlDeviceGetMemoryInfo(a100)
        assert (memory.total, memory.free, memory.used) == (81920 * 2**20, 1000 * 2**20, 80920 * 2**20)
        assert nvml.nvmlDeviceGetMemoryInfo(h100).total == 85520809984
        assert nvml.nvmlDeviceGetUUID(a100) == "GPU-a"
        assert (
            nvml.nvmlDeviceGetUUID(h100) == default_uuid(0, str(H100["name"])) == load_sim_gpus()[0].gpu_uuid
        )
        assert nvml.nvmlSystemGetDriverVersion() == "550.107.02"
        assert nvml.nvmlSystemGetCudaDriverVersion() == 12080
        with pytest.raises(nvml.NVMLError) as bad_index:
            nvml.nvmlDeviceGetHandleByIndex(2)
        assert bad_index.value.value == nvml.NVML_ERROR_INVALID_ARGUMENT
    finally:
        nvml.nvmlShutdown()
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


@pytest.mark.parametrize("gpus", [None, "[]"])
def test_pynvml_shim_without_gpus_is_a_machine_without_driver(
    monkeypatch: pytest.MonkeyPatch, gpus: str | None
) -> None:
    nvml = load_shim()
    if gpus is None:
        monkeypatch.delenv("TRTLLM_SIM_GPUS", raising=False)
    else:
        monkeypatch.setenv("TRTLLM_SIM_GPUS", gpus)
    with pytest.raises(nvml.NVMLError) as error:
        nvml.nvmlInit()
    assert error.value.value == nvml.NVML_ERROR_DRIVER_NOT_LOADED == 9
    assert str(error.value) == "Driver Not Loaded"
    assert isinstance(error.value, nvml.NVMLError_DriverNotLoaded)
    assert nvml.NVML_ERROR_LIBRARY_NOT_FOUND == 12


def test_shim_directory_shadows_the_real_pynvml() -> None:
    env = standin_env([B200])
    code = (
        "import pynvml; pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0); "
        "print(pynvml.__file__, pynvml.nvmlDeviceGetCudaComputeCapability(h))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    assert result.stdout.split() == [str(SHIM_DIR / "pynvml.py"), "(10,", "0)"]


def test_sim_gpus_from_gpu_feature_discovery_labels() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3-SHARED",
        "nvidia.com/gpu.compute.major": "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/gpu.count": "8",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/cuda.driver-version.full": "560.35.03",
        "nvidia.com/cuda.runtime-version.major": "12",
        "nvidia.com/cuda.runtime-version.minor": "6",
    }
    gpus = sim_gpus_for_node_labels(labels)
    assert len(gpus) == 8
    assert gpus[0] == {"name": "NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "memory_total_mib": 81559}
    env = sim_env_for_node_labels(labels, count=2)
    assert env["TRTLLM_SIM_DRIVER"] == "560.35.03"
    assert env["TRTLLM_SIM_CUDA_DRIVER"] == "12060"
    loaded = load_sim_gpus(env)
    assert [(g.index, g.sm, g.free_mib) for g in loaded] == [(0, 90, 81559), (1, 90, 81559)]
    assert sim_gpus_for_node_labels({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}) == []
