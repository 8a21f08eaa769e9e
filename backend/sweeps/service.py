"""Sweeps: create (validate the space, bulk-create the trials, dispatch the first slots), read,
list, cancel."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from backend.datasets import service as datasets
from backend.db.base import utcnow
from backend.errors import Conflict, InvalidInput, NotFound
from backend.events import service as events
from backend.metrics.models import LatestMetric
from backend.runs import params as run_params
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from backend.spec import PRESETS, resolve_spec
from backend.spec.presets import UnknownPreset
from backend.sweeps import hooks, scheduler, space, strategies, trials
from backend.sweeps.models import Sweep, SweepStatus
from backend.sweeps.schemas import (
    MAX_TRIALS,
    BestTrial,
    Progress,
    SweepCreate,
    SweepOut,
    SweepPreview,
    TrialOut,
)

log = logging.getLogger(__name__)

# up to this many trials, their flattened params are written with them; above it, after the
# response (backend.runs.params.index_missing) so a 1,000-trial grid answers fast
INDEX_INLINE_MAX_TRIALS = 200


def _base_spec(body: SweepCreate, session: Session) -> dict[str, Any]:
    try:
        resolved = resolve_spec(spec=body.spec, preset=body.preset, overrides=body.overrides)
    except UnknownPreset as exc:
        known = ", ".join(sorted(PRESETS))
        raise InvalidInput(f"unknown preset {exc.name!r}; known: {known}", field="preset") from exc
    datasets.check_spec(session, resolved)  # an uploaded dataset must exist
    return resolved.model_dump(mode="json")


@dataclass(frozen=True)
class Plan:
    """A checked sweep request: what create stores, and what the form's preview shows."""

    base: dict[str, Any]
    dims: list[space.Dimension]
    direction: str
    max_trials: int
    grid_points: int | None


def plan(session: Session, *, body: SweepCreate) -> Plan:
    """Resolve the base spec and check the space against it; InvalidInput names the field."""
    base = _base_spec(body, session)
    dims = space.parse_space(body.space)
    space.check_paths(dims, base)
    if body.strategy == "grid":
        space.check_gridable(dims)
        points = space.grid_size(dims)
        return Plan(
            base, dims, body.resolved_direction, min(body.max_trials or points, points), points
        )
    if body.max_trials is None:
        raise InvalidInput(
            f"max_trials: the {body.strategy} strategy needs a number of trials",
            field="max_trials",
        )
    space.check_bounds(base, dims)
    return Plan(base, dims, body.resolved_direction, body.max_trials, None)


def preview(session: Session, *, body: SweepCreate) -> SweepPreview:
    """The trial count a sweep would have, after the same checks as create; nothing is stored.

    A grid's values are checked one dimension at a time (create checks every point)."""
    checked = plan(session, body=body)
    if body.strategy == "grid":
        space.check_values(checked.base, checked.dims)
    return SweepPreview(
        trials=checked.max_trials,
        grid_points=checked.grid_points,
        direction=checked.direction,
        strategy=body.strategy,
    )


def create(session: Session, *, body: SweepCreate, user_id: int | None) -> Sweep:
    """Validate everything, then store the sweep and its trials; the first ones are sent to the
    workers once the caller commits. Nothing is stored when anything is invalid."""
    checked = plan(session, body=body)
    base, dims, direction, max_trials = (
        checked.base,
        checked.dims,
        checked.direction,
        checked.max_trials,
    )
    specs: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    if body.strategy != "bayesian":  # bayesian trials are asked for as slots free up
        points = strategies.initial_points(
            body.strategy,
            dims,
            max_trials=max_trials,
            max_concurrent=body.max_concurrent,
            seed=body.seed,
            direction=direction,
        )
        specs = [
            (number, params, space.validate_point(base, dims, params))
            for number, params in enumerate(points, start=1)
        ]
    sweep = Sweep(
        name=body.name.strip(),
        status=SweepStatus.running.value,
        preset=body.preset,
        base_spec=base,
        space=body.space,
        strategy=body.strategy,
        objective=body.objective,
        direction=direction,
        max_trials=max_trials,
        max_concurrent=body.max_concurrent,
        pruner=body.pruner.model_dump() if body.pruner else None,
        seed=body.seed,
        priority=body.priority,
        launched_by_id=user_id,
        params_indexed=len(specs) <= INDEX_INLINE_MAX_TRIALS,
    )
    session.add(sweep)
    session.flush()
    # a large sweep's flattened params (most of its rows) are written after the response:
    # the route schedules params.index_missing, and the API's housekeeping catches up
    trials.insert_trials(session, sweep=sweep, trials=specs, index_params=sweep.params_indexed)
    scheduler.fill_slots(session, sweep_id=sweep.id)
    log.info("sweep %s: created with %s trials (%s)", sweep.id, max_trials, body.strategy)
    return sweep


