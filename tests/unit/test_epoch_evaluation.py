"""Per-epoch evaluation (spec evaluation.every_epoch): one matrix per epoch, through the flusher."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix
from sqlalchemy import select

from backend.client.streaming import Event, MetricFlusher
from backend.db.session import session_scope
from backend.evaluation import service as evaluation
from backend.evaluation.models import EpochEvaluation
from backend.events.models import RunEvent
from backend.metrics.service import Point
from backend.spec import DatasetSpec, ExperimentSpec
from worker import port
from worker.trainer import epoch_evaluation, train
from worker.trainer.datasets import load


def _stored(run_id: int) -> list[EpochEvaluation]:
    with session_scope() as session:
        return evaluation.list_epochs(session, run_id=run_id)


@pytest.mark.parametrize("database", ["sqlite_url", "private_pg_url"])
def test_run_with_every_epoch_stores_one_matrix_per_epoch(
    database: str, request: pytest.FixtureRequest, make_run: Any, small_spec: Any
) -> None:
    url = request.getfixturevalue(database)
    spec = small_spec(fit={"epochs": 3, "batch_size": 64}, evaluation={"every_epoch": True})
    run_id = make_run(url, spec=spec)
    assert train.run(run_id) == 0

    rows = _stored(run_id)
    assert [r.epoch for r in rows] == [1, 2, 3]
    with session_scope() as session:
        final = evaluation.get(session, run_id=run_id)
        kinds = session.execute(
            select(RunEvent.data).where(
                RunEvent.run_id == run_id, RunEvent.kind == evaluation.EPOCH_EVENT
            )
        ).all()
    for row in rows:
        assert row.split == "test" and row.class_names == final.class_names
        assert int(np.sum(row.confusion_matrix)) == 360, "the whole test split each epoch"
        assert row.report["accuracy"] == np.trace(row.confusion_matrix) / 360
    # the final evaluation is of the model after the last epoch, on the same split
    assert rows[-1].confusion_matrix == final.confusion_matrix
    assert rows[-1].report == final.report
    assert rows[0].confusion_matrix != rows[-1].confusion_matrix, "the model changed"
    # live viewers get a small event per epoch, not the matrix
    assert sorted(d["epoch"] for (d,) in kinds) == [1, 2, 3]
    assert all("confusion_matrix" not in d for (d,) in kinds)


def test_run_without_the_option_stores_none(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    run_id = make_run(sqlite_url, spec=small_spec(fit={"epochs": 1}))
    assert train.run(run_id) == 0
    assert _stored(run_id) == []


class _Recorder(keras.callbacks.Callback):
    """sklearn's confusion matrix of the model as it is at each epoch end (independent path)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        super().__init__()
        self.x, self.y = x, y
        self.matrices: list[list[list[int]]] = []

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        predicted = np.argmax(self.model.predict(self.x, verbose=0), axis=-1)
        self.matrices.append(confusion_matrix(self.y, predicted, labels=range(10)).tolist())


class _FlakySink:
    """The worker's real sink (the worker protocol) behind an API that is down at first."""

    def __init__(self, inner: port.PortSink, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the API is down")
        self.inner.write(uid, points, events)

    def cancel_requested(self) -> bool:
        return False


def test_each_epoch_matrix_is_sklearns_and_survives_a_store_outage(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    spec = ExperimentSpec.model_validate(small_spec(evaluation={"every_epoch": True}))
    run_id = make_run(sqlite_url, spec=spec.model_dump(mode="json"))
    data = load(DatasetSpec(name="digits"), data_dir=None)
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(shape=data.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    sink = _FlakySink(port.PortSink(port.for_run(run_id)), failures=3)
    flusher = MetricFlusher(sink, run_id=run_id, flush_interval_s=0.02, backoff_s=(0.01, 0.05))
    flusher.start()
    recorder = _Recorder(data.x_test, data.y_test)
    model.fit(
        data.x_train,
        data.y_train,
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[
            *epoch_evaluation.callbacks(spec, data, flusher),
            recorder,
            flusher.callback(),
        ],
    )
    assert flusher.close(timeout=20)
    assert flusher.failed_writes >= 3, "the store was down and training went on"
    rows = _stored(run_id)
    assert [r.epoch for r in rows] == [1, 2, 3]
    assert [r.confusion_matrix for r in rows] == recorder.matrices
