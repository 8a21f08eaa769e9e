"""Spec parts of the training recipes: schedules, focal loss, class weights, runtime, artifacts.

Pure pydantic, like the rest of the spec; ``check_recipes`` holds the cross-field rules that
need the whole ExperimentSpec (it is called by ExperimentSpec's own validator).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from backend.spec.model import ExperimentSpec, LayerSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- learning-rate schedules (compile.optimizer.schedule) -----------------------------------


class ExponentialScheduleSpec(_Strict):
    """``lr * factor ** epoch``: the per-epoch multiply of the tutorial (e.g. 0.95)."""

    type: Literal["exponential"]
    factor: float = Field(
        default=0.95, gt=0, le=1, description="Multiply the learning rate by this every epoch."
    )
    staircase: bool = Field(
        default=True,
        description="true: the rate changes once per epoch; false: it decays smoothly every "
        "batch, by the same factor per epoch.",
    )


class StepScheduleSpec(_Strict):
    """Step decay: ``lr * factor ** floor(epoch / every_epochs)``."""

    type: Literal["step"]
    every_epochs: int = Field(default=10, ge=1, description="Drop the rate every N epochs.")
    factor: float = Field(default=0.5, gt=0, lt=1, description="Multiply the rate by this.")


class CosineScheduleSpec(_Strict):
    """Cosine decay from the optimizer's learning_rate down to ``alpha * learning_rate``."""

    type: Literal["cosine"]
    decay_steps: int | None = Field(
        default=None,
        ge=1,
        description="Batches over which the rate decays (then it stays at the floor); "
        "default: the whole run.",
    )
    alpha: float = Field(
        default=0.0, ge=0, le=1, description="Final rate as a fraction of the initial rate."
    )


class WarmupScheduleSpec(_Strict):
    """Linear warm-up to the optimizer's learning_rate, then constant or cosine decay."""

    type: Literal["warmup"]
    warmup_steps: int = Field(
        ge=1, description="Batches of linear warm-up from initial_learning_rate."
    )
    initial_learning_rate: float = Field(
        default=0.0, ge=0, le=10, description="Rate of the first batch."
    )
    then: Literal["constant", "cosine"] = Field(
        default="constant", description="After warm-up: stay at learning_rate, or cosine decay."
    )
    decay_steps: int | None = Field(
        default=None,
        ge=1,
        description="then=cosine: batches of decay after warm-up; default: the rest of the run.",
    )
    alpha: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="then=cosine: final rate as a fraction of learning_rate (default 0).",
    )


ScheduleSpec = Annotated[
    ExponentialScheduleSpec | StepScheduleSpec | CosineScheduleSpec | WarmupScheduleSpec,
    Field(discriminator="type"),
]


# --- loss -----------------------------------------------------------------------------------


class FocalLossSpec(_Strict):
    """Focal loss: binary for one sigmoid output unit, categorical for a softmax per class."""

    name: Literal["focal"]
    gamma: float = Field(
        default=2.0, ge=0, le=10, description="Focusing parameter: 0 is plain cross-entropy."
    )
    alpha: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Binary: weight of the positive class (1 - alpha for the negative one); "
        "giving it turns class balancing on. Categorical: a factor on every class's term "
        "(default 1).",
    )
    from_logits: bool = Field(
        default=False, description="The output layer gives logits (no sigmoid/softmax)."
    )


FOCAL_LOSS_NAMES = frozenset({"binary_focal_crossentropy", "categorical_focal_crossentropy"})


# --- class weights, runtime, artifacts ------------------------------------------------------

ClassWeight = dict[int, Annotated[float, Field(ge=0, le=1e6)]] | Literal["balanced"]
Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
ArtifactFormat = Literal["keras", "h5", "weights", "savedmodel", "tflite", "tflite_quant"]


def default_artifacts() -> list[ArtifactFormat]:
    return ["keras"]


# formats only TensorFlow can write (model.export and the TFLite converter)
TENSORFLOW_ARTIFACTS = frozenset({"savedmodel", "tflite", "tflite_quant"})


# --- cross-field rules ----------------------------------------------------------------------


