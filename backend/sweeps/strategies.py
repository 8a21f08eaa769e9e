"""Where trial params come from: every grid point, seeded random draws, or Optuna's TPE.

The bayesian strategy keeps no state between calls: each ask rebuilds an in-memory study from
the trials in the database (params, status, objective), so any process may ask, and the
scheduler's sweep row lock keeps two asks from racing.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from backend.sweeps import space
from backend.sweeps.space import Dimension, Params

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastTrial:
    params: Params
    status: str  # a RunStatus value
    objective: float | None


def initial_points(
    strategy: str,
    dims: Sequence[Dimension],
    *,
    max_trials: int,
    max_concurrent: int,
    seed: int | None,
    direction: str,
) -> list[Params]:
    """The trials created with the sweep (bayesian: only the first slots; the rest come later)."""
    if strategy == "grid":
        points: list[Params] = []
        for point in space.grid(dims):
            if len(points) >= max_trials:
                break
            points.append(point)
        return points
    if strategy == "random":
        rng = random.Random(seed)
        return [space.sample(dims, rng) for _ in range(max_trials)]
    return ask(dims, [], direction=direction, seed=seed, count=min(max_trials, max_concurrent))


def optuna_distributions(dims: Sequence[Dimension]) -> dict[str, BaseDistribution]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, BaseDistribution] = {}
    for dim in dims:
        if dim.kind == "choice":
            # by index: a choice may be a list or an object, which Optuna cannot hold
            out[dim.path] = CategoricalDistribution(list(range(len(dim.choices))))
        elif dim.kind in ("uniform", "log_uniform"):
            out[dim.path] = FloatDistribution(dim.low, dim.high, log=dim.kind == "log_uniform")
        else:
            step = int(dim.step or 1)
            high = int(dim.low) + (int(dim.high) - int(dim.low)) // step * step
            out[dim.path] = IntDistribution(
                int(dim.low), high, log=dim.kind == "int_log", step=step
            )
    return out


def to_optuna(dims: Sequence[Dimension], params: Params) -> Params | None:
    out: Params = {}
    for dim in dims:
        value = params.get(dim.path)
        if dim.kind == "choice":
            wanted = json.dumps(value, sort_keys=True)
            index = next(
                (i for i, c in enumerate(dim.choices) if json.dumps(c, sort_keys=True) == wanted),
                None,
            )
            if index is None:
                return None
            out[dim.path] = index
        elif value is None:
            return None
        else:
            out[dim.path] = value
    return out


def _from_optuna(dims: Sequence[Dimension], params: Params) -> Params:
    return {
        dim.path: dim.choices[params[dim.path]] if dim.kind == "choice" else params[dim.path]
        for dim in dims
    }


def ask(
    dims: Sequence[Dimension],
    history: Sequence[PastTrial],
    *,
    direction: str,
    seed: int | None,
    count: int,
) -> list[Params]:
    """count new params from TPE, told every past trial (unfinished ones as running)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = optuna_distributions(dims)
    sampler = optuna.samplers.TPESampler(
        seed=None if seed is None else seed + len(history),
        constant_liar=True,  # concurrent asks do not all land on the same point
        n_startup_trials=min(10, max(2, len(history) // 2 + 2)),
    )
    study = optuna.create_study(
        direction="maximize" if direction == "maximize" else "minimize", sampler=sampler
    )
    for past in history:
        params = to_optuna(dims, past.params)
        if params is None:
            continue
        if past.status == "succeeded" and past.objective is not None:
            state, value = TrialState.COMPLETE, past.objective
        elif past.status == "pruned":
            state, value = TrialState.PRUNED, None
        elif past.status in ("failed", "cancelled") or past.status == "succeeded":
            state, value = TrialState.FAIL, None
        else:
            state, value = TrialState.RUNNING, None
        study.add_trial(
            create_trial(params=params, distributions=distributions, state=state, value=value)
        )
    asked: list[Params] = []
    for _ in range(count):
        trial = study.ask(distributions)
        asked.append(_from_optuna(dims, trial.params))
    return asked


def dimension_bounds(dims: Sequence[Dimension]) -> dict[str, Any]:
    """What a page shows as the range of each dimension."""
    return {d.path: list(d.choices) if d.kind == "choice" else [d.low, d.high] for d in dims}
