"""Where artifact bytes live: one small interface, a local directory by default, an
S3-compatible bucket when FITBOARD_S3_ENDPOINT is set (backend.artifacts.s3)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol, cast

from backend.config import get_settings


class ArtifactStore(Protocol):
    def put(self, key: str, source: Path) -> int:
        """Copy a local file under key; returns its size in bytes."""

    def open(self, key: str, *, start: int = 0, stop: int | None = None) -> BinaryIO:
        """Stream the bytes stored under key, from start up to stop (exclusive; None: the end).

        FileNotFoundError when there is no such key."""

    def local_path(self, key: str) -> Path | None:
        """A path on this machine if the store has one (lets the API send the file directly)."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under prefix (a folder-like 'runs/7/'); returns how many went."""

    def delete(self, key: str) -> bool:
        """Remove the bytes stored under key; False when there were none."""


def run_prefix(run_id: int) -> str:
    """Where a run's artifacts live in the store: every key of run 7 starts with 'runs/7/'."""
    return f"runs/{run_id}/"


def safe_key(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"bad artifact key {key!r}")
    return path


class LocalDirStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*safe_key(key).parts)

    def put(self, key: str, source: Path) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".part")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        return target.stat().st_size

    def open(self, key: str, *, start: int = 0, stop: int | None = None) -> BinaryIO:
        file = self._path(key).open("rb")
        if start == 0 and stop is None:
            return file
        file.seek(start)
        return cast(BinaryIO, _Window(file, None if stop is None else stop - start))

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

    def delete(self, key: str) -> bool:
        target = self._path(key)
        if not target.is_file():
            return False
        target.unlink(missing_ok=True)
        return True


class _Window(io.RawIOBase):
    """At most `left` bytes of an open file (None: to its end); closing it closes the file."""

    def __init__(self, file: BinaryIO, left: int | None) -> None:
        self.file, self.left = file, left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        if self.left is not None:
            view = view[: self.left]
        data = self.file.read(len(view))
        view[: len(data)] = data
        if self.left is not None:
            self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.file.close()
        super().close()


def get_store() -> ArtifactStore:
    """The store the settings name: S3 when FITBOARD_S3_ENDPOINT is set, else a directory."""
    settings = get_settings()
    if settings.s3_endpoint:
        from backend.artifacts.s3 import shared_store

        return shared_store(
            endpoint=settings.s3_endpoint,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
            prefix=settings.s3_prefix,
        )
    return LocalDirStore(settings.artifacts_root)
