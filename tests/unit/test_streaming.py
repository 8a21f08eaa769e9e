"""Streaming: every point exactly once, retries through outages (real PostgreSQL), cancel."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from backend.client.streaming import LIVE_GAP_S, Event, MetricFlusher
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.metrics.models import MetricPoint
from backend.metrics.service import Point
from backend.runs import service as runs
from backend.spec import DatasetSpec
from backend.workers.local_sink import DatabaseSink
from tests.proxy import CuttableProxy
from worker import port
from worker.trainer.datasets import Dataset, load


class MemorySink:
    """A store in a dict with the real store's idempotency; can be switched off."""

    def __init__(self) -> None:
        self.down = False
        self.cancel = False
        self.points: dict[tuple[str, int], float | None] = {}
        self.uids: list[str] = []
        self.events: dict[str, Event] = {}
        self.attempts: list[str] = []
        self.lock = threading.Lock()

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        self.attempts.append(uid)
        if self.down:
            raise ConnectionError("store is down")
        with self.lock:
            if uid in self.uids:
                return
            self.uids.append(uid)
            for p in points:
                assert (p["key"], p["step"]) not in self.points, f"duplicate {p}"
                self.points[(p["key"], p["step"])] = p["value"]
            for event in events:
                self.events.setdefault(event.uid, event)

    def cancel_requested(self) -> bool:
        if self.down:
            raise ConnectionError("store is down")
        return self.cancel

    def steps(self, key: str) -> list[int]:
        return sorted(step for k, step in self.points if k == key)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load(DatasetSpec(name="digits", train_limit=320, test_limit=64), data_dir=None)


def _model(data: Dataset) -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input(shape=data.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class AtBatch(keras.callbacks.Callback):
    """Runs a function at the end of every batch with the global batch number (1-based)."""

    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn
        self.step = 0
        self.times: list[float] = []

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step += 1
        self.times.append(time.monotonic())
        self.fn(self.step)


def test_every_batch_point_arrives_exactly_once(digits: Dataset) -> None:
    sink = MemorySink()
    flusher = MetricFlusher(sink, run_id=1, flush_interval_s=0.02).start()
    callback = flusher.callback(every_n_batches=1, batch_size=32, train_samples=256)
    model = _model(digits)
    model.fit(digits.x_train, digits.y_train, epochs=3, batch_size=32, validation_split=0.2,
              callbacks=[callback], verbose=0)  # fmt: skip
    assert flusher.close(timeout=10)

    steps = list(range(1, 3 * 8 + 1))  # 256 training examples / 32 = 8 batches per epoch
    for key in ("batch/loss", "batch/accuracy", "batch/lr"):
        assert sink.steps(key) == steps, key
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert sink.steps(key) == [1, 2, 3], key
    assert sink.points[("batch/lr", 5)] == pytest.approx(0.001)
    assert sink.points[("val_loss", 3)] == pytest.approx(model.history.history["val_loss"][2])
    assert sink.points[("loss", 1)] == pytest.approx(model.history.history["loss"][0])
    (begin,) = [e for e in sink.events.values() if e.kind == "train_begin"]
    assert begin.data == {"epochs": 3, "steps_per_epoch": 8, "batch_size": 32,
                          "train_samples": 256}  # fmt: skip
    assert callback.last_step == 24 and not callback.stopped_by_cancel
    assert flusher.points_written == len(sink.points)
    assert len(set(sink.uids)) == len(sink.uids)


def test_every_n_batches_samples_global_steps(digits: Dataset) -> None:
    sink = MemorySink()
    flusher = MetricFlusher(sink, run_id=1, flush_interval_s=0.02).start()
    model = _model(digits)
    model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=64,
              callbacks=[flusher.callback(every_n_batches=3)], verbose=0)  # fmt: skip
    assert flusher.close(timeout=10)
    # 320 / 64 = 5 batches per epoch; global steps 1..10, every third one sent
    assert sink.steps("batch/loss") == [3, 6, 9]
    assert sink.steps("loss") == [1, 2]
    assert "val_loss" not in {k for k, _ in sink.points}


