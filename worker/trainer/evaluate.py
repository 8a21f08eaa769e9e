"""Confusion matrix and classification report of a trained model on the test split.

The code is backend.client.evaluation's (shared with FitboardCallback: one copy, NumPy only)."""

from __future__ import annotations

import keras

from backend.client.evaluation import EvaluationResult, predict_classes, summarize
from worker.trainer.datasets import Dataset

__all__ = ["EvaluationResult", "evaluate", "predict_classes", "summarize"]


def evaluate(model: keras.Model, dataset: Dataset, *, batch_size: int = 256) -> EvaluationResult:
    y_pred = predict_classes(model, dataset.x_test, batch_size=batch_size)
    return summarize(dataset.y_test, y_pred, class_names=dataset.class_names)
