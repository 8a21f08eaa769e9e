"""Over- and underfitting, diagnosed from the epoch history as the run trains.

``diagnose`` is pure (a list of epoch logs in, findings out); ``DiagnosisCallback`` runs it
after every epoch and reports each kind of finding once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import keras

# overfitting: val_loss rose while loss fell, this many epochs in a row
OVERFIT_EPOCHS = 3
# generalization gap: training accuracy above validation accuracy by more than this
GAP_THRESHOLD = 0.1
# underfitting is judged only after this many epochs ...
UNDERFIT_MIN_EPOCHS = 5
# ... when both accuracies stayed below chance + this share of the way from chance to 1
UNDERFIT_ACCURACY_MARGIN = 0.3
# ... or, for runs that log no accuracy, when the training loss fell by less than this
# fraction of its first value (with an accuracy logged, a flat loss may just mean converged)
UNDERFIT_MIN_LOSS_DROP = 0.02
# floor used when the number of classes is unknown
UNDERFIT_ACCURACY_FLOOR = 0.5

OVERFITTING, GAP, UNDERFITTING = "overfitting", "generalization_gap", "underfitting"

# the remedies the Keras tutorial names for each diagnosis
OVERFIT_REMEDIES = [
    "more training data, or data augmentation",
    "Dropout layers (or a higher rate)",
    "L2 weight regularisation (kernel_regularizer)",
    "early stopping (EarlyStopping with restore_best_weights)",
    "a smaller model (fewer layers or units)",
]
UNDERFIT_REMEDIES = [
    "a bigger model (more layers or units)",
    "train longer (more epochs)",
    "less regularisation (lower Dropout rates or L2 factors)",
    "another learning rate",
]
REMEDIES = {OVERFITTING: OVERFIT_REMEDIES, GAP: OVERFIT_REMEDIES, UNDERFITTING: UNDERFIT_REMEDIES}

_ACCURACY_KEYS = (
    "accuracy",
    "sparse_categorical_accuracy",
    "categorical_accuracy",
    "binary_accuracy",
)


@dataclass(frozen=True)
class Finding:
    epoch: int  # 1-based, like the epoch metrics' step
    kind: str
    message: str
    remedies: list[str]

    def event(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "kind": self.kind,
            "message": self.message,
            "remedies": list(self.remedies),
        }


def diagnose(
    history: Sequence[Mapping[str, float]], *, num_classes: int | None = None
) -> list[Finding]:
    """What the epoch logs so far (oldest first) say about the last epoch."""
    epoch = len(history)
    if epoch == 0:
        return []
    found: list[Finding] = []

    losses, val_losses = _series(history, "loss"), _series(history, "val_loss")
    if losses and val_losses and epoch > OVERFIT_EPOCHS:
        recent = range(epoch - OVERFIT_EPOCHS, epoch)
        if all(val_losses[i] > val_losses[i - 1] and losses[i] < losses[i - 1] for i in recent):
            found.append(
                _finding(
                    epoch,
                    OVERFITTING,
                    f"validation loss rose while training loss fell for {OVERFIT_EPOCHS} epochs "
                    f"in a row ({val_losses[epoch - OVERFIT_EPOCHS - 1]:.4g} -> "
                    f"{val_losses[-1]:.4g})",
                )
            )

    key = _accuracy_key(history[-1])
    if key is not None:
        acc, val_acc = history[-1][key], history[-1]["val_" + key]
        if acc - val_acc > GAP_THRESHOLD:
            found.append(
                _finding(
                    epoch,
                    GAP,
                    f"training accuracy {acc:.3f} is {acc - val_acc:.3f} above validation "
                    f"accuracy {val_acc:.3f} (more than {GAP_THRESHOLD})",
                )
            )

    if epoch >= UNDERFIT_MIN_EPOCHS:
        message = _underfit_message(history, num_classes)
        if message:
            found.append(_finding(epoch, UNDERFITTING, message))
    return found


def accuracy_floor(num_classes: int | None) -> float:
    if not num_classes or num_classes < 2:
        return UNDERFIT_ACCURACY_FLOOR
    chance = 1.0 / num_classes
    return chance + UNDERFIT_ACCURACY_MARGIN * (1.0 - chance)


def _underfit_message(
    history: Sequence[Mapping[str, float]], num_classes: int | None
) -> str | None:
    key = _accuracy_key(history[-1], validation=False)
    if key is not None:
        floor = accuracy_floor(num_classes)
        window = history[-UNDERFIT_MIN_EPOCHS:]
        # a validation accuracy counts where the run has one
        keys = [key, "val_" + key] if _finite(history[-1].get("val_" + key)) else [key]
        if all(_finite(logs.get(k)) and logs[k] < floor for logs in window for k in keys):
            now = " and ".join(f"{history[-1][k]:.3f}" for k in keys)
            which = "training and validation accuracy" if len(keys) == 2 else "accuracy"
            return f"{which} stayed below {floor:.2f} for {UNDERFIT_MIN_EPOCHS} epochs (now {now})"
        return None
    losses = _series(history, "loss")
    if losses and abs(losses[0]) > 0 and all(_finite(v) for v in (losses[0], losses[-1])):
        drop = (losses[0] - losses[-1]) / abs(losses[0])
        if drop < UNDERFIT_MIN_LOSS_DROP:
            return (
                f"training loss barely moved in {len(losses)} epochs ({losses[0]:.4g} -> "
                f"{losses[-1]:.4g}, {drop:.1%})"
            )
    return None


def _finding(epoch: int, kind: str, message: str) -> Finding:
    return Finding(epoch=epoch, kind=kind, message=message, remedies=list(REMEDIES[kind]))


def _series(history: Sequence[Mapping[str, float]], key: str) -> list[float]:
    """The key's values per epoch, or [] unless every epoch has a finite one."""
    values = [logs.get(key) for logs in history]
    if any(v is None or not _finite(v) for v in values):
        return []
    return [float(v) for v in values if v is not None]


def _accuracy_key(logs: Mapping[str, float], *, validation: bool = True) -> str | None:
    """The accuracy the run logs (with its validation twin, unless validation=False)."""
    for key in _ACCURACY_KEYS:
        if _finite(logs.get(key)) and (not validation or _finite(logs.get("val_" + key))):
            return key
    return None


def _finite(value: Any) -> bool:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return number == number and abs(number) != float("inf")


class DiagnosisCallback(keras.callbacks.Callback):
    """Runs ``diagnose`` after each epoch and emits each kind of finding once."""

    def __init__(self, emit: Callable[[Finding], None], *, num_classes: int | None = None) -> None:
        super().__init__()
        self._emit = emit
        self._num_classes = num_classes
        self.history: list[dict[str, float]] = []
        self.reported: dict[str, Finding] = {}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.history.append({k: float(v) for k, v in (logs or {}).items() if _finite(v)})
        for finding in diagnose(self.history, num_classes=self._num_classes):
            if finding.kind not in self.reported:
                self.reported[finding.kind] = finding
                self._emit(finding)
