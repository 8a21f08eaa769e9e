"""Dataset registry on the real files: IDX parsing, IMDB encoding, digits split, errors."""

from __future__ import annotations

import gzip
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from backend.spec import DatasetSpec
from worker.trainer import datasets
from worker.trainer.datasets import DatasetUnavailable, encode, load, read_idx, tokenize

MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_digits_split_is_stratified_normalized_and_fixed() -> None:
    spec = DatasetSpec(name="digits", test_split=0.25)
    first = load(spec, data_dir=None)
    again = load(spec, data_dir=None)
    assert first.x_train.shape[1:] == (8, 8) and first.input_shape == (8, 8)
    assert len(first.x_train) + len(first.x_test) == 1797
    assert len(first.x_test) == 450
    assert first.x_train.dtype == np.float32 and first.x_train.min() >= 0.0
    assert first.x_train.max() == 1.0
    # stratified: every class holds about a quarter of its examples in the test split
    counts = np.bincount(first.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47
    np.testing.assert_array_equal(first.x_test, again.x_test)
    assert first.class_names == [str(d) for d in range(10)] and first.num_classes == 10

    raw = load(DatasetSpec(name="digits", normalize=False, train_limit=100), data_dir=None)
    assert raw.x_train.max() == 16.0 and len(raw.x_train) == 100


def test_read_idx_parses_big_endian_header(tmp_path: Path) -> None:
    values = np.arange(24, dtype=np.int32).reshape(2, 3, 4) * 1000
    path = tmp_path / "tiny-idx3.gz"
    header = bytes([0, 0, 0x0C, 3]) + struct.pack(">3I", 2, 3, 4)
    path.write_bytes(gzip.compress(header + values.astype(">i4").tobytes()))
    parsed = read_idx(path)
    assert parsed.shape == (2, 3, 4) and parsed.dtype.byteorder in ("=", "<", "|")
    np.testing.assert_array_equal(parsed, values)

    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02")
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "bad")


def test_mnist_idx_files_match_the_readme(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == MNIST_TEST_LABEL_COUNTS
    train_labels = read_idx(mnist_dir / "mnist" / "train-labels-idx1-ubyte.gz")
    assert train_labels.shape == (60000,)


def test_mnist_load_slices_and_normalizes(mnist_dir: Path) -> None:
    data = load(DatasetSpec(name="mnist", train_limit=500, test_limit=300), data_dir=mnist_dir)
    assert data.x_train.shape == (500, 28, 28) and data.x_test.shape == (300, 28, 28)
    assert data.input_shape == (28, 28)
    assert data.x_train.dtype == np.float32 and data.x_train.min() >= 0.0
    assert data.x_train.max() == pytest.approx(1.0)
    # the first examples of MNIST already mix every class
    assert set(np.unique(data.y_train)) == set(range(10))


def test_tokenize_and_encode_like_keras(imdb_dir: Path) -> None:
    index = json.loads((imdb_dir / "imdb" / "imdb_word_index.json").read_text())
    words = tokenize("This movie wasn't GREAT!<br /><br />Loved it... zzqxv")
    assert words == ["this", "movie", "wasn't", "great", "br", "br", "loved", "it", "zzqxv"]
    ranks = np.array([index.get(w, -1) for w in words], dtype=np.int32)
    num_words = 100
    (encoded,) = encode(ranks, np.array([len(words)]), num_words)
    expected = [1] + [index[w] + 3 if w in index and index[w] + 3 < num_words else 2 for w in words]
    assert encoded.tolist() == expected
    assert encoded[1] == index["this"] + 3  # rank 11 -> 14
    assert encoded[-1] == 2  # unknown word
    # several reviews keep their boundaries
    a, b, c = encode(np.array([1, 2, 3], dtype=np.int32), np.array([2, 0, 1]), None)
    assert a.tolist() == [1, 4, 5] and b.tolist() == [1] and c.tolist() == [1, 6]


def test_imdb_slice_encoding_and_padding(imdb_dir: Path, dataset_cache: Path) -> None:
    spec = DatasetSpec(name="imdb", train_limit=400, test_limit=200, num_words=500, maxlen=80)
    data = load(spec, data_dir=imdb_dir, cache_dir=dataset_cache)
    assert data.x_train.shape == (400, 80) and data.x_test.shape == (200, 80)
    assert data.input_shape == (80,) and data.x_train.dtype == np.int32
    assert data.x_train.min() >= 0 and data.x_train.max() < 500
    assert data.class_names == ["negative", "positive"]
    # the CSV is sorted by label; the shuffled slice holds both classes
    assert 0.35 < data.y_train.mean() < 0.65 and 0.3 < data.y_test.mean() < 0.7
    # pre padding: zeros on the left, a short review starts with the start token
    short = [row for row in data.x_train if row[0] == 0]
    assert short, "some review should be shorter than 80 words"
    first_word = short[0][np.flatnonzero(short[0])[0]]
    assert first_word == 1 and short[0][-1] != 0

    post = load(
        spec.model_copy(update={"padding": "post", "truncating": "post"}),
        data_dir=imdb_dir,
        cache_dir=dataset_cache,
    )
    assert (post.x_train[:, 0] == 1).all()  # post truncation keeps the start token
    np.testing.assert_array_equal(post.y_train, data.y_train)
    assert (post.x_train[:, -1] == 0).any()  # padding at the end


def test_imdb_second_load_uses_the_cache(imdb_dir: Path, dataset_cache: Path) -> None:
    spec = DatasetSpec(name="imdb", train_limit=50, test_limit=50, maxlen=20)
    first = load(spec, data_dir=imdb_dir, cache_dir=dataset_cache)
    assert list(dataset_cache.glob("imdb-tokens-*.npz"))
    started = time.perf_counter()
    second = load(spec, data_dir=imdb_dir, cache_dir=dataset_cache)
    assert time.perf_counter() - started < 2.0
    np.testing.assert_array_equal(first.x_train, second.x_train)


@pytest.mark.parametrize("name", ["mnist", "imdb"])
def test_missing_data_raises_dataset_unavailable(name: str, tmp_path: Path) -> None:
    try:
        load(DatasetSpec(name=name, train_limit=10), data_dir=tmp_path, cache_dir=tmp_path)
    except DatasetUnavailable as exc:
        assert "FITBOARD_DATA_DIR" in str(exc) and str(tmp_path) in str(exc)
    else:
        pytest.skip("Keras could download or had cached the data on this machine")


def test_every_catalog_dataset_has_a_loader() -> None:
    from backend.spec.catalog import DATASETS

    assert set(DATASETS) == set(datasets._LOADERS)
