"""Confusion matrix and classification report of a classifier, with NumPy only.

The one copy of Fitboard's evaluation: a worker's final and per-epoch evaluations, the
``evaluate=`` of FitboardCallback, and the API's report for an external run that posts only a
matrix. It equals scikit-learn's ``confusion_matrix`` and
``classification_report(output_dict=True, zero_division=0)`` over every class, number for
number, without needing scikit-learn on a script's machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_HEADERS = ("precision", "recall", "f1-score")


@dataclass(eq=False)
class EvaluationResult:
    split: str
    class_names: list[str]
    confusion_matrix: list[list[int]]
    report: dict[str, Any]
    y_true: np.ndarray
    y_pred: np.ndarray


def predict_classes(model: Any, x: Any, *, batch_size: int = 256) -> np.ndarray:
    """Class indices: argmax over several outputs, ``> 0.5`` for a single sigmoid unit."""
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if probs.ndim == 1 or probs.shape[-1] == 1:
        return (probs.reshape(len(probs), -1)[:, 0] > 0.5).astype(np.int64)
    return np.argmax(probs, axis=-1).astype(np.int64)


def class_indices(y: Any) -> np.ndarray:
    """Labels as a flat array of class indices; one-hot rows become their argmax."""
    truth = np.asarray(y)
    if truth.ndim > 1 and truth.shape[-1] > 1:
        truth = np.argmax(truth, axis=-1)
    return truth.reshape(-1).astype(np.int64)


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> list[list[int]]:
    """Rows true class, columns predicted; y_true as indices or one-hot."""
    truth = class_indices(y_true)
    pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return [[int(v) for v in row] for row in matrix]


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (zero_division=0)."""
    denominator = denominator.astype(np.float64)
    zero = denominator == 0
    denominator[zero] = 1.0
    result = numerator.astype(np.float64) / denominator
    result[zero] = 0.0
    return result


def classification_report(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str]
) -> dict[str, Any]:
    """scikit-learn's classification_report(output_dict=True, zero_division=0), from counts."""
    counts = np.asarray(matrix, dtype=np.int64).reshape(len(class_names), len(class_names))
    tp = np.diag(counts)
    predicted = counts.sum(axis=0)
    support = counts.sum(axis=1)
    # sklearn's formulas (F1 from counts, not from the rounded precision and recall)
    per_class = (
        _divide(tp, predicted),
        _divide(tp, support),
        _divide(2.0 * tp, 1.0 * support + predicted),
    )
    report: dict[str, Any] = {}
    for i, name in enumerate(class_names):
        row = {h: float(values[i]) for h, values in zip(_HEADERS, per_class, strict=True)}
        report[str(name)] = row | {"support": float(support[i])}
    total = float(np.sum(support))
    micro = (
        _divide(tp.sum(keepdims=True), predicted.sum(keepdims=True)),
        _divide(tp.sum(keepdims=True), support.sum(keepdims=True)),
        _divide(2.0 * tp.sum(keepdims=True), 1.0 * support.sum(keepdims=True) + predicted.sum()),
    )
    report["accuracy"] = float(micro[0][0])
    report["macro avg"] = {
        h: float(np.nanmean(values)) for h, values in zip(_HEADERS, per_class, strict=True)
    } | {"support": total}
    weights = support if support.sum() else None  # no samples at all: an unweighted mean
    report["weighted avg"] = {
        h: float(np.average(values, weights=weights))
        for h, values in zip(_HEADERS, per_class, strict=True)
    } | {"support": total}
    return report


def summarize(
    y_true: Any, y_pred: Any, *, class_names: Sequence[str], split: str = "test"
) -> EvaluationResult:
    """The confusion matrix over every class and its report, as plain JSON types."""
    truth = class_indices(y_true)
    pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    matrix = confusion_matrix(truth, pred, len(class_names))
    return EvaluationResult(
        split=split,
        class_names=[str(c) for c in class_names],
        confusion_matrix=matrix,
        report=classification_report(matrix, class_names),
        y_true=truth,
        y_pred=pred,
    )


def evaluate(
    model: Any,
    x: Any,
    y: Any,
    *,
    class_names: Sequence[str],
    batch_size: int = 256,
    split: str = "test",
) -> EvaluationResult:
    """A trained model's confusion matrix and report on (x, y)."""
    y_pred = predict_classes(model, x, batch_size=batch_size)
    return summarize(y, y_pred, class_names=class_names, split=split)
