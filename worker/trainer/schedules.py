"""The spec's learning-rate schedule as one of Keras' built-in schedules.

Built-ins only, so a saved model.keras reloads in plain Keras without Fitboard. A schedule is
a function of the optimizer's step (batches trained), so ``batch/lr`` draws it batch by batch.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import keras

from backend.spec import ExperimentSpec
from backend.spec.recipes import (
    CosineScheduleSpec,
    ExponentialScheduleSpec,
    StepScheduleSpec,
    WarmupScheduleSpec,
)
from worker.trainer.datasets import Dataset
from worker.trainer.runtime import global_batch_size

Schedule: TypeAlias = keras.optimizers.schedules.LearningRateSchedule


def steps_per_epoch(spec: ExperimentSpec, num_train: int) -> int:
    """Batches per epoch fit() will run on ``num_train`` examples (validation split removed)."""
    if spec.fit.validation_data is None and spec.fit.validation_split:
        num_train = math.floor(num_train * (1.0 - spec.fit.validation_split))
    return max(1, math.ceil(num_train / global_batch_size(spec)))


def make_schedule(
    spec: ExperimentSpec, *, steps_per_epoch: int, epochs: int | None = None
) -> Schedule | None:
    """The schedule starting at compile.optimizer.learning_rate; None when the spec has none.

    ``epochs`` is the length of the run "the whole run" refers to (default fit.epochs).
    """
    schedule = spec.compile.optimizer.schedule
    lr = float(spec.compile.optimizer.learning_rate)
    total_steps = steps_per_epoch * (epochs if epochs is not None else spec.fit.epochs)
    if schedule is None:
        return None
    if isinstance(schedule, ExponentialScheduleSpec):
        return keras.optimizers.schedules.ExponentialDecay(
            lr,
            decay_steps=steps_per_epoch,
            decay_rate=schedule.factor,
            staircase=schedule.staircase,
        )
    if isinstance(schedule, StepScheduleSpec):
        return keras.optimizers.schedules.ExponentialDecay(
            lr,
            decay_steps=steps_per_epoch * schedule.every_epochs,
            decay_rate=schedule.factor,
            staircase=True,
        )
    if isinstance(schedule, CosineScheduleSpec):
        return keras.optimizers.schedules.CosineDecay(
            lr, decay_steps=schedule.decay_steps or total_steps, alpha=schedule.alpha
        )
    if isinstance(schedule, WarmupScheduleSpec):
        if schedule.then == "constant":
            # alpha 1: the "decay" after warm-up stays at the target rate
            decay_steps, alpha = 1, 1.0
        else:
            rest = max(1, total_steps - schedule.warmup_steps)
            decay_steps, alpha = schedule.decay_steps or rest, schedule.alpha or 0.0
        return keras.optimizers.schedules.CosineDecay(
            float(schedule.initial_learning_rate),
            decay_steps=decay_steps,
            alpha=alpha,
            warmup_target=lr,
            warmup_steps=schedule.warmup_steps,
        )
    raise AssertionError(f"unhandled schedule {schedule!r}")


def for_run(spec: ExperimentSpec, dataset: Dataset) -> Schedule | None:
    """The schedule of a run training on the dataset's training split (None: no schedule)."""
    if spec.compile.optimizer.schedule is None:
        return None
    return make_schedule(spec, steps_per_epoch=steps_per_epoch(spec, len(dataset.x_train)))
