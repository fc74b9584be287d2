"""The engine manifest, atomic publication, and reuse of verified checkpoints.

An engine directory is either complete — every file fsynced and listed with its sha256 in
``engine-manifest.json`` — or absent. The build writes into a staging directory, writes the manifest
last, fsyncs files and directories, then ``os.rename``s staging onto the final name: a crash at any
point before the rename leaves no engine directory (the next attempt removes the stale staging and
starts over), and a serving pod can never mount half an engine. A complete engine is never
overwritten: if the final directory exists it must hold a valid manifest for the same build-config
hash, and is then simply reported again (idempotent rerun).

Quantization is the most expensive step (it calibrates on the GPU), and a Job retry after a failed
``trtllm-build`` should not redo it. After a successful quantize/convert the builder writes
``.verified`` into the checkpoint: the build-config hash plus the sha256 of every checkpoint file.
A rerun skips the step only if both still match — a checkpoint half-written by a killed pod never
has a ``.verified``, and one from a different spec has another hash.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

MANIFEST_NAME: Final = "engine-manifest.json"
VERIFIED_NAME: Final = ".verified"
CALIBRATION_NAME: Final = "calibration.json"
SCHEMA_VERSION: Final = 1
_CHUNK: Final = 1024 * 1024
#: Calibration facts taken from the quantizer's own report (it knows the size it really used, e.g.
#: capped at 32 for AWQ); the dataset name stays the plan's (the tool only sees a local path).
_REPORTED_KEYS: Final = ("size", "max_seq_length", "seed", "sha256")


class PublishConflictError(Exception):
    """The final engine directory exists but is not a complete engine of this build config."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(root: Path, exclude: frozenset[str] = frozenset({MANIFEST_NAME})) -> list[dict[str, Any]]:
    """``[{path, sha256, size}]`` of every regular file under ``root`` (relative posix paths, sorted)."""
    entries = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and rel not in exclude:
            entries.append({"path": rel, "sha256": sha256_file(path), "size": path.stat().st_size})
    return entries


def tree_sha256(root: Path) -> str:
    """One digest over the names and contents of every file under ``root`` (a dataset fingerprint)."""
    digest = hashlib.sha256()
    for entry in file_entries(root, frozenset()):
        digest.update(f"{entry['path']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()


# --- manifest --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestInputs:
    """Everything the manifest records besides the file list."""

    engine: dict[str, Any]
    trtllm_version: str
    image: str
    gpu: dict[str, Any]
    precision: str
    kv_cache_dtype: str
    parallelism: dict[str, int]
    build_flags: dict[str, str]
    calibration: dict[str, Any] | None
    verification: dict[str, Any]
    measurements: dict[str, Any]
    timings: dict[str, float]


def build_manifest(
    inputs: ManifestInputs, files: list[dict[str, Any]], now: datetime | None = None
) -> dict[str, Any]:
    """The manifest document (pure)."""
    created = (now or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "schema_version": SCHEMA_VERSION,
        "engine": inputs.engine,
        "trtllm_version": inputs.trtllm_version,
        "image": inputs.image,
        "gpu": inputs.gpu,
        "precision": inputs.precision,
        "kv_cache_dtype": inputs.kv_cache_dtype,
        **inputs.parallelism,
        "build_flags": inputs.build_flags,
        "calibration": inputs.calibration,
        "verification": inputs.verification,
        "measurements": inputs.measurements,
        "files": files,
        "total_size": sum(int(entry["size"]) for entry in files),
        "timings": inputs.timings,
        "created_at": created,
    }


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (directories: so a rename or a new entry survives a crash)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root``, then ``root`` itself."""
    for path in sorted(root.rglob("*"), reverse=True):
        if not path.is_symlink():
            fsync_path(path)
    fsync_path(root)


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``path`` via a temporary sibling + fsync + rename: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_manifest(staging: Path, inputs: ManifestInputs, now: datetime | None = None) -> dict[str, Any]:
    """Hash every staging file and write the manifest into staging; returns the manifest."""
    manifest = build_manifest(inputs, file_entries(staging), now)
    write_json_atomic(staging / MANIFEST_NAME, manifest)
    return manifest


def read_manifest(engine_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((engine_dir / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def manifest_problem(engine_dir: Path, build_config_hash: str) -> str | None:
    """Why ``engine_dir`` is not a complete engine for ``build_config_hash`` (None: it is one).

    Files are checked for presence and size, not re-hashed: re-reading tens of GiB on every rerun
    would cost minutes, and the rename protocol already guarantees complete content.
    """
    manifest = read_manifest(engine_dir)
    if manifest is None:
        return f"{engine_dir / MANIFEST_NAME} is missing or unreadable"
    found_hash = (manifest.get("engine") or {}).get("build_config_hash")
    if found_hash != build_config_hash:
        return f"its manifest is for build config {found_hash!r}, not {build_config_hash!r}"
    for entry in manifest.get("files") or []:
        path = engine_dir / str(entry.get("path"))
        if not path.is_file() or path.stat().st_size != entry.get("size"):
            return f"{entry.get('path')} is missing or has the wrong size"
    return None


def remove_tree(path: Path) -> bool:
    """Remove a directory tree (or file) if present; True when something was removed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def publish(staging: Path, engine: Path, build_config_hash: str) -> bool:
    """Atomically move ``staging`` to ``engine``. Returns False when an identical engine was already there.

    Raises :class:`PublishConflictError` when ``engine`` exists and is not a complete engine of this hash.
    """
    if engine.exists():
        problem = manifest_problem(engine, build_config_hash)
        if problem is not None:
            raise PublishConflictError(f"{engine} already exists and is not this engine ({problem})")
        remove_tree(staging)
        return False
    fsync_tree(staging)
    engine.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging, engine)
    fsync_path(engine.parent)
    return True


