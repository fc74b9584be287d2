"""Stand-in ``pynvml`` (nvidia-ml-py) answering from ``TRTLLM_SIM_GPUS`` instead of a driver.

Put this directory FIRST on ``PYTHONPATH`` and ``import pynvml`` returns this module, so code that
probes the GPU (the operator's builder, the stand-in tools) sees the simulated inventory. It mirrors
the nvidia-ml-py 13.x API subset listed in ``shared/reference/trtllm.md``: names, signatures, return
types (``str`` names, memory in BYTES) and errors (``NVMLError`` with ``.value``; ``NVMLError(v)``
returns the per-code subclass such as ``NVMLError_DriverNotLoaded``, as the real module does).

With no simulated GPU ``nvmlInit()`` raises ``NVMLError_DriverNotLoaded`` ("Driver Not Loaded"),
which is what nvidia-ml-py raises on a machine without the NVIDIA driver. Calls before ``nvmlInit``
raise ``NVMLError_Uninitialized``.

It must stay self-contained (stdlib only): it is put on ``PYTHONPATH`` alone. The parsing rules
(optional ``memory_free_mib`` = all memory free, deterministic ``uuid``) match
``trtllm_operator.dev.standins.simgpu``; a malformed ``TRTLLM_SIM_GPUS`` raises ``ValueError`` so a
broken test set-up is loud rather than looking like "no GPU".
"""

# ruff: noqa: N801, N802, N818 -- names are nvidia-ml-py's public API, kept verbatim.
from __future__ import annotations

import json
import os
import uuid
from typing import Any, ClassVar, Final

NVML_SUCCESS: Final = 0
NVML_ERROR_UNINITIALIZED: Final = 1
NVML_ERROR_INVALID_ARGUMENT: Final = 2
NVML_ERROR_NOT_SUPPORTED: Final = 3
NVML_ERROR_NO_PERMISSION: Final = 4
NVML_ERROR_ALREADY_INITIALIZED: Final = 5
NVML_ERROR_NOT_FOUND: Final = 6
NVML_ERROR_DRIVER_NOT_LOADED: Final = 9
NVML_ERROR_TIMEOUT: Final = 10
NVML_ERROR_LIBRARY_NOT_FOUND: Final = 12
NVML_ERROR_FUNCTION_NOT_FOUND: Final = 13
NVML_ERROR_GPU_IS_LOST: Final = 15
NVML_ERROR_UNKNOWN: Final = 999

_MIB: Final = 1024 * 1024
_DEFAULT_DRIVER: Final = "550.107.02"
_DEFAULT_CUDA_DRIVER: Final = 12040

_ERROR_STRINGS: Final[dict[int, str]] = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_TIMEOUT: "Timeout",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


def nvmlErrorString(result: int) -> str:
    return _ERROR_STRINGS.get(result, f"NVML Error with code {result}")


