"""Where uploaded datasets live: $FITBOARD_HOME/datasets/<id>/, shared by the API and workers.

Each folder holds the data (data.csv, data.npz, or images/ extracted from the zip) and
meta.json, a copy of the row's metadata, so the training process reads an upload without
a database session.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from backend.config import get_settings

META = "meta.json"
DATA_FILES = {"csv": "data.csv", "npz": "data.npz", "image_zip": "images"}


class UploadMissing(FileNotFoundError):
    """An upload id with no files in the dataset store."""


def root() -> Path:
    return get_settings().home.resolve() / "datasets"


def dataset_dir(dataset_id: int) -> Path:
    return root() / str(int(dataset_id))


def new_staging_dir() -> Path:
    """A private folder on the store's file system, so keeping an upload is one rename."""
    path = root() / ".staging" / uuid.uuid4().hex
    path.mkdir(parents=True)
    return path


def keep(staging: Path, dataset_id: int, meta: dict[str, Any]) -> Path:
    """Write meta.json and move the staged folder into place as the dataset's folder."""
    (staging / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    target = dataset_dir(dataset_id)
    if target.exists():  # left by an earlier database that reused the id
        shutil.rmtree(target)
    staging.rename(target)
    return target


def read_meta(dataset_id: int) -> dict[str, Any]:
    path = dataset_dir(dataset_id) / META
    if not path.is_file():
        raise UploadMissing(
            f"uploaded dataset {dataset_id} has no files at {path.parent}; the API and the "
            "worker must share FITBOARD_HOME"
        )
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def remove(dataset_id: int) -> None:
    shutil.rmtree(dataset_dir(dataset_id), ignore_errors=True)


MANIFEST = ".manifest.json"


def manifest(dataset_id: int) -> dict[str, dict[str, Any]]:
    """Every file of an upload (relative POSIX path -> size and SHA-256), so a worker on another
    host can fetch it once, cache it, and check it. Computed once and kept beside the files."""
    folder = dataset_dir(dataset_id)
    read_meta(dataset_id)  # a clear UploadMissing when there is nothing
    cached = folder / MANIFEST
    if cached.is_file():
        found: dict[str, dict[str, Any]] = json.loads(cached.read_text(encoding="utf-8"))
        return found
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(folder).as_posix()
        files[rel] = {"size": path.stat().st_size, "sha256": sha256_of(path)}
    tmp = cached.with_name(cached.name + f".{uuid.uuid4().hex}.part")
    tmp.write_text(json.dumps(files), encoding="utf-8")
    tmp.replace(cached)
    return files


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_path(dataset_id: int, relative: str) -> Path:
    """A file of the upload by its manifest path; UploadMissing for anything else."""
    if relative not in manifest(dataset_id):
        raise UploadMissing(f"uploaded dataset {dataset_id} has no file {relative!r}")
    return dataset_dir(dataset_id).joinpath(*relative.split("/"))
