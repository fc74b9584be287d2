"""Run one TensorRT-LLM tool as a subprocess and stream its output, line by line, as it happens.

Quantizing or building a 70B model takes tens of minutes; a builder that buffers output until the
tool exits leaves ``kubectl logs`` silent and loses everything when the pod is killed. So the tool
runs with a line-buffered text pipe (``bufsize=1``, ``PYTHONUNBUFFERED=1`` for Python tools), stderr
merged into stdout to keep the order, each line handed to a callback (which logs it) and the last
lines kept for the failure message that goes into the result.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

TAIL_LINES: Final = 20
#: The variable huggingface_hub reads the token from (a name, not a secret).
HF_TOKEN_ENV: Final = "HF_TOKEN"  # noqa: S105
#: Exit status a shell reports for a command that does not exist.
EXIT_NOT_FOUND: Final = 127
#: How long a tool gets to exit after SIGTERM before it is killed.
TERMINATE_GRACE_SECONDS: Final = 10.0


@dataclass(frozen=True)
class StepOutcome:
    returncode: int
    tail: list[str]
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of ``flag`` in a command line, written ``--flag VALUE`` or ``--flag=VALUE``."""
    for index, arg in enumerate(argv):
        if arg == flag and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def child_env(base: Mapping[str, str], token_env: str | None = None) -> dict[str, str]:
    """The tool's environment: inherited, unbuffered, and ``HF_TOKEN`` taken from ``token_env``.

    The token is never put on the command line (it would show in ``ps`` and in logs); the Hugging
    Face libraries read ``HF_TOKEN`` themselves.
    """
    env = dict(base)
    env["PYTHONUNBUFFERED"] = "1"
    if token_env and token_env != HF_TOKEN_ENV and env.get(token_env):
        env[HF_TOKEN_ENV] = env[token_env]
    return env


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(TERMINATE_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _popen(
    argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None, stdout: IO[str] | None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        list(argv),
        stdout=stdout if stdout is not None else subprocess.PIPE,
        stderr=subprocess.PIPE if stdout is not None else subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        bufsize=1,
        errors="replace",
        env=dict(env) if env is not None else child_env(os.environ),
        cwd=cwd,
    )


def run_command(
    argv: Sequence[str],
    on_line: Callable[[str], None],
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdout_path: str | None = None,
    tail_lines: int = TAIL_LINES,
) -> StepOutcome:
    """Run ``argv``; call ``on_line`` for every output line as it arrives; never raises for tool errors.

    With ``stdout_path`` the tool's standard output (data, e.g. a generated dataset) goes to that
    file and only its stderr is streamed. A missing executable is reported like a shell would
    (exit 127). If the builder itself is interrupted (SIGTERM from the kubelet), the tool is stopped
    before the exception propagates.
    """
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=tail_lines)
    with contextlib.ExitStack() as stack:
        sink = None
        if stdout_path is not None:
            Path(stdout_path).parent.mkdir(parents=True, exist_ok=True)
            sink = stack.enter_context(open(stdout_path, "w", encoding="utf-8"))
        try:
            process = stack.enter_context(_popen(argv, env, cwd, sink))  # closes the pipes on exit
        except OSError as exc:
            message = f"cannot run {argv[0]!r}: {exc.strerror or exc}"
            on_line(message)
            return StepOutcome(EXIT_NOT_FOUND, [message], time.monotonic() - started)
        try:
            stream = process.stderr if sink is not None else process.stdout
            assert stream is not None
            for raw in stream:
                line = raw.rstrip("\r\n")
                tail.append(line)
                on_line(line)
            returncode = process.wait()
        finally:
            _stop(process)
    return StepOutcome(returncode, list(tail), time.monotonic() - started)
