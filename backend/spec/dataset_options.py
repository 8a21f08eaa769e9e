"""Dataset options beyond the registry's defaults: a class subset, a channel axis, image folders.

Pure; the worker applies them (worker.trainer.dataset_options, worker.trainer.image_folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from backend.spec.catalog import DATASETS
from backend.spec.field_errors import field_error

if TYPE_CHECKING:
    from backend.spec.model import DatasetSpec

IMAGE_FOLDER = "image_folder"
UPLOAD = "upload"
DEFAULT_IMAGE_SIZE = [150, 150]  # the tutorial's cats vs dogs size
_FOLDER_ONLY = ("path", "image_size", "color_mode")


def resolve_classes(classes: Sequence[int | str], names: Sequence[str]) -> list[int]:
    """Labels of the selected classes, given by label or by class name (ValueError if unknown)."""
    labels: list[int] = []
    for wanted in classes:
        if isinstance(wanted, str):
            if wanted not in names:
                raise ValueError(f"no class named {wanted!r}; classes: {', '.join(names)}")
            labels.append(list(names).index(wanted))
        elif not 0 <= wanted < len(names):
            raise ValueError(f"no class {wanted}: labels are 0..{len(names) - 1}")
        else:
            labels.append(wanted)
    if len(set(labels)) != len(labels):
        raise ValueError("a class is listed twice")
    return labels


def check_dataset(spec: DatasetSpec) -> None:
    """Image-folder fields only with image_folder (defaults filled in), classes that exist."""
    if spec.name == IMAGE_FOLDER:
        if not spec.path:
            raise field_error("DatasetSpec", ("path",), "image_folder needs a path on the worker")
        if spec.image_size is None:
            spec.image_size = list(DEFAULT_IMAGE_SIZE)
        if spec.color_mode is None:
            spec.color_mode = "rgb"
    elif spec.name == UPLOAD:
        if spec.upload_id is None:
            raise field_error("DatasetSpec", ("upload_id",), "upload needs an upload_id")
        if spec.path is not None:
            raise field_error("DatasetSpec", ("path",), "path applies to image_folder only")
    else:
        for name in _FOLDER_ONLY:
            if getattr(spec, name) is not None:
                raise field_error(
                    "DatasetSpec", (name,), f"{name} applies to the image_folder dataset only"
                )
    if spec.upload_id is not None and spec.name != UPLOAD:
        raise field_error("DatasetSpec", ("upload_id",), "upload_id applies to upload only")
    kind = DATASETS[spec.name][2] if spec.name in DATASETS else "image"
    if spec.channels_last and kind != "image":
        raise field_error(
            "DatasetSpec",
            ("channels_last",),
            f"channels_last applies to images; {spec.name} is {kind}",
        )
    names = DATASETS[spec.name][1] if spec.name in DATASETS else []
    if spec.classes is not None and names:  # an image folder's classes are known once read
        try:
            resolve_classes(spec.classes, names)
        except ValueError as exc:
            raise field_error("DatasetSpec", ("classes",), str(exc)) from None


def selected_class_names(spec: DatasetSpec) -> list[str]:
    """The class names a run sees: the registry's, narrowed and ordered by classes."""
    names = list(DATASETS[spec.name][1]) if spec.name in DATASETS else []
    if not spec.classes or not names:
        return names
    return [names[label] for label in resolve_classes(spec.classes, names)]
