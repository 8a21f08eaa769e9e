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

from backend.db.session import session_scope
from backend.sweeps import pruning
from backend.sweeps.pruning import Rule

log = logging.getLogger(__name__)

# before an epoch starts, how long to wait for the answer about the one before (a sweep trial
# only): a losing trial should not spend a whole epoch more; an unreachable database costs at
# most this per epoch, and training goes on without the answer
DECISION_WAIT_S = 2.0


class PruningCallback(keras.callbacks.Callback):
    """Hands (epoch, objective) to a daemon thread; a prune decision stops training."""

    def __init__(self, run_id: int, rule: Rule) -> None:
        super().__init__()
        self.run_id = run_id
        self.rule = rule
        self.reason: str | None = None  # set once a decision said stop
        self.stopped = False  # training actually stopped early for it
        self._stop = threading.Event()
        self._asks: queue.Queue[tuple[int, float]] = queue.Queue()
        self._answered = threading.Event()
        self._answered.set()
        self._thread = threading.Thread(
            target=self._decide_forever, name=f"pruner-{run_id}", daemon=True
        )
        self._thread.start()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = (logs or {}).get(self.rule.objective)
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
                with session_scope() as session:
                    why = pruning.decide(
                        session,
                        rule=self.rule,
                        run_id=self.run_id,
                        epoch=epoch,
                        value=value if math.isfinite(value) else math.nan,
                    )
            except Exception as exc:  # no decision is no reason to stop
                log.warning("run=%s event=prune_check_failed error=%s", self.run_id, exc)
                self._answered.set()
                continue
            if why is not None:
                log.info("run=%s event=prune %s", self.run_id, why)
                self.reason = why
                self._stop.set()
            self._answered.set()


def for_run(run_id: int) -> PruningCallback | None:
    """The pruner of a trial of a sweep that has one; None for any other run."""
    with session_scope() as session:
        rule = pruning.rule_for(session, run_id=run_id)
    return PruningCallback(run_id, rule) if rule is not None else None
