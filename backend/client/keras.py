"""FitboardCallback: stream a Keras fit() running anywhere into a Fitboard server.

    from backend.client.keras import FitboardCallback
    model.fit(x, y, epochs=5, callbacks=[FitboardCallback("http://fitboard:8000", token,
                                                          name="laptop cnn")])

It is the managed trainer's streaming core (backend.client.streaming): the training thread only
appends to a deque; a MetricFlusher thread writes uid-stamped batches through an ExternalSink,
which creates the run before its first write and posts each batch to the run's points endpoint
(a retried batch is a no-op on the server), retrying the same batch while the server is away
without losing a point, and heartbeats while training runs. on_train_end flushes, uploads the
evaluation when asked, and marks the run succeeded (cancelled if stopped from the dashboard).
An exception that ends the script marks the run failed; so does leaving a
``with FitboardCallback(...) as cb:`` block by an exception.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import math
import sys
import time
import traceback as tb
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from backend.client.api import Fitboard
from backend.client.errors import FitboardError
from backend.client.evaluation import confusion_matrix
from backend.client.evaluation import evaluate as evaluate_model
from backend.client.streaming import Event, MetricFlusher, StreamingCallback

if TYPE_CHECKING:
    from backend.metrics.service import Point

__all__ = ["ExternalSink", "FitboardCallback", "confusion_matrix"]

log = logging.getLogger(__name__)

# the API's stand-in for +-infinity (JSON has none)
_INF_STANDIN = 1e300
# the longest event uid the points endpoint takes
_MAX_EVENT_UID = 60


def _refused_for_good(exc: FitboardError) -> bool:
    """401, 403, 404, 409, 422: sending the same request again will not help."""
    return exc.status is not None and exc.status < 500 and exc.status not in (408, 429)


def _finite(value: Any) -> Any:
    """value with NaN as None and +-inf as +-1e300, at any depth (what the API takes)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return _INF_STANDIN if value > 0 else -_INF_STANDIN
        return value
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _event_uid(uid: str) -> str:
    """A uid the endpoint takes: a long one becomes its digest (the same on every retry)."""
    if len(uid) <= _MAX_EVENT_UID:
        return uid
    return hashlib.sha256(uid.encode()).hexdigest()[:_MAX_EVENT_UID]


class ExternalSink:
    """The flusher's Sink on the public API: it creates the external run before its first
    write, then posts each batch to POST /api/v1/runs/{id}/points (idempotent by uid)."""

    def __init__(
        self,
        client: Fitboard,
        *,
        create: Callable[[], int],
        heartbeat_s: float = 15.0,
    ) -> None:
        self.client = client
        self.heartbeat_s = heartbeat_s
        self.run_id: int | None = None
        self.points_sent = 0
        # set when the API refused a post for good: later batches are dropped
        self.refused: FitboardError | None = None
        # the last answer said someone watches the run live
        self.watched = False
        self._create = create
        self._cancel = False
        self._last_post = time.monotonic()
        self._token = uuid.uuid4().hex[:12]
        self._heartbeats = 0

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        if self.refused is not None:
            return
        train_begin: dict[str, Any] | None = None
        timeline: list[dict[str, Any]] = []
        for event in events:
            if event.kind == "train_begin":  # its own field: servers before `events` take it
                train_begin = dict(event.data)
            else:
                timeline.append(
                    {"kind": event.kind, "data": _finite(event.data), "uid": _event_uid(event.uid)}
                )
        body = [
            {
                "key": p["key"],
                "step": p["step"],
                "value": _finite(p["value"]),
                "wall_time": p["wall_time"],
            }
            for p in points
        ]
        try:
            if self.run_id is None:
                self.run_id = self._create()
            answer = self.client.post_points(  # sent as columns
                self.run_id, body, uid=uid, train_begin=train_begin, events=timeline
            )
        except FitboardError as exc:
            if not _refused_for_good(exc):
                raise  # the flusher sends this batch again, with the same uid
            log.error("fitboard: %s; no more points are sent", exc.message())
            self.refused = exc
            return
        self._last_post = time.monotonic()
        self.points_sent += len(points)
        self.watched = bool(answer.get("watched"))  # the flusher writes more often then
        if answer.get("cancel_requested"):
            self._cancel = True

    def cancel_requested(self) -> bool:
        """Whether a cancel came back with a post; posts an empty batch (the run's heartbeat)
        when nothing was posted for heartbeat_s."""
        if self._cancel or self.refused is not None or self.run_id is None:
            return self._cancel
        if time.monotonic() - self._last_post >= self.heartbeat_s:
            self._last_post = time.monotonic()  # an outage: try again in heartbeat_s
            self._heartbeats += 1
            self.write(f"{self._token}-hb-{self._heartbeats}", [], [])
        return self._cancel


