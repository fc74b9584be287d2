"""Remapping, subprocess streaming, log redaction, result size and the command line."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import structlog

from trtllm_operator.api import reasons
from trtllm_operator.api.constants import EXIT_INVALID_PLAN, RESULT_MAX_BYTES
from trtllm_operator.api.plan import BuildResult
from trtllm_operator.builder.__main__ import main
from trtllm_operator.builder.remap import RemapError, parse_remap, remap_path, remap_plan
from trtllm_operator.builder.run import BuildError, fit_result, load_plan
from trtllm_operator.builder.steps import child_env, run_command
from trtllm_operator.logging import configure_logging, redact

from .builder_support import CALIB_DIR, EXAMPLES, MODEL_DIR, gate_steps, make_plan, paths, tensorrt_steps

# --- remap -----------------------------------------------------------------------------------------


def test_parse_remap() -> None:
    assert parse_remap("/engines=/tmp/e/") == ("/engines", "/tmp/e")
    for bad in ("/engines", "engines=/tmp", "/=/tmp", "/a=relative"):
        with pytest.raises(RemapError):
            parse_remap(bad)


def test_remap_path_matches_whole_components_and_prefers_the_longest_prefix() -> None:
    remaps = [("/engines", "/h/e"), ("/engines/special", "/h/s")]
    assert remap_path("/engines", remaps) == "/h/e"
    assert remap_path("/engines/x/y", remaps) == "/h/e/x/y"
    assert remap_path("/engines/special/z", remaps) == "/h/s/z"
    assert remap_path("/engines-old/x", remaps) == "/engines-old/x"
    assert remap_path("--output_dir=/engines/x", remaps) == "--output_dir=/engines/x"


def test_plan_argv_and_paths_after_remap() -> None:
    p = paths()
    plan = make_plan(steps=[*tensorrt_steps(p), *gate_steps(p)])
    remapped = remap_plan(
        plan, [("/engines", "/h/eng"), ("/models", "/h/mod"), ("/app/tensorrt_llm", "/h/app")]
    )

    assert remapped.paths.engine == "/h/eng/engines/llama/0123abcd4567ef89"
    assert remapped.paths.staging == "/h/eng/engines/llama/.0123abcd4567ef89.partial"
    assert remapped.paths.uri == plan.paths.uri  # names the volume, never rewritten
    assert remapped.model.local_dir == "/h/mod/models/llama-tiny"
    assert remapped.calibration is not None
    assert remapped.calibration.local_dir == "/h/mod/data/calib"
    assert remapped.calibration.dataset == "pvc://data/calib"
    quantize = remapped.steps[1].argv
    assert quantize[:4] == [
        "python3",
        "/h/app/examples/quantization/quantize.py",
        "--model_dir",
        "/h/mod/models/llama-tiny",
    ]
    assert quantize[quantize.index("--output_dir") + 1] == "/h/eng/engines/llama/.0123abcd4567ef89.checkpoint"
    assert quantize[quantize.index("--calib_dataset") + 1] == "/h/mod/data/calib"
    assert quantize[quantize.index("--qformat") + 1] == "fp8"
    dataset = remapped.steps[4]
    assert dataset.stdout == "/h/eng/engines/llama/.0123abcd4567ef89.bench-dataset.jsonl"
    assert plan.steps[1].argv[1] == f"{EXAMPLES}/quantization/quantize.py"
    assert plan.model.local_dir == MODEL_DIR
    assert plan.calibration is not None
    assert plan.calibration.local_dir == CALIB_DIR


# --- subprocess streaming --------------------------------------------------------------------------


def test_run_command_streams_lines_in_order_and_keeps_the_tail() -> None:
    seen: list[str] = []
    script = "import sys\nfor i in range(30):\n    print(i, flush=True)\n"
    script += "print('boom', file=sys.stderr)\nsys.exit(3)"
    outcome = run_command([sys.executable, "-c", script], seen.append)

    assert outcome.returncode == 3
    assert not outcome.ok
    assert seen == [str(i) for i in range(30)] + ["boom"]
    assert outcome.tail == [str(i) for i in range(11, 30)] + ["boom"]


def test_run_command_sends_data_to_the_stdout_file_and_logs_stderr(tmp_path: Path) -> None:
    seen: list[str] = []
    script = "import sys\nprint('{\"task_id\": 0}')\nprint('progress', file=sys.stderr)"
    out = tmp_path / "sub" / "data.jsonl"
    outcome = run_command([sys.executable, "-c", script], seen.append, stdout_path=str(out))

    assert outcome.ok
    assert seen == ["progress"]
    assert out.read_text() == '{"task_id": 0}\n'


def test_a_missing_tool_is_exit_127() -> None:
    seen: list[str] = []
    outcome = run_command(["/nonexistent/trtllm-build"], seen.append)
    assert outcome.returncode == 127
    assert seen[0].startswith("cannot run '/nonexistent/trtllm-build'")


def test_child_env_passes_the_token_by_environment_only() -> None:
    env = child_env({"PATH": "/bin", "MY_TOKEN": "hf_abcdefghijklmnop"}, token_env="MY_TOKEN")
    assert env == {
        "PATH": "/bin",
        "MY_TOKEN": "hf_abcdefghijklmnop",
        "HF_TOKEN": "hf_abcdefghijklmnop",
        "PYTHONUNBUFFERED": "1",
    }


# --- logging ---------------------------------------------------------------------------------------


def test_redaction_masks_sensitive_keys_and_hf_tokens_anywhere() -> None:
    event = {
        "event": "running with hf_AbCdEfGhIjKlMnOp in the url",
        "hf_token": "hf_AbCdEfGhIjKlMnOp",
        "Password": "hunter2",
        "client_secret": "s3cr3t",
        "max_num_tokens": 8192,
        "argv": ["huggingface-cli", "--token", "hf_AbCdEfGhIjKlMnOp"],
        "nested": {"api_token": "x", "note": "short hf_abc is not a token"},
    }
    assert redact(None, "info", event) == {
        "event": "running with hf_*** in the url",
        "hf_token": "***",
        "Password": "***",
        "client_secret": "***",
        "max_num_tokens": 8192,
        "argv": ["huggingface-cli", "--token", "hf_***"],
        "nested": {"api_token": "***", "note": "short hf_abc is not a token"},
    }


def test_configure_logging_writes_json_lines() -> None:
    stream = io.StringIO()
    configure_logging(stream=stream)
    try:
        structlog.get_logger("t").info("step started", step="build", token="hf_AbCdEfGhIjKlMnOp")
    finally:
        structlog.reset_defaults()
    record = json.loads(stream.getvalue())
    assert record["event"] == "step started"
    assert record["level"] == "info"
    assert record["step"] == "build"
    assert record["token"] == "***"
    assert record["timestamp"].endswith("Z")


# --- result and command line -----------------------------------------------------------------------


def test_fit_result_keeps_the_head_and_the_tail_of_a_long_message() -> None:
    tail = "RuntimeError: the real error at the end"
    message = "build failed (exit 1): " + "\n".join(f"line {i} ≥ é" * 20 for i in range(200)) + "\n" + tail
    result = BuildResult(ok=False, reason=reasons.STEP_FAILED, message=message, warnings=["w" * 1000] * 20)
    fitted = fit_result(result)
    text = fitted.to_message()

    assert len(text.encode()) <= RESULT_MAX_BYTES
    assert fitted.message.startswith("build failed (exit 1): line 0")
    assert fitted.message.endswith(tail)
    assert " ... " in fitted.message
    assert len(fitted.to_message().encode()) > RESULT_MAX_BYTES - 64  # the budget is used, not wasted
    assert len(fitted.warnings) == 5
    assert all(len(w) <= 200 for w in fitted.warnings)
    assert fit_result(BuildResult(ok=True, reason="BuildSucceeded", message="short")).message == "short"


def test_load_plan_refuses_a_token_on_a_command_line(tmp_path: Path) -> None:
    steps = tensorrt_steps(paths())
    steps[0]["argv"] += ["--token", "hf_AbCdEfGhIjKlMnOp"]
    path = tmp_path / "plan.json"
    path.write_text(make_plan(steps=steps).to_json())
    with pytest.raises(BuildError) as caught:
        load_plan(path)
    assert caught.value.reason == reasons.INVALID_PLAN
    assert "Hugging Face token" in caught.value.message


def test_missing_plan_and_bad_flags_still_write_a_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result_file = tmp_path / "result"
    assert (
        main(["--plan", str(tmp_path / "absent.json"), "--result-file", str(result_file)])
        == EXIT_INVALID_PLAN
    )
    missing = BuildResult.from_message(result_file.read_text())
    assert missing is not None
    assert missing.reason == reasons.INVALID_PLAN
    assert "cannot read plan" in missing.message

    assert (
        main(["--plan", "x", "--result-file", str(result_file), "--remap", "relative=/x"])
        == EXIT_INVALID_PLAN
    )
    bad_remap = BuildResult.from_message(result_file.read_text())
    assert bad_remap is not None
    assert "--remap must be SRC=DST" in bad_remap.message

    monkeypatch.setenv("TRTLLM_RESULT_FILE", str(tmp_path / "env-result"))
    assert main(["--no-such-flag"]) == EXIT_INVALID_PLAN
    usage = BuildResult.from_message((tmp_path / "env-result").read_text())
    assert usage is not None
    assert "unrecognized arguments: --no-such-flag" in usage.message
    structlog.reset_defaults()
