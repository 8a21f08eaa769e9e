"""Dataset registry: digits (scikit-learn); MNIST, Fashion-MNIST, CIFAR-10, IMDB, Reuters from
FITBOARD_DATA_DIR or Keras' cache."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import os
import pickle
import string
import struct
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from backend.config import get_settings
from backend.spec import DatasetSpec
from worker.trainer import dataset_options

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
    if spec.name == "image_folder":  # a directory on the worker; its classes are its folders
        from worker.trainer import image_folder

        return image_folder.load(spec)
    if spec.name == "upload":  # uploaded through the API, under FITBOARD_HOME/datasets/
        from worker.trainer import uploaded

        return uploaded.load(spec)
    loader = _LOADERS[spec.name]
    arrays = loader(spec, data_dir, cache_dir or default_cache_dir())
    x_train, y_train, x_test, y_test = dataset_options.select_classes(spec, arrays)
    if spec.train_limit is not None:
        x_train, y_train = x_train[: spec.train_limit], y_train[: spec.train_limit]
    if spec.test_limit is not None:
        x_test, y_test = x_test[: spec.test_limit], y_test[: spec.test_limit]
    if spec.name in {"imdb", "reuters"}:
        x_train, x_test = _pad(spec, x_train), _pad(spec, x_test)
    x_train, x_test = dataset_options.add_channel_axis(spec, x_train, x_test)
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


# --- Fashion-MNIST, CIFAR-10, Reuters (Keras' own file formats) ------------------------------

REUTERS_SHUFFLE_SEED = 113  # keras.datasets.reuters' default seed, so the splits match
CIFAR10_BATCHES = "cifar-10-batches-py"
# what rebuilding numpy arrays from a pickle needs (numpy < 2 and >= 2 spellings), no more:
# the CIFAR batches and reuters.npz are pickles, and a pickle may name any callable
_PICKLE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file")


def _fashion_mnist(spec: DatasetSpec, data_dir: Path | None, cache: Path) -> Arrays:
    stems = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    for folder in (data_dir / "fashion_mnist", data_dir / "fashion-mnist") if data_dir else ():
        paths = [_find(folder, s) for s in stems]
        if all(p is not None for p in paths):
            x_train, y_train, x_test, y_test = (read_idx(p) for p in paths if p is not None)
            break
    else:
        (x_train, y_train), (x_test, y_test) = _keras_download(
            "fashion_mnist", data_dir, lambda: _keras_datasets().fashion_mnist.load_data()
        )
    return _images(spec, x_train, y_train, x_test, y_test)


def _cifar10(spec: DatasetSpec, data_dir: Path | None, cache: Path) -> Arrays:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    folders = (data_dir / "cifar10" / CIFAR10_BATCHES, data_dir / "cifar10") if data_dir else ()
    for folder in folders:
        if all((folder / n).is_file() for n in names):
            batches = [read_cifar_batch(folder / n) for n in names]
            x_train = np.concatenate([x for x, _ in batches[:-1]])
            y_train = np.concatenate([y for _, y in batches[:-1]])
            x_test, y_test = batches[-1]
            break
    else:
        (x_train, y_train), (x_test, y_test) = _keras_download(
            "cifar10", data_dir, lambda: _keras_datasets().cifar10.load_data()
        )
    return _images(spec, x_train, y_train.reshape(-1), x_test, y_test.reshape(-1))


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: images (N, 32, 32, 3) uint8 and labels (N,)."""
    with path.open("rb") as f:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    images = data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(batch["labels"], dtype=np.int64)


def _images(spec: DatasetSpec, *arrays: np.ndarray) -> Arrays:
    x_train, y_train, x_test, y_test = arrays
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if spec.normalize:
        x_train /= 255.0
        x_test /= 255.0
    return x_train, y_train, x_test, y_test


def _reuters(spec: DatasetSpec, data_dir: Path | None, cache: Path) -> Arrays:
    path = data_dir / "reuters" / "reuters.npz" if data_dir else None
    if path is None or not path.is_file():
        (x_train, y_train), (x_test, y_test) = _keras_download(
            "reuters",
            data_dir,
            lambda: _keras_datasets().reuters.load_data(
                num_words=spec.num_words, test_split=spec.test_split
            ),
        )
        return _ragged(x_train), y_train, _ragged(x_test), y_test
    arrays = read_npz(path)
    # keras.datasets.reuters.load_data's steps: shuffle, 1 = start, rank + 3, 2 = OOV
    order = np.arange(len(arrays["x"]))
    np.random.RandomState(REUTERS_SHUFFLE_SEED).shuffle(order)
    labels = np.asarray(arrays["y"], dtype=np.int64)[order]
    seqs = []
    for i in order:
        seq = np.asarray(arrays["x"][i], dtype=np.int64) + IMDB_INDEX_FROM
        if spec.num_words is not None:
            seq[seq >= spec.num_words] = IMDB_OOV
        seqs.append(np.concatenate([[IMDB_START], seq]).astype(np.int32))
    split = int(len(seqs) * (1 - spec.test_split))
    return _ragged(seqs[:split]), labels[:split], _ragged(seqs[split:]), labels[split:]


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """An .npz whose object arrays (ragged sequences) load through the restricted unpickler."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                out[member[: -len(".npy")]] = _read_npy(io.BytesIO(archive.read(member)))
    return out


def _read_npy(f: io.BytesIO) -> np.ndarray:
    try:
        return np.asarray(np.lib.format.read_array(f, allow_pickle=False))
    except ValueError:  # an object array: a pickle after the header
        f.seek(0)
        major, _ = np.lib.format.read_magic(f)
        if major == 1:
            np.lib.format.read_array_header_1_0(f)
        else:  # 3.0 differs from 2.0 only in the header's text encoding
            np.lib.format.read_array_header_2_0(f)
        return np.asarray(_ArrayUnpickler(f).load())


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
    "fashion_mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "reuters": _reuters,
}
