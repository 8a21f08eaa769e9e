"""Training recipes, part A, on real digits: each test trains and checks what the technique does.

Schedules, optimizers and clipping, early stopping, mixed precision, MirroredStrategy on two
logical CPUs, class weights, focal loss, artifact formats, the overfitting diagnosis and
TensorBoard logs.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight
from sqlalchemy import select

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.client.streaming import Event, MetricFlusher, _schedule_of
from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.events.models import RunEvent
from backend.metrics.models import MetricPoint
from backend.metrics.service import Point
from backend.runs import service as runs
from backend.spec import DatasetSpec, ExperimentSpec
from worker.trainer import runtime, train
from worker.trainer.build import build_model, make_optimizer, prepare_targets
from worker.trainer.datasets import Dataset, load
from worker.trainer.losses import balanced_class_weight, class_weight, make_loss

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _float32_after_each_test() -> Iterator[None]:
    yield
    runtime.reset()


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load(DatasetSpec(name="digits"), data_dir=None)


@pytest.fixture(scope="module")
def small_digits() -> Dataset:
    return load(DatasetSpec(name="digits", train_limit=240, test_limit=120), data_dir=None)


def _spec(**parts: Any) -> ExperimentSpec:
    from backend.spec.presets import deep_merge

    base: dict[str, Any] = {
        "dataset": {"name": "digits"},
        "model": {"layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]},
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.01}},
        "fit": {"epochs": 2, "batch_size": 32, "validation_split": 0.2, "seed": 1},
    }  # fmt: skip
    return ExperimentSpec.model_validate(deep_merge(base, parts))


class ListSink:
    def __init__(self) -> None:
        self.points: dict[tuple[str, int], float] = {}

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        for p in points:
            self.points[(p["key"], p["step"])] = p["value"]

    def cancel_requested(self) -> bool:
        return False


def _fit_streamed(
    spec: ExperimentSpec, data: Dataset, model: keras.Model, **fit_kwargs: Any
) -> dict[tuple[str, int], float]:
    """fit() with the real streaming callback; the points it would have written."""
    sink = ListSink()
    flusher = MetricFlusher(sink, run_id=0)
    model.fit(
        data.x_train,
        prepare_targets(spec, model, data.y_train),
        epochs=spec.fit.epochs,
        batch_size=spec.fit.batch_size,
        validation_split=spec.fit.validation_split or 0.0,
        shuffle=False,
        callbacks=[flusher.callback()],
        verbose=0,
        **fit_kwargs,
    )
    assert flusher.close(timeout=5)
    return sink.points


def _series(points: dict[tuple[str, int], float], key: str) -> list[float]:
    return [v for (k, _), v in sorted(points.items()) if k == key]


# --- row 5: learning-rate schedules -----------------------------------------------------------

LR = 0.01
STEPS = 6  # 240 digits, 20% held out: 192 / 32
EPOCHS = 4


def _cosine(t: float, decay_steps: float, alpha: float, peak: float = LR) -> float:
    t = min(t, decay_steps)
    return peak * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / decay_steps)) + alpha)


def _warmup(t: int, w: int, start: float) -> float:
    return start + (LR - start) * t / w


SCHEDULES: list[tuple[dict[str, Any], Any]] = [
    # lr * 0.5 ** epoch, once per epoch
    ({"type": "exponential", "factor": 0.5}, lambda t: LR * 0.5 ** (t // STEPS)),
    ({"type": "exponential", "factor": 0.5, "staircase": False}, lambda t: LR * 0.5 ** (t / STEPS)),
    ({"type": "step", "every_epochs": 2, "factor": 0.1}, lambda t: LR * 0.1 ** (t // (2 * STEPS))),
    ({"type": "cosine", "alpha": 0.1}, lambda t: _cosine(t, EPOCHS * STEPS, 0.1)),
    ({"type": "cosine", "decay_steps": 10}, lambda t: _cosine(t, 10, 0.0)),
    (
        {"type": "warmup", "warmup_steps": 8, "initial_learning_rate": 0.001},
        lambda t: _warmup(t, 8, 0.001) if t < 8 else LR,
    ),
    (
        {"type": "warmup", "warmup_steps": 4, "then": "cosine", "alpha": 0.2},
        lambda t: _warmup(t, 4, 0.0) if t < 4 else _cosine(t - 4, EPOCHS * STEPS - 4, 0.2),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("schedule", "formula"), SCHEDULES, ids=[f"{s['type']}-{i}" for i, (s, _) in
                                             enumerate(SCHEDULES)]
)  # fmt: skip
def test_schedule_learning_rate_per_batch_is_the_formula(
    small_digits: Dataset, schedule: dict[str, Any], formula: Any
) -> None:
    spec = _spec(compile={"optimizer": {"schedule": schedule}}, fit={"epochs": EPOCHS})
    model = build_model(spec, small_digits)
    points = _fit_streamed(spec, small_digits, model)
    batch_lr = _series(points, "batch/lr")
    assert len(batch_lr) == EPOCHS * STEPS
    # batch s (from 1) trained with the rate at optimizer step s - 1
    expected = [formula(s - 1) for s in range(1, EPOCHS * STEPS + 1)]
    np.testing.assert_allclose(batch_lr, expected, rtol=1e-5, atol=1e-9)
    # the epoch curve is the rate of each epoch's first batch
    np.testing.assert_allclose(
        _series(points, "lr"), [formula(e * STEPS) for e in range(EPOCHS)], rtol=1e-5, atol=1e-9
    )
    assert points[("accuracy", EPOCHS)] > 0.3  # it trains (chance is 0.1)


def test_schedule_inside_a_loss_scale_optimizer_is_found() -> None:
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.5)
    wrapped = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(schedule))
    assert _schedule_of(wrapped) is schedule
    assert _schedule_of(keras.optimizers.Adam(0.1)) is None


# --- row 4: optimizers and gradient clipping --------------------------------------------------


@pytest.mark.parametrize(
    ("optimizer", "cls"),
    [
        ({"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "nesterov": True},
         keras.optimizers.SGD),
        ({"name": "adam", "learning_rate": 0.01}, keras.optimizers.Adam),
        ({"name": "rmsprop", "learning_rate": 0.005, "rho": 0.9}, keras.optimizers.RMSprop),
        ({"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.004},
         keras.optimizers.AdamW),
    ],
)  # fmt: skip
def test_optimizers_train(small_digits: Dataset, optimizer: dict[str, Any], cls: type) -> None:
    spec = _spec(compile={"optimizer": optimizer}, fit={"epochs": 4})
    model = build_model(spec, small_digits)
    assert type(model.optimizer) is cls
    for key, value in optimizer.items():
        if key != "name":
            assert keras.ops.convert_to_numpy(getattr(model.optimizer, key)) == pytest.approx(
                value
            ), key
    points = _fit_streamed(spec, small_digits, model)
    assert points[("accuracy", 4)] > 0.5 and points[("loss", 4)] < points[("loss", 1)]


@pytest.mark.parametrize("clip", ["clipvalue", "clipnorm"])
def test_gradient_clipping_bounds_each_update(clip: str, small_digits: Dataset) -> None:
    bound, lr = 1e-3, 1.0
    model = keras.Sequential([keras.Input((8, 8)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax")])  # fmt: skip
    optimizer = make_optimizer(
        ExperimentSpec.model_validate(
            {"dataset": {"name": "digits"}, "model": {"template": "mlp"},
             "compile": {"optimizer": {"name": "sgd", "learning_rate": lr, clip: bound}}}
        ).compile.optimizer
    )  # fmt: skip
    assert getattr(optimizer, clip) == pytest.approx(bound)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(small_digits.x_train[:64], small_digits.y_train[:64])
    deltas = [after - b for after, b in zip(model.get_weights(), before, strict=True)]
    for delta in deltas:
        assert np.any(delta != 0)
        if clip == "clipvalue":  # every gradient value clipped to [-bound, bound]
            assert np.abs(delta).max() <= lr * bound * (1 + 1e-4)
        else:  # every gradient tensor's norm clipped to bound
            assert np.linalg.norm(delta) <= lr * bound * (1 + 1e-4)


# --- row 13: class weights and focal loss ----------------------------------------------------


def test_balanced_class_weight_is_sklearns(digits: Dataset) -> None:
    # make the labels imbalanced: keep all 0s and 1s, a tenth of the rest
    keep = (digits.y_train <= 1) | (np.arange(len(digits.y_train)) % 10 == 0)
    y = digits.y_train[keep]
    classes = np.unique(y)
    expected = compute_class_weight("balanced", classes=classes, y=y)
    weights = balanced_class_weight(y)
    assert list(weights) == [int(c) for c in classes]
    np.testing.assert_allclose([weights[int(c)] for c in classes], expected)
    assert weights[0] < 0.5 < 2 < weights[5]
    # one-hot labels give the same weights
    one_hot = keras.utils.to_categorical(y, 10)
    assert balanced_class_weight(one_hot) == pytest.approx(weights)
    spec = _spec(fit={"class_weight": "balanced"})
    assert class_weight(spec, y) == pytest.approx(weights)
    assert class_weight(_spec(fit={"class_weight": {"3": 2}}), y) == {3: 2.0}
    assert class_weight(_spec(), y) is None


def test_class_weight_changes_what_the_model_favours(small_digits: Dataset) -> None:
    """A heavy weight on one class raises its recall and its share of predictions."""
    predicted: dict[str, float] = {}
    for name, weights in (("plain", None), ("weighted", {"3": 50.0})):
        spec = _spec(fit={"epochs": 3, "class_weight": weights})
        keras.utils.set_random_seed(0)
        model = build_model(spec, small_digits)
        _fit_streamed(
            spec, small_digits, model, class_weight=class_weight(spec, small_digits.y_train)
        )
        pred = np.argmax(model.predict(small_digits.x_test, verbose=0), axis=-1)
        predicted[name] = float(np.mean(pred == 3))
    assert predicted["weighted"] > predicted["plain"] + 0.05


def test_focal_losses_equal_a_hand_computation() -> None:
    y_true = np.array([[1.0], [0.0], [1.0], [0.0]], dtype=np.float32)
    p = np.array([[0.9], [0.2], [0.3], [0.6]], dtype=np.float32)
    gamma, alpha = 2.0, 0.25

    def binary(**focal: Any) -> ExperimentSpec:
        return ExperimentSpec.model_validate(
            {"dataset": {"name": "imdb"},
             "model": {"layers": [{"type": "Dense", "units": 1, "activation": "sigmoid"}]},
             "compile": {"loss": {"name": "focal", **focal}}}
        )  # fmt: skip

    one_unit = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    loss = make_loss(binary(gamma=gamma, alpha=alpha), one_unit)
    assert isinstance(loss, keras.losses.BinaryFocalCrossentropy)
    p_t = np.where(y_true == 1, p, 1 - p)
    weight = np.where(y_true == 1, alpha, 1 - alpha)
    by_hand = np.mean(-weight * (1 - p_t) ** gamma * np.log(p_t))
    assert float(loss(y_true, p)) == pytest.approx(by_hand, rel=1e-5)
    # without alpha: no class balancing
    unbalanced = make_loss(binary(gamma=gamma), one_unit)
    assert float(unbalanced(y_true, p)) == pytest.approx(
        np.mean(-((1 - p_t) ** gamma) * np.log(p_t)), rel=1e-5
    )

    labels = np.array([0, 2, 1])
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]], dtype=np.float32)
    categorical = _spec(
        model={"layers": [{"type": "Flatten"}, {"type": "Dense", "units": 10,
                                                "activation": "softmax"}]},
        compile={"loss": {"name": "focal", "gamma": 1.5}},
    )  # fmt: skip
    ten_units = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, activation="softmax")])
    loss = make_loss(categorical, ten_units)
    assert isinstance(loss, keras.losses.CategoricalFocalCrossentropy)
    p_true = probs[np.arange(3), labels]
    by_hand = np.mean(-((1 - p_true) ** 1.5) * np.log(p_true))
    one_hot = keras.utils.to_categorical(labels, 3)
    assert float(loss(one_hot, probs)) == pytest.approx(by_hand, rel=1e-5)


def test_categorical_focal_loss_trains_on_one_hot_targets(small_digits: Dataset) -> None:
    spec = _spec(compile={"loss": {"name": "focal", "gamma": 2.0}}, fit={"epochs": 4})
    model = build_model(spec, small_digits)
    assert prepare_targets(spec, model, small_digits.y_train).shape == (240, 10)
    points = _fit_streamed(spec, small_digits, model)
    assert points[("accuracy", 4)] > 0.5 and points[("val_accuracy", 4)] > 0.5


# --- row 11: mixed precision -------------------------------------------------------------------


@pytest.mark.parametrize(("policy", "compute"), [("mixed_float16", "float16"),
                                                 ("mixed_bfloat16", "bfloat16")])  # fmt: skip
def test_mixed_precision_computes_in_16_bits_with_float32_outputs(
    small_digits: Dataset, policy: str, compute: str
) -> None:
    spec = _spec(
        precision=policy,
        compile={"optimizer": {"schedule": {"type": "exponential", "factor": 0.5}}},
        fit={"epochs": 3},
    )
    rt = runtime.configure(spec)
    assert rt.precision_policy == policy
    with rt.scope():
        model = build_model(spec, small_digits)
    hidden, output = model.layers[-2], model.layers[-1]
    assert hidden.compute_dtype == compute and hidden.variable_dtype == "float32"
    assert hidden.kernel.dtype == "float32"
    assert output.compute_dtype == "float32" and output.dtype_policy.name == "float32"
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    points = _fit_streamed(spec, small_digits, model)
    prediction = model.predict(small_digits.x_test[:8], verbose=0)
    assert prediction.dtype == np.float32
    assert keras.backend.standardize_dtype(hidden(keras.ops.ones((1, 64))).dtype) == compute
    # the schedule still draws per batch through the loss-scale wrapper
    assert len(set(_series(points, "batch/lr"))) >= 3
    assert points[("accuracy", 3)] > 0.3


# --- rows 6, 13, 14, 16 and 4-5 end to end through the trainer ---------------------------------


def _events(run_id: int) -> dict[str, list[dict[str, Any]]]:
    with session_scope() as session:
        rows = session.execute(
            select(RunEvent.kind, RunEvent.data)
            .where(RunEvent.run_id == run_id)
            .order_by(RunEvent.id)
        ).all()
    out: dict[str, list[dict[str, Any]]] = {}
    for kind, data in rows:
        out.setdefault(kind, []).append(data)
    return out


def _metric(run_id: int, key: str) -> list[float]:
    with session_scope() as session:
        return [
            float(v)
            for v in session.scalars(
                select(MetricPoint.value)
                .where(MetricPoint.run_id == run_id, MetricPoint.key == key)
                .order_by(MetricPoint.step)
            )
        ]


def _artifact_path(run_id: int, name: str) -> Path:
    with session_scope() as session:
        key = artifacts.get(session, run_id=run_id, name=name).storage_key
    path = get_store().local_path(key)
    assert path is not None
    return path


def test_trainer_run_with_schedule_class_weight_artifacts_and_tensorboard(
    sqlite_url: str, make_run: Any, digits: Dataset
) -> None:
    spec = _spec(
        compile={"optimizer": {"schedule": {"type": "exponential", "factor": 0.5}}},
        fit={"epochs": 3, "batch_size": 64, "class_weight": "balanced"},
        artifacts=["keras", "h5", "weights", "savedmodel", "tflite", "tflite_quant"],
        tensorboard=True,
    )
    run_id = make_run(sqlite_url, spec=spec.model_dump(mode="json"))
    assert train.run(run_id) == 0
    with session_scope() as session:
        assert runs.get(session, run_id).status == "succeeded"
        report = evaluation.get(session, run_id=run_id).report
        names = {  # besides the checkpoints the run saved each epoch
            a.name: a.kind
            for a in artifacts.list_for_run(session, run_id=run_id)
            if a.kind != "checkpoint"
        }
    assert report["accuracy"] > 0.8

    events = _events(run_id)
    assert events["runtime"] == [{
        "backend": "tensorflow", "precision_policy": "float32",
        "devices": ["/device:CPU:0"], "num_replicas": 1, "global_batch_size": 64,
    }]  # fmt: skip
    (weights,) = events["class_weight"]
    expected = compute_class_weight("balanced", classes=np.arange(10), y=digits.y_train)
    assert weights["mode"] == "balanced"
    np.testing.assert_allclose([weights["weights"][str(c)] for c in range(10)], expected)

    # 1149 training digits / 64 = 18 batches an epoch; the rate halves every epoch
    batch_lr = _metric(run_id, "batch/lr")
    np.testing.assert_allclose(batch_lr, [0.01 * 0.5 ** ((s - 1) // 18) for s in range(1, 55)])
    np.testing.assert_allclose(_metric(run_id, "lr"), [0.01, 0.005, 0.0025])

    assert names == {
        "model.keras": "model", "model.h5": "model", "model.weights.h5": "weights",
        "savedmodel.zip": "savedmodel", "model.tflite": "tflite",
        "model_quant.tflite": "tflite", "tensorboard.zip": "logs",
    }  # fmt: skip
    artifact_events = {e["name"] for e in events["artifact"] if e.get("kind") != "checkpoint"}
    assert artifact_events == set(names)
    with zipfile.ZipFile(_artifact_path(run_id, "tensorboard.zip")) as zf:
        event_files = [n for n in zf.namelist() if "events.out.tfevents" in n]
    assert {n.split("/")[0] for n in event_files} == {"train", "validation"}

    # the downloadable artifacts are the trained model
    x = digits.x_test[:32]
    reference = keras.saving.load_model(_artifact_path(run_id, "model.keras")).predict(x, verbose=0)
    h5 = keras.saving.load_model(_artifact_path(run_id, "model.h5"), compile=False)
    np.testing.assert_allclose(h5.predict(x, verbose=0), reference, atol=1e-6)
    tflite = _tflite_predict(_artifact_path(run_id, "model.tflite").read_bytes(), x)
    np.testing.assert_allclose(tflite, reference, atol=1e-5)


def test_early_stopping_stops_restores_and_reports(
    sqlite_url: str, make_run: Any, digits: Dataset
) -> None:
    # min_delta far above any change: epoch 1 is the best, epoch 2 runs out of patience 1
    spec = _spec(
        fit={"epochs": 10, "batch_size": 64},
        callbacks=[{"type": "EarlyStopping", "monitor": "val_loss", "patience": 1,
                    "min_delta": 10.0, "restore_best_weights": True}],
    )  # fmt: skip
    run_id = make_run(sqlite_url, spec=spec.model_dump(mode="json"))
    assert train.run(run_id) == 0
    assert _events(run_id)["early_stop"] == [{
        "monitor": "val_loss", "stopped_epoch": 2, "best_epoch": 1,
        "best_value": pytest.approx(_metric(run_id, "val_loss")[0]), "patience": 1,
        "restored": True,
    }]  # fmt: skip
    val_loss = _metric(run_id, "val_loss")
    assert len(val_loss) == 2  # trained two of ten epochs
    # the saved model has epoch 1's weights: its loss on the validation split is epoch 1's
    split_at = math.floor(len(digits.x_train) * 0.8)
    model = keras.saving.load_model(_artifact_path(run_id, "model.keras"))
    loss = model.evaluate(digits.x_train[split_at:], digits.y_train[split_at:], verbose=0)[0]
    assert loss == pytest.approx(val_loss[0], rel=1e-4)
    assert loss != pytest.approx(val_loss[1], rel=1e-4)


def test_a_run_built_to_overfit_is_diagnosed(sqlite_url: str, make_run: Any) -> None:
    # 40 training digits, a wide model, 40 epochs: memorises the 40 and gets worse elsewhere
    spec = _spec(
        dataset={"name": "digits", "train_limit": 80},
        model={"layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 256, "activation": "relu"},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]},
        compile={"optimizer": {"name": "adam", "learning_rate": 0.003}},
        fit={"epochs": 40, "batch_size": 40, "validation_split": 0.5},
    )  # fmt: skip
    run_id = make_run(sqlite_url, spec=spec.model_dump(mode="json"))
    assert train.run(run_id) == 0
    found = {d["kind"]: d for d in _events(run_id)["diagnosis"]}
    assert {"overfitting", "generalization_gap"} <= set(found)
    assert "underfitting" not in found
    gap = found["generalization_gap"]
    acc, val_acc = _metric(run_id, "accuracy"), _metric(run_id, "val_accuracy")
    epoch = gap["epoch"]
    assert acc[epoch - 1] - val_acc[epoch - 1] > 0.1
    assert "more training data, or data augmentation" in gap["remedies"]
    over = found["overfitting"]
    val_loss, loss = _metric(run_id, "val_loss"), _metric(run_id, "loss")
    e = over["epoch"]
    for i in range(e - 3, e):  # three epochs of rising val_loss and falling loss, to epoch e
        assert val_loss[i] > val_loss[i - 1] and loss[i] < loss[i - 1]


# --- row 14: every artifact format reloads and predicts the same --------------------------------


def _tflite_predict(content: bytes, x: np.ndarray) -> np.ndarray:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_content=content)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x.astype(np.float32))
    interpreter.invoke()
    return np.asarray(interpreter.get_tensor(out["index"]))


def test_every_artifact_format_reloads_and_predicts_the_same(
    small_digits: Dataset, tmp_path: Path
) -> None:
    import tensorflow as tf

    from worker.trainer.exporters import ARTIFACT_FILES, export

    spec = _spec(
        compile={"optimizer": {"schedule": {"type": "cosine"}}},
        model={"layers": [
            {"type": "Flatten"},
            {"type": "Dense", "units": 32},
            {"type": "BatchNormalization"},
            {"type": "Activation", "activation": "relu"},
            {"type": "Dropout", "rate": 0.2},
            {"type": "Dense", "units": 10, "activation": "softmax"},
        ]},
        fit={"epochs": 2},
    )  # fmt: skip
    model = build_model(spec, small_digits)
    _fit_streamed(spec, small_digits, model)
    x = small_digits.x_test
    reference = model.predict(x, verbose=0)

    formats = list(ARTIFACT_FILES)
    result = export(model, formats, tmp_path / "out")
    assert result.failed == {}
    done = {item.name: item.path for item in result.done}
    assert set(done) == {name for fmt, (name, _) in ARTIFACT_FILES.items() if fmt != "keras"}
    model.save(tmp_path / "model.keras")

    def close(pred: np.ndarray, atol: float = 1e-6) -> None:
        np.testing.assert_allclose(pred, reference, atol=atol)

    close(keras.saving.load_model(tmp_path / "model.keras").predict(x, verbose=0))
    close(keras.saving.load_model(done["model.h5"], compile=False).predict(x, verbose=0))
    fresh = build_model(spec, small_digits)
    fresh.load_weights(done["model.weights.h5"])
    close(fresh.predict(x, verbose=0))

    with zipfile.ZipFile(done["savedmodel.zip"]) as zf:
        assert "savedmodel/saved_model.pb" in zf.namelist()
        zf.extractall(tmp_path / "unzipped")
    served = tf.saved_model.load(str(tmp_path / "unzipped" / "savedmodel"))
    close(np.asarray(served.serve(tf.constant(x))), atol=1e-5)

    close(_tflite_predict(done["model.tflite"].read_bytes(), x), atol=1e-5)
    quant = _tflite_predict(done["model_quant.tflite"].read_bytes(), x)
    assert done["model_quant.tflite"].stat().st_size < done["model.tflite"].stat().st_size
    close(quant, atol=0.05)  # int8 weights: close, not equal
    assert np.mean(np.argmax(quant, -1) == np.argmax(reference, -1)) > 0.95


def test_a_mixed_precision_model_converts_to_tflite_in_float32(
    small_digits: Dataset, tmp_path: Path
) -> None:
    from worker.trainer.exporters import export, float32_copy

    spec = _spec(precision="mixed_bfloat16", fit={"epochs": 1})
    runtime.configure(spec)
    model = build_model(spec, small_digits)
    _fit_streamed(spec, small_digits, model)
    runtime.reset()
    twin = float32_copy(model)
    assert twin is not model
    assert {layer.dtype_policy.name for layer in twin.layers} == {"float32"}
    assert float32_copy(twin) is twin
    x = small_digits.x_test[:64]
    reference = model.predict(x, verbose=0)
    result = export(model, ["tflite", "savedmodel"], tmp_path)
    assert result.failed == {} and [d.name for d in result.done] == [
        "savedmodel.zip",
        "model.tflite",
    ]
    tflite = _tflite_predict(result.done[1].path.read_bytes(), x)
    np.testing.assert_allclose(tflite, twin.predict(x, verbose=0), atol=1e-5)
    np.testing.assert_allclose(tflite, reference, atol=0.03)  # bfloat16 has 8 bits of mantissa


def test_a_format_that_cannot_be_written_fails_the_run_but_keeps_the_rest(
    sqlite_url: str, make_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from worker.trainer import exporters

    def no_tflite(saved_model: Path, *, quantize: bool) -> bytes:
        raise RuntimeError("Could not translate MLIR to FlatBuffer.\n" + "x" * 5000)

    monkeypatch.setattr(exporters, "to_tflite", no_tflite)
    spec = _spec(artifacts=["keras", "weights", "tflite"], fit={"epochs": 1})
    run_id = make_run(sqlite_url, spec=spec.model_dump(mode="json"))
    assert train.run(run_id) == 1
    with session_scope() as session:
        run = runs.get(session, run_id)
        names = {  # besides the checkpoints the run saved each epoch
            a.name for a in artifacts.list_for_run(session, run_id=run_id) if a.kind != "checkpoint"
        }
        evaluation.get(session, run_id=run_id)  # the evaluation was kept
    assert run.status == "failed"
    assert run.failure_reason == (
        "ExportError: could not write artifacts (tflite: RuntimeError: Could not translate "
        "MLIR to FlatBuffer.)"
    )
    assert names == {"model.keras", "model.weights.h5"}
    assert _events(run_id)["artifact_error"] == [{
        "format": "tflite", "name": "model.tflite",
        "error": "RuntimeError: Could not translate MLIR to FlatBuffer.",
    }]  # fmt: skip


def test_tensorflow_only_formats_fail_clearly_elsewhere() -> None:
    from worker.trainer.exporters import ExportError, check_backend

    check_backend(["keras", "h5", "weights"], backend="jax")
    with pytest.raises(ExportError, match="savedmodel, tflite need the TensorFlow backend"):
        check_backend(["keras", "tflite", "savedmodel"], backend="jax")


# --- row 12: MirroredStrategy over two logical CPU devices ------------------------------------


def test_mirrored_strategy_on_two_logical_cpus(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    # a fresh process: logical devices must be declared before TensorFlow's first op
    spec = small_spec(devices=2, scale_batch_size=True, fit={"epochs": 3, "batch_size": 32})
    run_id = make_run(sqlite_url, spec=spec, claim=False)
    proc = subprocess.run(
        [sys.executable, "-m", "worker.trainer", str(run_id), "--claim"],
        cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with session_scope() as session:
        assert runs.get(session, run_id).status == "succeeded"
        report = evaluation.get(session, run_id=run_id).report
    events = _events(run_id)
    (rt,) = events["runtime"]
    assert rt["num_replicas"] == 2 and rt["global_batch_size"] == 64
    assert [d.rsplit("/", 1)[-1] for d in rt["devices"]] == ["device:CPU:0", "device:CPU:1"]
    # the global batch of 64 (32 a device): 1149 / 64 = 18 steps an epoch
    (begin,) = events["train_begin"]
    assert begin["steps_per_epoch"] == 18 and begin["batch_size"] == 64
    assert report["accuracy"] > 0.8
