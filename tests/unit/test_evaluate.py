"""Evaluation equals scikit-learn's on the same predictions (softmax and single sigmoid)."""

from __future__ import annotations

import json
import warnings

import keras
import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from backend.spec import DatasetSpec
from worker.trainer.datasets import Dataset, load
from worker.trainer.evaluate import evaluate, predict_classes, summarize


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load(DatasetSpec(name="digits", train_limit=400), data_dir=None)


def _trained(data: Dataset, units: int, activation: str, loss: str) -> keras.Model:
    keras.utils.set_random_seed(5)
    model = keras.Sequential(
        [
            keras.Input(shape=data.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=loss)
    model.fit(data.x_train, data.y_train, epochs=2, batch_size=64, verbose=0)
    return model


def test_multiclass_evaluation_matches_sklearn(digits: Dataset) -> None:
    model = _trained(digits, 10, "softmax", "sparse_categorical_crossentropy")
    result = evaluate(model, digits)

    y_pred = np.argmax(model.predict(digits.x_test, verbose=0), axis=1)
    labels = list(range(10))
    np.testing.assert_array_equal(result.y_pred, y_pred)
    np.testing.assert_array_equal(result.y_true, digits.y_test)
    assert result.split == "test" and result.class_names == digits.class_names
    assert (
        result.confusion_matrix == confusion_matrix(digits.y_test, y_pred, labels=labels).tolist()
    )
    expected = classification_report(
        digits.y_test, y_pred, labels=labels, target_names=digits.class_names,
        output_dict=True, zero_division=0,
    )  # fmt: skip
    assert result.report == expected
    assert result.report["accuracy"] == pytest.approx(float(np.mean(y_pred == digits.y_test)))
    assert result.report["accuracy"] > 0.5  # it learned something
    json.dumps(result.report)
    json.dumps(result.confusion_matrix)


def test_single_sigmoid_unit_thresholds_at_one_half(digits: Dataset) -> None:
    binary = Dataset(
        "imdb", digits.x_train, (digits.y_train >= 5).astype(np.int64), digits.x_test,
        (digits.y_test >= 5).astype(np.int64), ["negative", "positive"], 2, digits.input_shape,
    )  # fmt: skip
    model = _trained(binary, 1, "sigmoid", "binary_crossentropy")
    result = evaluate(model, binary)
    probs = model.predict(binary.x_test, verbose=0)[:, 0]
    np.testing.assert_array_equal(result.y_pred, (probs > 0.5).astype(int))
    assert (
        result.confusion_matrix
        == confusion_matrix(binary.y_test, result.y_pred, labels=[0, 1]).tolist()
    )
    assert set(result.report) >= {"negative", "positive", "accuracy", "macro avg"}


def test_classes_missing_from_the_slice_still_get_rows() -> None:
    names = [str(d) for d in range(4)]
    y_true = np.array([0, 0, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 1])
    result = summarize(y_true, y_pred, class_names=names)
    assert result.confusion_matrix == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert result.report["3"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    assert result.report["1"]["precision"] == pytest.approx(2 / 4)


def test_predict_classes_handles_flat_outputs() -> None:
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.set_weights([np.array([[1.0], [0.0]]), np.array([0.0])])
    pred = predict_classes(model, np.array([[0.2, 5.0], [0.7, -5.0], [0.5, 0.0]]))
    assert pred.tolist() == [0, 1, 0]


def test_report_equals_sklearns_on_many_random_predictions() -> None:
    """The NumPy evaluation (no scikit-learn needed on a script's machine) is sklearn's, exactly,
    with classes that are never true or never predicted, one class, and perfect predictions."""
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(1, 12))
        m = int(rng.integers(1, 400))
        y_true = rng.integers(0, n, m)
        y_pred = rng.integers(0, max(1, n // (1 + trial % 3)), m)
        if trial % 4 == 0:
            y_pred = np.where(rng.random(m) < 0.8, y_true, y_pred)
        names = [f"c{i}" for i in range(n)]
        result = summarize(y_true, y_pred, class_names=names)
        labels = list(range(n))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns on a single label
            expected = classification_report(
                y_true, y_pred, labels=labels, target_names=names, output_dict=True,
                zero_division=0,
            )  # fmt: skip
            matrix = confusion_matrix(y_true, y_pred, labels=labels).tolist()
        assert result.report == expected, (n, m, trial)
        assert result.confusion_matrix == matrix
