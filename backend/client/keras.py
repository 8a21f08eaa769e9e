"""FitboardCallback: stream a Keras fit() running anywhere into a Fitboard server.

    from backend.client.keras import FitboardCallback
    model.fit(x, y, epochs=5, callbacks=[FitboardCallback("http://fitboard:8000", token,
                                                          name="laptop cnn")])

The training thread only appends to a deque. A daemon thread creates the run, posts the points
in uid-stamped batches (a retried batch is a no-op on the server), retries with backoff while
the server is away without losing a point, and heartbeats while training runs. on_train_end
flushes, uploads the evaluation when asked, and marks the run succeeded (cancelled if stopped
from the dashboard). An exception that ends the script marks the run failed; so does leaving a
``with FitboardCallback(...) as cb:`` block by an exception.
"""

from __future__ import annotations

import atexit
import logging
import math
import sys
import threading
import time
import traceback as tb
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import keras
import numpy as np

from backend.client.api import Fitboard
from backend.client.errors import FitboardError

log = logging.getLogger(__name__)

BATCH, EPOCH, BEGIN = 0, 1, 2


class FitboardCallback(keras.callbacks.Callback):
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
        super().__init__()
        self.client = client or Fitboard(server, token)
        self.name = name
        self.spec = dict(spec) if spec is not None else None
        self.params_ = dict(params) if params is not None else None
        self.dataset = dataset
        self.tags = list(tags)
        self.evaluate = evaluate
        self.every = max(1, int(every_n_batches))
        self.flush_interval_s = flush_interval_s
        self.heartbeat_s = heartbeat_s
        self.max_batch_points = max_batch_points
        self.close_timeout_s = close_timeout_s
        self.backoff_s = backoff_s
        self.run_id: int | None = None
        self.points_sent = 0
        self.failed_posts = 0
        self.finished_status: str | None = None
        self._queue: deque[tuple[Any, ...]] = deque()
        self._token = uuid.uuid4().hex[:12]
        self._seq = 0
        self._pending: tuple[str, list[dict[str, Any]], dict[str, Any] | None] | None = None
        self._cancel = threading.Event()
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._steps: int | None = None
        self._epoch_base = 0
        self._last_step = 0
        self._stopped_by_cancel = False
        self._hooked = False
        self._close_by = math.inf
        self._prev_excepthook: Any = None

    # --- Keras hooks (training thread: append only) -------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._steps = self.params.get("steps")
        info = {
            "epochs": self.params.get("epochs"),
            "steps_per_epoch": self._steps,
            "batch_size": None,
            "train_samples": None,
        }
        self._queue.append((BEGIN, info))
        self._hook_process_end()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fitboard-callback", daemon=True)
            self._thread.start()

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_base = epoch * self._steps if self._steps else self._last_step

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        step = self._epoch_base + batch + 1
        self._last_step = step
        if step % self.every == 0:
            self._queue.append((BATCH, step, logs, time.time()))
        if self._cancel.is_set():
            self._stopped_by_cancel = True
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._queue.append((EPOCH, epoch + 1, dict(logs or {}), time.time()))
        if self._cancel.is_set():
            self._stopped_by_cancel = True
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        evaluation = self._evaluation() if self.evaluate is not None else None
        status = "cancelled" if self._stopped_by_cancel else "succeeded"
        self.close(status, evaluation=evaluation)

    # --- use as a context manager: an exception in the block fails the run --------------------

    def __enter__(self) -> FitboardCallback:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if exc is not None and self.finished_status is None and self._thread is not None:
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
        if self.finished_status is not None or self._thread is None:
            return self.finished_status is not None
        self._close_by = time.monotonic() + self.close_timeout_s
        self._closing.set()
        self._wake.set()
        self._thread.join(self.close_timeout_s)
        deadline = time.monotonic() + self.close_timeout_s
        if self.run_id is None or self._backlog():
            log.error(
                "fitboard: could not send every point to %s before closing (%d entries left)",
                self.client.url,
                self._backlog(),
            )
            if self.run_id is None:
                return False
        if evaluation is not None:
            run_id = self.run_id
            self._retry(lambda: self.client.post_evaluation(run_id, **evaluation), deadline)
        done = self._retry(
            lambda: self.client.finish_run(
                self.run_id or 0, status, reason=reason, traceback=traceback
            ),
            deadline,
        )
        if done:
            self.finished_status = status
        return done and not self._backlog()

    # --- the sender thread ---------------------------------------------------------------------

    def _backlog(self) -> int:
        return len(self._queue) + (self._pending is not None)

    def _run(self) -> None:
        backoff = self.backoff_s[0]
        last_post = time.monotonic()
        while True:
            closing = self._closing.is_set()
            try:
                if self.run_id is None:
                    self._create()
                sent_any = self._flush()
                if sent_any:
                    last_post = time.monotonic()
                elif not closing and time.monotonic() - last_post > self.heartbeat_s:
                    self._post(f"{self._token}-hb-{uuid.uuid4().hex[:6]}", [], None)
                    last_post = time.monotonic()
                backoff = self.backoff_s[0]
                if closing and not self._backlog():
                    return
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
            except FitboardError as exc:
                self.failed_posts += 1
                if exc.status is not None and exc.status < 500 and exc.status not in (408, 429):
                    # refused for good (401, 403, 409, 422): retrying will not help
                    log.error("fitboard: %s; no more points are sent", exc.message())
                    self._queue.clear()
                    self._pending = None
                    return
                log.warning("fitboard: %s; retrying in %.1fs", exc.message(), backoff)
                if closing and time.monotonic() > self._close_by:
                    return
                time.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_s[1])
            except Exception:  # never let a bug here reach training
                log.exception("fitboard: sender error")
                time.sleep(backoff)

    def _create(self) -> None:
        run = self.client.create_external_run(
            self.name, spec=self.spec, params=self.params_, dataset=self.dataset, tags=self.tags
        )
        self.run_id = int(run["id"])
        log.info("fitboard: run %s at %s/runs/%s", self.run_id, self.client.url, self.run_id)

    def _flush(self) -> bool:
        """Send the pending batch, then new ones, until the queue is empty; raises on failure."""
        sent = False
        while True:
            if self._pending is None:
                self._pending = self._next_batch()
                if self._pending is None:
                    return sent
            uid, points, begin = self._pending
            self._post(uid, points, begin)
            self.points_sent += len(points)
            self._pending = None
            sent = True

    def _post(self, uid: str, points: list[dict[str, Any]], begin: dict[str, Any] | None) -> None:
        answer = self.client.post_points(self.run_id or 0, points, uid=uid, train_begin=begin)
        if answer.get("cancel_requested"):
            self._cancel.set()

    def _next_batch(self) -> tuple[str, list[dict[str, Any]], dict[str, Any] | None] | None:
        points: list[dict[str, Any]] = []
        begin: dict[str, Any] | None = None
        while self._queue and len(points) < self.max_batch_points:
            item = self._queue.popleft()
            if item[0] == BEGIN:
                begin = item[1]
                continue
            tag, step, logs, wall = item
            for key, value in (logs or {}).items():
                number = _number(value)
                if number is None:
                    continue
                point = {
                    "key": key,
                    "step": step,
                    "value": None if math.isnan(number) else number,
                    "wall_time": wall,
                }
                if tag == BATCH:
                    point["kind"] = "batch"
                points.append(point)
        if not points and begin is None:
            return None
        self._seq += 1
        return f"{self._token}-{self._seq}", points, begin

    def _retry(self, call: Any, deadline: float) -> bool:
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
            probs = np.asarray(self.model.predict(x, verbose=0))
            if probs.ndim == 1 or probs.shape[-1] == 1:
                y_pred = (probs.reshape(len(probs), -1)[:, 0] > 0.5).astype(np.int64)
            else:
                y_pred = np.argmax(probs, axis=-1).astype(np.int64)
            return {
                "class_names": [str(c) for c in class_names],
                "confusion_matrix": confusion_matrix(y, y_pred, len(class_names)),
            }
        except Exception:
            log.exception("fitboard: evaluation failed; the run is finished without one")
            return None

    def _hook_process_end(self) -> None:
        """An uncaught exception (Keras calls no on_train_end then) fails the run."""
        if self._hooked:
            return
        self._hooked = True
        self._prev_excepthook = sys.excepthook

        def excepthook(
            exc_type: type[BaseException], exc: BaseException, trace: TracebackType | None
        ) -> None:
            if self.finished_status is None and self._thread is not None:
                self.close(
                    "failed",
                    reason=f"{exc_type.__name__}: {exc}",
                    traceback="".join(tb.format_exception(exc_type, exc, trace)),
                )
            self._prev_excepthook(exc_type, exc, trace)

        sys.excepthook = excepthook
        atexit.register(self._at_exit)

    def _at_exit(self) -> None:
        if self.finished_status is None and self._thread is not None:
            self.close("failed", reason="the training script exited before training ended")


def confusion_matrix(y_true: Any, y_pred: Any, n_classes: int) -> list[list[int]]:
    """Rows true class, columns predicted; y_true as indices or one-hot."""
    truth = np.asarray(y_true)
    if truth.ndim > 1 and truth.shape[-1] > 1:
        truth = np.argmax(truth, axis=-1)
    truth = truth.reshape(-1).astype(np.int64)
    pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    return [[int(v) for v in row] for row in matrix]


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        try:
            return float(np.asarray(value))
        except (TypeError, ValueError):
            return None
