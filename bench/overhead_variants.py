"""The variants bench/overhead.py times: plain fit, Fitboard, TensorBoard and MLflow.

Each variant turns the shared Workload into a Trial: what fit() gets as callbacks, what starts
and finishes inside the timed span, and how many points the logger stored afterwards.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras


@dataclass
class Workload:
    """Model, data and the sizes every variant shares."""

    model: Any
    initial_weights: list[Any]
    x: Any
    y: Any
    epochs: int
    batch_size: int
    spec: dict[str, Any]
    tmp: Path
    database_url: str
    attribute: bool = False  # time each step and each Fitboard sink call

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    @property
    def batches(self) -> int:
        return self.steps_per_epoch * self.epochs


@dataclass
class Trial:
    """One timed fit of a variant: set up untimed, begin/finish timed, count untimed."""

    callbacks: list[Any] = field(default_factory=list)
    begin: Callable[[], None] = lambda: None
    finish: Callable[[], None] = lambda: None
    count: Callable[[int], int] = lambda _batches: 0  # points stored, given the batches run
    sink_spans: list[tuple[float, float]] | None = None  # Fitboard with --attribute


@dataclass
class Variant:
    name: str
    prepare: Callable[[Workload], Trial]
    missing: str | None = None  # "pip install ..." when the package is absent
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)  # process CPU, all threads
    points: list[int] = field(default_factory=list)
    stalls: list[dict[str, float]] = field(default_factory=list)


def plain(_work: Workload) -> Trial:
    return Trial()


def fitboard(work: Workload) -> Trial:
    """The flusher straight on the database (no worker does this any more: the baseline the
    worker protocol was held to): MetricFlusher -> DatabaseSink -> SQLite (+ Redis)."""
    from backend import lifecycle
    from backend.workers.local_sink import DatabaseSink

    lifecycle.install()  # a run the flusher ends tells the queue, its sweep, notifications
    return _fitboard(work, lambda run_id: DatabaseSink(run_id, url=work.database_url))


def fitboard_http(work: Workload) -> Trial:
    """A worker on another host: MetricFlusher -> PortSink -> HttpPort -> the worker protocol
    of a real API process (uvicorn, the same SQLite database behind it)."""
    from worker.http_port import HttpPort
    from worker.port import PortSink

    url, token = _api_server(work)
    return _fitboard(work, lambda run_id: PortSink(HttpPort(run_id, url=url, token=token)))


_SERVER: dict[str, Any] = {}


def _api_server(work: Workload) -> tuple[str, str]:
    """One API process for the whole bench and a worker token for it."""
    if "url" not in _SERVER:
        import api_server  # bench/api_server.py (bench/ is on sys.path: the script's folder)

        url, token = api_server.start(work.database_url, work.tmp / "api-home")
        _SERVER.update(url=url, token=token)
    return str(_SERVER["url"]), str(_SERVER["token"])


def _fitboard(work: Workload, make_sink: Callable[[int], Any]) -> Trial:
    from sqlalchemy import func, select

    from backend.client.streaming import TRAINER_SWITCH_INTERVAL_S, MetricFlusher
    from backend.config import get_settings
    from backend.db.session import session_scope
    from backend.metrics.models import MetricPoint
    from backend.runs.models import Run

    with session_scope(work.database_url) as session:
        run = Run(name="bench-overhead", spec=work.spec, status="running")
        session.add(run)
        session.flush()
        run_id = run.id
    sink = make_sink(run_id)
    spans: list[tuple[float, float]] | None = [] if work.attribute else None
    flusher = MetricFlusher(
        sink if spans is None else TimedSink(sink, spans),
        run_id=run_id,
        flush_interval_s=get_settings().flush_interval_s,
    )
    callback = flusher.callback(
        every_n_batches=1, batch_size=work.batch_size, train_samples=len(work.x)
    )

    default_switch = sys.getswitchinterval()

    def begin() -> None:
        sys.setswitchinterval(TRAINER_SWITCH_INTERVAL_S)  # as a managed training process does
        flusher.start()

    def finish() -> None:
        try:
            if not flusher.close(timeout=120.0):
                raise SystemExit(f"Fitboard: run {run_id} could not write every metric")
        finally:
            sys.setswitchinterval(default_switch)

    def count(batches: int) -> int:
        with session_scope(work.database_url) as session:
            rows = session.execute(
                select(MetricPoint.key, func.count())
                .where(MetricPoint.run_id == run_id)
                .group_by(MetricPoint.key)
            ).all()
        per_key = {key: int(n) for key, n in rows}
        batch_keys = {k: n for k, n in per_key.items() if k.startswith("batch/")}
        short = {k: n for k, n in batch_keys.items() if n != batches}
        if not batch_keys or short or callback.last_step != batches:
            raise SystemExit(
                f"Fitboard dropped points in run {run_id}: expected {batches} per batch key, "
                f"stored {per_key}"
            )
        total = sum(per_key.values())
        print(
            f"    Fitboard run {run_id}: {total} points stored = {len(batch_keys)} batch keys x "
            f"{batches} batches + {total - len(batch_keys) * batches} epoch points; "
            "nothing dropped",
            flush=True,
        )
        return total

    return Trial(callbacks=[callback], begin=begin, finish=finish, count=count, sink_spans=spans)


def tensorboard(work: Workload) -> Trial:
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    log_dir = Path(tempfile.mkdtemp(prefix="tb-", dir=work.tmp))
    callback = keras.callbacks.TensorBoard(log_dir=str(log_dir), update_freq="batch")

    def count(_batches: int) -> int:
        points = 0
        for path in (log_dir / "train").glob("events.out.tfevents.*"):
            for event in EventFileLoader(str(path)).Load():
                points += sum(
                    1 for v in event.summary.value if v.tag.startswith(("batch_", "epoch_"))
                )
        return points

    return Trial(callbacks=[callback], count=count)


def mlflow_callback(work: Workload) -> Trial:
    import mlflow
    import mlflow.keras

    experiment_id = _mlflow_experiment(work)
    client = mlflow.MlflowClient()
    run = mlflow.start_run(experiment_id=experiment_id)
    run_id = run.info.run_id
    # log_every_n_steps needs log_every_epoch=False (MLflow refuses both at once)
    callback = mlflow.keras.MlflowCallback(log_every_epoch=False, log_every_n_steps=1)

    def count(_batches: int) -> int:
        mlflow.end_run()
        keys = client.get_run(run_id).data.metrics
        return sum(len(client.get_metric_history(run_id, key)) for key in keys)

    # the callback logs asynchronously: the clock stops once its queue is written
    return Trial(callbacks=[callback], finish=mlflow.flush_async_logging, count=count)


def _mlflow_experiment(work: Workload) -> str:
    import mlflow

    # MLflow's default store is ./mlflow.db: keep it in the temp dir (the file store is frozen)
    mlflow.set_tracking_uri(f"sqlite:///{work.tmp / 'mlflow.db'}")
    found = mlflow.get_experiment_by_name("bench-overhead")
    if found is not None:
        return str(found.experiment_id)
    # artifacts (the callback's model summary) go to the temp dir, not ./mlruns
    artifacts = (work.tmp / "mlflow-artifacts").as_uri()
    return str(mlflow.create_experiment("bench-overhead", artifact_location=artifacts))


# the module a variant imports -> the package in pyproject's bench extra that provides it
_PACKAGES = {"mlflow": "mlflow-skinny"}


def _missing(*modules: str) -> str | None:
    absent = [_PACKAGES.get(m, m) for m in modules if importlib.util.find_spec(m) is None]
    return f"pip install {' '.join(absent)}" if absent else None


def all_variants() -> list[Variant]:
    """Plain fit first: every ratio is against it."""
    mlflow_missing = _missing("mlflow", "pandas")
    if mlflow_missing is None and importlib.util.find_spec("mlflow.keras") is None:
        mlflow_missing = "pip install mlflow-skinny (this mlflow has no mlflow.keras)"
    return [
        Variant("plain fit", plain),
        Variant("Fitboard (every batch, straight to SQL)", fitboard),
        Variant("Fitboard (every batch, worker protocol over HTTP)", fitboard_http),
        Variant("TensorBoard (update_freq='batch')", tensorboard, _missing("tensorboard")),
        Variant("MLflow (log_every_n_steps=1)", mlflow_callback, mlflow_missing),
    ]


# --- --attribute: which training steps a sink call slowed down ---------------------------------


class StepClock(keras.callbacks.Callback):
    """Start time of every training step, and the end of the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []
        self.end = 0.0

    def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.end = time.perf_counter()

    def steps(self) -> list[tuple[float, float]]:
        return list(zip(self.starts, [*self.starts[1:], self.end], strict=True))


