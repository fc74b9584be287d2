"""The simulated GPUs every stand-in (and the ``pynvml`` shim) sees.

A real TensorRT-LLM cannot run on the development machines, yet the builder's decisions depend on
the GPU it lands on (compute capability gates FP8/FP4, SM 10.x rejects INT8/INT4, engines are tied
to the SM they were built on). The stand-ins therefore read the GPU inventory from one environment
variable, so a test or a fake node can say exactly which GPUs a process "has":

``TRTLLM_SIM_GPUS``
    JSON list of ``{"name", "major", "minor", "memory_total_mib", "memory_free_mib"?, "uuid"?}``.
    Unset, empty or ``[]`` means no GPU (the process behaves like a machine without a driver).
``TRTLLM_SIM_DRIVER``
    Driver version string (default ``550.107.02``).
``TRTLLM_SIM_CUDA_DRIVER``
    CUDA driver API version as NVML reports it (default ``12040``).

Defaults of the optional fields are shared with ``shim/pynvml.py``, which must stay stdlib-only and
so re-implements them; ``default_uuid`` is the single formula both use.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_GPUS: Final = "TRTLLM_SIM_GPUS"
ENV_DRIVER: Final = "TRTLLM_SIM_DRIVER"
ENV_CUDA_DRIVER: Final = "TRTLLM_SIM_CUDA_DRIVER"
DEFAULT_DRIVER: Final = "550.107.02"
DEFAULT_CUDA_DRIVER: Final = 12040

_PRODUCT: Final = "nvidia.com/gpu.product"
_MAJOR: Final = "nvidia.com/gpu.compute.major"
_MINOR: Final = "nvidia.com/gpu.compute.minor"
_COUNT: Final = "nvidia.com/gpu.count"
_MEMORY: Final = "nvidia.com/gpu.memory"
_DRIVER_FULL: Final = "nvidia.com/cuda.driver-version.full"
_RUNTIME_MAJOR: Final = "nvidia.com/cuda.runtime-version.major"
_RUNTIME_MINOR: Final = "nvidia.com/cuda.runtime-version.minor"


class SimGPUConfigError(ValueError):
    """``TRTLLM_SIM_*`` holds something that is not a valid simulated GPU inventory."""


def default_uuid(index: int, name: str) -> str:
    """Deterministic UUID of simulated GPU ``index`` (the pynvml shim uses the same formula)."""
    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_OID, f"trtllm-sim/{index}/{name}"))


class SimGPU(BaseModel):
    """One simulated GPU, as NVML would describe it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(default=0, ge=0)
    name: str = Field(min_length=1)
    major: int = Field(ge=1, le=99)
    minor: int = Field(ge=0, le=9)
    memory_total_mib: int = Field(gt=0)
    memory_free_mib: int | None = Field(default=None, ge=0)
    uuid: str | None = None

    @model_validator(mode="after")
    def _free_fits(self) -> SimGPU:
        if self.memory_free_mib is not None and self.memory_free_mib > self.memory_total_mib:
            raise ValueError("memory_free_mib cannot exceed memory_total_mib")
        return self

    @property
    def sm(self) -> int:
        """SM version as TensorRT-LLM's ``get_sm_version()`` returns it (9.0 -> 90, 10.3 -> 103)."""
        return self.major * 10 + self.minor

    @property
    def compute_capability(self) -> str:
        return f"{self.major}.{self.minor}"

    @property
    def free_mib(self) -> int:
        """Free memory; an idle GPU (all memory free) unless ``memory_free_mib`` says otherwise."""
        return self.memory_total_mib if self.memory_free_mib is None else self.memory_free_mib

    @property
    def gpu_uuid(self) -> str:
        return self.uuid or default_uuid(self.index, self.name)


def _parse_gpu_list(raw: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SimGPUConfigError(f"{ENV_GPUS} is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise SimGPUConfigError(f"{ENV_GPUS} must be a JSON list of objects")
    return data


def load_sim_gpus(env: Mapping[str, str] | None = None) -> list[SimGPU]:
    """The simulated GPUs of ``env`` (default: ``os.environ``); ``[]`` when none are visible."""
    source = os.environ if env is None else env
    raw = source.get(ENV_GPUS, "").strip()
    if not raw:
        return []
    gpus: list[SimGPU] = []
    for index, item in enumerate(_parse_gpu_list(raw)):
        try:
            gpus.append(SimGPU.model_validate({**item, "index": index}))
        except ValidationError as exc:
            raise SimGPUConfigError(f"{ENV_GPUS}[{index}] is invalid: {exc}") from exc
    return gpus


def sim_driver_version(env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return source.get(ENV_DRIVER) or DEFAULT_DRIVER


def sim_cuda_driver_version(env: Mapping[str, str] | None = None) -> int:
    source = os.environ if env is None else env
    raw = source.get(ENV_CUDA_DRIVER)
    if not raw:
        return DEFAULT_CUDA_DRIVER
    try:
        return int(raw)
    except ValueError as exc:
        raise SimGPUConfigError(f"{ENV_CUDA_DRIVER} must be an integer such as 12040") from exc


def _label_int(labels: Mapping[str, str], key: str) -> int:
    value = labels.get(key)
    if value is None or not value.strip().isdigit():
        raise ValueError(f"node label {key} is missing or not a number: {value!r}")
    return int(value)


def _product_to_name(product: str) -> str:
    """GFD writes the NVML name with spaces turned into "-" (and "-SHARED" when time-sliced)."""
    base = product.removesuffix("-SHARED")
    return base.replace("-", " ")


def sim_gpus_for_node_labels(labels: Mapping[str, str], count: int | None = None) -> list[dict[str, Any]]:
    """The ``TRTLLM_SIM_GPUS`` list a pod on a node with these GFD labels would see.

    ``count`` overrides ``nvidia.com/gpu.count`` (a pod sees only the GPUs it was allocated). A
    node without compute-capability labels has no (usable) GPU: the result is ``[]``.
    """
    if _MAJOR not in labels or _MINOR not in labels:
        return []
    major, minor = _label_int(labels, _MAJOR), _label_int(labels, _MINOR)
    memory = _label_int(labels, _MEMORY)
    visible = count if count is not None else (_label_int(labels, _COUNT) if _COUNT in labels else 1)
    name = _product_to_name(labels.get(_PRODUCT, "NVIDIA GPU"))
    return [
        {"name": name, "major": major, "minor": minor, "memory_total_mib": memory} for _ in range(visible)
    ]


def sim_env_for_node_labels(labels: Mapping[str, str], count: int | None = None) -> dict[str, str]:
    """All ``TRTLLM_SIM_*`` GPU variables for a pod on a node with these GFD labels.

    GFD's ``cuda.driver-version.full`` is the kernel driver version ("550.107.02") and
    ``cuda.runtime-version.major/minor`` the CUDA version it supports (12.4 -> NVML's 12040).
    """
    env = {ENV_GPUS: json.dumps(sim_gpus_for_node_labels(labels, count))}
    if labels.get(_DRIVER_FULL):
        env[ENV_DRIVER] = labels[_DRIVER_FULL]
    if _RUNTIME_MAJOR in labels and _RUNTIME_MINOR in labels:
        env[ENV_CUDA_DRIVER] = str(
            _label_int(labels, _RUNTIME_MAJOR) * 1000 + _label_int(labels, _RUNTIME_MINOR) * 10
        )
    return env
