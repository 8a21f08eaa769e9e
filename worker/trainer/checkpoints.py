"""Crash-safe runs: checkpoints while training, and resuming a lost attempt from the newest.

Every ``spec.checkpoint.every_epochs`` epochs the model (weights and optimizer state) is saved
as ``checkpoint-epoch-<k>.keras`` on the training thread (Keras saves there), then uploaded
through the port by a background thread; the next save waits for that upload. Once uploaded,
a ``checkpoint`` event {epoch, step, bytes, seconds} follows the epoch's metrics through the
flusher (Fitboard resumes only from a checkpoint whose event arrived: every point before it
is stored), and checkpoints beyond the newest ``keep`` are deleted.

A run queued again after its attempt was lost names the checkpoint it resumes from
(``port.resume_point``): the new attempt loads it and fit() goes on with ``initial_epoch=k``.
A fork's starting point is another run's checkpoint (``point.run_id``): fetched from that run,
with the fork's own learning rate set on the loaded optimizer.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import keras

from backend.client.streaming import MetricFlusher, StreamingCallback
from backend.spec import ExperimentSpec
from worker import port
from worker.trainer import phases, transfer

log = logging.getLogger(__name__)

KIND = "checkpoint"
UPLOAD_WAIT_S = 600.0


def artifact_name(epoch: int) -> str:
    return f"checkpoint-epoch-{epoch}.keras"


class CheckpointUnusable(RuntimeError):
    """The checkpoint this attempt was to resume from cannot be fetched or loaded."""


class CheckpointCallback(keras.callbacks.Callback):
    """Saves a checkpoint every N epochs; uploads and prunes off the training thread.

    Put it after the StreamingCallback: its ``checkpoint`` event must follow the epoch's
    metrics through the flusher."""

    def __init__(
        self,
        run_port: port.RunPort,
        flusher: MetricFlusher,
        streaming: StreamingCallback,
        *,
        every_epochs: int,
        keep: int,
        kept: Iterable[int] = (),
    ) -> None:
        super().__init__()
        self._port = run_port
        self._flusher = flusher
        self._streaming = streaming
        self._every = every_epochs
        self._keep = keep
        # epochs of the checkpoints stored, oldest first (a resumed attempt's predecessors)
        self._stored: deque[int] = deque(sorted(kept))
        self._tmp = tempfile.TemporaryDirectory(prefix=f"fitboard-run-{run_port.run_id}-ckpt-")
        self._upload: threading.Thread | None = None
        self._batches = 0  # this epoch's, so far
        self.saved: list[int] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self._batches += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        done = epoch + 1
        if self._every <= 0 or done % self._every:
            return
        steps = (self.params or {}).get("steps")
        if steps and self._batches < steps:
            # a cancel cut this epoch short: a checkpoint "after epoch k" must hold all of it
            # (a resume goes on from there), so the previous one stays the newest
            log.info("run=%s event=checkpoint_skipped epoch=%d partial", self._port.run_id, done)
            return
        self.wait()  # one upload at a time; the disk holds at most two checkpoints
        started = time.monotonic()
        path = Path(self._tmp.name) / artifact_name(done)
        try:
            self.model.save(path)
        except Exception as exc:  # training goes on; the previous checkpoint stays the newest
            log.warning(
                "run=%s event=checkpoint_failed epoch=%d error=%s", self._port.run_id, done, exc
            )
            path.unlink(missing_ok=True)
            return
        step = self._streaming.last_step
        self._upload = threading.Thread(
            target=self._send,
            args=(done, step, path, started),
            name=f"checkpoint-upload-{self._port.run_id}",
            daemon=True,
        )
        self._upload.start()

    def wait(self, timeout: float = UPLOAD_WAIT_S) -> None:
        """Until the last upload (and its pruning) is done."""
        if self._upload is not None:
            self._upload.join(timeout)
            self._upload = None

    def close(self) -> None:
        self.wait()
        self._tmp.cleanup()

    def _send(self, epoch: int, step: int, path: Path, started: float) -> None:
        run_id = self._port.run_id
        name = artifact_name(epoch)
        try:
            size = self._port.add_artifact(name, KIND, path)
        except Exception as exc:  # training goes on; the previous checkpoint stays the newest
            log.warning("run=%s event=checkpoint_failed epoch=%d error=%s", run_id, epoch, exc)
            return
        finally:
            path.unlink(missing_ok=True)
        seconds = round(time.monotonic() - started, 3)
        data = {"epoch": epoch, "step": step, "bytes": size, "seconds": seconds, "name": name}
        self._flusher.event(KIND, data, uid=f"checkpoint-{epoch}")
        self.saved.append(epoch)
        self._stored.append(epoch)
        log.info(
            "run=%s event=checkpoint epoch=%d bytes=%d seconds=%.2f", run_id, epoch, size, seconds
        )
        while len(self._stored) > self._keep:
            old = self._stored.popleft()
            try:
                self._port.delete_artifact(artifact_name(old))
            except Exception as exc:
                log.warning(
                    "run=%s event=checkpoint_delete_failed epoch=%d error=%s", run_id, old, exc
                )


def resume_point(run_port: port.RunPort) -> port.ResumePoint | None:
    """The checkpoint this attempt resumes from, if Fitboard chose one."""
    try:
        return run_port.resume_point()
    except port.Missing:  # an API from before checkpoints
        return None


def load(run_port: port.RunPort, point: port.ResumePoint) -> keras.Model:
    """The checkpointed model, compiled, with its optimizer state (call in the runtime scope)."""
    with tempfile.TemporaryDirectory(prefix=f"fitboard-run-{run_port.run_id}-resume-") as tmp:
        try:
            owner = point.run_id if point.run_id is not None else run_port.run_id
            path = run_port.fetch_artifact(owner, point.artifact, Path(tmp))
            model = keras.saving.load_model(path, custom_objects=transfer.custom_objects())
        except Exception as exc:
            raise CheckpointUnusable(
                f"cannot resume from {point.artifact} ({type(exc).__name__}: {exc})"
            ) from exc
    if not isinstance(model, keras.Model):
        raise CheckpointUnusable(f"{point.artifact} does not hold a Keras model")
    return model


def is_fork_start(run_port: port.RunPort, point: port.ResumePoint | None) -> bool:
    """Whether ``point`` is another run's checkpoint (a fork starting from it)."""
    return point is not None and point.run_id not in (None, run_port.run_id)


