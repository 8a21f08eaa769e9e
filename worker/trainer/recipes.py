"""The training recipes around one run's fit(): runtime, class weights, extra callbacks,
after-fit events and extra artifacts. The trainer (train.py) calls it at fixed points.

Events: ``runtime`` before training, ``class_weight`` when the spec sets one, ``diagnosis``
after an epoch (once per kind), ``early_stop`` after fit when the spec has EarlyStopping,
``artifact_error`` per artifact format that could not be written (the run then fails, with
every other artifact kept).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import keras
import numpy as np

from backend.client.streaming import MetricFlusher
from backend.spec import ExperimentSpec
from worker import port
from worker.trainer import exporters, losses, runtime
from worker.trainer.diagnosis import DiagnosisCallback, Finding

log = logging.getLogger(__name__)

TENSORBOARD_ARTIFACT = "tensorboard.zip"


class Recipes:
    """Create first thing in a run (it sets the devices and the dtype policy); ``close`` at end."""

    def __init__(self, *, run_id: int, spec: ExperimentSpec, flusher: MetricFlusher) -> None:
        self.run_id = run_id
        self.spec = spec
        self.flusher = flusher
        exporters.check_backend(spec.artifacts)
        self.runtime = runtime.configure(spec)
        flusher.event("runtime", self.runtime.event(), uid="runtime")
        self._tmp = tempfile.TemporaryDirectory(prefix=f"fitboard-run-{run_id}-recipes-")
        self.workdir = Path(self._tmp.name)
        self.spec_callbacks: list[keras.callbacks.Callback] = []
        self.diagnosis: DiagnosisCallback | None = None

    @property
    def batch_size(self) -> int:
        """The global batch fit() is given."""
        return self.runtime.global_batch_size

    @contextmanager
    def scope(self) -> Iterator[None]:
        """Build (and compile) the model in here."""
        with self.runtime.scope():
            yield

    def fit_kwargs(self, y_train: np.ndarray) -> dict[str, Any]:
        """class_weight for fit(), reported as a ``class_weight`` event."""
        weights = losses.class_weight(self.spec, y_train)
        if weights is None:
            return {}
        mode = "balanced" if self.spec.fit.class_weight == "balanced" else "given"
        self.flusher.event(
            "class_weight",
            {"mode": mode, "weights": {str(k): v for k, v in sorted(weights.items())}},
            uid="class_weight",
        )
        return {"class_weight": weights}

    def callbacks(
        self, spec_callbacks: list[keras.callbacks.Callback], *, num_classes: int | None
    ) -> list[keras.callbacks.Callback]:
        """The spec's callbacks, plus the diagnosis and (when asked for) TensorBoard."""
        self.spec_callbacks = list(spec_callbacks)
        self.diagnosis = DiagnosisCallback(self._report, num_classes=num_classes)
        extra: list[keras.callbacks.Callback] = [self.diagnosis]
        if self.spec.tensorboard:
            extra.append(
                keras.callbacks.TensorBoard(log_dir=str(self.tensorboard_dir), histogram_freq=0)
            )
        return [*self.spec_callbacks, *extra]

    @property
    def tensorboard_dir(self) -> Path:
        return self.workdir / "tensorboard"

    def after_fit(self, model: keras.Model, *, cancelled: bool) -> None:
        """early_stop event, tensorboard.zip and the extra formats (skipped when cancelled)."""
        for callback in self.spec_callbacks:
            if isinstance(callback, keras.callbacks.EarlyStopping):
                data = early_stop_summary(callback)
                self.flusher.event("early_stop", data, uid="early_stop")
                log.info("run=%s event=early_stop %s", self.run_id, data)
        if self.spec.tensorboard and self.tensorboard_dir.is_dir():
            path = exporters.zip_dir(self.tensorboard_dir, self.workdir / TENSORBOARD_ARTIFACT)
            self._register(TENSORBOARD_ARTIFACT, "logs", path)
        if cancelled:
            return
        result = exporters.export(model, self.spec.artifacts, self.workdir / "export")
        for item in result.done:
            self._register(item.name, item.kind, item.path)
        for fmt, reason in result.failed.items():
            name = exporters.ARTIFACT_FILES[fmt][0]
            data = {"format": fmt, "name": name, "error": reason}
            self.flusher.event("artifact_error", data, uid=f"artifact_error-{fmt}")
        if result.failed:
            # the spec asked for these formats: the run must not pass for complete without them
            failed = "; ".join(f"{fmt}: {reason}" for fmt, reason in result.failed.items())
            raise exporters.ExportError(f"could not write artifacts ({failed})")

    def close(self) -> None:
        self._tmp.cleanup()
        runtime.reset()

    def _report(self, finding: Finding) -> None:
        log.info("run=%s event=diagnosis kind=%s %s", self.run_id, finding.kind, finding.message)
        self.flusher.event("diagnosis", finding.event(), uid=f"diagnosis-{finding.kind}")

    def _register(self, name: str, kind: str, path: Path) -> None:
        size = port.current().add_artifact(name, kind, path)
        log.info("run=%s event=artifact_saved name=%s bytes=%d", self.run_id, name, size)


def early_stop_summary(callback: keras.callbacks.EarlyStopping) -> dict[str, Any]:
    """Epochs 1-based, like the epoch metrics; stopped_epoch null when it ran every epoch."""
    stopped = int(callback.stopped_epoch) > 0
    best = _finite(callback.best)
    return {
        "monitor": callback.monitor,
        "stopped_epoch": int(callback.stopped_epoch) + 1 if stopped else None,
        "best_epoch": int(callback.best_epoch) + 1 if best is not None else None,
        "best_value": best,
        "patience": int(callback.patience),
        "restored": bool(callback.restore_best_weights and callback.best_weights is not None),
    }


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