def test_a_failing_store_keeps_the_batch_uid_and_logs_once(
    digits: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="backend.client.streaming")
    sink = MemorySink()
    sink.down = True
    flusher = MetricFlusher(sink, run_id=7, flush_interval_s=0.01, backoff_s=(0.01, 0.05))
    flusher.start()
    model = _model(digits)

    def restore_after_three_failures(step: int) -> None:
        if step == 7:  # hold training until the flusher has failed a few times
            deadline = time.monotonic() + 5
            while len(sink.attempts) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            sink.down = False

    model.fit(digits.x_train, digits.y_train, epochs=2, batch_size=32, verbose=0,
              callbacks=[AtBatch(restore_after_three_failures), flusher.callback()])  # fmt: skip
    assert flusher.close(timeout=10)
    assert sink.steps("batch/loss") == list(range(1, 21))
    # the first batch was retried under its own uid until it went through
    first_uid = sink.uids[0]
    retries = sink.attempts.count(first_uid)
    assert retries >= 3 and sink.attempts[:retries] == [first_uid] * retries
    messages = [r.getMessage() for r in caplog.records]
    assert sum("metric store unavailable" in m for m in messages) == 1
    assert sum("metric store back" in m for m in messages) == 1
    assert all(m.startswith("run=7 ") for m in messages if "metric store" in m)


def test_close_gives_up_at_its_timeout_while_the_store_is_down() -> None:
    sink = MemorySink()
    sink.down = True
    flusher = MetricFlusher(sink, run_id=1, flush_interval_s=0.01, backoff_s=(0.01, 0.1)).start()
    flusher.queue.append((0, 1, {"loss": 1.0}, time.time(), None))
    started = time.monotonic()
    assert flusher.close(timeout=0.5) is False
    assert 0.4 < time.monotonic() - started < 3
    assert not sink.points


def test_cancel_event_stops_training_within_two_batches(digits: Dataset) -> None:
    sink = MemorySink()
    flusher = MetricFlusher(sink, run_id=1, flush_interval_s=0.02).start()
    streaming = flusher.callback()

    def cancel_at(step: int) -> None:
        if step == 5:
            flusher.cancel_event.set()

    watcher = AtBatch(cancel_at)
    model = _model(digits)
    model.fit(digits.x_train, digits.y_train, epochs=50, batch_size=32,
              callbacks=[watcher, streaming], verbose=0)  # fmt: skip
    assert flusher.close(timeout=10)
    assert streaming.stopped_by_cancel
    assert 5 <= watcher.step <= 7
    assert max(sink.steps("batch/loss")) == watcher.step


def test_cancel_requested_in_the_database_stops_training(
    sqlite_url: str, make_run: Any, small_spec: Any, digits: Dataset
) -> None:
    run_id = make_run(sqlite_url, spec=small_spec())
    sink = port.PortSink(port.for_run(run_id))  # the worker protocol, as a worker on any host
    flusher = MetricFlusher(sink, run_id=run_id, flush_interval_s=0.02).start()
    streaming = flusher.callback()

    def cancel_at(step: int) -> None:
        if step == 3:
            with session_scope() as session:
                runs.request_cancel(session, run_id=run_id)
        time.sleep(0.005)  # a batch of a real model takes a while

    watcher = AtBatch(cancel_at)
    model = _model(digits)
    model.fit(digits.x_train, digits.y_train, epochs=100, batch_size=32,
              callbacks=[watcher, streaming], verbose=0)  # fmt: skip
    assert flusher.close(timeout=10)
    assert streaming.stopped_by_cancel
    assert watcher.step < 100  # 1000 batches without the cancel
    with session_scope() as session:
        stored = session.scalar(
            select(func.count()).where(
                MetricPoint.run_id == run_id, MetricPoint.key == "batch/loss"
            )
        )
    assert stored == watcher.step


