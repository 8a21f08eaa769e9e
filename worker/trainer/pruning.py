"""A sweep trial's pruner in the training process: asks at each epoch end, off the training
thread, whether the trial is losing (backend.sweeps.pruning decides from the other trials'
epoch values in SQL), and stops fit() at the next batch when it is. The next epoch waits for
that answer at most DECISION_WAIT_S, so a losing trial does not train a whole epoch more."""

from __future__ import annotations

import logging
import math
import queue
import threading
from typing import Any

import keras

from worker import port

log = logging.getLogger(__name__)

# before an epoch starts, how long to wait for the answer about the one before (a sweep trial
# only): a losing trial should not spend a whole epoch more; an unreachable database costs at
# most this per epoch, and training goes on without the answer
DECISION_WAIT_S = 2.0


class PruningCallback(keras.callbacks.Callback):
    """Hands (epoch, objective) to a daemon thread; a prune decision stops training."""

    def __init__(self, run_port: port.RunPort, objective: str) -> None:
        super().__init__()
        self.run_id = run_port.run_id
        self.port = run_port
        self.objective = objective
        self.reason: str | None = None  # set once a decision said stop
        self.stopped = False  # training actually stopped early for it
        self._stop = threading.Event()
        self._asks: queue.Queue[tuple[int, float]] = queue.Queue()
        self._answered = threading.Event()
        self._answered.set()
        self._thread = threading.Thread(
            target=self._decide_forever, name=f"pruner-{self.run_id}", daemon=True
        )
        self._thread.start()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.objective)
        if value is None or self._stop.is_set():
            return
        try:
            number = float(value)
        except (TypeError, ValueError):
            return
        self._answered.clear()
        self._asks.put((epoch + 1, number))

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self._stop.is_set() and not self.stopped:
            self.stopped = True
            self.model.stop_training = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._answered.wait(DECISION_WAIT_S)
        self.on_train_batch_end(0)

    def _decide_forever(self) -> None:
        while not self._stop.is_set():
            epoch, value = self._asks.get()
            try:
                why = self.port.prune_decide(epoch, value if math.isfinite(value) else math.nan)
            except Exception as exc:  # no decision is no reason to stop
                log.warning("run=%s event=prune_check_failed error=%s", self.run_id, exc)
                self._answered.set()
                continue
            if why is not None:
                log.info("run=%s event=prune %s", self.run_id, why)
                self.reason = why
                self._stop.set()
            self._answered.set()


def for_run(run_port: port.RunPort) -> PruningCallback | None:
    """The pruner of a trial of a sweep that has one; None for any other run."""
    objective = run_port.prune_objective()
    return PruningCallback(run_port, objective) if objective is not None else None
