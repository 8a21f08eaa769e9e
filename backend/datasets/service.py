"""Uploaded datasets: check and keep an upload, list, read, delete; check a spec's upload_id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.datasets import objects, store, zipcheck
from backend.datasets.models import UploadedDataset
from backend.datasets.schemas import UploadForm
from backend.datasets.validate import Checked, UploadInvalid, check_csv, check_npz
from backend.errors import Conflict, InvalidInput, NotFound
from backend.spec import ExperimentSpec
from backend.spec.dataset_options import UPLOAD, resolve_classes

log = logging.getLogger(__name__)

_REMOVE_ON_ROLLBACK = "fitboard.datasets_to_remove_on_rollback"
_REMOVE_ON_COMMIT = "fitboard.datasets_to_remove_on_commit"


@dataclass
class StagedUpload:
    """The request's file, written whole to a private staging folder (not yet a dataset)."""

    folder: Path
    path: Path
    filename: str
    size_bytes: int


def check_upload(staged: StagedUpload, form: UploadForm) -> Checked:
    """Check the staged file as its kind; on success leave it as the store keeps it."""
    settings = get_settings()
    unpacked = settings.max_unzipped_mb * 2**20
    if form.kind != "csv":
        for name in ("target_column", "text_column"):
            if getattr(form, name) is not None:
                raise UploadInvalid(f"{name} applies to csv uploads only", field=name)
    if staged.size_bytes == 0:
        raise UploadInvalid("the file is empty", field="file")
    if form.kind == "csv":
        checked = check_csv(
            staged.path, target_column=form.target_column, text_column=form.text_column
        )
    elif form.kind == "npz":
        checked = check_npz(staged.path, max_unpacked_bytes=unpacked)
    else:
        checked = zipcheck.check_image_zip(
            staged.path,
            staged.folder / store.DATA_FILES["image_zip"],
            max_entries=settings.max_zip_entries,
            max_unpacked_bytes=unpacked,
        )
    if form.kind == "image_zip":
        staged.path.unlink()  # its images are extracted; the zip itself is not kept
    else:
        staged.path.rename(staged.folder / store.DATA_FILES[form.kind])
    return checked


def create(session: Session, *, staged: StagedUpload, form: UploadForm) -> UploadedDataset:
    """Check the staged file; only if it passes, add the row and move the files into place."""
    checked = check_upload(staged, form)
    row = UploadedDataset(
        name=form.name,
        kind=form.kind,
        filename=staged.filename[:255],
        size_bytes=staged.size_bytes,
        num_examples=checked.num_examples,
        class_names=checked.class_names,
        input_shape=checked.input_shape,
        options=checked.options,
    )
    session.add(row)
    session.flush()
    store.keep(staged.folder, row.id, meta(row))
    session.info.setdefault(_REMOVE_ON_ROLLBACK, []).append(row.id)
    objects.publish(row.id)  # with an object store: there too, before the row commits
    log.info("dataset=%s kind=%s examples=%d: uploaded", row.id, row.kind, row.num_examples)
    return row


def meta(row: UploadedDataset) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "num_examples": row.num_examples,
        "class_names": row.class_names,
        "input_shape": row.input_shape,
        "options": row.options,
    }


def get(session: Session, dataset_id: int) -> UploadedDataset:
    row = session.get(UploadedDataset, dataset_id)
    if row is None:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return row


def list_all(session: Session) -> list[UploadedDataset]:
    return list(session.scalars(select(UploadedDataset).order_by(UploadedDataset.id.desc())))


def delete(session: Session, *, dataset_id: int, used_by: list[int]) -> None:
    """Delete an upload no queued or running run uses (``used_by``: the ids of those that do,
    which the runs package knows); its files go once the delete commits."""
    row = get(session, dataset_id)
    if used_by:
        raise Conflict(
            f"dataset {dataset_id} is used by queued or running runs {used_by}: cancel them first"
        )
    session.delete(row)
    session.flush()
    session.info.setdefault(_REMOVE_ON_COMMIT, []).append(dataset_id)


def check_spec(session: Session, spec: ExperimentSpec) -> None:
    """At submit: the upload a spec names exists, and its classes are among the upload's."""
    dataset = spec.dataset
    if dataset.name != UPLOAD or dataset.upload_id is None:
        return
    row = session.get(UploadedDataset, dataset.upload_id)
    if row is None:
        raise InvalidInput(
            f"no uploaded dataset {dataset.upload_id} (GET /api/v1/datasets lists them)",
            field="spec.dataset.upload_id",
        )
    if dataset.classes is not None:
        try:
            resolve_classes(dataset.classes, row.class_names)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="spec.dataset.classes") from None
    if row.kind != "image_zip":
        for name in ("image_size", "color_mode"):
            if getattr(dataset, name) is not None:
                raise InvalidInput(
                    f"{name} applies to image_zip uploads; dataset {row.id} is {row.kind}",
                    field=f"spec.dataset.{name}",
                )


@event.listens_for(Session, "after_commit")
def _remove_deleted(session: Session) -> None:
    session.info.pop(_REMOVE_ON_ROLLBACK, None)
    for dataset_id in session.info.pop(_REMOVE_ON_COMMIT, ()):
        objects.remove(dataset_id)


@event.listens_for(Session, "after_rollback")
def _remove_uncommitted(session: Session) -> None:
    # files moved into place for a row that never committed would be orphans
    session.info.pop(_REMOVE_ON_COMMIT, None)
    for dataset_id in session.info.pop(_REMOVE_ON_ROLLBACK, ()):
        objects.remove(dataset_id)
