"""Append to and read from a run's event log."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, event, func, select
from sqlalchemy.orm import Session

from backend.db.upsert import insert_ignore
from backend.events import bus
from backend.events.models import RunEvent
from backend.jsonpolicy import strict

_PENDING = "fitboard.runs_with_new_events"
_CANCELS = "fitboard.runs_to_cancel"


def append(
    session: Session,
    *,
    run_id: int,
    kind: str,
    data: dict[str, Any],
    uid: str | None = None,
    finite: bool = False,
) -> None:
    """Add an event; with a uid already used for this run it is a no-op (safe to retry).
    ``finite``: the caller vouches that data holds no NaN or infinity (a metrics batch, whose
    values are made storable first): it is stored without another pass over every number."""
    insert_ignore(
        session,
        RunEvent.__table__,  # type: ignore[arg-type]
        [
            {
                "run_id": run_id,
                "uid": uid or uuid.uuid4().hex,
                "kind": kind,
                "data": data if finite else strict(data),
            }
        ],
    )
    session.info.setdefault(_PENDING, set()).add(run_id)


def forget_run(session: Session, *, run_id: int, keep_kinds: tuple[str, ...] = ()) -> None:
    """Drop a run's events but those of ``keep_kinds`` (a lost attempt's batches and notes)."""
    session.execute(
        delete(RunEvent).where(RunEvent.run_id == run_id, RunEvent.kind.not_in(keep_kinds))
    )


def announce_cancel(session: Session, *, run_id: int) -> None:
    """Once committed, tell the run's training process to stop."""
    session.info.setdefault(_CANCELS, set()).add(run_id)


@event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    """Live viewers and training processes hear of changes only once they are committed."""
    for run_id in session.info.pop(_PENDING, ()):
        bus.notify(run_id)
    for run_id in session.info.pop(_CANCELS, ()):
        bus.publish_cancel(run_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_CANCELS, None)


def after(session: Session, *, run_id: int, after_id: int, limit: int = 500) -> list[RunEvent]:
    stmt = (
        select(RunEvent)
        .where(RunEvent.run_id == run_id, RunEvent.id > after_id)
        .order_by(RunEvent.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def last_id(session: Session, *, run_id: int) -> int:
    return int(session.scalar(select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id)) or 0)
