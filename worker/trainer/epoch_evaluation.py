"""Confusion matrix and classification report at every epoch end (spec evaluation.every_epoch).

The training thread only predicts on the test split (as the final evaluation does) and queues
the result as a flusher event; the flusher writes it (through the worker's port), retrying while
the database is away, so a store outage never reaches training.
"""

from __future__ import annotations

import logging
from typing import Any

import keras

from backend.client.streaming import MetricFlusher
from backend.events.kinds import EPOCH_EVALUATION as EPOCH_EVENT
from backend.spec import ExperimentSpec
from worker.trainer.datasets import Dataset
from worker.trainer.evaluate import evaluate

log = logging.getLogger(__name__)


class EpochEvaluation(keras.callbacks.Callback):
    """At each epoch end: the model's test-split confusion matrix and report, as an event."""

    def __init__(self, dataset: Dataset, flusher: MetricFlusher, *, batch_size: int = 256) -> None:
        super().__init__()
        self._dataset = dataset
        self._flusher = flusher
        self._batch_size = batch_size

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        number = epoch + 1  # as the epoch metrics count
        try:
            result = evaluate(self.model, self._dataset, batch_size=self._batch_size)
        except Exception:  # an evaluation that fails must not stop training
            log.exception(
                "run=%s event=epoch_evaluation_failed epoch=%d", self._flusher.run_id, number
            )
            return
        self._flusher.event(
            EPOCH_EVENT,
            {
                "epoch": number,
                "split": result.split,
                "class_names": result.class_names,
                "confusion_matrix": result.confusion_matrix,
                "report": result.report,
            },
            uid=f"epoch-evaluation-{number}",
        )


def callbacks(
    spec: ExperimentSpec, dataset: Dataset, flusher: MetricFlusher
) -> list[keras.callbacks.Callback]:
    """The per-epoch evaluation callback where the spec asks for it (and there are classes)."""
    if not spec.evaluation.every_epoch or not dataset.class_names:
        return []
    return [EpochEvaluation(dataset, flusher)]
