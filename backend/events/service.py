"""Append to and read from a run's event log.

A reader resumes "after id N" (SSE Last-Event-ID, the live feeds), so a run's events must
become visible in id order. PostgreSQL hands out ids when a row is inserted, not when it
commits: two requests writing events for one run at once (a flusher batch and an artifact
upload) could commit id 101 before 100, and a reader that saw 101 would never see 100. So on
PostgreSQL an append takes a per-run transaction lock first: the next writer of that run gets
its id only once the previous one has committed. (SQLite has one writer at a time anyway.)

Once committed, each new event is published to the run's live viewers whole (its SSE text,
its id and the id of the run's event before it), so a live feed appends it without reading
SQL; a feed that sees a gap (a message lost, or two writers' messages crossing) reads SQL."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.orm import Session

from backend.db.session import json_text
from backend.db.upsert import insert_ignore_returning
from backend.events import bus
from backend.events.models import RunEvent
from backend.jsonpolicy import strict

_PENDING = "fitboard.runs_with_new_events"
_CANCELS = "fitboard.runs_to_cancel"
_LOCKED = "fitboard.runs_event_locked"
_NEW = "fitboard.new_events"  # session.info: (run_id, bus.Published) to send once committed
_LAST = "fitboard.last_event_ids"  # session.info: each run's newest event id in this transaction
# the first key of pg_advisory_xact_lock(int, int) for a run's event log (the second: run id)
_EVENT_LOCK_CLASS = 0x0FB0E7


def _in_id_order(session: Session, run_id: int) -> None:
    """Hold the run's event lock until this transaction ends (PostgreSQL), once per run."""
    locked = session.info.setdefault(_LOCKED, set())
    if run_id in locked or session.get_bind().dialect.name != "postgresql":
        return
    session.execute(
        text("SELECT pg_advisory_xact_lock(:cls, :key)"),
        {"cls": _EVENT_LOCK_CLASS, "key": run_id % 2**31},
    )
    locked.add(run_id)


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
    _in_id_order(session, run_id)
    stored = data if finite else strict(data)
    new_id = insert_ignore_returning(
        session,
        RunEvent.__table__,  # type: ignore[arg-type]
        {"run_id": run_id, "uid": uid or uuid.uuid4().hex, "kind": kind, "data": stored},
        RunEvent.id,
    )
    session.info.setdefault(_PENDING, set()).add(run_id)
    if new_id is None:  # a retried uid: nothing new
        return
    # the run's event before this one: under the run's event lock (or SQLite's one writer)
    # every earlier event of the run is committed or in this transaction; read once per run
    # and transaction, then remembered
    last = session.info.setdefault(_LAST, {})
    prev = last.get(run_id)
    if prev is None:
        prev = session.scalar(
            select(func.max(RunEvent.id)).where(RunEvent.run_id == run_id, RunEvent.id < new_id)
        )
    last[run_id] = int(new_id)
    session.info.setdefault(_NEW, []).append(
        (run_id, bus.Published(int(new_id), int(prev or 0), kind, sse_text(new_id, kind, stored)))
    )


def sse_text(event_id: int, kind: str, data: Any) -> str:
    """An event as Server-Sent Events text (stored data is strict JSON already)."""
    return f"id: {event_id}\nevent: {kind}\ndata: {json_text(data)}\n\n"


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
    published: dict[int, list[bus.Published]] = {}
    for run_id, new in session.info.pop(_NEW, ()):
        published.setdefault(run_id, []).append(new)
    for run_id in session.info.pop(_PENDING, ()):
        bus.notify(run_id, published.get(run_id, ()))
    for run_id in session.info.pop(_CANCELS, ()):
        bus.publish_cancel(run_id)
    session.info.pop(_LOCKED, None)  # a transaction lock ends with its transaction
    session.info.pop(_LAST, None)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_NEW, None)
    session.info.pop(_CANCELS, None)
    session.info.pop(_LOCKED, None)
    session.info.pop(_LAST, None)


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
