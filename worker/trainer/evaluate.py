"""Confusion matrix and classification report of a trained model on the test split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix

from worker.trainer.datasets import Dataset


@dataclass(eq=False)
class EvaluationResult:
    split: str
    class_names: list[str]
    confusion_matrix: list[list[int]]
    report: dict[str, Any]
    y_true: np.ndarray
    y_pred: np.ndarray


def predict_classes(model: keras.Model, x: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Class indices: argmax over several outputs, ``> 0.5`` for a single sigmoid unit."""
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    if probs.ndim == 1 or probs.shape[-1] == 1:
        return (probs.reshape(len(probs), -1)[:, 0] > 0.5).astype(np.int64)
    return np.argmax(probs, axis=-1).astype(np.int64)


def evaluate(model: keras.Model, dataset: Dataset, *, batch_size: int = 256) -> EvaluationResult:
    y_pred = predict_classes(model, dataset.x_test, batch_size=batch_size)
    return summarize(dataset.y_test, y_pred, class_names=dataset.class_names)


def summarize(
    y_true: np.ndarray, y_pred: np.ndarray, *, class_names: list[str]
) -> EvaluationResult:
    """sklearn's confusion matrix and report over every class, as plain JSON types."""
    labels = list(range(len(class_names)))
    y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    report = classification_report(
        y_true,
        y_pred,
        labels=labels,
        target_names=class_names,
        output_dict=True,
        zero_division=0,
    )
    return EvaluationResult(
        split="test",
        class_names=list(class_names),
        confusion_matrix=[[int(v) for v in row] for row in matrix],
        report=_plain(report),
        y_true=y_true,
        y_pred=y_pred,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    return value
