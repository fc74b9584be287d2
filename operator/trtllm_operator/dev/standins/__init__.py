"""Stand-ins for the TensorRT-LLM tools, enforcing the contract in ``shared/reference/trtllm.md``.

TensorRT-LLM cannot run on the development machines, so the builder is exercised against these
executables instead (``hack/standins/bin``: ``quantize.py``, ``convert_checkpoint.py``,
``trtllm-build``, ``trtllm-bench``, ``trtllm-eval``, ``prepare_dataset.py``), plus a ``pynvml`` shim.
They accept exactly the documented flags, apply the documented hardware rules to a simulated GPU
(``simgpu``), and write artifacts with the documented layout. ``standin_env`` builds the environment
that makes a child process use them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins.simgpu import ENV_GPUS

SHIM_DIR: Final = Path(__file__).resolve().parent / "shim"


def repo_bin_dir() -> Path | None:
    """``hack/standins/bin`` of the source checkout this package lives in (None when installed)."""
    candidate = Path(__file__).resolve().parents[4] / "hack" / "standins" / "bin"
    return candidate if candidate.is_dir() else None


def _prepend(path: str, current: str | None) -> str:
    return path if not current else f"{path}{os.pathsep}{current}"


def standin_env(
    gpus: Sequence[Mapping[str, Any]],
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """An environment where the stand-in tools come first on PATH, ``pynvml`` is the shim, and
    ``TRTLLM_SIM_GPUS`` lists ``gpus``; ``extra`` adds further ``TRTLLM_SIM_*`` variables."""
    env = dict(os.environ if base is None else base)
    env[ENV_GPUS] = json.dumps(list(map(dict, gpus)))
    env["PYTHONPATH"] = _prepend(str(SHIM_DIR), env.get("PYTHONPATH"))
    bin_dir = repo_bin_dir()
    if bin_dir is not None:
        env["PATH"] = _prepend(str(bin_dir), env.get("PATH"))
    env.update(extra)
    return env
