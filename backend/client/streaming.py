"""Stream metrics out of fit() without slowing or breaking it: the one streaming core.

The Keras callback only appends to a deque (and, when the deque was empty, wakes the flusher).
A daemon thread (the flusher) drains it into batches with a stable uid and writes them through
a Sink, one write at a time on an adaptive interval: after a quiet spell the first point is
written at once; under load points coalesce, at most ``flush_interval_s`` apart, and while
someone watches the run live (the sink says so) the writes come as often as the store keeps
up with (one write in flight, starting at least ``LIVE_GAP_S`` apart). A failed batch is retried
with the same uid (the store is idempotent per uid and per key/step) while new points queue up
behind it, so an outage costs neither a point nor a duplicate.
Pure (keras and the standard library): a managed run's Sink is worker.port.PortSink (the worker
protocol over HTTP); FitboardCallback's is backend.client.keras.ExternalSink (the public API).
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import keras

if TYPE_CHECKING:
    from backend.metrics.service import Point

log = logging.getLogger(__name__)

# queue item tags: (tag, step, logs, wall_time, lr) or (EVENT, kind, data, uid)
BATCH, EPOCH, EVENT, OTHER = 0, 1, 2, 3
# while watched live: writes start at least this far apart (or one right after a slower one)
LIVE_GAP_S = 0.04
# a managed training process switches threads this often (Python's default: 5 ms), so the
# flusher is not kept off the GIL while the training thread runs Python (callbacks, a checkpoint)
TRAINER_SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    uid: str


class Sink(Protocol):
    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        """Store one batch atomically; writing the same uid twice must be harmless."""

    def cancel_requested(self) -> bool:
        """Whether someone asked this run to stop."""


def watched(sink: Sink) -> bool:
    """Whether the store said someone watches the run live (a sink may have a ``watched``)."""
    return bool(getattr(sink, "watched", False))


class StreamingCallback(keras.callbacks.Callback):
    """Enqueues batch and epoch metrics; stops training when the cancel event is set."""

    # safe for Keras' async batch-end dispatch (JAX): appends only, steps come from arguments
    async_safe = True

    def __init__(
        self,
        queue: deque[tuple[Any, ...]],
        cancel: threading.Event,
        *,
        every_n_batches: int = 1,
        batch_size: int | None = None,
        train_samples: int | None = None,
        record_lr: bool = True,
        wake: threading.Event | None = None,
    ) -> None:
        super().__init__()
        self._queue = queue
        self._wake = wake
        self._record_lr = record_lr
        self._cancel = cancel
        self._every = max(1, int(every_n_batches))
        self._batch_size = batch_size
        self._train_samples = train_samples
        self._steps_per_epoch: int | None = None
        self._epoch_base = 0
        self._lr: float | None = None
        self._schedule: keras.optimizers.schedules.LearningRateSchedule | None = None
        self.last_step = 0
        # set by a caller that runs several fit() calls as one (fit.phases): the total epochs
        self.planned_epochs: int | None = None
        self.stopped_by_cancel = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._steps_per_epoch = self.params.get("steps")
        self._schedule = _schedule_of(self.model.optimizer) if self._record_lr else None
        data = {
            "epochs": self.planned_epochs or self.params.get("epochs"),
            "steps_per_epoch": self._steps_per_epoch,
            "batch_size": self._batch_size,
            "train_samples": self._train_samples,
        }
        self._queue.append((EVENT, "train_begin", data, "train_begin"))

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._steps_per_epoch:
            self._epoch_base = epoch * self._steps_per_epoch
        else:
            self._epoch_base = self.last_step
        # the learning rate only changes between epochs (ReduceLROnPlateau), so read it once
        self._lr = self._read_lr() if self._record_lr else None

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self._epoch_base + batch + 1
        self.last_step = step
        if step % self._every == 0:
            # a scheduled rate is evaluated later, on the flusher thread (the schedule is a pure
            # function of the optimizer step, which is this batch's step - 1)
            lr = self._lr if self._schedule is None else _ScheduledRate(self._schedule, step - 1)
            # logs is a fresh dict of floats from Keras' CallbackList: keep it, convert later
            self._queue.append((BATCH, step, logs, time.time(), lr))
            if self._wake is not None and len(self._queue) == 1:
                self._wake.set()  # the flusher was idle: this point may go out at once
        if self._cancel.is_set():
            self.stopped_by_cancel = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._queue.append((EPOCH, epoch + 1, dict(logs or {}), time.time(), self._lr))
        if self._wake is not None:
            self._wake.set()
        if self._cancel.is_set():
            self.stopped_by_cancel = True
            self.model.stop_training = True

    def _read_lr(self) -> float | None:
        try:
            lr = self.model.optimizer.learning_rate
            # a Keras Variable's own .numpy(); np.array(variable) warns under NumPy 2
            return float(lr.numpy() if hasattr(lr, "numpy") else keras.ops.convert_to_numpy(lr))
        except Exception:  # an optimizer without a readable rate still trains
            return None


def _schedule_of(optimizer: Any) -> keras.optimizers.schedules.LearningRateSchedule | None:
    """The optimizer's schedule, looking inside a LossScaleOptimizer (mixed_float16)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = getattr(inner, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    return None


