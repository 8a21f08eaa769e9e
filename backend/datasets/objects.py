"""Uploaded datasets in the artifact store: with an object store (FITBOARD_S3_*) every file of
an upload is put there under ``datasets/<id>/`` when the upload is kept (its manifest last, so a
manifest there means every file is), and API processes without the local copy serve it from
there; deleting the upload deletes its objects. The local folder (backend.datasets.store) is
where uploads are checked, and the embedded default's only copy."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, BinaryIO

from backend.artifacts.store import ArtifactStore, get_store
from backend.config import get_settings
from backend.datasets import store

log = logging.getLogger(__name__)


def _object_store() -> ArtifactStore | None:
    return get_store() if get_settings().s3_endpoint else None


def _prefix(dataset_id: int) -> str:
    return f"datasets/{int(dataset_id)}/"


def publish(dataset_id: int) -> None:
    """Put a kept upload's files into the object store (nothing without one)."""
    objects = _object_store()
    if objects is None:
        return
    folder = store.dataset_dir(dataset_id)
    files = store.manifest(dataset_id)
    for rel in files:
        objects.put(_prefix(dataset_id) + rel, folder.joinpath(*rel.split("/")))
    objects.put(_prefix(dataset_id) + store.MANIFEST, folder / store.MANIFEST)
    log.info("dataset=%s: %d files in the object store", dataset_id, len(files))


def remove(dataset_id: int) -> None:
    """The local copy and the objects of an upload."""
    store.remove(dataset_id)
    objects = _object_store()
    if objects is not None:
        try:
            objects.delete_prefix(_prefix(dataset_id))
        except OSError as exc:  # the object store away: say so, the row is gone anyway
            log.warning("dataset=%s: could not delete its objects: %s", dataset_id, exc)


def manifest(dataset_id: int) -> dict[str, dict[str, Any]]:
    """Relative path -> size and SHA-256, from the local copy or the object store."""
    try:
        return store.manifest(dataset_id)
    except store.UploadMissing:
        objects = _object_store()
        if objects is None:
            raise
    try:
        with objects.open(_prefix(dataset_id) + store.MANIFEST) as f:
            found: dict[str, dict[str, Any]] = json.loads(f.read())
            return found
    except (FileNotFoundError, OSError):
        raise store.UploadMissing(f"uploaded dataset {dataset_id} has no files") from None


def open_file(dataset_id: int, relative: str) -> Path | BinaryIO:
    """A file of the upload by its manifest path: a local path, or a stream from the store."""
    if relative not in manifest(dataset_id):
        raise store.UploadMissing(f"uploaded dataset {dataset_id} has no file {relative!r}")
    local = store.dataset_dir(dataset_id).joinpath(*relative.split("/"))
    if local.is_file():
        return local
    objects = _object_store()
    if objects is None:
        raise store.UploadMissing(f"uploaded dataset {dataset_id} has no file {relative!r}")
    return objects.open(_prefix(dataset_id) + relative)
