"""Engine manifest, atomic publication and checkpoint reuse on a real filesystem."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from trtllm_operator.builder import manifest as mf

HASH = "abc123"


def inputs(**changes: Any) -> mf.ManifestInputs:
    base = mf.ManifestInputs(
        engine={"namespace": "ml", "name": "llama", "revision": 1, "build_config_hash": HASH},
        trtllm_version="1.2.0",
        image="nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
        gpu={"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "count": 1},
        precision="fp8",
        kv_cache_dtype="fp8",
        parallelism={"tensor": 1, "pipeline": 1},
        build_flags={"gemm_plugin": "disable"},
        calibration=None,
        verification={},
        measurements={"bench": None, "acc": []},
        timings={"build": 1.5},
    )
    return dataclasses.replace(base, **changes)


def staged(tmp_path: Path) -> Path:
    staging = tmp_path / ".abc123.partial"
    (staging / "sub").mkdir(parents=True)
    (staging / "config.json").write_text('{"version": "1.2.0"}')
    (staging / "rank0.engine").write_bytes(b"\x01" * 100)
    (staging / "sub" / "extra.bin").write_bytes(b"\x02" * 7)
    return staging


def test_manifest_lists_every_file_with_its_sha256(tmp_path: Path) -> None:
    staging = staged(tmp_path)
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    manifest = mf.write_manifest(staging, inputs(), now)

    assert json.loads((staging / mf.MANIFEST_NAME).read_text()) == manifest
    assert manifest["created_at"] == "2026-01-02T03:04:05Z"
    assert manifest["files"] == [
        {"path": "config.json", "sha256": hashlib.sha256(b'{"version": "1.2.0"}').hexdigest(), "size": 20},
        {"path": "rank0.engine", "sha256": hashlib.sha256(b"\x01" * 100).hexdigest(), "size": 100},
        {"path": "sub/extra.bin", "sha256": hashlib.sha256(b"\x02" * 7).hexdigest(), "size": 7},
    ]
    assert manifest["total_size"] == 127
    assert (manifest["schema_version"], manifest["tensor"], manifest["pipeline"]) == (1, 1, 1)
    assert not list(staging.glob(".*.tmp"))


def test_publish_renames_staging_onto_the_engine(tmp_path: Path) -> None:
    staging, engine = staged(tmp_path), tmp_path / "abc123"
    mf.write_manifest(staging, inputs())

    assert mf.publish(staging, engine, HASH) is True
    assert not staging.exists()
    assert mf.manifest_problem(engine, HASH) is None


def test_publish_never_overwrites_a_complete_engine(tmp_path: Path) -> None:
    engine = tmp_path / "abc123"
    first = staged(tmp_path)
    mf.write_manifest(first, inputs())
    mf.publish(first, engine, HASH)
    before = (engine / mf.MANIFEST_NAME).read_bytes()

    second = staged(tmp_path)
    mf.write_manifest(second, inputs(timings={"build": 99.0}))
    assert mf.publish(second, engine, HASH) is False  # same build config: reused, staging dropped
    assert not second.exists()
    assert (engine / mf.MANIFEST_NAME).read_bytes() == before


def test_publish_refuses_a_foreign_or_incomplete_engine_directory(tmp_path: Path) -> None:
    engine = tmp_path / "abc123"
    engine.mkdir()
    (engine / "rank0.engine").write_bytes(b"?")
    staging = staged(tmp_path)
    mf.write_manifest(staging, inputs())

    with pytest.raises(mf.PublishConflictError, match=r"engine-manifest\.json is missing or unreadable"):
        mf.publish(staging, engine, HASH)
    assert (engine / "rank0.engine").read_bytes() == b"?"


def test_manifest_problems(tmp_path: Path) -> None:
    engine = tmp_path / "abc123"
    staging = staged(tmp_path)
    mf.write_manifest(staging, inputs())
    mf.publish(staging, engine, HASH)

    assert mf.manifest_problem(engine, "other") == "its manifest is for build config 'abc123', not 'other'"
    (engine / "rank0.engine").write_bytes(b"short")
    assert mf.manifest_problem(engine, HASH) == "rank0.engine is missing or has the wrong size"


def test_checkpoint_is_reusable_only_while_hash_and_files_match(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    (checkpoint / "rank0.safetensors").write_bytes(b"weights")
    assert not mf.checkpoint_reusable(checkpoint, HASH)  # never verified (a killed quantize)

    mf.write_verified(checkpoint, HASH)
    assert mf.checkpoint_reusable(checkpoint, HASH)
    assert not mf.checkpoint_reusable(checkpoint, "another-spec")

    (checkpoint / "rank0.safetensors").write_bytes(b"weightz")
    assert not mf.checkpoint_reusable(checkpoint, HASH)
    (checkpoint / "rank0.safetensors").write_bytes(b"weights")
    (checkpoint / "rank1.safetensors").write_bytes(b"stray")
    assert not mf.checkpoint_reusable(checkpoint, HASH)


PLAN_CALIBRATION = {"dataset": "pvc://data/calib", "size": 512, "max_seq_length": 512, "seed": 7}


def test_calibration_from_the_tool_report(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {"calibration": {"dataset": "/local/path", "size": 32, "max_seq_length": 512, "sha256": "f" * 64}}
        )
    )
    reported = mf.calibration_block(tmp_path)
    assert mf.calibration_record(PLAN_CALIBRATION, reported, None) == {
        "dataset": "pvc://data/calib",
        "size": 32,
        "max_seq_length": 512,
        "seed": 7,
        "sha256": "f" * 64,
    }


def test_calibration_hash_of_the_local_dataset_when_the_tool_reports_none(tmp_path: Path) -> None:
    data = tmp_path / "calib"
    data.mkdir()
    (data / "a.txt").write_text("hello\n")
    record = mf.calibration_record(PLAN_CALIBRATION, None, data)
    assert record is not None
    assert record["sha256"] == mf.tree_sha256(data)
    (data / "a.txt").write_text("changed\n")
    assert mf.tree_sha256(data) != record["sha256"]


def test_calibration_is_null_without_calibration_or_data(tmp_path: Path) -> None:
    assert mf.calibration_record(None, None, None) is None
    record = mf.calibration_record(PLAN_CALIBRATION, None, tmp_path / "absent")
    assert record is not None
    assert record["sha256"] is None
    assert mf.calibration_block(tmp_path) is None


@pytest.mark.parametrize("crash_at", ["fsync", "first-file-copy", "rename"])
def test_a_crash_inside_publish_never_leaves_a_partial_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    """Crash inside publish wherever it writes: the engine directory is absent or complete, never half.

    Publishing by copy + remove instead of fsync + rename leaves a half-copied engine directory that the
    next attempt refuses (PublishConflictError) and that nothing may serve; this fails on it.
    """
    staging, engine = staged(tmp_path), tmp_path / "engines" / "abc123"
    mf.write_manifest(staging, inputs())
    calls: list[str] = []

    class CrashError(Exception):
        pass

    real_fsync_tree, real_rename, real_copyfile = mf.fsync_tree, os.rename, shutil.copyfile

    def fsync_tree(path: Path) -> None:
        calls.append("fsync")
        if crash_at == "fsync":
            raise CrashError
        real_fsync_tree(path)

    def rename(src: Any, dst: Any) -> None:
        calls.append("rename")
        if crash_at == "rename" and Path(dst) == engine:
            raise CrashError  # a rename is atomic: a crash is before it or after it, never inside
        real_rename(src, dst)

    def copyfile(src: Any, dst: Any, **kw: Any) -> Any:
        calls.append("copy")
        real_copyfile(src, dst, **kw)
        if crash_at == "first-file-copy":
            raise CrashError
        return dst

    monkeypatch.setattr(mf, "fsync_tree", fsync_tree)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(shutil, "copyfile", copyfile)
    with contextlib.suppress(CrashError):
        mf.publish(staging, engine, HASH)
    assert not engine.exists() or mf.manifest_problem(engine, HASH) is None, calls
    assert "copy" not in calls, f"publish copied files instead of renaming the staging directory: {calls}"
    assert calls[:1] == ["fsync"], f"staging must be fsynced before it is published: {calls}"
    monkeypatch.undo()
    if staging.exists():  # the retry after a crash publishes the intact staging directory
        assert mf.publish(staging, engine, HASH) is True
    assert mf.manifest_problem(engine, HASH) is None
