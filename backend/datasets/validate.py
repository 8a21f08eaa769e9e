"""Read and check uploaded CSV and NPZ files; pure (csv, zipfile, numpy), shared with the worker.

Every problem is an ``UploadInvalid`` naming the form field it is about ("file",
"target_column", "text_column"), so the API answers 422 and nothing is stored.
"""

from __future__ import annotations

import csv
import lzma
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from backend.errors import InvalidInput


class UploadInvalid(InvalidInput):
    """An upload that cannot become a dataset; ``field`` is the form field at fault."""


# what reading a damaged zip member raises: a bad CRC, corrupt deflate data, an unknown
# compression method, a size that lies (data ends early), a bad bzip2/lzma stream
ARCHIVE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    NotImplementedError,
    EOFError,
    OSError,
    ValueError,
    MemoryError,  # numpy allocating what a header declares
)


def damaged(entry: str, exc: BaseException) -> UploadInvalid:
    """A 422 naming the archive entry that could not be read, and why."""
    why = str(exc) or type(exc).__name__
    return UploadInvalid(f"entry {entry!r} cannot be unpacked ({why})", field="file")


@dataclass
class Checked:
    """What a valid upload holds: the metadata the API stores and returns."""

    num_examples: int
    class_names: list[str]
    input_shape: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Table:
    """A parsed CSV: features (float32 rows, or texts), labels 0..k-1 and their names."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    texts: list[str] | None = None


def class_names_of(values: list[str]) -> list[str]:
    """Sorted distinct label values; numerically when they are all integers ("2" < "10")."""
    distinct = set(values)
    try:
        return [str(v) for v in sorted(distinct, key=lambda v: int(v))]
    except ValueError:
        return sorted(distinct)


# --- CSV --------------------------------------------------------------------------------------


def read_csv(path: Path, *, target_column: str, text_column: str | None = None) -> Table:
    """Parse a CSV with a header row: numeric feature columns (or one text column) + a target."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            return _read_rows(csv.reader(f), target_column, text_column)
    except UnicodeDecodeError as exc:
        raise UploadInvalid(f"the CSV is not UTF-8 text ({exc.reason})", field="file") from None
    except csv.Error as exc:
        raise UploadInvalid(f"the CSV cannot be parsed: {exc}", field="file") from None