# --- checkpoint reuse ------------------------------------------------------------------------------


def checkpoint_digests(checkpoint: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every checkpoint file except ``.verified``."""
    return {entry["path"]: entry["sha256"] for entry in file_entries(checkpoint, frozenset({VERIFIED_NAME}))}


def write_verified(checkpoint: Path, build_config_hash: str) -> None:
    """Mark a freshly written checkpoint as complete for ``build_config_hash``."""
    marker = {"build_config_hash": build_config_hash, "files": checkpoint_digests(checkpoint)}
    write_json_atomic(checkpoint / VERIFIED_NAME, marker)


def checkpoint_reusable(checkpoint: Path, build_config_hash: str) -> bool:
    """Whether ``.verified`` exists, names this hash, and every file still has its recorded sha256."""
    try:
        marker = json.loads((checkpoint / VERIFIED_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(marker, dict) or marker.get("build_config_hash") != build_config_hash:
        return False
    files = marker.get("files")
    return bool(files) and files == checkpoint_digests(checkpoint)


# --- calibration record ----------------------------------------------------------------------------


def calibration_block(checkpoint: Path) -> dict[str, Any] | None:
    """What the quantizer reported about calibration: ``calibration.json`` or the config's block."""
    for path, key in ((checkpoint / CALIBRATION_NAME, None), (checkpoint / "config.json", "calibration")):
        with contextlib.suppress(OSError, UnicodeDecodeError, json.JSONDecodeError):
            data = json.loads(path.read_text(encoding="utf-8"))
            block = data.get(key) if key and isinstance(data, dict) else data
            if isinstance(block, dict):
                return block
    return None


def calibration_record(
    plan_calibration: Mapping[str, Any] | None, reported: Mapping[str, Any] | None, local_dir: Path | None
) -> dict[str, Any] | None:
    """The manifest's ``calibration``: the tool's report first, else a hash of the local dataset."""
    if plan_calibration is None:
        return None
    record: dict[str, Any] = {
        "dataset": plan_calibration.get("dataset"),
        "size": plan_calibration.get("size"),
        "max_seq_length": plan_calibration.get("max_seq_length"),
        "seed": plan_calibration.get("seed"),
        "sha256": None,
    }
    if reported:
        record.update({key: reported[key] for key in _REPORTED_KEYS if reported.get(key) is not None})
    if record["sha256"] is None and local_dir is not None and local_dir.is_dir():
        record["sha256"] = tree_sha256(local_dir)
    return record