class TimedSink:
    """Passes every call to the real sink and records when it ran."""

    def __init__(self, sink: Any, spans: list[tuple[float, float]]) -> None:
        self._sink = sink
        self._spans = spans

    def write(self, uid: str, points: Sequence[Any], events: Sequence[Any]) -> None:
        started = time.perf_counter()
        try:
            self._sink.write(uid, points, events)
        finally:
            self._spans.append((started, time.perf_counter()))

    def cancel_requested(self) -> bool:
        started = time.perf_counter()
        try:
            return bool(self._sink.cancel_requested())
        finally:
            self._spans.append((started, time.perf_counter()))


def flush_stall(
    steps: list[tuple[float, float]], spans: list[tuple[float, float]]
) -> dict[str, float]:
    """Steps that overlapped a sink call against the others, within the same fit."""
    during: list[float] = []
    clear: list[float] = []
    for start, end in steps:
        overlaps = any(s < end and e > start for s, e in spans)
        (during if overlaps else clear).append(end - start)
    typical = statistics.median(clear) if clear else 0.0
    extra = sum(d - typical for d in during)
    total = sum(during) + sum(clear)
    return {
        "steps": len(steps),
        "sink_calls": len(spans),
        "steps_during_sink_call": len(during),
        "median_step_ms": 1000 * typical,
        "median_step_during_sink_call_ms": 1000 * statistics.median(during) if during else 0.0,
        "extra_s": extra,
        "share": extra / total if total else 0.0,
    }
