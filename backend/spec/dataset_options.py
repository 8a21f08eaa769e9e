"""Dataset options beyond the registry's defaults: a class subset, a channel axis, image folders.

Pure; the worker applies them (worker.trainer.dataset_options, worker.trainer.image_folder).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from backend.spec.catalog import DATASETS
from backend.spec.field_errors import field_error

if TYPE_CHECKING:
    from backend.spec.model import DatasetSpec

IMAGE_FOLDER = "image_folder"
UPLOAD = "upload"
DEFAULT_IMAGE_SIZE = [150, 150]  # the tutorial's cats vs dogs size
_FOLDER_ONLY = ("path", "image_size", "color_mode")
# every dataset a spec may name: the registry's, then the two read from files
DATASET_NAMES: tuple[str, ...] = (*DATASETS, IMAGE_FOLDER, UPLOAD)
# registry datasets without a test split of their own: test_split holds one out
NO_TEST_SPLIT = frozenset({"digits", "reuters"})
APPLIES_WHEN = "x-applies-when"  # JSON Schema keyword: {"dataset.name": [names it applies to]}


def dataset_kind(name: str) -> str:
    """image or text for the registry's datasets; image_folder and upload are their own kind."""
    return DATASETS[name][2] if name in DATASETS else name


def datasets_where(applies: Callable[[str, str], bool]) -> list[str]:
    """The dataset names (in DATASET_NAMES' order) for which applies(name, kind) holds."""
    return [name for name in DATASET_NAMES if applies(name, dataset_kind(name))]


def image_datasets() -> list[str]:
    """Datasets of images: the registry's image ones, image folders and uploads (zip, NPZ)."""
    return datasets_where(lambda _name, kind: kind in {"image", IMAGE_FOLDER, UPLOAD})


# DatasetSpec field -> the datasets it applies to (a field not named applies to all). An upload
# may hold images or text (a CSV), so the options of both apply to it; path is image_folder's.
_TEXT = {"text", UPLOAD}
_FOLDER_FILES = {IMAGE_FOLDER, UPLOAD}
FIELD_DATASETS: dict[str, list[str]] = {
    "upload_id": [UPLOAD],
    "test_split": datasets_where(lambda name, kind: name in NO_TEST_SPLIT or kind in _FOLDER_FILES),
    "normalize": image_datasets(),
    "num_words": datasets_where(lambda _name, kind: kind in _TEXT),
    "maxlen": datasets_where(lambda _name, kind: kind in _TEXT),
    "padding": datasets_where(lambda _name, kind: kind in _TEXT),
    "truncating": datasets_where(lambda _name, kind: kind in _TEXT),
    "channels_last": image_datasets(),
    "path": [IMAGE_FOLDER],
    "image_size": datasets_where(lambda _name, kind: kind in _FOLDER_FILES),
    "color_mode": datasets_where(lambda _name, kind: kind in _FOLDER_FILES),
}


def applies_when(**conditions: list[str]) -> dict[str, Any]:
    """json_schema_extra for a field that applies only when each spec path holds a listed value
    (the New run form hides it otherwise): applies_when(**{"dataset.name": [...]})."""
    return {APPLIES_WHEN: conditions}


def annotate_dataset_schema(schema: dict[str, Any]) -> None:
    """DatasetSpec's json_schema_extra: mark each field with the datasets it applies to."""
    for name, datasets in FIELD_DATASETS.items():
        prop = schema.get("properties", {}).get(name)
        if prop is not None:
            prop.update(applies_when(**{"dataset.name": datasets}))


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