def test_the_port_sink_writes_idempotently(sqlite_url: str, make_run: Any, small_spec: Any) -> None:
    run_id = make_run(sqlite_url, spec=small_spec())
    sink = port.PortSink(port.for_run(run_id))
    points: list[Point] = [
        {"key": "batch/loss", "step": s, "value": 1.0 / s, "wall_time": 1.0} for s in (1, 2)
    ]
    nan_point: Point = {"key": "loss", "step": 1, "value": float("nan"), "wall_time": 1.0}
    event = Event(kind="train_begin", data={"epochs": 1}, uid="train_begin")
    for _ in range(2):
        sink.write("tok-1", [*points, nan_point], [event])
    with session_scope() as session:
        rows = session.execute(
            select(MetricPoint.key, MetricPoint.step, MetricPoint.value)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
        ).all()
        kinds = Counter(
            session.scalars(select(RunEvent.kind).where(RunEvent.run_id == run_id)).all()
        )
    assert [tuple(r) for r in rows] == [("batch/loss", 1, 1.0), ("batch/loss", 2, 0.5),
                                        ("loss", 1, None)]  # fmt: skip
    assert kinds["metrics"] == 1 and kinds["train_begin"] == 1
    assert sink.cancel_requested() is False


# --- outage on real PostgreSQL, through a proxy we can cut ---------------------------------


def test_postgres_outage_loses_and_duplicates_nothing(
    private_pg_url: str,
    make_run: Any,
    small_spec: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="backend.client.streaming")
    run_id = make_run(private_pg_url, spec=small_spec())
    url = make_url(private_pg_url)
    proxy = CuttableProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

    data = load(DatasetSpec(name="digits"), data_dir=None)
    flusher = MetricFlusher(
        DatabaseSink(run_id, url=proxied),
        run_id=run_id,
        flush_interval_s=0.02,
        backoff_s=(0.02, 0.2),
    ).start()
    cut_at: dict[str, float] = {}
    batches_while_cut: list[float] = []

    def outage(step: int) -> None:
        now = time.monotonic()
        if "t" not in cut_at and step >= 20 and flusher.points_written > 0:
            # writes work through the proxy; now cut it
            proxy.cut()
            cut_at["t"] = now
            cut_at["failed"] = flusher.failed_writes
        elif proxy.is_cut and "t" in cut_at:
            batches_while_cut.append(now)
            if now - cut_at["t"] > 1.5 and flusher.failed_writes - cut_at["failed"] >= 3:
                proxy.restore()
                cut_at["restored"] = now

    switch = AtBatch(outage)
    streaming = flusher.callback(batch_size=16, train_samples=len(data.x_train))
    stop = _StopAfterRestore(cut_at, extra_batches=60)
    model = _model(data)
    model.fit(data.x_train, data.y_train, epochs=40, batch_size=16, verbose=0,
              callbacks=[switch, streaming, stop])  # fmt: skip
    if proxy.is_cut:
        proxy.restore()
    assert "restored" in cut_at, "training ended before the outage could be observed"
    assert flusher.close(timeout=30)

    # training went on while the database was unreachable, without stalls
    assert len(batches_while_cut) > 50
    gaps = np.diff(batches_while_cut)
    cut_s = cut_at["restored"] - cut_at["t"]
    # training blocked on the store would sit out most of the cut in one gap; a loaded
    # machine alone pauses a thread for well under half of it
    assert gaps.max() < max(1.0, 0.5 * cut_s), f"a batch waited {gaps.max():.2f}s of {cut_s:.2f}s"
    assert flusher.failed_writes - cut_at["failed"] >= 3

    total_batches = switch.step
    epochs = len(model.history.history["loss"])
    with session_scope(private_pg_url) as session:
        rows = session.execute(
            select(MetricPoint.key, MetricPoint.step).where(MetricPoint.run_id == run_id)
        ).all()
        metric_events = session.scalars(
            select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.kind == "metrics")
        ).all()
        begin_events = session.scalar(
            select(func.count()).where(RunEvent.run_id == run_id, RunEvent.kind == "train_begin")
        )
        streamed = Counter((p[0], p[1]) for e in metric_events for p in e.data["points"])
    stored = Counter((key, step) for key, step in rows)
    expected = {(k, s) for k in ("batch/loss", "batch/accuracy", "batch/lr")
                for s in range(1, total_batches + 1)}  # fmt: skip
    expected |= {(k, s) for k in ("loss", "accuracy", "lr") for s in range(1, epochs + 1)}
    assert set(stored) == expected
    # each point reached the live event log exactly once too: retried batches kept their uid
    assert streamed == Counter(expected)
    assert begin_events == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("metric store unavailable" in m for m in messages) == 1
    assert sum("metric store back" in m for m in messages) == 1
    assert proxy.cut_count == 1
    proxy.cut()