def _read_rows(rows: Any, target_column: str, text_column: str | None) -> Table:
    header = next(rows, None)
    if not header or not any(h.strip() for h in header):
        raise UploadInvalid("the CSV is empty: it needs a header row", field="file")
    header = [h.strip() for h in header]
    if target_column not in header:
        raise UploadInvalid(
            f"no column {target_column!r}; columns: {', '.join(header)}", field="target_column"
        )
    target = header.index(target_column)
    if text_column is not None:
        if text_column not in header:
            raise UploadInvalid(
                f"no column {text_column!r}; columns: {', '.join(header)}", field="text_column"
            )
        if text_column == target_column:
            raise UploadInvalid("the text column cannot be the target", field="text_column")
        features = [header.index(text_column)]
    else:
        features = [i for i in range(len(header)) if i != target]
        if not features:
            raise UploadInvalid("the CSV has no feature column beside the target", field="file")
    labels: list[str] = []
    values: list[list[float]] = []
    texts: list[str] = []
    for line, row in enumerate(rows, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue  # blank lines
        if len(row) != len(header):
            raise UploadInvalid(
                f"row {line} has {len(row)} fields, the header has {len(header)}", field="file"
            )
        label = row[target].strip()
        if not label:
            raise UploadInvalid(f"row {line}: the target is empty", field="target_column")
        labels.append(label)
        if text_column is not None:
            texts.append(row[features[0]])
            continue
        try:
            values.append([float(row[i]) for i in features])
        except ValueError:
            bad = next(i for i in features if not _is_number(row[i]))
            raise UploadInvalid(
                f"column {header[bad]!r} is not numeric (row {line}: {row[bad]!r}); use a "
                "numeric column, drop it, or upload it as text with text_column",
                field="file",
            ) from None
    if not labels:
        raise UploadInvalid("the CSV has a header but no rows", field="file")
    names = class_names_of(labels)
    if len(names) < 2:
        raise UploadInvalid(
            f"column {target_column!r} holds a single class ({names[0]!r}); at least 2 needed",
            field="target_column",
        )
    index = {name: i for i, name in enumerate(names)}
    y = np.asarray([index[label] for label in labels], dtype=np.int64)
    if text_column is not None:
        return Table(x=np.empty((len(y), 0), np.float32), y=y, class_names=names, texts=texts)
    x = np.asarray(values, dtype=np.float32)
    if not np.isfinite(x).all():
        row_i, col_i = np.argwhere(~np.isfinite(x))[0]
        raise UploadInvalid(
            f"column {header[features[col_i]]!r} holds NaN or infinity (row {row_i + 2})",
            field="file",
        )
    return Table(x=x, y=y, class_names=names)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_csv(path: Path, *, target_column: str | None, text_column: str | None) -> Checked:
    if not target_column:
        raise UploadInvalid("a CSV upload needs target_column", field="target_column")
    table = read_csv(path, target_column=target_column, text_column=text_column)
    shape = [1] if table.texts is not None else [int(table.x.shape[1])]
    return Checked(
        num_examples=len(table.y),
        class_names=table.class_names,
        input_shape=shape,
        options={"target_column": target_column, "text_column": text_column},
    )


# --- NPZ --------------------------------------------------------------------------------------

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class NpzArrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    class_names: list[str]


def read_npz(path: Path, *, max_unpacked_bytes: int) -> NpzArrays:
    """x_train, y_train (+ x_test, y_test): numeric, consistent, labels relabelled 0..k-1."""
    _check_npz_members(path, max_unpacked_bytes)
    arrays: dict[str, np.ndarray] = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except ARCHIVE_ERRORS as exc:
        raise UploadInvalid(f"not a readable .npz file: {exc}", field="file") from None
    with npz:
        for key in NPZ_KEYS:
            if key in npz.files:
                arrays[key] = _load_member(npz, key)
    for key in ("x_train", "y_train"):
        if key not in arrays:
            raise UploadInvalid(f"the .npz has no {key}", field="file")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise UploadInvalid("give x_test and y_test together, or neither", field="file")
    for key, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise UploadInvalid(
                f"{key} has dtype {array.dtype}; a numeric one needed", field="file"
            )
        if key.startswith("x") and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise UploadInvalid(f"{key} holds NaN or infinity", field="file")
    x_train, x_test = arrays["x_train"], arrays.get("x_test")
    if x_train.ndim < 2:
        raise UploadInvalid(
            f"x_train has shape {x_train.shape}: one row of features per example needed",
            field="file",
        )
    y_train = _labels("y_train", arrays["y_train"], len(x_train))
    y_test = None
    if x_test is not None:
        if x_test.shape[1:] != x_train.shape[1:]:
            raise UploadInvalid(
                f"x_test examples have shape {x_test.shape[1:]}, x_train's {x_train.shape[1:]}",
                field="file",
            )
        if arrays["y_test"].shape[1:] != arrays["y_train"].shape[1:]:
            raise UploadInvalid(
                f"y_test has shape {arrays['y_test'].shape}, y_train {arrays['y_train'].shape}",
                field="file",
            )
        y_test = _labels("y_test", arrays["y_test"], len(x_test))
    seen = np.unique(np.concatenate([y_train, y_test]) if y_test is not None else y_train)
    if len(np.unique(y_train)) < 2:
        raise UploadInvalid("y_train holds a single class; at least 2 needed", field="file")
    relabel = {int(v): i for i, v in enumerate(seen)}
    return NpzArrays(
        x_train=x_train,
        y_train=np.asarray([relabel[int(v)] for v in y_train], dtype=np.int64),
        x_test=x_test,
        y_test=(
            None if y_test is None else np.asarray([relabel[int(v)] for v in y_test], np.int64)
        ),
        class_names=[str(int(v)) for v in seen],
    )


def _load_member(npz: Any, key: str) -> np.ndarray:
    try:
        return np.asarray(npz[key])
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise UploadInvalid(
                f"{key} is a pickled object array; save plain numeric arrays "
                "(pickles can run code and are never loaded)",
                field="file",
            ) from None
        raise damaged(f"{key}.npy", exc) from None
    except ARCHIVE_ERRORS as exc:
        raise damaged(f"{key}.npy", exc) from None


def _check_npz_members(path: Path, max_unpacked_bytes: int) -> None:
    """An .npz is a zip: refuse one that unpacks past the limit, or whose array headers
    declare more data than the entry holds, before numpy allocates or inflates anything."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise UploadInvalid("not a .npz file (np.savez writes one)", field="file") from None
    with archive:
        total = 0
        for info in archive.infolist():
            total += info.file_size
            if total > max_unpacked_bytes:
                raise UploadInvalid(
                    f"entry {info.filename!r} takes the .npz past "
                    f"{max_unpacked_bytes // 2**20} MB unpacked",
                    field="file",
                )
            if info.filename.endswith(".npy"):
                _check_npy_header(archive, info)


def _check_npy_header(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """The shape and dtype an .npy member declares must fit in the bytes it unpacks to."""
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            header_end = member.tell()
    except ARCHIVE_ERRORS as exc:
        raise damaged(info.filename, exc) from None
    declared = math.prod(shape) * max(dtype.itemsize, 1)
    if dtype.hasobject:
        return  # refused as a pickle when loaded
    if declared > info.file_size - header_end:
        raise UploadInvalid(
            f"entry {info.filename!r} declares shape {tuple(shape)} of {dtype} "
            f"({declared:,} bytes) but holds {max(info.file_size - header_end, 0):,}",
            field="file",
        )


def _labels(key: str, y: np.ndarray, length: int) -> np.ndarray:
    """Integer labels (N,) or one-hot (N, k) -> integer labels."""
    if len(y) != length:
        x_key = "x" + key[1:]
        raise UploadInvalid(
            f"{key} has {len(y)} labels but {x_key} has {length} examples", field="file"
        )
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            raise UploadInvalid(f"{key} is 2-D but not one-hot", field="file")
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim != 1:
        raise UploadInvalid(
            f"{key} has shape {y.shape}: labels (N,) or one-hot (N, k)", field="file"
        )
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UploadInvalid(f"{key} holds non-integer labels", field="file")
    if len(y) and y.min() < 0:
        raise UploadInvalid(f"{key} holds negative labels", field="file")
    return y.astype(np.int64)


def check_npz(path: Path, *, max_unpacked_bytes: int) -> Checked:
    arrays = read_npz(path, max_unpacked_bytes=max_unpacked_bytes)
    n_test = 0 if arrays.x_test is None else len(arrays.x_test)
    return Checked(
        num_examples=len(arrays.x_train) + n_test,
        class_names=arrays.class_names,
        input_shape=[int(d) for d in arrays.x_train.shape[1:]],
        options={"has_test": arrays.x_test is not None},
    )
