"""Recipes 2, 3, 7-10 trained for real on small slices: text, CNN, transfer learning with
phases, base weights (ImageNet offline, an earlier run's model), image folders, plugins."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from sqlalchemy import select

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.client.streaming import Event, MetricFlusher
from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.events.models import RunEvent
from backend.metrics.models import MetricPoint
from backend.runs import service as runs
from backend.spec import resolve_spec
from backend.spec.plugins import get_plugin
from worker.trainer import datasets, phases, train, transfer
from worker.trainer.build import build_model, prepare_targets
from worker.trainer.datasets import load, read_idx
from worker.trainer.image_folder import load as load_image_folder
from worker.trainer.samples import png_base64


@pytest.fixture
def offline_data(
    sqlite_url: str, mnist_dir: Path, dataset_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Runs read MNIST/IMDB from the offline data dir, IMDB tokenized once per session."""
    from backend.config import get_settings

    monkeypatch.setenv("FITBOARD_DATA_DIR", str(mnist_dir))
    monkeypatch.setattr(datasets, "default_cache_dir", lambda: dataset_cache)
    get_settings.cache_clear()
    yield mnist_dir
    get_settings.cache_clear()


def _run(make_run: Any, url: str, spec: dict[str, Any] | None = None, **kwargs: Any) -> int:
    run_id = int(make_run(url, spec=spec, **kwargs))
    assert train.run(run_id) == 0, _failure(run_id)
    return run_id


def _failure(run_id: int) -> str:
    with session_scope() as session:
        run = runs.get(session, run_id)
        return f"{run.status}: {run.failure_reason}\n{run.failure_traceback}"


