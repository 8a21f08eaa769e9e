"""The upload dataset: files uploaded through the API, read from $FITBOARD_HOME/datasets/<id>/.

- csv, tabular: every column but the target is a float feature; with ``normalize`` they are
  standardised with the training split's mean and standard deviation.
- csv, text: a simple vocabulary built from the training split (the same tokenizer as IMDB:
  lower case, punctuation but apostrophes to spaces), most frequent words first, encoded like
  keras.datasets.imdb (1 = start, 2 = out of vocabulary, rank + 3; ``num_words`` kept) and
  padded to ``maxlen``; so the IMDB recipes (Embedding -> LSTM) run on it unchanged.
- npz: the arrays as stored; uint8 ones are scaled to [0, 1] with ``normalize``.
- image_zip: the extracted folders, read like image_folder (image_size and color_mode default
  to what the upload's check found).

Without a test split of their own (a CSV; an NPZ without x_test), ``test_split`` of each class
is held out with a fixed seed, so every run of a spec sees the same split.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from backend.config import get_settings
from backend.datasets import store
from backend.datasets.validate import read_csv, read_npz
from backend.spec import DatasetSpec
from backend.spec.dataset_options import resolve_classes
from worker.trainer import dataset_options
from worker.trainer.datasets import Dataset, _pad, _ragged, encode, tokenize

log = logging.getLogger(__name__)

SPLIT_SEED = 0
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def load(spec: DatasetSpec) -> Dataset:
    """Read, split, select classes, limit and prepare an uploaded dataset."""
    if spec.upload_id is None:
        raise ValueError("dataset upload needs an upload_id")
    meta = store.read_meta(spec.upload_id)
    folder = store.dataset_dir(spec.upload_id)
    kind, options = meta["kind"], meta.get("options") or {}
    if kind == "image_zip":
        return _image_zip(spec, folder, options)
    names: list[str] = list(meta["class_names"])
    is_text = kind == "csv" and options.get("text_column") is not None
    if kind == "csv":
        table = read_csv(
            folder / store.DATA_FILES["csv"],
            target_column=options["target_column"],
            text_column=options.get("text_column"),
        )
        x = _ragged(table.texts) if table.texts is not None else table.x
        arrays = split(x, table.y, spec.test_split)
    else:
        unpacked = get_settings().max_unzipped_mb * 2**20
        npz = read_npz(folder / store.DATA_FILES["npz"], max_unpacked_bytes=unpacked)
        if npz.x_test is None or npz.y_test is None:
            arrays = split(npz.x_train, npz.y_train, spec.test_split)
        else:
            arrays = (npz.x_train, npz.y_train, npz.x_test, npz.y_test)
    x_train, y_train, x_test, y_test = dataset_options.select_classes(spec, arrays, names=names)
    if spec.classes:
        names = [names[label] for label in resolve_classes(spec.classes, names)]
    if spec.train_limit is not None:
        x_train, y_train = x_train[: spec.train_limit], y_train[: spec.train_limit]
    if spec.test_limit is not None:
        x_test, y_test = x_test[: spec.test_limit], y_test[: spec.test_limit]
    if is_text:
        x_train, x_test = encode_texts(spec, x_train, x_test)
    elif kind == "csv":
        x_train, x_test = _standardise(spec, x_train, x_test)
    else:
        x_train, x_test = _scale(spec, x_train), _scale(spec, x_test)
    x_train, x_test = dataset_options.add_channel_axis(spec, x_train, x_test)
    log.info(
        "upload %s (%s): %d classes, %d train and %d test examples of %s",
        spec.upload_id,
        kind,
        len(names),
        len(x_train),
        len(x_test),
        x_train.shape[1:],
    )
    return Dataset(
        name="upload",
        x_train=x_train,
        y_train=np.asarray(y_train, dtype=np.int64),
        x_test=x_test,
        y_test=np.asarray(y_test, dtype=np.int64),
        class_names=names,
        num_classes=len(names),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
    )


def split(x: np.ndarray, y: np.ndarray, test_split: float) -> Arrays:
    """Hold out test_split of each class (a plain random split when a class is too small)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    try:
        train, test = train_test_split(
            index, test_size=test_split, stratify=y, random_state=SPLIT_SEED
        )
    except ValueError:  # a class with a single example cannot be stratified
        train, test = train_test_split(index, test_size=test_split, random_state=SPLIT_SEED)
    return x[train], y[train], x[test], y[test]


def encode_texts(spec: DatasetSpec, texts_train: np.ndarray, texts_test: np.ndarray) -> Any:
    """A vocabulary from the training texts; both splits encoded and padded like IMDB."""
    counts: Counter[str] = Counter()
    tokenized_train = [tokenize(str(t)) for t in texts_train]
    for words in tokenized_train:
        counts.update(words)
    # most frequent first; ties alphabetical, so the vocabulary does not depend on row order
    vocabulary = sorted(counts, key=lambda w: (-counts[w], w))
    rank = {word: i for i, word in enumerate(vocabulary)}
    out = []
    for tokenized in (tokenized_train, [tokenize(str(t)) for t in texts_test]):
        lengths = np.asarray([len(words) for words in tokenized], dtype=np.int64)
        ranks = np.asarray([rank.get(w, -1) for words in tokenized for w in words], np.int64)
        seqs = encode(ranks, lengths, spec.num_words) if len(tokenized) else []
        out.append(_pad(spec, _ragged(seqs)))
    return out[0], out[1]


def _standardise(spec: DatasetSpec, x_train: np.ndarray, x_test: np.ndarray) -> Any:
    x_train, x_test = x_train.astype(np.float32), x_test.astype(np.float32)
    if not spec.normalize or len(x_train) == 0:
        return x_train, x_test
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std[std == 0] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


def _scale(spec: DatasetSpec, x: np.ndarray) -> np.ndarray:
    scaled = x.astype(np.float32)
    if spec.normalize and x.dtype == np.uint8:
        scaled /= 255.0
    return scaled


def _image_zip(spec: DatasetSpec, folder: Path, options: dict[str, Any]) -> Dataset:
    from worker.trainer import image_folder

    as_folder = spec.model_copy(
        update={
            "name": "image_folder",
            "path": str(folder / store.DATA_FILES["image_zip"]),
            "image_size": spec.image_size or options.get("image_size"),
            "color_mode": spec.color_mode or options.get("color_mode") or "rgb",
        }
    )
    dataset = image_folder.load(as_folder)
    dataset.name = "upload"
    return dataset
