"""Resume and fork by hand, trained in process through the worker protocol (the in-process
API, as in test_checkpoint_resume): a run cancelled in epoch 3 resumes from its epoch-2
checkpoint and ends with contiguous curves; a fork from epoch 3 trains on from there."""

from __future__ import annotations

import threading
import time
from typing import Any

import keras
import pytest
from sqlalchemy import select

from backend.client.streaming import MetricFlusher
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.metrics.models import MetricPoint
from backend.runs import lineage
from backend.runs import service as runs
from tests.unit.test_train import _points
from worker import lifeline
from worker.trainer import build, train

STEPS = 18  # 1149 training digits / 64


def _values(run_id: int, key: str) -> dict[int, float]:
    with session_scope() as session:
        rows = session.execute(
            select(MetricPoint.step, MetricPoint.value).where(
                MetricPoint.run_id == run_id, MetricPoint.key == key
            )
        ).all()
    return {int(step): float(value) for step, value in rows}


def _events(run_id: int, kind: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(
            select(RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind == kind)
            .order_by(RunEvent.id)
        )
        return list(rows)


class CancelAfter(keras.callbacks.Callback):
    """Asks for a cancel at the end of an epoch and waits until the run's flusher saw it, so
    the cancel lands at the first batch of the next epoch (as a user's click would, later)."""

    def __init__(self, run_id: int, epoch: int, seen: threading.Event) -> None:
        super().__init__()
        self.run_id, self.epoch, self.seen = run_id, epoch, seen

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch + 1 != self.epoch:
            return
        with session_scope() as session:
            runs.request_cancel(session, run_id=self.run_id)
        deadline = time.monotonic() + 30
        while not self.seen.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)


def test_a_cancelled_run_resumes_by_hand_and_ends_with_contiguous_curves(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = make_run(sqlite_url, spec=small_spec(fit={"epochs": 3, "batch_size": 64}))
    seen = threading.Event()

    class Watched(MetricFlusher):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.cancel_poll_s = 0.05
            watch = self.cancel_event

            class Seen(threading.Event):
                def set(self) -> None:
                    super().set()
                    seen.set()

            self.cancel_event = Seen()
            assert not watch.is_set()

    monkeypatch.setattr(train, "MetricFlusher", Watched)
    monkeypatch.setattr(
        train,
        "make_callbacks",
        lambda specs: [*build.make_callbacks(specs), CancelAfter(run_id, 2, seen)],
    )
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "1")
    assert train.run(run_id) == 0
    with session_scope() as session:
        run = runs.get(session, run_id)
        assert run.status == "cancelled", run.failure_reason
    # stopped in epoch 3: that partial epoch is no checkpoint
    assert [e["epoch"] for e in _events(run_id, "checkpoint")] == [1, 2]
    assert max(_points(run_id)["batch/loss"]) < 3 * STEPS

    with session_scope() as session:
        resumed = lineage.resume(session, run_id=run_id, epochs=4)
        assert resumed.status == "queued" and resumed.attempt == 2
    assert _points(run_id)["batch/loss"] == list(range(1, 2 * STEPS + 1))

    monkeypatch.setattr(train, "make_callbacks", build.make_callbacks)
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "2")
    with session_scope() as session:
        assert runs.claim(session, run_id=run_id, worker_host="by-hand")
    assert train.run(run_id) == 0
    with session_scope() as session:
        run = runs.get(session, run_id)
        assert run.status == "succeeded" and run.attempt == 2, run.failure_reason
        assert run.cancel_requested_at is None and run.failure_reason is None
    points = _points(run_id)
    assert points["loss"] == [1, 2, 3, 4], "epoch steps 1..4, once each"
    assert points["batch/loss"] == list(range(1, 4 * STEPS + 1)), "no gap, no duplicate"
    [event] = _events(run_id, "resumed")
    assert event["from_epoch"] == 2 and event["attempt"] == 2 and event["from_run"] is None
    assert [e["epoch"] for e in _events(run_id, "checkpoint")] == [1, 2, 3, 4]