def _events(run_id: int, kind: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(
            select(RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind == kind)
            .order_by(RunEvent.id)
        )
        return list(rows)


def _points(run_id: int, key: str) -> list[tuple[int, float]]:
    with session_scope() as session:
        rows = session.execute(
            select(MetricPoint.step, MetricPoint.value)
            .where(MetricPoint.run_id == run_id, MetricPoint.key == key)
            .order_by(MetricPoint.step)
        ).all()
    return [(int(step), float(value)) for step, value in rows]


def _evaluation(run_id: int) -> tuple[list[str], list[list[int]], float]:
    with session_scope() as session:
        stored = evaluation.get(session, run_id=run_id)
        return stored.class_names, stored.confusion_matrix, float(stored.report["accuracy"])


# --- rows 2 and 3: text and CNN presets ------------------------------------------------------


def test_imdb_lstm_trains_and_evaluates_as_binary_negative_positive(
    offline_data: Path, make_run: Any, sqlite_url: str
) -> None:
    spec = resolve_spec(
        preset="imdb-lstm",
        overrides={"dataset": {"train_limit": 320, "test_limit": 160}, "fit": {"epochs": 1}},
    ).model_dump(mode="json")
    run_id = _run(make_run, sqlite_url, spec)
    class_names, matrix, _ = _evaluation(run_id)
    assert class_names == ["negative", "positive"]
    assert np.asarray(matrix).shape == (2, 2) and np.sum(matrix) == 160
    (loss,) = _points(run_id, "val_loss")  # validated on the test reviews
    assert np.isfinite(loss[1])
    with session_scope() as session:
        summary = runs.get(session, run_id).model_summary or {}
    assert [layer["class"] for layer in summary["layers"]][1:] == ["Embedding", "LSTM", "Dense"]


def test_mnist_cnn_on_a_slice_beats_chance(
    offline_data: Path, make_run: Any, sqlite_url: str
) -> None:
    overrides = {
        "dataset": {"train_limit": 2000, "test_limit": 400},
        "fit": {"epochs": 2, "batch_size": 32},
    }
    spec = resolve_spec(preset="mnist-cnn", overrides=overrides).model_dump(mode="json")
    run_id = _run(make_run, sqlite_url, spec)
    class_names, _, accuracy = _evaluation(run_id)
    assert class_names == [str(d) for d in range(10)]
    assert accuracy > 0.5  # chance: 0.1
    assert _events(run_id, "samples")[0]["image_shape"] == [28, 28, 1]


# --- row 7: transfer learning with phases ---------------------------------------------------


class _ListSink:
    def __init__(self) -> None:
        self.points: list[Any] = []
        self.events: list[Event] = []

    def write(self, uid: str, points: Any, events: Any) -> None:
        self.points += points
        self.events += events

    def cancel_requested(self) -> bool:
        return False


class _Snapshots(keras.callbacks.Callback):
    """Base weights per layer at the start and end of every fit() call."""

    def __init__(self, base: keras.Model) -> None:
        super().__init__()
        self.base = base
        self.taken: list[dict[str, list[np.ndarray]]] = []

    def _take(self) -> None:
        self.taken.append({layer.name: layer.get_weights() for layer in self.base.layers})

    def on_train_begin(self, logs: Any = None) -> None:
        self._take()

    def on_train_end(self, logs: Any = None) -> None:
        self._take()


def _changed(before: dict[str, list[np.ndarray]], after: dict[str, list[np.ndarray]]) -> set[str]:
    return {
        name
        for name, weights in before.items()
        if any(not np.array_equal(a, b) for a, b in zip(weights, after[name], strict=True))
    }


def test_phases_train_the_head_then_unfreeze_the_last_base_layers(mnist_dir: Path) -> None:
    spec = resolve_spec(
        preset="transfer-vgg16",
        overrides={
            "dataset": {"train_limit": 64, "test_limit": 16},
            "model": {"base": {"weights": None}},
            "fit": {
                "batch_size": 32,
                "validation_split": None,
                "phases": [
                    {"epochs": 1, "learning_rate": 0.01},
                    {"epochs": 1, "learning_rate": 0.005, "unfreeze_last": 4},
                ],
            },
        },
    )
    data = load(spec.dataset, data_dir=mnist_dir)
    keras.utils.set_random_seed(0)
    model = build_model(spec, data)
    # MNIST's 28x28 gray digits: a channel axis, resized to VGG16's minimum, 3 channels
    names = [layer.name for layer in model.layers]
    assert names[:6] == [
        "input",
        "add_channel",
        "augmentation",
        "resize",
        "gray_to_rgb",
        "preprocess",
    ]
    base = transfer.find_base(model)
    assert base is not None and base.name == "base_vgg16" and base.input_shape == (None, 32, 32, 3)
    snapshots = _Snapshots(base)
    sink = _ListSink()
    flusher = MetricFlusher(sink, run_id=0, flush_interval_s=0.05)
    streaming = flusher.callback(batch_size=32, train_samples=64)
    flusher.start()
    fit = phases.fit_function(model, spec=spec, flusher=flusher)
    fit(
        data.x_train,
        prepare_targets(spec, model, data.y_train),
        epochs=spec.fit.epochs,
        batch_size=32,
        callbacks=[snapshots, streaming],
        verbose=0,
    )
    assert flusher.close(timeout=10)

    start1, end1, start2, end2 = snapshots.taken
    assert _changed(start1, end1) == set()  # phase 1: the whole base frozen
    assert _changed(end1, start2) == set()
    last4 = {"block5_conv1", "block5_conv2", "block5_conv3"}  # + block5_pool, no weights
    assert _changed(start2, end2) == last4  # phase 2: exactly the last 4 layers train

    phase_events = [e.data for e in sink.events if e.kind == "phase"]
    assert [(p["index"], p["start_epoch"], p["unfreeze_last"]) for p in phase_events] == [
        (0, 1, 0),
        (1, 2, 4),
    ]
    head = 2 * 2  # Dense 256 and Dense 1: kernel and bias
    assert phase_events[0]["trainable_weights"] == head
    assert phase_events[1]["trainable_weights"] == head + 2 * 3
    begin = next(e.data for e in sink.events if e.kind == "train_begin")
    assert begin["epochs"] == 2  # the planned total, not phase 1's
    steps = sorted({p["step"] for p in sink.points if p["key"] == "batch/loss"})
    assert steps == [1, 2, 3, 4]  # two batches per epoch, counting on across the phases
    assert sorted({p["step"] for p in sink.points if p["key"] == "loss"}) == [1, 2]
    lrs = {p["step"]: p["value"] for p in sink.points if p["key"] == "lr"}
    assert lrs == pytest.approx({1: 0.01, 2: 0.005})


@pytest.mark.parametrize("application", ["ResNet50", "MobileNetV2", "EfficientNetB0"])
def test_every_application_takes_small_gray_images(mnist_dir: Path, application: str) -> None:
    spec = resolve_spec(
        preset="transfer-vgg16",
        overrides={
            "dataset": {"train_limit": 8, "test_limit": 4},
            "model": {"base": {"application": application, "weights": None}},
        },
    )
    data = load(spec.dataset, data_dir=mnist_dir)
    model = build_model(spec, data)
    base = transfer.find_base(model)
    assert base is not None and base.input_shape == (None, 32, 32, 3)
    assert not base.trainable_weights  # frozen until a phase unfreezes it
    assert model.predict(data.x_test, verbose=0).shape == (4, 1)


def test_unfreezing_keeps_batch_normalization_frozen() -> None:
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    transfer.set_base_trainable(base, unfreeze_last=5)
    trainable = [layer.name for layer in base.layers if layer.trainable]
    assert trainable == [
        layer.name
        for layer in base.layers[-5:]
        if not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert trainable and any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in base.layers[-5:]
    )
    transfer.set_base_trainable(base, unfreeze_last=0)
    assert not base.trainable_weights


# --- row 8: where the base weights come from ------------------------------------------------


def test_imagenet_weights_offline_fail_before_training_with_the_file_and_cache(
    offline_data: Path,
    make_run: Any,
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "keras").mkdir()
    probed: list[str] = []

    def offline(url: str, *, timeout_s: float) -> str:
        probed.append(url)
        return "[Errno -2] Name or service not known"

    monkeypatch.setattr(transfer, "probe_download", offline)
    spec = resolve_spec(preset="transfer-vgg16", overrides={"dataset": {"train_limit": 64}})
    run_id = int(make_run(sqlite_url, spec=spec.model_dump(mode="json")))
    started = time.monotonic()
    assert train.run(run_id) == 1
    assert time.monotonic() - started < 60
    file = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    cache = tmp_path / "keras" / "models"
    with session_scope() as session:
        run = runs.get(session, run_id)
    assert run.status == "failed"
    assert run.failure_reason == (
        f"BaseWeightsUnavailable: VGG16 ImageNet weights are not available: {file} is not in "
        f"Keras' cache ({cache}) and cannot be downloaded from "
        f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{file} "
        f"([Errno -2] Name or service not known). Copy the file to {cache / file}, allow the "
        "download, or set model.base.weights to null."
    )
    assert probed == [f"https://storage.googleapis.com/tensorflow/keras-applications/vgg16/{file}"]
    assert _events(run_id, "train_begin") == [] and _points(run_id, "batch/loss") == []

    # a file in the cache is used as is: no probe, Keras reads it
    cache.mkdir(parents=True)
    (cache / file).write_bytes(b"")
    probed.clear()
    transfer.ensure_imagenet_weights("VGG16", (32, 32, 3))
    assert probed == []


def test_download_probe_gives_up_quickly_offline() -> None:
    started = time.monotonic()
    reason = transfer.probe_download("https://fitboard-weights.invalid/x.h5", timeout_s=3)
    assert reason and time.monotonic() - started < 15


def test_weight_file_names_match_keras_applications() -> None:
    import inspect

    from keras.src.applications import efficientnet, mobilenet_v2, resnet, vgg16

    assert "".join(transfer.imagenet_weights_file("VGG16", (32, 32, 3))) == (
        vgg16.WEIGHTS_PATH_NO_TOP
    )
    folder, file = transfer.imagenet_weights_file("ResNet50", (32, 32, 3))
    assert folder == resnet.BASE_WEIGHTS_PATH and file.startswith("resnet50")
    assert "_weights_tf_dim_ordering_tf_kernels_notop.h5" in inspect.getsource(resnet)
    folder, file = transfer.imagenet_weights_file("EfficientNetB0", (32, 32, 3))
    assert folder == efficientnet.BASE_WEIGHTS_PATH and '"_notop.h5"' in inspect.getsource(
        efficientnet
    )
    folder, file = transfer.imagenet_weights_file("MobileNetV2", (96, 96, 3))
    assert folder == mobilenet_v2.BASE_WEIGHT_PATH and file.endswith("_1.0_96_no_top.h5")
    assert transfer.imagenet_weights_file("MobileNetV2", (32, 32, 3))[1].endswith("_224_no_top.h5")


def test_from_run_transfers_a_cnn_from_digits_0_4_to_5_9(
    offline_data: Path, make_run: Any, sqlite_url: str
) -> None:
    source = {
        "dataset": {
            "name": "mnist",
            "classes": [0, 1, 2, 3, 4],
            "channels_last": True,
            "train_limit": 3000,
            "test_limit": 300,
        },
        "model": {
            "layers": [
                {"type": "Conv2D", "filters": 16, "kernel_size": [3, 3], "activation": "relu"},
                {"type": "MaxPooling2D", "pool_size": [2, 2]},
                {"type": "Conv2D", "filters": 32, "kernel_size": [3, 3], "activation": "relu"},
                {"type": "MaxPooling2D", "pool_size": [2, 2]},
                {"type": "Flatten"},
                {"type": "Dense", "units": 64, "activation": "relu"},
                {"type": "Dense", "units": 5, "activation": "softmax"},
            ]
        },
        "fit": {"epochs": 2, "batch_size": 32, "validation_split": 0.1, "seed": 1},
    }
    source_id = _run(make_run, sqlite_url, source)
    assert _evaluation(source_id)[0] == ["0", "1", "2", "3", "4"]

    target = {
        "dataset": {**source["dataset"], "classes": [5, 6, 7, 8, 9], "train_limit": 300},
        "model": {
            "base": {"from_run": source_id},
            "layers": [{"type": "Dense", "units": 5, "activation": "softmax"}],
        },
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.003}},
        "fit": {
            "batch_size": 32,
            "validation_split": 0.1,
            "seed": 1,
            "phases": [
                {"epochs": 3},
                {"epochs": 1, "learning_rate": 0.0003, "unfreeze_last": 2},
            ],
        },
    }
    run_id = _run(make_run, sqlite_url, target)
    class_names, matrix, accuracy = _evaluation(run_id)
    assert class_names == ["5", "6", "7", "8", "9"]  # the original digits, relabelled 0..4
    assert np.sum(matrix) == 300 and accuracy > 0.5  # chance: 0.2
    assert _events(run_id, "base") == [{"from_run": source_id, "trainable": False}]
    with session_scope() as session:
        summary = runs.get(session, run_id).model_summary or {}
    assert summary["base"] == {"from_run": source_id, "trainable": False}
    assert f"base_run_{source_id}" in [layer["name"] for layer in summary["layers"]]
    # one curve: 270 images / 32 = 9 batches an epoch, 4 epochs over two phases
    assert [p["start_epoch"] for p in _events(run_id, "phase")] == [1, 4]
    assert _events(run_id, "train_begin")[0]["epochs"] == 4
    assert [s for s, _ in _points(run_id, "batch/loss")] == list(range(1, 4 * 9 + 1))
    assert [s for s, _ in _points(run_id, "val_accuracy")] == [1, 2, 3, 4]


