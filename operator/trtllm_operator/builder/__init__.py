"""The program that runs inside the build Job: preflight → quantize → build → verify → publish → measure.

It reads a :class:`~trtllm_operator.api.plan.BuildPlan` (mounted from a ConfigMap), runs the exact
TensorRT-LLM command lines the operator rendered, verifies and atomically publishes the engine,
measures it, and reports a :class:`~trtllm_operator.api.plan.BuildResult` through the termination
message. Entry point: ``python -m trtllm_operator.builder`` (``trtllm-operator-builder``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path


def builder_command(plan_file: Path, result_file: Path, remaps: Iterable[str] = ()) -> list[str]:
    """The argv that runs the builder on a plan file, as the local pod executor and tests do."""
    argv = [
        sys.executable,
        "-m",
        "trtllm_operator.builder",
        "--plan",
        str(plan_file),
        "--result-file",
        str(result_file),
    ]
    for remap in remaps:
        argv += ["--remap", remap]
    return argv
