"""Early stopping of a sweep's losing trials, decided from the other trials' epoch values.

- median: ``{"kind": "median", "warmup_epochs": n, "min_trials": k}``: after epoch n, a trial
  whose objective at epoch e is worse than the median of the other trials' values at epoch e
  (at least k of them) is stopped.
- asha: ``{"kind": "asha", "min_epochs": r, "reduction_factor": f}``: at each rung (epochs
  r, r*f, r*f^2, ...) a trial goes on only when it is in the best 1/f of the trials that reached
  that rung (itself included), as Optuna's successive-halving pruner rules.

The worker's training process asks ``decide`` at each epoch end, off its training thread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.metrics.models import MetricPoint
from backend.runs.models import Run
from backend.sweeps.models import Sweep


@dataclass(frozen=True)
class Rule:
    """The pruner of a trial's sweep, as the training process needs it."""

    sweep_id: int
    objective: str
    maximize: bool
    pruner: dict[str, Any]


def rule_for(session: Session, *, run_id: int) -> Rule | None:
    """The pruning rule of the run's sweep; None for a run that is no pruned sweep's trial."""
    row = session.execute(
        select(Sweep.id, Sweep.objective, Sweep.direction, Sweep.pruner)
        .join(Run, Run.sweep_id == Sweep.id)
        .where(Run.id == run_id)
    ).first()
    if row is None or not row.pruner:
        return None
    return Rule(
        sweep_id=row.id,
        objective=row.objective,
        maximize=row.direction == "maximize",
        pruner=dict(row.pruner),
    )


def _worse(value: float, than: float, *, maximize: bool) -> bool:
    if math.isnan(value):
        return True
    return value < than if maximize else value > than


def median_rule(
    pruner: Mapping[str, Any], *, epoch: int, value: float, others: Sequence[float], maximize: bool
) -> str | None:
    warmup = int(pruner.get("warmup_epochs", 0))
    min_trials = max(1, int(pruner.get("min_trials", 1)))
    if epoch <= warmup or len(others) < min_trials:
        return None
    median = statistics.median(others)
    if not _worse(value, median, maximize=maximize):
        return None
    return f"worse than median {median:.4g} of {len(others)} trials"


def asha_rungs(pruner: Mapping[str, Any], up_to: int) -> list[int]:
    first = max(1, int(pruner.get("min_epochs", 1)))
    factor = max(2, int(pruner.get("reduction_factor", 3)))
    rungs, rung = [], first
    while rung <= up_to:
        rungs.append(rung)
        rung *= factor
    return rungs


def asha_rule(
    pruner: Mapping[str, Any], *, epoch: int, value: float, others: Sequence[float], maximize: bool
) -> str | None:
    if epoch not in asha_rungs(pruner, epoch):
        return None
    factor = max(2, int(pruner.get("reduction_factor", 3)))
    if len(others) + 1 < max(1, int(pruner.get("min_trials", 1))):
        return None
    competing = sorted([*others, value], reverse=maximize)
    if math.isnan(value):
        return f"not a number at rung epoch {epoch}"
    cutoff = competing[max(len(competing) // factor - 1, 0)]
    if not _worse(value, cutoff, maximize=maximize):
        return None
    return (
        f"not in the best 1/{factor} of {len(competing)} trials at this rung (cut-off {cutoff:.4g})"
    )


def decide(session: Session, *, rule: Rule, run_id: int, epoch: int, value: float) -> str | None:
    """Why the trial should stop after this epoch (1-based), or None to let it go on."""
    others = [
        float(v or 0.0)  # NULLs are filtered out below
        for v in session.scalars(
            select(MetricPoint.value)
            .join(Run, Run.id == MetricPoint.run_id)
            .where(
                Run.sweep_id == rule.sweep_id,
                Run.id != run_id,
                MetricPoint.key == rule.objective,
                MetricPoint.step == epoch,
                MetricPoint.value.is_not(None),
            )
        )
    ]
    kind = rule.pruner.get("kind")
    check = median_rule if kind == "median" else asha_rule if kind == "asha" else None
    if check is None:
        return None
    why = check(rule.pruner, epoch=epoch, value=value, others=others, maximize=rule.maximize)
    if why is None:
        return None
    return f"pruned at epoch {epoch}: {rule.objective} {value:.4g} {why}"