def check_recipes(spec: ExperimentSpec) -> None:
    """Raise ValueError when the parts of a spec cannot work together."""
    _check_schedule(spec)
    _check_focal_output(spec)
    _check_class_weight(spec)
    duplicates = sorted({a for a in spec.artifacts if spec.artifacts.count(a) > 1})
    if duplicates:
        raise ValueError(f"artifacts: {', '.join(duplicates)} listed more than once")


def _check_schedule(spec: ExperimentSpec) -> None:
    schedule = spec.compile.optimizer.schedule
    if schedule is None:
        return
    if any(cb.type == "ReduceLROnPlateau" for cb in spec.callbacks):
        raise ValueError(
            "compile.optimizer.schedule and the ReduceLROnPlateau callback both set the "
            "learning rate; use one of them"
        )
    if isinstance(schedule, WarmupScheduleSpec) and schedule.then == "constant":
        given = [k for k in ("decay_steps", "alpha") if getattr(schedule, k) is not None]
        if given:
            raise ValueError(
                f"compile.optimizer.schedule: {' and '.join(given)} apply to then: cosine only"
            )


def _check_focal_output(spec: ExperimentSpec) -> None:
    """What can be seen statically: the units and activation of an explicit output layer."""
    loss = spec.compile.loss
    if isinstance(loss, FocalLossSpec):
        from_logits, kind = loss.from_logits, "focal loss"
    elif loss in FOCAL_LOSS_NAMES:
        from_logits, kind = False, str(loss)
    else:
        return
    units, activation = _output_head(spec.model.layers or [])
    if units is None:
        return
    num_classes = _num_classes(spec)
    want = "linear" if from_logits else None
    if units == 1:
        if loss == "categorical_focal_crossentropy":
            raise ValueError(f"{kind} needs one output unit per class, not a single unit")
        if num_classes is not None and num_classes != 2:
            raise ValueError(
                f"{kind} with a single output unit is binary, but dataset "
                f"{spec.dataset.name!r} has {num_classes} classes: end with Dense({num_classes}, "
                "softmax) for categorical focal loss"
            )
        want = want or "sigmoid"
    else:
        if loss == "binary_focal_crossentropy":
            raise ValueError(f"{kind} needs a single sigmoid output unit, not {units} units")
        if num_classes is not None and units != num_classes:
            raise ValueError(
                f"{kind}: the output layer has {units} units but dataset "
                f"{spec.dataset.name!r} has {num_classes} classes"
            )
        want = want or "softmax"
    if (activation or "linear") != want:
        what = "logits (from_logits: true)" if from_logits else "probabilities"
        raise ValueError(
            f"{kind} expects {what}: the output layer's activation must be {want}, "
            f"not {activation or 'linear'}"
        )


def _output_head(layers: list[LayerSpec]) -> tuple[int | None, str | None]:
    """Units and activation of a model ending in Dense (optionally + Activation)."""
    if not layers:
        return None, None
    last, activation = layers[-1], None
    if last.type == "Activation" and len(layers) > 1:
        activation = last.arguments.get("activation")
        last = layers[-2]
        if last.type != "Dense":
            return None, None
        if last.arguments.get("activation") not in (None, "linear"):
            return None, None  # two activations in a row: nothing simple to check
    elif last.type == "Dense":
        activation = last.arguments.get("activation")
    else:
        return None, None
    units = last.arguments.get("units")
    return (units if isinstance(units, int) else None), activation


def _check_class_weight(spec: ExperimentSpec) -> None:
    weights = spec.fit.class_weight
    if not isinstance(weights, dict):
        return
    if not weights:
        raise ValueError("fit.class_weight: give a weight per class index, or 'balanced'")
    if not any(w > 0 for w in weights.values()):
        raise ValueError("fit.class_weight: at least one weight must be above 0")
    num_classes = _num_classes(spec)
    bad = sorted(k for k in weights if k < 0 or (num_classes is not None and k >= num_classes))
    if bad:
        limit = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(
            f"fit.class_weight: class indices {bad} are out of range for dataset "
            f"{spec.dataset.name!r} ({limit})"
        )


def _num_classes(spec: ExperimentSpec) -> int | None:
    try:
        value: Any = spec.dataset.num_classes
    except (KeyError, AttributeError, TypeError, ValueError):
        return None
    return value if isinstance(value, int) and value > 0 else None