def test_a_fork_trains_on_from_the_sources_checkpoint(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_run(sqlite_url, spec=small_spec(fit={"epochs": 4, "batch_size": 64}))
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "1")
    assert train.run(source) == 0
    source_loss = _values(source, "loss")

    with session_scope() as session:
        fork = lineage.fork(
            session,
            source_id=source,
            name="fork",
            from_epoch=3,
            overrides={"compile": {"optimizer": {"learning_rate": 0.002}}, "fit": {"epochs": 5}},
        ).id
    assert sorted(_values(fork, "loss")) == [1, 2, 3]  # the source's curve up to epoch 3
    with session_scope() as session:
        assert runs.claim(session, run_id=fork, worker_host="forker")
    assert train.run(fork) == 0
    with session_scope() as session:
        assert runs.get(session, fork).status == "succeeded"
    loss = _values(fork, "loss")
    assert sorted(loss) == [1, 2, 3, 4, 5]
    assert [loss[e] for e in (1, 2, 3)] == [source_loss[e] for e in (1, 2, 3)]
    # epoch 4 of the fork goes on from the source's epoch 3, far from an untrained model's
    facts = f"fork {loss}, source {source_loss}"
    assert abs(loss[4] - source_loss[3]) < abs(loss[4] - source_loss[1]) / 3, facts
    assert loss[4] < source_loss[2], facts
    assert _points(fork)["batch/loss"] == list(range(1, 5 * STEPS + 1))
    # the fork's own learning rate was set on the checkpoint's optimizer
    rates = _values(fork, "batch/lr")
    assert rates and all(v == pytest.approx(0.002) for s, v in rates.items() if s > 3 * STEPS)
    [event] = _events(fork, "resumed")
    assert event["from_epoch"] == 3 and event["from_run"] == source


def test_a_fork_may_unfreeze_a_transfer_models_base(
    sqlite_url: str, make_run: Any, small_spec: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fine-tuning as a fork: the head trained on a frozen base; the fork, from its epoch-2
    checkpoint, trains the whole base too (a fresh optimizer at the fork's rate)."""
    monkeypatch.setenv(lifeline.ATTEMPT_ENV, "1")
    base_run = make_run(sqlite_url, spec=small_spec(fit={"epochs": 1, "batch_size": 64}))
    assert train.run(base_run) == 0
    head = small_spec(fit={"epochs": 2, "batch_size": 64})
    head["model"] = {
        "base": {"from_run": base_run},
        "layers": [{"type": "Dense", "units": 10, "activation": "softmax"}],
    }
    source = make_run(sqlite_url, spec=head)
    assert train.run(source) == 0
    with session_scope() as session:
        frozen = runs.get(session, source).model_summary or {}
        fork = lineage.fork(
            session,
            source_id=source,
            name="fine-tune",
            from_epoch=2,
            overrides={
                "model": {"base": {"trainable": True}},
                "compile": {"optimizer": {"learning_rate": 0.0005}},
                "fit": {"epochs": 4},
            },
        ).id
        assert runs.claim(session, run_id=fork, worker_host="forker")
    assert train.run(fork) == 0
    with session_scope() as session:
        done = runs.get(session, fork)
        assert done.status == "succeeded", done.failure_reason
        tuned = done.model_summary or {}
    assert tuned["total_params"] == frozen["total_params"]
    assert tuned["trainable_params"] > frozen["trainable_params"], (frozen, tuned)
    assert sorted(_values(fork, "loss")) == [1, 2, 3, 4]
    rates = _values(fork, "batch/lr")
    assert rates and all(v == pytest.approx(0.0005) for s, v in rates.items() if s > 2 * STEPS)


def test_a_fork_may_not_change_the_model_but_its_bases_depth() -> None:
    from backend.errors import InvalidInput

    lineage._check_fork_overrides({"model": {"base": {"trainable": True}}})
    lineage._check_fork_overrides({"compile": {"optimizer": {"learning_rate": 0.1}}})
    with pytest.raises(InvalidInput) as refused:
        lineage._check_fork_overrides({"model": {"base": {"from_run": 3}}})
    assert refused.value.field == "overrides.model.base.from_run"
