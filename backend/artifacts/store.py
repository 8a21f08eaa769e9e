"""Where artifact bytes live: one small interface, a local directory by default."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from backend.config import get_settings


class ArtifactStore(Protocol):
    def put(self, key: str, source: Path) -> int:
        """Copy a local file under key; returns its size in bytes."""

    def open(self, key: str) -> BinaryIO:
        """Read the bytes stored under key."""

    def local_path(self, key: str) -> Path | None:
        """A path on this machine if the store has one (lets the API send the file directly)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under prefix (a folder-like 'runs/7/'); returns how many went."""


def run_prefix(run_id: int) -> str:
    """Where a run's artifacts live in the store: every key of run 7 starts with 'runs/7/'."""
    return f"runs/{run_id}/"


def _safe_key(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"bad artifact key {key!r}")
    return path


class LocalDirStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_safe_key(key).parts)

    def put(self, key: str, source: Path) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        return target.stat().st_size

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete_prefix(self, prefix: str) -> int:
        # a prefix is a folder here: 'runs/7/' must never take 'runs/70/' with it
        target = self._path(prefix.rstrip("/"))
        if not target.is_dir():
            return 0
        count = sum(1 for p in target.rglob("*") if p.is_file())
        shutil.rmtree(target, ignore_errors=True)
        return count


def get_store() -> ArtifactStore:
    return LocalDirStore(get_settings().artifacts_root)
