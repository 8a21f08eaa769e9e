"""Crash-safe runs in process, on SQLite through the worker protocol (the in-process API): a
run checkpoints every epoch, loses its attempt after epoch 2, is queued again and its second
attempt resumes from epoch 2."""

from __future__ import annotations

from typing import Any

import keras
import pytest
from sqlalchemy import select

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.client.streaming import MetricFlusher
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.runs import service as runs
from tests.unit.test_train import _points
from worker import lifeline
from worker.trainer import build, train

EPOCHS = 4
LOST_AFTER = 2  # the checkpoint of epoch 2 is the newest when attempt 1 dies
STEPS = 18  # 1149 training digits / 64


class AttemptLost(BaseException):
    """What a kill -9 is to the training code: nothing below it records anything."""


class LoseAttempt(keras.callbacks.Callback):
    """Dies at the end of an epoch, before that epoch's metrics and checkpoint go out."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 == self.epoch:
            raise AttemptLost(f"lost in epoch {self.epoch}")


def _events(run_id: int, kind: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(
            select(RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind == kind)
            .order_by(RunEvent.id)
        )
        return list(rows)


def _checkpoints(run_id: int) -> list[str]:
    with session_scope() as session:
        return sorted(
            a.name for a in artifacts.list_for_run(session, run_id=run_id) if a.kind == "checkpoint"
        )


def test_a_lost_attempt_resumes_from_its_newest_checkpoint(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = small_spec(fit={"epochs": EPOCHS, "batch_size": 64})
    assert spec.get("checkpoint") is None  # on by default: every epoch, keep 2
    run_id = make_run(sqlite_url, spec=spec)

    # attempt 1 dies at the end of epoch 3; its flusher is drained the way a killed process's
    # writes would have landed before it died
    flushers: list[MetricFlusher] = []

    class Recorded(MetricFlusher):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            flushers.append(self)

    monkeypatch.setattr(train, "MetricFlusher", Recorded)
    monkeypatch.setattr(
        train,
        "make_callbacks",
        lambda specs: [*build.make_callbacks(specs), LoseAttempt(LOST_AFTER + 1)],
    )
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "1")
    with pytest.raises(AttemptLost):
        train.run(run_id)
    assert flushers[-1].close(timeout=30)
    assert [e["epoch"] for e in _events(run_id, "checkpoint")] == [1, 2]
    assert _checkpoints(run_id) == ["checkpoint-epoch-1.keras", "checkpoint-epoch-2.keras"]
    assert max(_points(run_id)["batch/loss"]) == (LOST_AFTER + 1) * STEPS  # epoch 3's batches

    with session_scope() as session:
        assert runs.requeue(session, run_id=run_id, attempt=1, reason="worker lost (a test)")
    points = _points(run_id)
    assert points["batch/loss"] == list(range(1, LOST_AFTER * STEPS + 1))
    assert points["loss"] == list(range(1, LOST_AFTER + 1))
    assert not any(key.startswith("sys/") for key in points)

    # attempt 2, on another "worker"
    monkeypatch.setattr(train, "make_callbacks", build.make_callbacks)
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "2")
    with session_scope() as session:
        assert runs.claim(session, run_id=run_id, worker_host="rescuer")
    assert train.run(run_id) == 0

    with session_scope() as session:
        run = runs.get(session, run_id)
        assert run.status == "succeeded" and run.attempt == 2, run.failure_reason
    points = _points(run_id)
    assert points["loss"] == list(range(1, EPOCHS + 1)), "epoch steps 1..N, once each"
    assert points["val_loss"] == list(range(1, EPOCHS + 1))
    # strictly increasing, no gap, no duplicate: batch numbering went on from the checkpoint
    assert points["batch/loss"] == list(range(1, EPOCHS * STEPS + 1))
    [resumed] = _events(run_id, "resumed")
    assert resumed["from_epoch"] == LOST_AFTER and resumed["attempt"] == 2
    assert resumed["step"] == LOST_AFTER * STEPS and resumed["host"]
    checkpoints = _events(run_id, "checkpoint")
    assert [e["epoch"] for e in checkpoints] == [1, 2, 3, 4]
    assert all(e["bytes"] > 0 and e["seconds"] >= 0 for e in checkpoints)
    assert [e["step"] for e in checkpoints] == [STEPS * e for e in (1, 2, 3, 4)]
    assert _checkpoints(run_id) == ["checkpoint-epoch-3.keras", "checkpoint-epoch-4.keras"]

    # the optimizer state went on too: the last checkpoint counts every batch of both attempts
    with session_scope() as session:
        key = artifacts.get(session, run_id=run_id, name="checkpoint-epoch-4.keras").storage_key
        assert artifacts.get(session, run_id=run_id, name="model.keras").size_bytes > 0
    path = get_store().local_path(key)
    assert path is not None
    model = keras.saving.load_model(path)
    assert int(model.optimizer.iterations.numpy()) == EPOCHS * STEPS
    old = get_store().local_path(key.replace("epoch-4", "epoch-1"))
    assert old is not None and not old.exists(), "a deleted checkpoint's bytes are gone"


def test_every_epochs_zero_saves_no_checkpoint(
    sqlite_url: str, make_run: Any, small_spec: Any
) -> None:
    spec = small_spec(fit={"epochs": 1, "batch_size": 128}, checkpoint={"every_epochs": 0})
    run_id = make_run(sqlite_url, spec=spec)
    assert train.run(run_id) == 0
    assert _checkpoints(run_id) == [] and _events(run_id, "checkpoint") == []


def test_a_run_with_phases_resumes_inside_its_phase(small_spec: Any) -> None:
    from backend.spec import resolve_spec
    from tests.unit.test_recipes_b import _ListSink
    from worker.trainer import phases
    from worker.trainer.build import build_model, prepare_targets
    from worker.trainer.datasets import load

    spec = resolve_spec(
        spec=small_spec(
            dataset={"train_limit": 128},
            fit={
                "epochs": 5,
                "batch_size": 64,
                "validation_split": None,
                "phases": [{"epochs": 2}, {"epochs": 3}],
            },
        )
    )
    data = load(spec.dataset, data_dir=None)
    model = build_model(spec, data)
    sink = _ListSink()
    flusher = MetricFlusher(sink, run_id=0, flush_interval_s=0.05)
    streaming = flusher.callback(batch_size=64, train_samples=128)
    streaming.last_step = 3 * 2
    flusher.start()
    history = phases.fit_function(model, spec=spec, flusher=flusher)(
        data.x_train,
        prepare_targets(spec, model, data.y_train),
        epochs=spec.fit.epochs,
        initial_epoch=3,  # a checkpoint after epoch 3: inside phase 2
        batch_size=64,
        callbacks=[streaming],
        verbose=0,
    )
    assert flusher.close(timeout=10)
    assert history is not None and history.epoch == [3, 4]
    phase_events = [e.data for e in sink.events if e.kind == "phase"]
    assert [(p["index"], p["start_epoch"]) for p in phase_events] == [(1, 4)]
    assert sorted({p["step"] for p in sink.points if p["key"] == "loss"}) == [4, 5]
    assert sorted({p["step"] for p in sink.points if p["key"] == "batch/loss"}) == [7, 8, 9, 10]
