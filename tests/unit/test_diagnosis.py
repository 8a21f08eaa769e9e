"""diagnose(): the pure over/underfitting rules on hand-made epoch histories."""

from __future__ import annotations

from typing import Any

import pytest

from worker.trainer import diagnosis
from worker.trainer.diagnosis import (
    GAP,
    GAP_THRESHOLD,
    OVERFIT_EPOCHS,
    OVERFITTING,
    UNDERFIT_MIN_EPOCHS,
    UNDERFITTING,
    DiagnosisCallback,
    Finding,
    accuracy_floor,
    diagnose,
)


def _history(loss: list[float], val_loss: list[float], **series: list[float]) -> list[dict]:
    out: list[dict[str, float]] = []
    for i, (lo, vl) in enumerate(zip(loss, val_loss, strict=True)):
        logs = {"loss": lo, "val_loss": vl}
        logs.update({k: v[i] for k, v in series.items()})
        out.append(logs)
    return out


def _kinds(history: list[dict[str, Any]], **kwargs: Any) -> set[str]:
    return {f.kind for f in diagnose(history, **kwargs)}


def test_good_training_raises_nothing() -> None:
    loss = [1.0, 0.6, 0.4, 0.3, 0.25, 0.22, 0.2]
    history = _history(
        loss, [1.1, 0.7, 0.5, 0.4, 0.35, 0.33, 0.32],
        accuracy=[0.6, 0.8, 0.88, 0.9, 0.92, 0.93, 0.94],
        val_accuracy=[0.58, 0.78, 0.86, 0.88, 0.9, 0.9, 0.91],
    )  # fmt: skip
    for n in range(1, len(history) + 1):
        assert diagnose(history[:n], num_classes=10) == []


def test_overfitting_needs_k_epochs_of_rising_val_loss_and_falling_loss() -> None:
    assert OVERFIT_EPOCHS == 3
    loss = [1.0, 0.8, 0.6, 0.5, 0.4]
    rising_twice = _history(loss, [1.0, 0.8, 0.7, 0.75, 0.8])
    assert OVERFITTING not in _kinds(rising_twice)
    rising_three = _history([*loss, 0.3], [1.0, 0.8, 0.7, 0.75, 0.8, 0.9])
    (finding,) = [f for f in diagnose(rising_three) if f.kind == OVERFITTING]
    assert finding.epoch == 6
    assert "3 epochs" in finding.message and "0.7 -> 0.9" in finding.message
    assert "a smaller model (fewer layers or units)" in finding.remedies
    assert any("Dropout" in r for r in finding.remedies)
    assert any("augmentation" in r for r in finding.remedies)
    # training loss rising too is not overfitting (it is just training badly)
    both_rise = _history([1.0, 0.8, 0.7, 0.8, 0.9, 1.0], [1.0, 0.8, 0.7, 0.75, 0.8, 0.9])
    assert OVERFITTING not in _kinds(both_rise)


def test_generalization_gap_above_the_threshold() -> None:
    assert pytest.approx(0.1) == GAP_THRESHOLD
    at = _history([0.5], [0.6], accuracy=[0.90], val_accuracy=[0.81])
    assert GAP not in _kinds(at)
    over = _history([0.5], [0.6], accuracy=[0.95], val_accuracy=[0.80])
    (finding,) = diagnose(over)
    assert finding.kind == GAP and finding.epoch == 1
    assert "0.150 above validation accuracy 0.800" in finding.message
    # other accuracy names count too
    binary = _history([0.5], [0.6], binary_accuracy=[0.99], val_binary_accuracy=[0.7])
    assert _kinds(binary) == {GAP}


def test_underfitting_when_both_accuracies_stay_low() -> None:
    floor = accuracy_floor(10)
    assert floor == pytest.approx(0.1 + 0.3 * 0.9)
    low = [0.2, 0.25, 0.3, 0.3, 0.31]
    history = _history([2.3, 2.2, 2.1, 2.0, 1.9], [2.3, 2.2, 2.1, 2.0, 1.9],
                       accuracy=low, val_accuracy=low)  # fmt: skip
    assert UNDERFITTING not in _kinds(history[:4], num_classes=10)  # too early to tell
    (finding,) = diagnose(history, num_classes=10)
    assert finding.kind == UNDERFITTING and finding.epoch == UNDERFIT_MIN_EPOCHS
    assert "a bigger model (more layers or units)" in finding.remedies
    assert "train longer (more epochs)" in finding.remedies
    assert "another learning rate" in finding.remedies
    # one good epoch in the window: not "stayed low"
    recovering = _history([2.3, 2.2, 2.1, 2.0, 1.9], [2.3, 2.2, 2.1, 2.0, 1.9],
                          accuracy=[*low[:4], 0.5], val_accuracy=[*low[:4], 0.5])  # fmt: skip
    assert UNDERFITTING not in _kinds(recovering, num_classes=10)
    # binary: the floor is relative to chance (0.5)
    assert accuracy_floor(2) == pytest.approx(0.65)


def test_underfitting_when_the_loss_barely_moves_without_accuracy() -> None:
    flat = _history([1.00, 0.995, 0.99, 0.99, 0.985], [1.0, 1.0, 1.0, 1.0, 1.0])
    (finding,) = diagnose(flat)
    assert finding.kind == UNDERFITTING and "barely moved" in finding.message
    moving = _history([1.0, 0.8, 0.6, 0.5, 0.45], [1.0, 0.8, 0.6, 0.5, 0.45])
    assert diagnose(moving) == []
    # with a high accuracy logged, a flat loss means converged, not underfit
    converged = _history([0.05] * 5, [0.06] * 5, accuracy=[0.99] * 5, val_accuracy=[0.98] * 5)
    assert diagnose(converged, num_classes=10) == []
    # also without a validation split
    no_val = [{"loss": 0.05, "accuracy": 0.99} for _ in range(5)]
    assert diagnose(no_val, num_classes=10) == []
    stuck = [{"loss": 2.0 - i / 10, "accuracy": 0.2} for i in range(5)]
    (finding,) = diagnose(stuck, num_classes=10)
    assert finding.kind == UNDERFITTING
    assert finding.message == "accuracy stayed below 0.37 for 5 epochs (now 0.200)"


def test_nan_and_missing_values_are_ignored() -> None:
    assert diagnose([]) == []
    history = _history([1.0, float("nan"), 0.5, 0.4, 0.3], [1.0, 1.1, 1.2, 1.3, 1.4])
    assert OVERFITTING not in _kinds(history)
    no_val = [{"loss": 1.0 - i / 10, "accuracy": 0.99} for i in range(6)]
    assert diagnose(no_val) == []


def test_callback_reports_each_kind_once() -> None:
    found: list[Finding] = []
    callback = DiagnosisCallback(found.append, num_classes=10)
    for epoch in range(8):
        callback.on_epoch_end(
            epoch,
            {"loss": 1.0 / (epoch + 1), "val_loss": 1.0 + epoch, "accuracy": 0.99,
             "val_accuracy": 0.5},
        )  # fmt: skip
    assert [(f.kind, f.epoch) for f in found] == [(GAP, 1), (OVERFITTING, 4)]
    assert found[0].event() == {
        "epoch": 1,
        "kind": GAP,
        "message": found[0].message,
        "remedies": diagnosis.OVERFIT_REMEDIES,
    }