def apply_fork_spec(model: keras.Model, spec: ExperimentSpec) -> None:
    """A fork may change the learning rate: set it on the checkpoint's optimizer (a schedule
    in the checkpoint stays as it was). It may also change how deep the base trains
    (``model.base.trainable``): then what trains is set as the spec says and the model is
    compiled anew with a fresh optimizer at the fork's rate, as Keras' fine-tuning guide does
    (with ``fit.phases`` each phase sets it at its start instead)."""
    if _apply_base_trainable(model, spec):
        return
    wanted = spec.compile.optimizer
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or wanted.schedule is not None:
        return
    rate = optimizer.learning_rate
    if isinstance(rate, keras.Variable):
        rate.assign(wanted.learning_rate)


def _apply_base_trainable(model: keras.Model, spec: ExperimentSpec) -> bool:
    """True when the fork changed what trains (and the model was compiled anew)."""
    base = transfer.find_base(model)
    if base is None or spec.model.base is None or spec.fit.phases:
        return False
    before = [id(w) for w in model.trainable_weights]
    deep = len(base.layers) if spec.model.base.trainable else 0
    transfer.set_base_trainable(base, unfreeze_last=deep)
    if [id(w) for w in model.trainable_weights] == before:
        return False
    phases.recompile(model, spec, learning_rate=spec.compile.optimizer.learning_rate)
    log.info(
        "event=fork_trainable base_trainable=%s trainable_weights=%d",
        spec.model.base.trainable,
        len(model.trainable_weights),
    )
    return True


def stored_before(spec: ExperimentSpec, point: port.ResumePoint | None) -> list[int]:
    """The epochs of the checkpoints a resumed attempt finds stored (the newest ``keep``)."""
    every = spec.checkpoint.every_epochs
    if point is None or point.run_id is not None or every <= 0:
        return []
    epochs = range(point.epoch, 0, -every)
    return sorted(epochs[: spec.checkpoint.keep])


def announce_resume(
    flusher: MetricFlusher, run_port: port.RunPort, point: port.ResumePoint
) -> None:
    """The ``resumed`` event: the run page says "attempt n, resumed from epoch k on host H"."""
    data = {
        "from_epoch": point.epoch,
        "step": point.step,
        "attempt": run_port.attempt,
        "host": socket.gethostname(),
        "artifact": point.artifact,
        "from_run": point.run_id,  # a fork's start: the source run's checkpoint
    }
    flusher.event("resumed", data, uid=f"resumed-a{run_port.attempt}")
    log.info("run=%s event=resumed %s", run_port.run_id, data)