class _StopAfterRestore(keras.callbacks.Callback):
    """Ends the fit a little after the database is back, so the test stays short."""

    def __init__(self, state: dict[str, float], *, extra_batches: int) -> None:
        super().__init__()
        self.state = state
        self.extra = extra_batches

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if "restored" in self.state:
            self.extra -= 1
            if self.extra <= 0:
                self.model.stop_training = True


class WatchedSink(MemorySink):
    """A store that answers whether someone watches the run live, and notes when it wrote."""

    def __init__(self, watched: bool) -> None:
        super().__init__()
        self.watched = watched
        self.written_at: list[float] = []

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        self.written_at.append(time.monotonic())  # when the write started, as the gap counts
        super().write(uid, points, events)


def _feed(flusher: MetricFlusher, seconds: float, every_s: float = 0.005) -> int:
    """Queue a point every ``every_s`` for ``seconds``, as a training loop would."""
    step = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        step += 1
        flusher.points(step, {"loss": 1.0 / step}, time.time())
        time.sleep(every_s)
    return step


def test_after_a_quiet_spell_the_first_point_is_written_at_once() -> None:
    sink = WatchedSink(watched=False)
    flusher = MetricFlusher(sink, run_id=None, flush_interval_s=30.0).start()
    try:
        time.sleep(0.3)  # quiet: nothing to write
        queued = time.monotonic()
        flusher.points(1, {"loss": 1.0}, time.time())
        deadline = time.monotonic() + 10
        while not sink.written_at and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.written_at, "not written"
        # far sooner than the 30 s interval: the queue woke the flusher
        assert sink.written_at[0] - queued < 5.0
    finally:
        assert flusher.close(timeout=10)


@pytest.mark.parametrize("watched", [False, True])
def test_under_load_points_coalesce_one_write_per_gap(watched: bool) -> None:
    sink = WatchedSink(watched=watched)
    flusher = MetricFlusher(sink, run_id=None, flush_interval_s=0.5).start()
    sent = _feed(flusher, 2.0)
    assert flusher.close(timeout=10)
    assert len(sink.points) == sent, "every point, once"
    gaps = [b - a for a, b in itertools.pairwise(sink.written_at)]
    # one write per gap, never a burst of writes draining the queue point by point
    assert len(sink.written_at) <= 2.0 / LIVE_GAP_S + 2 < sent
    smallest = min(gaps[:-1])  # the last write is close()'s
    if watched:  # someone watches: writes come every LIVE_GAP_S (or a slower write's time)
        # the gap runs from one write's start (the flusher's clock, read a moment before the
        # sink's stamp: 5 ms of slack for a thread switch between the two)
        assert smallest >= LIVE_GAP_S - 0.005
        assert len(sink.written_at) >= 8, "a watched run writes more often than every 0.5 s"
    else:
        assert smallest >= 0.45
        assert len(sink.written_at) <= 7