class NVMLError(Exception):
    """NVML failure; ``NVMLError(value)`` builds the matching ``NVMLError_*`` subclass."""

    _value_class: ClassVar[dict[int, type[NVMLError]]] = {}
    value: int

    def __new__(cls, value: int) -> NVMLError:
        target = NVMLError._value_class.get(value, cls) if cls is NVMLError else cls
        obj = Exception.__new__(target)
        obj.value = value
        return obj

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return nvmlErrorString(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


class NVMLError_Uninitialized(NVMLError):
    pass


class NVMLError_InvalidArgument(NVMLError):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_NotFound(NVMLError):
    pass


class NVMLError_DriverNotLoaded(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


class NVMLError_Unknown(NVMLError):
    pass


NVMLError._value_class.update(
    {
        NVML_ERROR_UNINITIALIZED: NVMLError_Uninitialized,
        NVML_ERROR_INVALID_ARGUMENT: NVMLError_InvalidArgument,
        NVML_ERROR_NOT_SUPPORTED: NVMLError_NotSupported,
        NVML_ERROR_NOT_FOUND: NVMLError_NotFound,
        NVML_ERROR_DRIVER_NOT_LOADED: NVMLError_DriverNotLoaded,
        NVML_ERROR_LIBRARY_NOT_FOUND: NVMLError_LibraryNotFound,
        NVML_ERROR_UNKNOWN: NVMLError_Unknown,
    }
)


class c_nvmlDevice_t:
    """Opaque device handle."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"<c_nvmlDevice_t index={self.index}>"


class c_nvmlMemory_t:
    """``nvmlDeviceGetMemoryInfo`` result; every field in bytes."""

    def __init__(self, total: int, free: int, used: int) -> None:
        self.total = total
        self.free = free
        self.used = used

    def __repr__(self) -> str:
        return f"c_nvmlMemory_t(total={self.total}, free={self.free}, used={self.used})"


class _Gpu:
    def __init__(self, index: int, raw: dict[str, Any]) -> None:
        try:
            self.name = str(raw["name"])
            self.major = int(raw["major"])
            self.minor = int(raw["minor"])
            self.total_mib = int(raw["memory_total_mib"])
            self.free_mib = int(raw.get("memory_free_mib", self.total_mib))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"TRTLLM_SIM_GPUS[{index}] is invalid: {exc!r}") from exc
        self.uuid = str(raw.get("uuid") or _default_uuid(index, self.name))


def _default_uuid(index: int, name: str) -> str:
    return "GPU-" + str(uuid.uuid5(uuid.NAMESPACE_OID, f"trtllm-sim/{index}/{name}"))


def _read_env_gpus() -> list[_Gpu]:
    raw = os.environ.get("TRTLLM_SIM_GPUS", "").strip()
    if not raw:
        return []
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TRTLLM_SIM_GPUS is not valid JSON: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("TRTLLM_SIM_GPUS must be a JSON list of objects")
    return [_Gpu(index, item) for index, item in enumerate(data)]


class _State:
    init_count: ClassVar[int] = 0
    gpus: ClassVar[list[_Gpu]] = []


def _initialized_gpus() -> list[_Gpu]:
    if _State.init_count <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _State.gpus


def _gpu(handle: c_nvmlDevice_t) -> _Gpu:
    gpus = _initialized_gpus()
    if not isinstance(handle, c_nvmlDevice_t) or not 0 <= handle.index < len(gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return gpus[handle.index]


def nvmlInit() -> None:
    """Initialise NVML; no simulated GPU means no driver, as on a CPU-only machine."""
    gpus = _read_env_gpus()
    if not gpus:
        raise NVMLError(NVML_ERROR_DRIVER_NOT_LOADED)
    _State.gpus = gpus
    _State.init_count += 1


def nvmlInitWithFlags(flags: int) -> None:
    nvmlInit()


def nvmlShutdown() -> None:
    if _State.init_count <= 0:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    _State.init_count -= 1


def nvmlDeviceGetCount() -> int:
    return len(_initialized_gpus())


def nvmlDeviceGetHandleByIndex(index: int) -> c_nvmlDevice_t:
    gpus = _initialized_gpus()
    if not 0 <= index < len(gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    return c_nvmlDevice_t(index)


def nvmlDeviceGetName(handle: c_nvmlDevice_t) -> str:
    return _gpu(handle).name


def nvmlDeviceGetUUID(handle: c_nvmlDevice_t) -> str:
    return _gpu(handle).uuid


def nvmlDeviceGetCudaComputeCapability(handle: c_nvmlDevice_t) -> tuple[int, int]:
    gpu = _gpu(handle)
    return (gpu.major, gpu.minor)


def nvmlDeviceGetMemoryInfo(handle: c_nvmlDevice_t, version: int | None = None) -> c_nvmlMemory_t:
    gpu = _gpu(handle)
    total, free = gpu.total_mib * _MIB, gpu.free_mib * _MIB
    return c_nvmlMemory_t(total=total, free=free, used=total - free)


def nvmlSystemGetDriverVersion() -> str:
    _initialized_gpus()
    return os.environ.get("TRTLLM_SIM_DRIVER") or _DEFAULT_DRIVER


def nvmlSystemGetCudaDriverVersion() -> int:
    _initialized_gpus()
    raw = os.environ.get("TRTLLM_SIM_CUDA_DRIVER")
    return int(raw) if raw else _DEFAULT_CUDA_DRIVER
