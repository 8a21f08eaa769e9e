"""Keep max_concurrent trials of each running sweep in flight, never more.

``fill_slots`` is the sweep's one SQL-guarded "let go next": it locks the sweep row, counts the
trials in flight (running, or queued and already let go), and admits the next queued trials
for the free slots (stamping admitted_at in the same transaction). It sends nothing itself: an
admitted trial waits in the queue like any run, and the dispatcher (backend.runqueue) sends it
in the queue's order (priority, fair share between launchers, age) once the fleet has room, on
the worker it books for it. Two trials finishing at once serialise on the sweep row, so they
never over-admit. It runs when a trial finishes (runs.finish, a queued trial cancelled) and
every few seconds from the API's housekeeping (``top_up``), which also marks sweeps finished.

Imports the runs' models, never runs.service (which calls in here).
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.runs import hooks as run_hooks
from backend.runs.models import FINISHED_STATUSES, Run, RunStatus
from backend.sweeps import hooks, space, strategies, trials
from backend.sweeps.models import Sweep, SweepStatus

log = logging.getLogger(__name__)

_FINISHED = [s.value for s in FINISHED_STATUSES]


def counts(session: Session, *, sweep_id: int) -> dict[str, int]:
    """Trials per status, plus 'created' and 'in_flight' (running, or queued and let go)."""
    rows = session.execute(
        select(
            Run.status,
            func.count(),
            func.sum(case((Run.admitted_at.is_not(None), 1), else_=0)),
        )
        .where(Run.sweep_id == sweep_id)
        .group_by(Run.status)
    ).all()
    out = {s.value: 0 for s in RunStatus}
    admitted_queued = 0
    for status, n, admitted in rows:
        out[str(status)] = int(n)
        if status == RunStatus.queued.value:
            admitted_queued = int(admitted or 0)
    out["created"] = sum(int(n) for _, n, _ in rows)
    out["in_flight"] = out[RunStatus.running.value] + admitted_queued
    return out


def _bayesian_history(session: Session, sweep: Sweep) -> list[strategies.PastTrial]:
    from backend.metrics.models import LatestMetric

    rows = session.execute(
        select(Run.trial_params, Run.status, LatestMetric.value)
        .outerjoin(
            LatestMetric,
            and_(LatestMetric.run_id == Run.id, LatestMetric.key == sweep.objective),
        )
        .where(Run.sweep_id == sweep.id)
        .order_by(Run.trial_number)
    ).all()
    return [
        strategies.PastTrial(params=dict(p or {}), status=str(s), objective=v) for p, s, v in rows
    ]


def _create_bayesian(session: Session, sweep: Sweep, *, count: int) -> None:
    dims = space.parse_space(sweep.space)
    history = _bayesian_history(session, sweep)
    points = strategies.ask(dims, history, direction=sweep.direction, seed=sweep.seed, count=count)
    first = trials.next_number(session, sweep_id=sweep.id)
    made = []
    for offset, params in enumerate(points):
        try:
            spec = space.validate_point(sweep.base_spec, dims, params)
        except Exception as exc:  # bounds were checked up front; a point between them failed
            log.warning(
                "sweep %s: asked params %s give an invalid spec (%s)", sweep.id, params, exc
            )
            continue
        made.append((first + offset, params, spec))
    trials.insert_trials(session, sweep=sweep, trials=made)


def fill_slots(session: Session, *, sweep_id: int) -> list[int]:
    """Let the next queued trials go for the sweep's free slots: the dispatcher sends them in
    the queue's order once the caller commits and the fleet has room."""
    sweep = session.scalar(select(Sweep).where(Sweep.id == sweep_id).with_for_update())
    if sweep is None or sweep.status != SweepStatus.running.value:
        return []
    found = counts(session, sweep_id=sweep_id)
    free = sweep.max_concurrent - found["in_flight"]
    waiting = found[RunStatus.queued.value] - (found["in_flight"] - found[RunStatus.running.value])
    if sweep.strategy == "bayesian" and free > 0:
        more = min(free - waiting, sweep.max_trials - found["created"])
        if more > 0:
            _create_bayesian(session, sweep, count=more)
            found = counts(session, sweep_id=sweep_id)
    done = sum(found[s] for s in _FINISHED)
    if found["created"] and done == found["created"]:
        if sweep.strategy != "bayesian" or found["created"] >= sweep.max_trials:
            # an UPDATE statement, not an ORM flush: a failed flush would poison the caller's
            # session (this runs inside runs.finish's transaction)
            session.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id)
                .values(status=SweepStatus.finished.value, finished_at=utcnow())
            )
            log.info("sweep %s: finished (%s trials)", sweep_id, done)
            hooks.sweep_ended(session, sweep_id)
        return []
    if free <= 0:
        return []
    # SKIP LOCKED: a trial another transaction is cancelling is not waited for (no deadlock)
    picked = list(
        session.scalars(
            select(Run.id)
            .where(
                Run.sweep_id == sweep_id,
                Run.status == RunStatus.queued.value,
                Run.admitted_at.is_(None),
            )
            .order_by(Run.trial_number)
            .limit(free)
            .with_for_update(skip_locked=True)
        )
    )
    if picked:
        session.execute(
            update(Run)
            .where(Run.id.in_(picked))
            .values(admitted_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        run_hooks.queue_changed(session)
    return picked


def trial_finished(session: Session, *, sweep_id: int) -> None:
    """A trial ended: hand its slot to the next one. Never fails the caller's transaction."""
    session.flush()
    # a savepoint on the connection, not Session.begin_nested(): that one's commit fires the
    # session's after_commit hooks (live events, dispatches) before the caller's real commit
    savepoint = session.connection().begin_nested()
    try:
        fill_slots(session, sweep_id=sweep_id)
        savepoint.commit()
    except Exception:
        savepoint.rollback()
        session.expire_all()  # everything was flushed before the savepoint
        # the housekeeping top-up lets it go within seconds instead
        log.exception("sweep %s: could not let the next trial go", sweep_id)


def running_sweeps(session: Session) -> list[int]:
    return list(session.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.running.value)))


def top_up() -> None:
    """The housekeeping safety net: fill every running sweep's free slots and mark finished
    ones (a trial let go whose message got lost is sent again like any run: housekeeping)."""
    from backend.db.session import session_scope

    with session_scope() as session:
        sweep_ids = running_sweeps(session)
    for sweep_id in sweep_ids:
        try:
            with session_scope() as session:
                fill_slots(session, sweep_id=sweep_id)
        except Exception:  # one broken sweep must not starve the others
            log.exception("sweep %s: top-up failed", sweep_id)
