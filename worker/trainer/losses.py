"""The spec's loss: a Keras loss name as is, or focal loss chosen by the model's output."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from backend.spec import ExperimentSpec
from backend.spec.recipes import FocalLossSpec

# CategoricalFocalCrossentropy multiplies every class's term by alpha; 1.0 leaves it as is
CATEGORICAL_FOCAL_DEFAULT_ALPHA = 1.0


def make_loss(spec: ExperimentSpec, model: keras.Model) -> str | keras.losses.Loss:
    """Binary focal loss for a single output unit, categorical focal loss for several."""
    loss = spec.compile.loss
    if not isinstance(loss, FocalLossSpec):
        return loss
    if int(model.output_shape[-1] or 1) == 1:
        return keras.losses.BinaryFocalCrossentropy(
            gamma=loss.gamma,
            alpha=loss.alpha if loss.alpha is not None else 0.25,
            apply_class_balancing=loss.alpha is not None,
            from_logits=loss.from_logits,
        )
    # targets are one-hot encoded for it by build.prepare_targets (the loss is not sparse)
    return keras.losses.CategoricalFocalCrossentropy(
        gamma=loss.gamma,
        alpha=loss.alpha if loss.alpha is not None else CATEGORICAL_FOCAL_DEFAULT_ALPHA,
        from_logits=loss.from_logits,
    )


def balanced_class_weight(y: np.ndarray) -> dict[int, float]:
    """scikit-learn's "balanced" weights: n_samples / (n_classes * count) per present class."""
    labels = np.asarray(y).reshape(len(y), -1)
    labels = np.argmax(labels, axis=-1) if labels.shape[-1] > 1 else labels[:, 0]
    classes, counts = np.unique(labels.astype(np.int64), return_counts=True)
    total = float(counts.sum())
    return {int(c): total / (len(classes) * float(n)) for c, n in zip(classes, counts, strict=True)}


def class_weight(spec: ExperimentSpec, y_train: np.ndarray) -> dict[int, float] | None:
    """fit()'s class_weight: the spec's dict, or balanced weights from the training labels."""
    given: Any = spec.fit.class_weight
    if given is None:
        return None
    if given == "balanced":
        return balanced_class_weight(y_train)
    return {int(k): float(v) for k, v in given.items()}
