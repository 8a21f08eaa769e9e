"""Hyperparameter importance of a sweep: Optuna's fANOVA over its succeeded trials.

Built from the database each time (like the bayesian strategy's asks): an in-memory study told
every succeeded trial with its params and final objective. Results are kept per sweep until
another trial succeeds, so a page that polls does not refit the forest every few seconds.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from backend.metrics.models import LatestMetric
from backend.runs.models import Run, RunStatus
from backend.sweeps import space, strategies
from backend.sweeps.models import Sweep
from backend.sweeps.schemas import ImportanceOut, ParamImportance

log = logging.getLogger(__name__)

MIN_TRIALS = 5  # fewer succeeded trials than this say little about which parameter matters
_CACHE_SIZE = 64
_cache: OrderedDict[tuple[int, int, int], list[ParamImportance]] = OrderedDict()
_lock = threading.Lock()


def fanova(
    dims: Sequence[space.Dimension],
    finished: Sequence[tuple[dict[str, object], float]],
    *,
    direction: str,
) -> list[ParamImportance]:
    """Each dimension's share of the objective's variance, most important first."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances
    from optuna.trial import create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = strategies.optuna_distributions(dims)
    study = optuna.create_study(direction="maximize" if direction == "maximize" else "minimize")
    for params, value in finished:
        mapped = strategies.to_optuna(dims, params)
        if mapped is None or not math.isfinite(value):
            continue
        study.add_trial(create_trial(params=mapped, distributions=distributions, value=value))
    if len(study.trials) < 2:
        return []
    found: dict[str, float] = {}
    if len({t.value for t in study.trials}) > 1:  # fANOVA divides by the objective's variance
        found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    # a dimension with one value (or Optuna could not weigh) counts as not mattering at all
    items = [ParamImportance(param=d.path, importance=float(found.get(d.path, 0.0))) for d in dims]
    return sorted(items, key=lambda item: -item.importance)


def _succeeded(session: Session, sweep: Sweep) -> list[tuple[int, dict[str, object], float]]:
    rows = session.execute(
        select(Run.id, Run.trial_params, LatestMetric.value)
        .join(
            LatestMetric, and_(LatestMetric.run_id == Run.id, LatestMetric.key == sweep.objective)
        )
        .where(
            Run.sweep_id == sweep.id,
            Run.status == RunStatus.succeeded.value,
            LatestMetric.value.is_not(None),
        )
        .order_by(Run.id)
    ).all()
    return [(run_id, dict(params or {}), float(value)) for run_id, params, value in rows]


def of_sweep(session: Session, sweep: Sweep, *, needed: int = MIN_TRIALS) -> ImportanceOut:
    """The sweep's importance once `needed` trials succeeded; an empty list before."""
    finished = _succeeded(session, sweep)
    items: list[ParamImportance] = []
    if len(finished) >= needed:
        key = (sweep.id, len(finished), finished[-1][0])
        with _lock:
            cached = _cache.get(key)
        if cached is None:
            dims = space.parse_space(sweep.space)
            cached = fanova(dims, [(p, v) for _, p, v in finished], direction=sweep.direction)
            log.info("sweep %s: importance from %s trials", sweep.id, len(finished))
            with _lock:
                _cache[key] = cached
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
        items = cached
    return ImportanceOut(
        sweep_id=sweep.id,
        objective=sweep.objective,
        evaluator="fanova",
        finished=len(finished),
        needed=needed,
        items=items,
    )