def index_trial_params(session: Session, *, sweep_id: int) -> int:
    """Write the run_params rows its trials were created without; how many trials it indexed."""
    indexed = run_params.index_missing(session, sweep_id=sweep_id, limit=MAX_TRIALS)
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(params_indexed=True))
    return indexed


def unindexed(session: Session) -> list[int]:
    """Sweeps whose trials' params are still to be written (an interrupted after-response job)."""
    return list(session.scalars(select(Sweep.id).where(Sweep.params_indexed.is_(False))))


def get(session: Session, sweep_id: int) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} does not exist")
    return sweep


def progress(session: Session, sweep: Sweep) -> Progress:
    found = scheduler.counts(session, sweep_id=sweep.id)
    finished = ("succeeded", "failed", "cancelled", "pruned")
    return Progress(
        total=sweep.max_trials,
        created=found["created"],
        queued=found["queued"],
        running=found["running"],
        succeeded=found["succeeded"],
        failed=found["failed"],
        cancelled=found["cancelled"],
        pruned=found["pruned"],
        done=sum(found[s] for s in finished),
    )


def best(session: Session, sweep: Sweep) -> BestTrial | None:
    """The succeeded trial with the best final objective."""
    value = LatestMetric.value
    row = session.execute(
        select(Run.id, Run.trial_number, Run.trial_params, value)
        .join(
            LatestMetric, and_(LatestMetric.run_id == Run.id, LatestMetric.key == sweep.objective)
        )
        .where(
            Run.sweep_id == sweep.id,
            Run.status == RunStatus.succeeded.value,
            value.is_not(None),
        )
        .order_by(value.desc() if sweep.direction == "maximize" else value.asc(), Run.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return BestTrial(
        run_id=row[0], trial_number=row[1] or 0, params=dict(row[2] or {}), objective=row[3]
    )


def out(session: Session, sweep: Sweep, *, with_spec: bool = False) -> SweepOut:
    return SweepOut(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        strategy=sweep.strategy,
        objective=sweep.objective,
        direction=sweep.direction,
        max_trials=sweep.max_trials,
        max_concurrent=sweep.max_concurrent,
        pruner=sweep.pruner,
        seed=sweep.seed,
        priority=sweep.priority,
        preset=sweep.preset,
        space=sweep.space,
        base_spec=sweep.base_spec if with_spec else None,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        launched_by_id=sweep.launched_by_id,
        progress=progress(session, sweep),
        best=best(session, sweep),
    )


def page(session: Session, *, limit: int, offset: int) -> tuple[list[Sweep], int]:
    """Newest first."""
    total = int(session.scalar(select(func.count()).select_from(Sweep)) or 0)
    items = session.scalars(
        select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit).offset(offset)
    )
    return list(items), total


def trial_rows(session: Session, sweep: Sweep) -> list[TrialOut]:
    rows = session.execute(
        select(Run, LatestMetric.value)
        .outerjoin(
            LatestMetric, and_(LatestMetric.run_id == Run.id, LatestMetric.key == sweep.objective)
        )
        .where(Run.sweep_id == sweep.id)
        .order_by(Run.trial_number, Run.id)
    ).all()
    return [
        TrialOut(
            run_id=run.id,
            trial_number=run.trial_number or 0,
            name=run.name,
            status=run.status,
            params=dict(run.trial_params or {}),
            objective=value,
            started_at=run.started_at,
            finished_at=run.finished_at,
            failure_reason=run.failure_reason,
        )
        for run, value in rows
    ]


def cancel(session: Session, *, sweep_id: int) -> Sweep:
    """Cancel the queued trials, ask the running ones to stop, mark the sweep cancelled.

    Trial rows first, the sweep row last: the same order as a finishing trial (its run row,
    then the sweep row in scheduler.fill_slots), so the two never deadlock.
    """
    sweep = get(session, sweep_id)
    if sweep.status != SweepStatus.running.value:
        raise Conflict(f"sweep {sweep_id} is already {sweep.status}")
    now = utcnow()
    queued = list(
        session.scalars(
            update(Run)
            .where(Run.sweep_id == sweep_id, Run.status == RunStatus.queued.value)
            .values(status=RunStatus.cancelled.value, finished_at=now, cancel_requested_at=now)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
    )
    running = list(
        session.scalars(
            select(Run.id).where(Run.sweep_id == sweep_id, Run.status == RunStatus.running.value)
        )
    )
    for run_id in running:
        with contextlib.suppress(Conflict):  # it finished meanwhile
            runs.request_cancel(session, run_id=run_id)
    for run_id in queued:
        events.append(
            session,
            run_id=run_id,
            kind="status",
            data={"status": RunStatus.cancelled.value, "finished_at": now.isoformat()},
            uid="status-cancelled",
        )
    sweep.status = SweepStatus.cancelled.value
    sweep.finished_at = now
    session.flush()
    hooks.sweep_ended(session, sweep_id)
    log.info("sweep %s: cancelled (%s queued, %s running)", sweep_id, len(queued), len(running))
    return sweep