class FitboardCallback(StreamingCallback):
    """Creates an external run on train begin and streams batch and epoch metrics into it.

    evaluate: None, or (x, y, class_names): after training, the model's confusion matrix and
    classification report on (x, y) are uploaded (y as class indices or one-hot).
    """

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        name: str = "keras run",
        spec: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        dataset: str | None = None,
        tags: Sequence[str] = (),
        evaluate: tuple[Any, Any, Sequence[str]] | None = None,
        every_n_batches: int = 1,
        flush_interval_s: float = 0.5,
        heartbeat_s: float = 15.0,
        max_batch_points: int = 5000,
        close_timeout_s: float = 120.0,
        backoff_s: tuple[float, float] = (0.5, 10.0),
        client: Fitboard | None = None,
    ) -> None:
        self.client = client or Fitboard(server, token)
        self.name = name
        self.spec = dict(spec) if spec is not None else None
        self.params_ = dict(params) if params is not None else None
        self.dataset = dataset
        self.tags = list(tags)
        self.evaluate = evaluate
        self.close_timeout_s = close_timeout_s
        self.backoff_s = backoff_s
        self.finished_status: str | None = None
        self.sink = ExternalSink(self.client, create=self._create_run, heartbeat_s=heartbeat_s)
        self.flusher = MetricFlusher(
            self.sink,
            run_id=None,
            flush_interval_s=flush_interval_s,
            max_batch_points=max_batch_points,
            backoff_s=backoff_s,
        )
        # external runs have had no lr series: the script logs its own rate if it wants one
        super().__init__(
            self.flusher.queue,
            self.flusher.cancel_event,
            every_n_batches=every_n_batches,
            record_lr=False,
            wake=self.flusher.wake,
        )
        self._started = False
        self._hooked = False
        self._prev_excepthook: Any = None

    @property
    def run_id(self) -> int | None:
        return self.sink.run_id

    @property
    def points_sent(self) -> int:
        return self.sink.points_sent

    @property
    def failed_posts(self) -> int:
        return self.flusher.failed_writes

    def _create_run(self) -> int:
        """On the flusher thread, before its first write."""
        run = self.client.create_external_run(
            self.name, spec=self.spec, params=self.params_, dataset=self.dataset, tags=self.tags
        )
        run_id = int(run["id"])
        self.flusher.run_id = run_id
        log.info("fitboard: run %s at %s/runs/%s", run_id, self.client.url, run_id)
        return run_id

    # --- Keras hooks (the batch and epoch ones are the core's: append only) -------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self._hook_process_end()
        if not self._started:
            self._started = True
            self.flusher.start()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        result = self._evaluation() if self.evaluate is not None else None
        status = "cancelled" if self.stopped_by_cancel else "succeeded"
        self.close(status, evaluation=result)

    # --- use as a context manager: an exception in the block fails the run --------------------

    def __enter__(self) -> FitboardCallback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if exc is not None and self.finished_status is None and self._started:
            self.close(
                "failed",
                reason=f"{exc_type.__name__ if exc_type else 'error'}: {exc}",
                traceback="".join(tb.format_exception(exc_type, exc, trace)),
            )

    def close(
        self,
        status: str = "succeeded",
        *,
        reason: str | None = None,
        traceback: str | None = None,
        evaluation: dict[str, Any] | None = None,
    ) -> bool:
        """Flush every point, upload the evaluation, mark the run finished; True if all sent."""
        if self.finished_status is not None or not self._started:
            return self.finished_status is not None
        all_sent = self.flusher.close(self.close_timeout_s) and self.sink.refused is None
        deadline = time.monotonic() + self.close_timeout_s
        run_id = self.run_id
        if run_id is None or not all_sent:
            log.error(
                "fitboard: could not send every point to %s before closing (%d entries left)",
                self.client.url,
                self.flusher.backlog,
            )
            if run_id is None:
                return False
        if evaluation is not None:
            self._retry(lambda: self.client.post_evaluation(run_id, **evaluation), deadline)
        done = self._retry(
            lambda: self.client.finish_run(run_id, status, reason=reason, traceback=traceback),
            deadline,
        )
        if done:
            self.finished_status = status
        return done and all_sent

    def _retry(self, call: Callable[[], Any], deadline: float) -> bool:
        delay = self.backoff_s[0]
        while True:
            try:
                call()
                return True
            except FitboardError as exc:
                if exc.status is not None and exc.status < 500:
                    log.error("fitboard: %s", exc.message())
                    return False
                if time.monotonic() + delay > deadline:
                    log.error("fitboard: gave up: %s", exc.message())
                    return False
                time.sleep(delay)
                delay = min(delay * 2, self.backoff_s[1])

    # --- evaluation and the end of the process -------------------------------------------------

    def _evaluation(self) -> dict[str, Any] | None:
        assert self.evaluate is not None
        x, y, class_names = self.evaluate
        try:
            result = evaluate_model(self.model, x, y, class_names=class_names)
        except Exception:
            log.exception("fitboard: evaluation failed; the run is finished without one")
            return None
        # the API computes the report from the matrix (the same code), so no report's size
        # limit applies to a model with many classes
        return {"class_names": result.class_names, "confusion_matrix": result.confusion_matrix}

    def _hook_process_end(self) -> None:
        """An uncaught exception (Keras calls no on_train_end then) fails the run."""
        if self._hooked:
            return
        self._hooked = True
        self._prev_excepthook = sys.excepthook

        def excepthook(
            exc_type: type[BaseException], exc: BaseException, trace: TracebackType | None
        ) -> None:
            if self.finished_status is None and self._started:
                self.close(
                    "failed",
                    reason=f"{exc_type.__name__}: {exc}",
                    traceback="".join(tb.format_exception(exc_type, exc, trace)),
                )
            self._prev_excepthook(exc_type, exc, trace)

        sys.excepthook = excepthook
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        if self.finished_status is None and self._started:
            self.close("failed", reason="the training script exited before training ended")
