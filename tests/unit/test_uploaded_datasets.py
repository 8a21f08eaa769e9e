"""The upload dataset in the trainer: uploads checked and stored as the API does, then trained."""

from __future__ import annotations

import base64
import io
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.config import get_settings
from backend.datasets import service, store
from backend.datasets.models import UploadedDataset
from backend.datasets.schemas import UploadForm
from backend.spec import resolve_spec
from worker.trainer import datasets
from worker.trainer.build import build_model
from worker.trainer.datasets import read_idx
from worker.trainer.samples import png_base64


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("FITBOARD_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield tmp_path / "home"
    get_settings.cache_clear()


def _store_upload(upload_id: int, data: bytes, **form: Any) -> UploadedDataset:
    """What POST /api/v1/datasets does, without HTTP and database: stage, check, keep."""
    folder = store.new_staging_dir()
    path = folder / "upload.bin"
    path.write_bytes(data)
    staged = service.StagedUpload(folder, path, "upload", len(data))
    checked = service.check_upload(staged, UploadForm(name="test", **form))
    row = UploadedDataset(
        id=upload_id,
        kind=form["kind"],
        num_examples=checked.num_examples,
        class_names=checked.class_names,
        input_shape=checked.input_shape,
        options=checked.options,
    )
    store.keep(folder, upload_id, service.meta(row))
    return row


def _train(dataset_spec: dict[str, Any], layers: list[dict[str, Any]], epochs: int) -> float:
    spec = resolve_spec(
        spec={
            "dataset": dataset_spec,
            "model": {"layers": layers},
            "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
            "fit": {"epochs": epochs, "batch_size": 32, "seed": 0},
        }
    )
    data = datasets.load(spec.dataset, data_dir=None)
    model = build_model(spec, data)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
    return float(accuracy)


def test_tabular_csv_trains_above_chance(home: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    names = ["malignant", "benign"]
    lines = [",".join([*(c.replace(" ", "_") for c in bunch.feature_names), "diagnosis"])]
    lines += [
        ",".join([*(f"{v:g}" for v in row), names[label]])
        for row, label in zip(bunch.data, bunch.target, strict=True)
    ]
    row = _store_upload(1, "\n".join(lines).encode(), kind="csv", target_column="diagnosis")
    assert row.class_names == ["benign", "malignant"] and row.input_shape == [30]

    spec = resolve_spec(
        spec={
            "dataset": {"name": "upload", "upload_id": 1, "test_split": 0.25},
            "model": {"layers": [{"type": "Dense", "units": 2, "activation": "softmax"}]},
        }
    )
    data = datasets.load(spec.dataset, data_dir=None)
    assert data.name == "upload" and data.class_names == ["benign", "malignant"]
    assert len(data.x_test) == 143 and data.input_shape == (30,)
    assert abs(float(data.x_train.mean())) < 1e-3  # standardised on the training split

    layers = [
        {"type": "Dense", "units": 16, "activation": "relu"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
    ]
    assert _train({"name": "upload", "upload_id": 1}, layers, epochs=10) > 0.9


def test_text_csv_is_tokenised_like_imdb_and_trains(home: Path) -> None:
    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "lovely", "superb"], ["awful", "boring", "dull"], ["film", "the"]
    rows = ["text,sentiment"]
    for i in range(300):
        mood = [bad, good][i % 2]
        words = list(rng.choice(filler, 6)) + list(rng.choice(mood, 2))
        rows.append(f'"{" ".join(words)}, it was",{["neg", "pos"][i % 2]}')
    _store_upload(
        2, "\n".join(rows).encode(), kind="csv", target_column="sentiment", text_column="text"
    )
    spec = resolve_spec(
        spec={
            "dataset": {"name": "upload", "upload_id": 2, "maxlen": 12, "num_words": 50},
            "model": {"layers": [{"type": "Dense", "units": 2, "activation": "softmax"}]},
        }
    )
    data = datasets.load(spec.dataset, data_dir=None)
    assert data.x_train.shape[1:] == (12,) and data.x_train.dtype == np.int32
    # 10 words + the start token, padded at the front to 12
    assert data.x_train.max() < 50 and (data.x_train[:, 0] == 0).all()
    assert (data.x_train[:, 1] == 1).all()
    layers = [
        {"type": "Embedding", "input_dim": 50, "output_dim": 8},
        {"type": "GlobalAveragePooling1D"},
        {"type": "Dense", "units": 2, "activation": "softmax"},
    ]
    spec_ = {"name": "upload", "upload_id": 2, "maxlen": 12, "num_words": 50}
    assert _train(spec_, layers, epochs=15) > 0.8


def test_npz_from_digits_trains_above_chance(home: Path) -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images * 255 / 16).astype(np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x_train=images[:1400],
        y_train=np.eye(10, dtype=np.uint8)[bunch.target[:1400]],  # one-hot is accepted
        x_test=images[1400:],
        y_test=np.eye(10, dtype=np.uint8)[bunch.target[1400:]],
    )
    row = _store_upload(3, buffer.getvalue(), kind="npz")
    assert row.input_shape == [8, 8] and row.num_examples == len(images)

    spec = resolve_spec(
        spec={
            "dataset": {"name": "upload", "upload_id": 3, "classes": ["3", "8"]},
            "model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "units": 2}]},
        }
    )
    subset = datasets.load(spec.dataset, data_dir=None)
    assert subset.class_names == ["3", "8"] and set(subset.y_test) == {0, 1}
    assert subset.x_train.max() <= 1.0  # uint8 scaled by normalize

    layers = [
        {"type": "Flatten"},
        {"type": "Dense", "units": 32, "activation": "relu"},
        {"type": "Dense", "units": 10, "activation": "softmax"},
    ]
    accuracy = _train({"name": "upload", "upload_id": 3}, layers, epochs=8)
    assert accuracy > 0.8  # chance is 0.1


def test_image_zip_from_mnist_digits_trains_above_chance(home: Path, mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, digit in {"zero": 0, "one": 1, "seven": 7}.items():
            for i, index in enumerate(np.flatnonzero(labels == digit)[:40]):
                png = base64.b64decode(png_base64(images[index].astype(np.float32)))
                archive.writestr(f"mnist_digits/{name}/{i:03d}.png", png)
    row = _store_upload(4, buffer.getvalue(), kind="image_zip")
    assert row.class_names == ["one", "seven", "zero"]
    assert row.input_shape == [28, 28, 1] and row.num_examples == 120

    layers = [
        {"type": "Flatten"},
        {"type": "Dense", "units": 32, "activation": "relu"},
        {"type": "Dense", "units": 3, "activation": "softmax"},
    ]
    dataset_spec = {"name": "upload", "upload_id": 4, "test_split": 0.25}
    spec = resolve_spec(spec={"dataset": dataset_spec, "model": {"layers": layers}})
    data = datasets.load(spec.dataset, data_dir=None)
    assert data.input_shape == (28, 28, 1) and len(data.x_test) == 30
    assert _train(dataset_spec, layers, epochs=8) > 0.6  # chance is 1/3


def test_an_upload_without_files_fails_clearly(home: Path) -> None:
    spec = resolve_spec(
        spec={
            "dataset": {"name": "upload", "upload_id": 77},
            "model": {"layers": [{"type": "Dense", "units": 2}]},
        }
    )
    with pytest.raises(store.UploadMissing, match="FITBOARD_HOME"):
        datasets.load(spec.dataset, data_dir=None)
    shutil.rmtree(home, ignore_errors=True)


def test_a_whole_run_on_an_uploaded_csv_evaluates_with_its_class_names(
    sqlite_url: str, make_run: Any
) -> None:
    from sklearn.datasets import load_iris

    from backend.db.session import session_scope
    from backend.evaluation import service as evaluation
    from worker.trainer import train

    bunch = load_iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width,species"] + [
        ",".join([*(f"{v:g}" for v in row), bunch.target_names[label]])
        for row, label in zip(bunch.data, bunch.target, strict=True)
    ]
    _store_upload(5, "\n".join(lines).encode(), kind="csv", target_column="species")
    spec = {
        "dataset": {"name": "upload", "upload_id": 5, "test_split": 0.3},
        "model": {
            "layers": [
                {"type": "Dense", "units": 16, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.02}},
        "fit": {"epochs": 30, "batch_size": 16, "validation_split": 0.1},
    }
    run_id = int(make_run(sqlite_url, spec=spec))
    assert train.run(run_id) == 0
    with session_scope() as session:
        stored = evaluation.get(session, run_id=run_id)
        assert stored.class_names == ["setosa", "versicolor", "virginica"]
        assert sum(map(sum, stored.confusion_matrix)) == 45
        assert float(stored.report["accuracy"]) > 0.6  # chance is 1/3
