"""fit.phases: train in stretches, back to back, as one continuous curve.

Each phase sets which base layers train (``unfreeze_last``), rebuilds the optimizer with its
learning rate and recompiles (the loss and metrics stay as compiled), then continues fit()
with ``initial_epoch`` so epochs and streamed batch steps keep counting. A ``phase`` event
marks each start. EarlyStopping acts within a phase: the next phase starts after the epoch it
stopped at. A cancel ends the run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from backend.client.streaming import MetricFlusher, StreamingCallback
from backend.spec import ExperimentSpec
from worker.trainer.build import make_optimizer
from worker.trainer.transfer import find_base, set_base_trainable

log = logging.getLogger(__name__)


def fit_function(
    model: keras.Model, *, spec: ExperimentSpec, flusher: MetricFlusher
) -> Callable[..., Any]:
    """model.fit, or a function with its signature that runs the spec's phases."""
    if not spec.fit.phases:
        return model.fit
    return functools.partial(fit_phases, model, spec=spec, flusher=flusher)


def fit_phases(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    spec: ExperimentSpec,
    flusher: MetricFlusher,
    epochs: int | None = None,
    initial_epoch: int = 0,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **fit_kwargs: Any,
) -> keras.callbacks.History | None:
    """One fit() per phase; ``epochs`` is ignored (the phases' total is fit.epochs). A run
    resumed at ``initial_epoch`` skips the phases before it and starts inside its phase."""
    phases = spec.fit.phases or []
    callbacks = list(callbacks or [])
    streaming = next((cb for cb in callbacks if isinstance(cb, StreamingCallback)), None)
    if streaming is not None:
        streaming.planned_epochs = sum(phase.epochs for phase in phases)
    base = find_base(model)
    history: keras.callbacks.History | None = None
    start = 0
    for index, phase in enumerate(phases):
        end = start + phase.epochs
        if end <= initial_epoch:  # trained before the checkpoint this attempt resumes from
            start = end
            continue
        start = max(start, initial_epoch)
        if base is not None:
            set_base_trainable(base, unfreeze_last=phase.unfreeze_last)
        learning_rate = phase.learning_rate or spec.compile.optimizer.learning_rate
        recompile(model, spec, learning_rate=learning_rate)
        data = {
            "index": index,
            "start_epoch": start + 1,
            "epochs": phase.epochs,
            "learning_rate": learning_rate,
            "unfreeze_last": phase.unfreeze_last,
            "trainable_weights": len(model.trainable_weights),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        }
        flusher.event("phase", data, uid=f"phase-{index}")
        log.info("run=%s event=phase %s", flusher.run_id, data)
        history = model.fit(
            x,
            y,
            initial_epoch=start,
            epochs=end,
            callbacks=callbacks,
            **fit_kwargs,
        )
        if (streaming is not None and streaming.stopped_by_cancel) or not history.epoch:
            break
        start = int(history.epoch[-1]) + 1
    return history


def recompile(model: keras.Model, spec: ExperimentSpec, *, learning_rate: float) -> None:
    """A fresh optimizer at learning_rate; the rest of the compile configuration kept."""
    optimizer_spec = spec.compile.optimizer.model_copy(update={"learning_rate": learning_rate})
    strategy = getattr(model, "distribute_strategy", None)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        config = keras.saving.deserialize_keras_object(model.get_compile_config())
        config["optimizer"] = make_optimizer(optimizer_spec)
        model.compile(**config)
