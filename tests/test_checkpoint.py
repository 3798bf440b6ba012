"""Checkpoint files: round trip, kinds, format versions, atomic writes, payload checks."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from brats_sdk.checkpoint import (
    FORMAT_VERSION,
    CheckpointKind,
    load_checkpoint,
    peek_kind,
    save_checkpoint,
)
from brats_sdk.errors import CheckpointError


def _payload() -> dict[str, object]:
    return {
        "state_dict": {"w": torch.arange(6.0).view(2, 3), "n": torch.tensor(3)},
        "config": {"name": "resnet18", "size": None, "rate": 0.5, "flag": True, "dims": [1, 2]},
        "history": ({"epoch": 1, "loss": 0.25},),
    }


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "model.pt"
    save_checkpoint(path, kind=CheckpointKind.SEGMENTER, payload=_payload())
    data = load_checkpoint(path, kind=CheckpointKind.SEGMENTER)
    assert data["format_version"] == FORMAT_VERSION
    assert data["kind"] == "segmenter"
    state = data["state_dict"]
    assert isinstance(state, dict)
    assert torch.equal(state["w"], torch.arange(6.0).view(2, 3))
    assert data["config"] == _payload()["config"]
    assert data["history"] == ({"epoch": 1, "loss": 0.25},)
    assert load_checkpoint(path, kind=None)["kind"] == "segmenter"
    assert peek_kind(path) is CheckpointKind.SEGMENTER
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left


def test_kind_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "surv.pt"
    save_checkpoint(path, kind=CheckpointKind.SURVIVAL, payload={})
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, kind=CheckpointKind.SEGMENTER)
    message = str(info.value)
    assert "is a survival checkpoint, expected a segmenter checkpoint" in message
    assert str(path) in message
    assert "\n" not in message


def test_wrong_format_version(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format_version": 7, "kind": "segmenter"}, path)
    with pytest.raises(
        CheckpointError, match="has format version 7; this brats_sdk reads version 1"
    ):
        load_checkpoint(path, kind=CheckpointKind.SEGMENTER)


def test_missing_version_and_unknown_kind(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="no format version"):
        load_checkpoint(path, kind=None)
    torch.save({"format_version": FORMAT_VERSION, "kind": "banana"}, path)
    with pytest.raises(CheckpointError, match="unknown checkpoint kind 'banana'"):
        load_checkpoint(path, kind=None)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", kind=None)
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path, kind=None)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(
        CheckpointError, match="not a brats_sdk checkpoint or is unreadable"
    ) as info:
        load_checkpoint(junk, kind=None)
    assert "\n" not in str(info.value)
    with pytest.raises(CheckpointError):
        peek_kind(junk)


def test_pickled_objects_are_refused_on_load(tmp_path: Path) -> None:
    path = tmp_path / "pickle.pt"
    torch.save({"format_version": FORMAT_VERSION, "kind": "segmenter", "obj": Path("x")}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_checkpoint(path, kind=None)


@pytest.mark.parametrize(
    "payload",
    [
        {"config": CheckpointKind.SEGMENTER},  # an enum member, not its value
        {"config": {"path": Path("x")}},
        {"config": {1.5: "float key"}},
        {"kind": "survival"},  # reserved key
    ],
)
def test_payload_is_checked(tmp_path: Path, payload: dict[str, object]) -> None:
    path = tmp_path / "bad.pt"
    with pytest.raises(CheckpointError):
        save_checkpoint(path, kind=CheckpointKind.SEGMENTER, payload=payload)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, kind=CheckpointKind.SEGMENTER, payload={"epoch": 1})

    def crash(obj: object, f: object) -> None:  # simulates a disk failure mid-write
        f.write(b"partial")  # type: ignore[attr-defined]  # f is the open temp file
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(CheckpointError, match="disk full"):
        save_checkpoint(path, kind=CheckpointKind.SEGMENTER, payload={"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path, kind=CheckpointKind.SEGMENTER)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_checkpoint_is_synced_and_gets_a_plain_files_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "model.pt", kind=CheckpointKind.SEGMENTER, payload={"epoch": 1})
    finally:
        os.umask(old)
    assert len(synced) == 1
    assert stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == 0o644


def test_real_failed_write_names_the_os_error(tmp_path: Path) -> None:
    """A write that really fails inside torch's zip writer, here at a 1 MB file-size limit.

    torch reports it as "unexpected pos ..."; the error must name the OSError instead, and
    the previous checkpoint must survive with no temporary file left behind.
    """
    path = tmp_path / "model.pt"
    save_checkpoint(path, kind=CheckpointKind.SEGMENTER, payload={"epoch": 1})
    script = f"""
import resource, signal, sys
import torch
from brats_sdk.checkpoint import CheckpointKind, save_checkpoint
from brats_sdk.errors import CheckpointError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    save_checkpoint({str(path)!r}, kind=CheckpointKind.SEGMENTER, payload={{"w": torch.ones(1 << 20)}})
except CheckpointError as exc:
    print(exc)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    message = done.stdout.strip()
    assert message.startswith(f"cannot write checkpoint {path}: ") and "\n" not in message
    assert "File too large" in message and "unexpected pos" not in message
    assert load_checkpoint(path, kind=CheckpointKind.SEGMENTER)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