@dataclass
class _Batch:
    uid: str
    points: list[Point]
    events: list[Event] = field(default_factory=list)


class MetricFlusher:
    """Daemon thread that drains the queue into uid-stamped batches and writes them to a Sink."""

    def __init__(
        self,
        sink: Sink,
        *,
        run_id: int | None,
        flush_interval_s: float = 0.25,
        cancel_poll_s: float | None = None,
        max_batch_points: int = 5000,
        backoff_s: tuple[float, float] = (0.25, 10.0),
        token: str | None = None,
    ) -> None:
        self.sink = sink
        self.run_id = run_id
        self.queue: deque[tuple[Any, ...]] = deque()
        self.cancel_event = threading.Event()
        self.flush_interval_s = flush_interval_s
        self.cancel_poll_s = cancel_poll_s if cancel_poll_s is not None else flush_interval_s
        self.max_batch_points = max_batch_points
        self.backoff_s = backoff_s
        self.token = token or uuid.uuid4().hex[:12]
        self.points_written = 0
        self.batches_written = 0
        self.failed_writes = 0
        self._seq = 0
        self._pending: _Batch | None = None
        self._outage_since: float | None = None
        self._retry_at = 0.0
        self._backoff = backoff_s[0]
        self._next_cancel_poll = 0.0
        self._wake = threading.Event()  # set by new data after a quiet spell, and by close()
        self._stop = threading.Event()  # set by close(): cuts a coalescing wait short
        self._last_write = -math.inf  # when the last successful write started
        self._write_s = 0.0  # how long it took
        self._closing = False
        self._deadline = math.inf
        self._thread = threading.Thread(
            target=self._run, name=f"metric-flusher-{run_id}", daemon=True
        )

    @property
    def wake(self) -> threading.Event:
        """What a callback sets when it queues data into an empty queue."""
        return self._wake

    def callback(self, *, every_n_batches: int = 1, **kwargs: Any) -> StreamingCallback:
        return StreamingCallback(
            self.queue,
            self.cancel_event,
            every_n_batches=every_n_batches,
            wake=self._wake,
            **kwargs,
        )

    def event(self, kind: str, data: dict[str, Any], *, uid: str | None = None) -> None:
        """Send a non-metric event through the same ordered, retried path."""
        self.queue.append((EVENT, kind, data, uid or f"{self.token}-{kind}-{uuid.uuid4().hex[:8]}"))
        self._wake.set()

    def points(self, step: int, values: dict[str, float], wall_time: float) -> None:
        """Queue points of other series at ``step`` (e.g. sys/*: step is seconds); any thread."""
        self.queue.append((OTHER, step, values, wall_time, None))
        self._wake.set()

    def start(self) -> MetricFlusher:
        self._thread.start()
        return self

    @property
    def thread_id(self) -> int | None:
        """The flusher thread's id in the operating system, once started."""
        return self._thread.native_id

    @property
    def backlog(self) -> int:
        """Queue entries not yet written (plus one for a batch being retried)."""
        return len(self.queue) + (self._pending is not None)

    def close(self, timeout: float = 30.0) -> bool:
        """Write everything queued (retrying while the store is down), stop; True if all written."""
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        else:  # never started: drain inline
            self._drain_until_deadline()
        done = self.backlog == 0
        if not done:
            log.error(
                "run=%s event=metrics_lost timeout_s=%.0f entries=%d: gave up writing metrics",
                self.run_id,
                timeout,
                len(self.queue) + (len(self._pending.points) if self._pending else 0),
            )
        return done

    # --- the flusher thread ------------------------------------------------------------------

    @property
    def gap_s(self) -> float:
        """The least time from one write's start to the next one's: short while someone
        watches the run live (``LIVE_GAP_S``, or what the last write took when it was slower:
        writes then follow each other, one in flight), ``flush_interval_s`` otherwise."""
        if not watched(self.sink):
            return self.flush_interval_s
        return min(self.flush_interval_s, max(LIVE_GAP_S, self._write_s))

    def _run(self) -> None:
        while not self._closing:
            if not self.queue:  # idle: until new data (or the next cancel check) is due
                self._wake.wait(min(self.flush_interval_s, self.cancel_poll_s))
            self._wake.clear()
            if self._closing:
                break
            # coalesce: what arrives until the gap since the last write has passed goes along
            # (and after a failed write, nothing is tried before its retry time)
            delay = max(self._last_write + self.gap_s, self._retry_at) - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self._safely(self._flush_one)
            self._safely(self._poll_cancel)
        self._drain_until_deadline()

    def _drain_until_deadline(self) -> None:
        while self.backlog and time.monotonic() < self._deadline:
            self._safely(self._flush_available)
            if self.backlog:
                wait = min(
                    max(self._retry_at - time.monotonic(), 0.01), self._deadline - time.monotonic()
                )
                if wait > 0:
                    time.sleep(wait)

    def _safely(self, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception:  # a bug here must never reach training; keep the thread alive
            log.exception("run=%s event=flusher_error", self.run_id)

    def _flush_one(self) -> bool:
        """One write per tick: the pending batch or the next one; whether one was written. A
        full batch (a backlog after an outage) lets the next one follow without a gap."""
        if time.monotonic() < self._retry_at:
            return False
        if self._pending is None:
            self._pending = self._next_batch()
            if self._pending is None:
                return False
        full = len(self._pending.points) >= self.max_batch_points
        if not self._write(self._pending):
            return False
        self._pending = None
        if full:
            self._last_write = -math.inf
        return True

    def _flush_available(self) -> None:
        """Write the pending batch, then new batches, until the queue is empty or a write fails."""
        while self._flush_one():
            pass

    def _next_batch(self) -> _Batch | None:
        points: list[Point] = []
        events: list[Event] = []
        queue = self.queue
        while queue and len(points) < self.max_batch_points:
            item = queue.popleft()
            if item[0] == EVENT:
                events.append(Event(kind=item[1], data=item[2], uid=item[3]))
            else:
                _to_points(item, points)
        if not points and not events:
            return None
        self._seq += 1
        return _Batch(uid=f"{self.token}-{self._seq}", points=points, events=events)

    def _write(self, batch: _Batch) -> bool:
        started = time.monotonic()
        try:
            self.sink.write(batch.uid, batch.points, batch.events)
        except Exception as exc:
            self.failed_writes += 1
            if self._outage_since is None:
                self._outage_since = time.monotonic()
                log.warning(
                    "run=%s event=metric_store_down: metric store unavailable, buffering and "
                    "retrying (%s: %s)",
                    self.run_id,
                    type(exc).__name__,
                    _first_line(exc),
                )
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.backoff_s[1])
            return False
        self._last_write = started  # the gap runs from a write's start: a slow write is
        self._write_s = time.monotonic() - started  # followed at once (one in flight, at most)
        self.points_written += len(batch.points)
        self.batches_written += 1
        if self._outage_since is not None:
            log.info(
                "run=%s event=metric_store_back down_s=%.1f queued=%d: metric store back",
                self.run_id,
                time.monotonic() - self._outage_since,
                len(self.queue),
            )
            self._outage_since = None
        self._backoff = self.backoff_s[0]
        self._retry_at = 0.0
        return True

    def _poll_cancel(self) -> None:
        now = time.monotonic()
        if self.cancel_event.is_set() or now < self._next_cancel_poll:
            return
        self._next_cancel_poll = now + self.cancel_poll_s
        try:
            requested = self.sink.cancel_requested()
        except Exception as exc:
            log.debug("run=%s event=cancel_check_failed error=%s", self.run_id, exc)
            return
        if requested:
            log.info("run=%s event=cancel_requested: stopping after the current batch", self.run_id)
            self.cancel_event.set()


def _to_points(item: tuple[Any, ...], out: list[Point]) -> None:
    tag, step, logs, wall_time, lr = item
    prefix = "batch/" if tag == BATCH else ""
    for key, value in (logs or {}).items():
        number = _number(value)
        if number is not _SKIP:
            out.append({"key": prefix + key, "step": step, "value": number, "wall_time": wall_time})
    if isinstance(lr, _ScheduledRate):
        lr = lr.value()
    if lr is not None:
        out.append({"key": prefix + "lr", "step": step, "value": lr, "wall_time": wall_time})


class _ScheduledRate:
    """The rate a batch trained with under a schedule, computed off the training thread."""

    __slots__ = ("optimizer_step", "schedule")

    def __init__(self, schedule: Any, optimizer_step: int) -> None:
        self.schedule = schedule
        self.optimizer_step = optimizer_step

    def value(self) -> float | None:
        try:
            return float(keras.ops.convert_to_numpy(self.schedule(self.optimizer_step)))
        except Exception:  # a schedule that cannot be read must not stop the flusher
            return None


_SKIP = object()


def _number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            return float(keras.ops.convert_to_numpy(value))
        except Exception:
            return _SKIP


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
