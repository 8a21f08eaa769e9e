"""Dataset registry: digits (scikit-learn); MNIST, IMDB from FITBOARD_DATA_DIR or Keras' cache."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.config import get_settings
from backend.spec import DatasetSpec

log = logging.getLogger(__name__)

# fixed, independent of the fit seed, so every run of a spec sees the same split
DIGITS_SPLIT_SEED = 0
# keras.datasets.imdb shuffles with this seed; the CSV is sorted by label, so we shuffle too
IMDB_SHUFFLE_SEED = 113
IMDB_START, IMDB_OOV, IMDB_INDEX_FROM = 1, 2, 3
# bump when the tokenizer changes so old caches are not reused
IMDB_TOKENIZER_VERSION = 1

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# apostrophes stay (the word index holds "don't", "it's"); other punctuation splits words,
# so "<br />" becomes the token "br", as in Keras' own encoding (rank 7 in its word index)
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation if c != "'"})


class DatasetUnavailable(RuntimeError):
    """Neither FITBOARD_DATA_DIR nor Keras' download could provide the data."""


@dataclass(eq=False)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    num_classes: int
    input_shape: tuple[int, ...]


def load(spec: DatasetSpec, *, data_dir: Path | None, cache_dir: Path | None = None) -> Dataset:
    """Load, prepare and slice the dataset a spec names."""
    loader = _LOADERS[spec.name]
    x_train, y_train, x_test, y_test = loader(spec, data_dir, cache_dir or default_cache_dir())
    if spec.train_limit is not None:
        x_train, y_train = x_train[: spec.train_limit], y_train[: spec.train_limit]
    if spec.test_limit is not None:
        x_test, y_test = x_test[: spec.test_limit], y_test[: spec.test_limit]
    if spec.name == "imdb":
        x_train, x_test = _pad(spec, x_train), _pad(spec, x_test)
    return Dataset(
        name=spec.name,
        x_train=x_train,
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=x_test,
        y_test=np.asarray(y_test, dtype=np.int64),
        class_names=spec.class_names,
        num_classes=spec.num_classes,
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
    )


def default_cache_dir() -> Path:
    return get_settings().home.resolve() / "cache" / "datasets"


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


# --- digits ---------------------------------------------------------------------------------


def _digits(spec: DatasetSpec, _data_dir: Path | None, _cache: Path) -> Arrays:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = bunch.images.astype(np.float32)
    if spec.normalize:
        images /= 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        images,
        bunch.target,
        test_size=spec.test_split,
        stratify=bunch.target,
        random_state=DIGITS_SPLIT_SEED,
    )
    return x_train, y_train, x_test, y_test


