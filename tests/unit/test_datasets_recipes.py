"""Fashion-MNIST, CIFAR-10 and Reuters loaders, on small files written in Keras' own formats."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from backend.spec import DatasetSpec
from backend.spec.catalog import DATASETS
from worker.trainer import datasets
from worker.trainer.datasets import DatasetUnavailable, load


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_fashion_mnist_from_idx_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (30, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 30),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 12),
    }
    for stem, array in arrays.items():
        _write_idx(folder / f"{stem}.gz", array)

    data = load(DatasetSpec(name="fashion_mnist", train_limit=20), data_dir=tmp_path)
    assert data.x_train.shape == (20, 28, 28) and data.x_train.dtype == np.float32
    assert data.input_shape == (28, 28) and data.num_classes == 10
    np.testing.assert_allclose(data.x_train, arrays["train-images-idx3-ubyte"][:20] / 255.0)
    np.testing.assert_array_equal(data.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert data.class_names[0] == "T-shirt/top" and data.class_names[9] == "Ankle boot"


def _cifar_batch(path: Path, data: np.ndarray, labels: list[int]) -> None:
    # the originals are Python 2 pickles: bytes keys, a uint8 array and a list of labels
    with path.open("wb") as f:
        pickle.dump({b"batch_label": b"x", b"data": data, b"labels": labels}, f, protocol=4)


@pytest.mark.parametrize("inner", [True, False])
def test_cifar10_from_python_batches(tmp_path: Path, inner: bool) -> None:
    folder = tmp_path / "cifar10" / ("cifar-10-batches-py" if inner else "")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 256, (4, 3072), dtype=np.uint8) for _ in range(5)]
    train[0][0, :] = 0
    train[0][0, 0] = 255  # red of pixel (0, 0)
    train[0][0, 1024 + 32 + 1] = 128  # green of pixel (1, 1)
    train[0][0, 2048 + 31] = 64  # blue of pixel (0, 31)
    for i, batch in enumerate(train, start=1):
        _cifar_batch(folder / f"data_batch_{i}", batch, [i % 10] * 4)
    _cifar_batch(folder / "test_batch", rng.integers(0, 256, (3, 3072), dtype=np.uint8), [7, 8, 9])

    data = load(DatasetSpec(name="cifar10", normalize=False), data_dir=tmp_path)
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_test.shape == (3, 32, 32, 3)
    assert data.input_shape == (32, 32, 3)
    first = data.x_train[0]
    assert first[0, 0, 0] == 255 and first[1, 1, 1] == 128 and first[0, 31, 2] == 64
    assert first.sum() == 255 + 128 + 64
    np.testing.assert_array_equal(data.y_train, np.repeat([1, 2, 3, 4, 5], 4))
    np.testing.assert_array_equal(data.y_test, [7, 8, 9])
    assert data.class_names == DATASETS["cifar10"][1] and data.class_names[3] == "cat"
    assert load(DatasetSpec(name="cifar10"), data_dir=tmp_path).x_train.max() <= 1.0


def test_cifar_batches_refuse_pickled_code(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("echo pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Boom(), b"labels": []}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        datasets.read_cifar_batch(path)


def _reuters_npz(path: Path, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    x = np.empty(n, dtype=object)
    for i in range(n):
        x[i] = [int(w) for w in rng.integers(1, 60, rng.integers(3, 12))]
    y = rng.integers(0, 46, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return x, y


def test_reuters_matches_keras_own_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras
    from keras.src.datasets import reuters as keras_reuters

    path = tmp_path / "reuters" / "reuters.npz"
    _reuters_npz(path)
    (tmp_path / "reuters" / "reuters_word_index.json").write_text("{}")
    # Keras' own load_data, reading our file instead of downloading
    monkeypatch.setattr(keras_reuters, "get_file", lambda *a, **k: str(path))
    (kx_train, ky_train), (kx_test, ky_test) = keras.datasets.reuters.load_data(
        num_words=30, test_split=0.25
    )

    spec = DatasetSpec(name="reuters", num_words=30, test_split=0.25, maxlen=16)
    data = load(spec, data_dir=tmp_path)
    assert len(data.x_train) == 30 and len(data.x_test) == 10
    assert data.x_train.shape == (30, 16) and data.num_classes == 46
    np.testing.assert_array_equal(data.y_train, ky_train)
    np.testing.assert_array_equal(data.y_test, ky_test)
    pad = keras.utils.pad_sequences
    np.testing.assert_array_equal(data.x_train, pad(list(kx_train), maxlen=16))
    np.testing.assert_array_equal(data.x_test, pad(list(kx_test), maxlen=16))
    assert data.x_train.max() < 30 and (data.x_train == 2).any()  # OOV above num_words
    assert data.class_names == [str(i) for i in range(46)]


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "reuters"])
def test_missing_files_say_where_they_were_looked_for(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Offline:
        def __getattr__(self, dataset: str) -> object:
            def load_data(**kwargs: object) -> None:
                raise Exception(f"URL fetch failure for {dataset}")  # what Keras raises offline

            return type("Module", (), {"load_data": staticmethod(load_data)})

    # no real download (CIFAR-10 is 170 MB) even on a connected machine
    monkeypatch.setattr(datasets, "_keras_datasets", Offline)
    with pytest.raises(DatasetUnavailable) as info:
        load(DatasetSpec(name=name, train_limit=10), data_dir=tmp_path, cache_dir=tmp_path)
    message = str(info.value)
    assert "FITBOARD_DATA_DIR" in message and f"{tmp_path}/{name}" in message
    assert f"URL fetch failure for {name}" in message
