"""Keep max_concurrent trials of each running sweep in flight, never more.

``fill_slots`` is the one SQL-guarded "dispatch next": it locks the sweep row, counts the trials
in flight (running, or queued and already handed to the broker), reserves the next queued trials
for the free slots (stamping dispatched_at in the same transaction) and sends them once that
commits. Two trials finishing at once serialise on the sweep row, so they never over-dispatch.
It runs when a trial finishes (runs.finish, a queued trial cancelled) and every few seconds from
the API's housekeeping (``top_up``), which also marks sweeps finished.

Imports the runs' models, never runs.service (which calls in here).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import and_, case, event, func, or_, select, update
from sqlalchemy.orm import Session

from backend import dispatch
from backend.db.base import utcnow
from backend.db.session import get_engine
from backend.notify import outbox as notify_outbox
from backend.runs.models import FINISHED_STATUSES, Run, RunStatus
from backend.sweeps import space, strategies, trials
from backend.sweeps.models import Sweep, SweepStatus

log = logging.getLogger(__name__)

_TO_SEND = "fitboard.sweep_trials_to_send"
# a reserved trial still queued after this long was probably never sent (a crash between the
# commit and the send): send it again (a second message for a run is skipped by the claim)
RESEND_AFTER_S = 600.0
_FINISHED = [s.value for s in FINISHED_STATUSES]


def _in_flight(sweep_id: int) -> object:
    return select(func.count()).where(
        Run.sweep_id == sweep_id,
        or_(
            Run.status == RunStatus.running.value,
            and_(Run.status == RunStatus.queued.value, Run.dispatched_at.is_not(None)),
        ),
    )


def counts(session: Session, *, sweep_id: int) -> dict[str, int]:
    """Trials per status, plus 'created' and 'in_flight'."""
    rows = session.execute(
        select(
            Run.status,
            func.count(),
            func.sum(case((Run.dispatched_at.is_not(None), 1), else_=0)),
        )
        .where(Run.sweep_id == sweep_id)
        .group_by(Run.status)
    ).all()
    out = {s.value: 0 for s in RunStatus}
    dispatched_queued = 0
    for status, n, dispatched in rows:
        out[str(status)] = int(n)
        if status == RunStatus.queued.value:
            dispatched_queued = int(dispatched or 0)
    out["created"] = sum(int(n) for _, n, _ in rows)
    out["in_flight"] = out[RunStatus.running.value] + dispatched_queued
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
    """Reserve the next queued trials for the free slots; they are sent after the commit."""
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
            notify_outbox.sweep_ended(session, sweep_id=sweep_id)
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
                Run.dispatched_at.is_(None),
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
            .values(dispatched_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        session.info.setdefault(_TO_SEND, []).extend(picked)
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
        session.info.pop(_TO_SEND, None)
        session.expire_all()  # everything was flushed before the savepoint
        # the housekeeping top-up dispatches it within seconds instead
        log.exception("sweep %s: could not dispatch the next trial", sweep_id)


def running_sweeps(session: Session) -> list[int]:
    return list(session.scalars(select(Sweep.id).where(Sweep.status == SweepStatus.running.value)))


def stale_reserved(session: Session, *, older_than_s: float = RESEND_AFTER_S) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    return list(
        session.scalars(
            select(Run.id).where(
                Run.sweep_id.is_not(None),
                Run.status == RunStatus.queued.value,
                Run.dispatched_at < cutoff,
            )
        )
    )


def _send(run_id: int) -> None:
    if not dispatch.dispatch(run_id):
        # not in the broker: free the reservation so the next top-up sends it again
        with get_engine().begin() as conn:
            conn.execute(
                update(Run)
                .where(Run.id == run_id, Run.status == RunStatus.queued.value)
                .values(dispatched_at=None)
            )


def send_now(run_ids: list[int]) -> None:
    for run_id in run_ids:
        _send(run_id)


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint, not the real commit
        return
    for run_id in session.info.pop(_TO_SEND, ()):
        _send(run_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_TO_SEND, None)


def top_up() -> None:
    """The housekeeping safety net: fill every running sweep's free slots, mark finished ones,
    and send again a reserved trial that never reached the broker."""
    from backend.db.session import session_scope

    with session_scope() as session:
        sweep_ids = running_sweeps(session)
        resend = stale_reserved(session)
    for sweep_id in sweep_ids:
        try:
            with session_scope() as session:
                fill_slots(session, sweep_id=sweep_id)
        except Exception:  # one broken sweep must not starve the others
            log.exception("sweep %s: top-up failed", sweep_id)
    send_now(resend)