# --- MNIST ----------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed): big-endian header, then the data."""
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[raw[2]], offset=header)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {data.size} values")
    return data.reshape(shape).astype(data.dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _mnist(spec: DatasetSpec, data_dir: Path | None, _cache: Path) -> Arrays:
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    paths = [_find(data_dir / "mnist", s) for s in stems] if data_dir else []
    if paths and all(p is not None for p in paths):
        x_train, y_train, x_test, y_test = (read_idx(p) for p in paths if p is not None)
    else:
        (x_train, y_train), (x_test, y_test) = _keras_download(
            "mnist", data_dir, lambda: _keras_datasets().mnist.load_data()
        )
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if spec.normalize:
        x_train /= 255.0
        x_test /= 255.0
    return x_train, y_train, x_test, y_test


# --- IMDB -----------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Lower-case, punctuation (apostrophes kept) to spaces, split on white space."""
    return text.lower().translate(_PUNCTUATION).split()


def encode(ranks: np.ndarray, lengths: np.ndarray, num_words: int | None) -> list[np.ndarray]:
    """Word ranks (-1 = unknown) to Keras' encoding: 1 = start, 2 = OOV, rank + 3."""
    index = np.where(ranks < 0, IMDB_OOV, ranks + IMDB_INDEX_FROM).astype(np.int32)
    if num_words is not None:
        index[index >= num_words] = IMDB_OOV
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    index = np.insert(index, starts, IMDB_START)
    return np.split(index, (starts + np.arange(len(starts)))[1:])


def _imdb(spec: DatasetSpec, data_dir: Path | None, cache: Path) -> Arrays:
    folder = data_dir / "imdb" if data_dir else None
    if (
        folder
        and (folder / "imdb_reviews.csv.gz").is_file()
        and (folder / "imdb_word_index.json").is_file()
    ):
        tokens = _imdb_tokens(folder, cache)
        out: list[np.ndarray] = []
        for split in ("train", "test"):
            rows = np.flatnonzero(tokens["is_train"] == (split == "train"))
            rows = rows[np.random.RandomState(IMDB_SHUFFLE_SEED).permutation(len(rows))]
            if split == "train" and spec.train_limit is not None:
                rows = rows[: spec.train_limit]
            if split == "test" and spec.test_limit is not None:
                rows = rows[: spec.test_limit]
            offsets = np.concatenate([[0], np.cumsum(tokens["lengths"])])
            ranks = np.concatenate([tokens["ranks"][offsets[r] : offsets[r + 1]] for r in rows])
            seqs = encode(ranks, tokens["lengths"][rows], spec.num_words)
            out += [_ragged(seqs), tokens["labels"][rows]]
        return out[0], out[1], out[2], out[3]
    (x_train, y_train), (x_test, y_test) = _keras_download(
        "imdb", data_dir, lambda: _keras_datasets().imdb.load_data(num_words=spec.num_words)
    )
    return _ragged(x_train), y_train, _ragged(x_test), y_test


def _ragged(seqs: Sequence[Any]) -> np.ndarray:
    """Variable-length sequences as a 1-D object array (slices like the other arrays)."""
    arr = np.empty(len(seqs), dtype=object)
    for i, seq in enumerate(seqs):
        arr[i] = seq
    return arr


def _pad(spec: DatasetSpec, seqs: np.ndarray) -> np.ndarray:
    from keras.utils import pad_sequences

    if len(seqs) == 0:
        return np.zeros((0, spec.maxlen or 1), dtype=np.int32)
    return np.asarray(
        pad_sequences(
            list(seqs),
            maxlen=spec.maxlen,
            dtype="int32",
            padding=spec.padding,
            truncating=spec.truncating,
            value=0,
        )
    )


def _imdb_tokens(folder: Path, cache: Path) -> dict[str, np.ndarray]:
    """Word ranks of every review, parsed once and cached as .npz keyed by the source files."""
    csv_path, index_path = folder / "imdb_reviews.csv.gz", folder / "imdb_word_index.json"
    key = hashlib.sha1(
        json.dumps(
            [IMDB_TOKENIZER_VERSION]
            + [
                [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
                for p in (csv_path, index_path)
            ]
        ).encode()
    ).hexdigest()[:16]
    cached = cache / f"imdb-tokens-{key}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as npz:
                return {name: npz[name] for name in npz.files}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable IMDB cache %s: %s", cached, exc)
    log.info("tokenizing IMDB reviews from %s (cached at %s)", folder, cached)
    word_index: dict[str, int] = json.loads(index_path.read_text(encoding="utf-8"))
    get = word_index.get
    ranks: list[int] = []
    lengths, labels, is_train = [], [], []
    with gzip.open(csv_path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            words = [get(w, -1) for w in tokenize(row["text"])]
            ranks.extend(words)
            lengths.append(len(words))
            labels.append(int(row["label"]))
            is_train.append(row["split"] == "train")
    tokens: dict[str, np.ndarray] = {
        "ranks": np.asarray(ranks, dtype=np.int32),
        "lengths": np.asarray(lengths, dtype=np.int64),
        "labels": np.asarray(labels, dtype=np.int64),
        "is_train": np.asarray(is_train, dtype=bool),
    }
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            ranks=tokens["ranks"],
            lengths=tokens["lengths"],
            labels=tokens["labels"],
            is_train=tokens["is_train"],
        )
        os.replace(tmp, cached)
    except OSError as exc:
        log.warning("could not cache IMDB tokens at %s: %s", cached, exc)
    return tokens


# --- shared ---------------------------------------------------------------------------------


def _keras_datasets() -> Any:
    import keras

    return keras.datasets


def _keras_download(name: str, data_dir: Path | None, fetch: Callable[[], Any]) -> Any:
    where = f"{data_dir}/{name}" if data_dir else "FITBOARD_DATA_DIR (not set)"
    log.info("%s: no files in %s, trying Keras' download and cache", name, where)
    try:
        return fetch()
    except Exception as exc:
        raise DatasetUnavailable(
            f"dataset {name!r} is not available: no files in {where}, and Keras' download "
            f"failed ({type(exc).__name__}: {exc}). Set FITBOARD_DATA_DIR to a directory "
            f"holding {name}/ (see the data README) or allow the download."
        ) from exc


_LOADERS: dict[str, Callable[[DatasetSpec, Path | None, Path], Arrays]] = {
    "digits": _digits,
    "mnist": _mnist,
    "imdb": _imdb,
}
