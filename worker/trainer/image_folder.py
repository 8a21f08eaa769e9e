"""The image_folder dataset: a directory on the worker with one sub-folder of images per class.

Two layouts, as in the cats-vs-dogs tutorial:

    path/cats/*.jpg, path/dogs/*.jpg                 test_split of each class is the test split
    path/train/{cats,dogs}/*, path/test/{cats,dogs}/*     (or validation/ instead of test/)

Class names are the folder names in alphabetical order (like
keras.utils.image_dataset_from_directory); images are decoded with TensorFlow, resized to
image_size (bilinear) and held in memory as float32 arrays. Uploaded zips are not read here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from backend.spec import DatasetSpec
from backend.spec.dataset_options import resolve_classes
from worker.trainer.datasets import Dataset

log = logging.getLogger(__name__)

# the formats keras.utils.image_dataset_from_directory reads
IMAGE_EXTENSIONS = frozenset({".bmp", ".gif", ".jpeg", ".jpg", ".png"})
# fixed, independent of the fit seed, so every run of a spec sees the same split and order
SPLIT_SEED = 0
CHANNELS = {"grayscale": 1, "rgb": 3, "rgba": 4}
TEST_FOLDERS = ("test", "validation")


class ImageFolderError(ValueError):
    """The folder is missing, empty or not laid out one sub-folder per class."""


Files = list[tuple[Path, int]]


def load(spec: DatasetSpec) -> Dataset:
    """Read, split, select classes, limit and normalize an image folder."""
    root = Path(spec.path or "").expanduser()
    if not root.is_dir():
        raise ImageFolderError(f"image_folder: {root} is not a directory on this worker")
    train_dir, test_dir = _split_folders(root)
    all_names = class_folders(train_dir)
    labels = resolve_classes(spec.classes, all_names) if spec.classes else None
    names = [all_names[i] for i in labels] if labels is not None else all_names
    rng = np.random.RandomState(SPLIT_SEED)
    train_files = _files(train_dir, names)
    if test_dir is not None:
        test_names = class_folders(test_dir)
        missing = sorted(set(names) - set(test_names))
        if missing:
            raise ImageFolderError(f"image_folder: {test_dir} has no folder for {missing}")
        test_files = _files(test_dir, names)
    else:
        train_files, test_files = _stratified_split(train_files, spec.test_split, rng, names)
    # files come grouped by class and Keras' validation_split takes the last examples: shuffle
    train_files = [train_files[i] for i in rng.permutation(len(train_files))]
    if spec.train_limit is not None:
        train_files = train_files[: spec.train_limit]
    if spec.test_limit is not None:
        test_files = test_files[: spec.test_limit]
    size = (int((spec.image_size or [150, 150])[0]), int((spec.image_size or [150, 150])[1]))
    channels = CHANNELS[spec.color_mode or "rgb"]
    x_train, y_train = read_images(train_files, size=size, channels=channels)
    x_test, y_test = read_images(test_files, size=size, channels=channels)
    if spec.normalize:
        x_train /= 255.0
        x_test /= 255.0
    log.info(
        "image_folder %s: %d classes, %d train and %d test images of %s",
        root,
        len(names),
        len(x_train),
        len(x_test),
        x_train.shape[1:],
    )
    return Dataset(
        name="image_folder",
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=names,
        num_classes=len(names),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
    )


def class_folders(folder: Path) -> list[str]:
    """Sub-folder names, sorted (hidden ones skipped); at least two."""
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(names) < 2:
        raise ImageFolderError(
            f"image_folder: {folder} needs one sub-folder of images per class, at least two; "
            f"found {names or 'none'}"
        )
    return names


def read_images(files: Files, *, size: tuple[int, int], channels: int) -> tuple[np.ndarray, ...]:
    """Decode and resize every file: float32 (N, height, width, channels) in [0, 255], labels."""
    import tensorflow as tf

    x = np.empty((len(files), size[0], size[1], channels), dtype=np.float32)
    y = np.empty(len(files), dtype=np.int64)
    for i, (path, label) in enumerate(files):
        try:
            image = tf.io.decode_image(
                path.read_bytes(), channels=channels, expand_animations=False
            )
        except (tf.errors.InvalidArgumentError, OSError) as exc:
            raise ImageFolderError(f"image_folder: cannot read {path} as an image: {exc}") from None
        x[i] = tf.image.resize(image, size, method="bilinear").numpy()
        y[i] = label
    return x, y


def _split_folders(root: Path) -> tuple[Path, Path | None]:
    for test_name in TEST_FOLDERS:
        if (root / "train").is_dir() and (root / test_name).is_dir():
            return root / "train", root / test_name
    return root, None


def _files(folder: Path, names: list[str]) -> Files:
    files: Files = []
    for label, name in enumerate(names):
        found = sorted(
            p for p in (folder / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not found:
            raise ImageFolderError(
                f"image_folder: {folder / name} holds no images "
                f"({', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        files += [(p, label) for p in found]
    return files


def _stratified_split(
    files: Files, test_split: float, rng: np.random.RandomState, names: list[str]
) -> tuple[Files, Files]:
    """test_split of each class (at least one image) to the test split."""
    train: Files = []
    test: Files = []
    for label, name in enumerate(names):
        mine = [f for f in files if f[1] == label]
        if len(mine) < 2:
            raise ImageFolderError(
                f"image_folder: class {name!r} has {len(mine)} image; each class needs two or "
                "more to hold some out for the test split"
            )
        order = rng.permutation(len(mine))
        n_test = min(len(mine) - 1, max(1, round(len(mine) * test_split)))
        test += [mine[i] for i in order[:n_test]]
        train += [mine[i] for i in order[n_test:]]
    return train, test
