"""Files the stand-ins read and write: HF model dirs, TRT-LLM checkpoints, engine directories.

Layouts follow ``shared/reference/trtllm.md``. The weight and engine files are tiny but
deterministic (same inputs, same bytes) so callers can hash them and notice changes:

* ``rank{N}.safetensors`` is a genuine, minimal safetensors file: 8-byte little-endian header length,
  a JSON header (``__metadata__`` names the rank and quantization) and one ``U8`` tensor of a few KiB.
* ``rank{N}.engine`` starts with ``ENGINE_MAGIC``, an 8-byte header length and a JSON header recording
  the SM and TensorRT-LLM version it was "built" for; the runtime stand-ins check both, because real
  engines are not portable across SMs or versions.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from trtllm_operator.dev.standins._common import ToolError, step

ENGINE_MAGIC: Final = b"TLLMSIM\x00"
RANK_PAYLOAD_BYTES: Final = 4096
DESERIALIZE_FAILED: Final = (
    "[runtime.cpp::deserializeCudaEngine::66] Error Code 4: Internal Error (Engine deserialization failed.)"
)
_DTYPE_ALIASES: Final = {
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
}
# HF config keys carried into the TRT-LLM checkpoint config (the real converters copy these).
_COPIED_HF_KEYS: Final = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "max_position_embeddings",
    "hidden_act",
)


def deterministic_bytes(seed: str, size: int) -> bytes:
    """``size`` pseudo-random bytes that depend only on ``seed`` (sha256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``, with the errors Python itself would raise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ToolError(f"[Errno 2] No such file or directory: '{path}'", "FileNotFoundError") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToolError(f"{path}: {exc}", "json.decoder.JSONDecodeError") from exc
    if not isinstance(data, dict):
        raise ToolError(f"{path} must hold a JSON object", "ValueError")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=4, sort_keys=False) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class HFModel:
    """What the stand-ins need from a Hugging Face checkpoint directory."""

    path: Path
    architecture: str
    torch_dtype: str | None
    config: dict[str, Any]


def load_hf_model(model_dir: str) -> HFModel:
    """Read ``model_dir/config.json`` the way transformers' AutoConfig would, with its errors."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ToolError(
            f"{model_dir} is not a local folder and is not a valid model identifier listed on "
            "'https://huggingface.co/models'",
            "OSError",
        )
    if not (path / "config.json").is_file():
        raise ToolError(f"{model_dir} does not appear to have a file named config.json.", "OSError")
    config = read_json(path / "config.json")
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures or not isinstance(architectures[0], str):
        raise ToolError(f"{path / 'config.json'} has no 'architectures' list", "ValueError")
    raw_dtype = config.get("torch_dtype", config.get("dtype"))
    return HFModel(path, architectures[0], str(raw_dtype) if raw_dtype else None, config)


def resolve_dtype(requested: str, source_dtype: str | None) -> str:
    """TensorRT-LLM's ``infer_dtype``: ``auto`` takes the model's dtype, float32 becomes float16."""
    if requested != "auto":
        return requested
    resolved = _DTYPE_ALIASES.get((source_dtype or "float16").removeprefix("torch."), "float16")
    return "float16" if resolved == "float32" else resolved


def checkpoint_config(
    hf: HFModel,
    dtype: str,
    mapping: dict[str, int],
    quantization: dict[str, Any],
) -> dict[str, Any]:
    """The TRT-LLM checkpoint ``config.json`` for ``hf`` converted to ``dtype`` with ``mapping``."""
    config: dict[str, Any] = {"architecture": hf.architecture, "dtype": dtype, "logits_dtype": "float32"}
    config.update({key: hf.config[key] for key in _COPIED_HF_KEYS if key in hf.config})
    config["mapping"] = mapping
    config["quantization"] = quantization
    return config


def make_mapping(tp_size: int, pp_size: int, cp_size: int = 1) -> dict[str, int]:
    for name, value in (("tp_size", tp_size), ("pp_size", pp_size), ("cp_size", cp_size)):
        if value < 1:
            raise ToolError(f"{name} must be >= 1, got {value}", "ValueError")
    return {
        "world_size": tp_size * pp_size * cp_size,
        "tp_size": tp_size,
        "pp_size": pp_size,
        "cp_size": cp_size,
    }


def _safetensors_bytes(metadata: dict[str, str], payload: bytes) -> bytes:
    header = {
        "__metadata__": metadata,
        "weights": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]},
    }
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + payload


def read_safetensors_metadata(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file (raises ``ToolError`` when it is not one)."""
    blob = path.read_bytes()
    try:
        (length,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + length])
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ToolError(f"{path} is not a safetensors file", "safetensors_rust.SafetensorError") from exc
    if not isinstance(header, dict):
        raise ToolError(f"{path} is not a safetensors file", "safetensors_rust.SafetensorError")
    return header


def write_checkpoint(output_dir: Path, config: dict[str, Any]) -> None:
    """Write ``config.json`` and one ``rank{N}.safetensors`` per rank of ``config['mapping']``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    world = int(config["mapping"]["world_size"])
    fingerprint = json.dumps(config, sort_keys=True)
    quant = config["quantization"]
    for rank in range(world):
        step(f"Saving rank {rank}/{world} weights to {output_dir / f'rank{rank}.safetensors'}")
        metadata = {
            "format": "pt",
            "rank": str(rank),
            "world_size": str(world),
            "architecture": str(config["architecture"]),
            "dtype": str(config["dtype"]),
            "quant_algo": str(quant.get("quant_algo")),
            "kv_cache_quant_algo": str(quant.get("kv_cache_quant_algo")),
        }
        payload = deterministic_bytes(f"{fingerprint}/rank{rank}", RANK_PAYLOAD_BYTES)
        (output_dir / f"rank{rank}.safetensors").write_bytes(_safetensors_bytes(metadata, payload))
    write_json(output_dir / "config.json", config)
    step(f"Checkpoint written to {output_dir} ({world} rank file(s))")


def missing_rank_files(directory: Path, world_size: int, suffix: str) -> list[str]:
    names = [f"rank{rank}.{suffix}" for rank in range(world_size)]
    return [name for name in names if not (directory / name).is_file()]


def world_size_of(config: dict[str, Any], where: Path) -> int:
    mapping = config.get("mapping")
    if not isinstance(mapping, dict):
        raise ToolError(f"{where} has no 'mapping' object", "KeyError")
    tp, pp = int(mapping.get("tp_size", 1)), int(mapping.get("pp_size", 1))
    cp = int(mapping.get("cp_size", 1))
    world = int(mapping.get("world_size", tp * pp * cp))
    if world != tp * pp * cp:
        raise ToolError(
            f"{where}: world_size {world} != tp_size*pp_size*cp_size ({tp * pp * cp})", "ValueError"
        )
    return world


def write_engine(path: Path, header: dict[str, Any], seed: str) -> None:
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    payload = deterministic_bytes(seed, RANK_PAYLOAD_BYTES)
    path.write_bytes(ENGINE_MAGIC + struct.pack("<Q", len(raw)) + raw + payload)


def read_engine_header(path: Path) -> dict[str, Any]:
    blob = path.read_bytes()
    bad = ToolError(
        DESERIALIZE_FAILED,
        "RuntimeError",
        details=[f"[TRT] [E] 1: [stdArchiveReader.cpp] Magic tag does not match in {path}"],
    )
    if not blob.startswith(ENGINE_MAGIC):
        raise bad
    try:
        (length,) = struct.unpack("<Q", blob[8:16])
        header = json.loads(blob[16 : 16 + length])
    except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(header, dict):
        raise bad
    return header
