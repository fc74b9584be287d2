"""Process plumbing shared by every stand-in: logging, pacing, failure injection, errors, GPUs.

The stand-ins exist so the builder can be exercised end to end without TensorRT-LLM. To be useful
they must fail the way the real tools fail: exit status 2 with argparse's message on a bad flag,
exit status 1 with a Python-style ``ExcType: message`` line on stderr for everything else, and
progress lines flushed to stdout so a caller can stream them. This module holds that contract.

Environment (read at call time, never cached):

``TRTLLM_SIM_STEP_SECONDS``  seconds slept after each progress step (default 0).
``TRTLLM_SIM_FAIL``          comma-separated tool names (``trtllm-build``, ``quantize.py`` or
                              ``quantize``...); each listed tool prints a few progress lines, then
                              ``RuntimeError: simulated failure in <tool>`` and exits 1.
``TRTLLM_SIM_VERSION``       TensorRT-LLM version the tools claim to be (default ``1.2.0``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar, Final, TextIO

from trtllm_operator.dev.standins.simgpu import SimGPU, SimGPUConfigError, load_sim_gpus

ENV_STEP: Final = "TRTLLM_SIM_STEP_SECONDS"
ENV_FAIL: Final = "TRTLLM_SIM_FAIL"
ENV_VERSION: Final = "TRTLLM_SIM_VERSION"
DEFAULT_VERSION: Final = "1.2.0"

# What torch says when CUDA is requested on a machine without a driver (trtllm-build, bench, eval
# all call torch.cuda first).
TORCH_NO_GPU: Final = (
    "Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU and installed "
    "a driver from http://www.nvidia.com/Download/index.aspx"
)


class ToolError(Exception):
    """A failure the tool reports as ``<exc_type>: <message>`` (exit status 1).

    ``details`` are printed before that line, e.g. the TensorRT ``[TRT] [E]`` log lines that precede
    the Python exception in a real build log.
    """

    def __init__(self, message: str, exc_type: str = "RuntimeError", details: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.exc_type = exc_type
        self.details = tuple(details)


class _Output:
    """Where progress goes: stdout, unless stdout carries data (``prepare_dataset.py --stdout``)."""

    to_stderr: ClassVar[bool] = False

    @classmethod
    def stream(cls) -> TextIO:
        return sys.stderr if cls.to_stderr else sys.stdout


def progress_to_stderr(enabled: bool) -> None:
    _Output.to_stderr = enabled


def say(line: str) -> None:
    """Print one raw line to the progress stream, flushed."""
    stream = _Output.stream()
    stream.write(line + "\n")
    stream.flush()


def log(message: str, level: str = "I") -> None:
    """One TensorRT-LLM style log line: ``[MM/DD/YYYY-HH:MM:SS] [TRT-LLM] [I] message``."""
    stamp = datetime.now().strftime("%m/%d/%Y-%H:%M:%S")
    say(f"[{stamp}] [TRT-LLM] [{level}] {message}")


def warn(message: str) -> None:
    log(message, level="W")


def step_seconds() -> float:
    raw = os.environ.get(ENV_STEP, "").strip()
    if not raw:
        return 0.0
    try:
        value = float(raw)
    except ValueError as exc:
        raise ToolError(f"{ENV_STEP} must be a number of seconds, got {raw!r}", "ValueError") from exc
    return max(value, 0.0)


def step(message: str) -> None:
    """A progress step: log it, then pause ``TRTLLM_SIM_STEP_SECONDS``."""
    log(message)
    pause = step_seconds()
    if pause:
        time.sleep(pause)


def sim_version() -> str:
    return os.environ.get(ENV_VERSION) or DEFAULT_VERSION


def env_flag(name: str) -> bool:
    """Truthy the way huggingface_hub reads its flags ("1", "true", "yes", "on")."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def hub_offline(*extra: str) -> bool:
    """Whether the Hugging Face Hub is unreachable (``HF_HUB_OFFLINE`` or a library-specific flag)."""
    return any(env_flag(name) for name in ("HF_HUB_OFFLINE", *extra))


def _normalise_tool(name: str) -> str:
    return name.strip().removesuffix(".py").replace("_", "-")


def failure_requested(tool: str) -> bool:
    wanted = {_normalise_tool(item) for item in os.environ.get(ENV_FAIL, "").split(",") if item.strip()}
    return _normalise_tool(tool) in wanted


def simulate_failure(tool: str) -> None:
    """Honour ``TRTLLM_SIM_FAIL``: a couple of believable lines, then the simulated error."""
    if not failure_requested(tool):
        return
    step(f"{tool}: loading inputs")
    step(f"{tool}: working")
    raise ToolError(f"simulated failure in {tool}")


def visible_gpus() -> list[SimGPU]:
    try:
        return load_sim_gpus()
    except SimGPUConfigError as exc:
        raise ToolError(str(exc), "ValueError") from exc


def require_gpus(message: str = TORCH_NO_GPU, exc_type: str = "RuntimeError") -> list[SimGPU]:
    """The visible GPUs; the tool's own no-GPU error when there are none."""
    gpus = visible_gpus()
    if not gpus:
        raise ToolError(message, exc_type)
    return gpus


def run_tool(tool: str, body: Callable[[], None]) -> int:
    """Run a parsed tool invocation and turn ``ToolError`` into the exit-1 error contract."""
    try:
        say(f"[TensorRT-LLM] TensorRT-LLM version: {sim_version()} (stand-in {tool})")
        simulate_failure(tool)
        body()
    except ToolError as exc:
        sys.stdout.flush()
        for line in exc.details:
            sys.stderr.write(line + "\n")
        sys.stderr.write(f"{exc.exc_type}: {exc.message}\n")
        sys.stderr.flush()
        return 1
    return 0
