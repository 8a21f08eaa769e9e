"""Apply a DatasetSpec's class subset and channel axis to loaded arrays (any dataset)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend.spec import DatasetSpec
from backend.spec.catalog import DATASETS
from backend.spec.dataset_options import resolve_classes

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Arrays2 = tuple[np.ndarray, np.ndarray]


def select_classes(
    spec: DatasetSpec, arrays: Arrays, *, names: Sequence[str] | None = None
) -> Arrays:
    """Keep the examples of spec.classes, relabelled 0..k-1 in the order classes lists them.

    names: every class of the data, by label (default: the registry's names of spec.name).
    """
    if not spec.classes:
        return arrays
    if names is None:
        names = DATASETS[spec.name][1]
    labels = resolve_classes(spec.classes, names)
    relabel = np.full(max(len(names), 1), -1, dtype=np.int64)
    relabel[labels] = np.arange(len(labels))
    x_train, y_train, x_test, y_test = arrays
    out: list[np.ndarray] = []
    for x, y in ((x_train, y_train), (x_test, y_test)):
        y = np.asarray(y, dtype=np.int64).reshape(-1)
        keep = np.flatnonzero(relabel[y] >= 0)
        out += [x[keep], relabel[y[keep]]]
    return out[0], out[1], out[2], out[3]


def add_channel_axis(spec: DatasetSpec, x_train: np.ndarray, x_test: np.ndarray) -> Arrays2:
    """With channels_last, (N, H, W) images become (N, H, W, 1); anything else is left as is."""
    if not spec.channels_last or x_train.ndim != 3:
        return x_train, x_test
    return x_train[..., np.newaxis], x_test[..., np.newaxis]