def test_from_run_without_a_model_fails_clearly(
    offline_data: Path, make_run: Any, sqlite_url: str
) -> None:
    queued = int(
        make_run(
            sqlite_url,
            spec={"dataset": {"name": "digits"}, "model": {"template": "mlp"}},
            claim=False,
        )
    )
    spec = {
        "dataset": {"name": "digits"},
        "model": {"base": {"from_run": queued}, "layers": [{"type": "Dense", "units": 10}]},
    }
    run_id = int(make_run(sqlite_url, spec=spec))
    assert train.run(run_id) == 1
    reason = _failure(run_id)
    assert f"BaseRunUnavailable: from_run: run {queued} (queued) has saved no model.keras" in reason


# --- row 9: image folders -------------------------------------------------------------------


def _digit_folder(root: Path, mnist_dir: Path, digits: dict[str, int], per_class: int) -> None:
    images = read_idx(mnist_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    for name, digit in digits.items():
        (root / name).mkdir(parents=True)
        for i, index in enumerate(np.flatnonzero(labels == digit)[:per_class]):
            png = base64.b64decode(png_base64(images[index].astype(np.float32)))
            (root / name / f"{i:03d}.png").write_bytes(png)


def test_image_folder_run_uses_folder_names_and_sends_samples(
    offline_data: Path, make_run: Any, sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "digits"
    _digit_folder(folder, offline_data, {"zero": 0, "one": 1, "seven": 7}, per_class=40)
    spec = {
        "dataset": {
            "name": "image_folder",
            "path": str(folder),
            "image_size": [28, 28],
            "color_mode": "grayscale",
            "test_split": 0.25,
        },
        "model": {
            "layers": [
                {"type": "Flatten"},
                {"type": "Dense", "units": 32, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.003}},
        "fit": {"epochs": 5, "batch_size": 16, "validation_split": 0.2, "seed": 1},
    }
    run_id = _run(make_run, sqlite_url, spec)
    class_names, matrix, accuracy = _evaluation(run_id)
    assert class_names == ["one", "seven", "zero"]  # folder names, alphabetical
    assert np.sum(matrix) == 30 and [sum(row) for row in matrix] == [10, 10, 10]
    assert accuracy > 0.6
    (samples,) = _events(run_id, "samples")
    assert samples["format"] == "png" and samples["image_shape"] == [28, 28, 1]
    assert [c["name"] for c in samples["classes"]] == class_names
    for entry in samples["classes"]:
        assert len(entry["images"]) == 2
        png = base64.b64decode(entry["images"][0])
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (28, 28)


def test_image_folder_with_train_and_test_folders_and_a_class_subset(
    mnist_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / "cats_vs_dogs"
    _digit_folder(root / "train", mnist_dir, {"cats": 3, "dogs": 8, "fish": 1}, per_class=12)
    _digit_folder(root / "validation", mnist_dir, {"cats": 3, "dogs": 8, "fish": 1}, per_class=4)
    spec = resolve_spec(
        spec={
            "dataset": {
                "name": "image_folder",
                "path": str(root),
                "image_size": [40, 32],
                "classes": ["dogs", "cats"],
            },
            "model": {"layers": [{"type": "Flatten"}, {"type": "Dense", "units": 2}]},
        }
    )
    data = datasets.load(spec.dataset, data_dir=None)
    assert data.class_names == ["dogs", "cats"] and data.num_classes == 2
    assert data.x_train.shape == (24, 40, 32, 3) and data.x_test.shape == (8, 40, 32, 3)
    assert data.x_train.min() >= 0.0 and data.x_train.max() <= 1.0
    assert sorted(np.bincount(data.y_train)) == [12, 12]
    assert len(set(data.y_train[-5:])) == 2  # shuffled: validation_split sees both classes
    again = load_image_folder(spec.dataset)
    assert np.array_equal(again.x_train, data.x_train)  # the same split every time


# --- row 10: plugin templates ---------------------------------------------------------------


def test_custom_loop_plugin_trains_with_its_own_train_step(
    offline_data: Path, make_run: Any, sqlite_url: str
) -> None:
    overrides = {
        "dataset": {"train_limit": 3000, "test_limit": 500},
        "fit": {"epochs": 3, "batch_size": 64},
    }
    spec = resolve_spec(preset="custom-loop", overrides=overrides).model_dump(mode="json")
    run_id = _run(make_run, sqlite_url, spec)
    losses = [value for _, value in _points(run_id, "loss")]
    assert len(losses) == 3 and losses[0] > losses[1] > losses[2]
    assert [s for s, _ in _points(run_id, "accuracy")] == [1, 2, 3]
    assert len(_points(run_id, "batch/loss")) == 3 * 43  # 2700 / 64 batches an epoch
    _, _, accuracy = _evaluation(run_id)
    assert accuracy > 0.8

    with session_scope() as session:
        key = artifacts.get(session, run_id=run_id, name="model.keras").storage_key
    plugin = get_plugin("custom-loop")
    path = get_store().local_path(key)
    model = keras.saving.load_model(path, custom_objects=plugin.custom_objects())
    cls = type(model)
    assert cls.__name__ == "CustomLoopModel" and cls.train_step is not keras.Model.train_step
    assert [layer.name for layer in model.layers][-2:] == ["hidden", "output"]
