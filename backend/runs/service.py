"""Runs: create, read, list, and every status transition (each one also a live event)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from backend import dispatch
from backend.db.base import utcnow
from backend.errors import Conflict, InvalidInput, NotFound
from backend.events import service as events
from backend.runs.models import Run, RunStatus
from backend.spec import PRESETS, resolve_spec
from backend.spec.presets import UnknownPreset

TRACEBACK_TAIL_CHARS = 8000


def status_event(run: Run) -> dict[str, Any]:
    """What a live viewer needs to redraw the header when a run changes state."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "worker_host": run.worker_host,
        "failure_reason": run.failure_reason,
        "cancel_requested": run.cancel_requested_at is not None,
    }


def _emit_status(session: Session, run: Run) -> None:
    session.flush()
    events.append(
        session, run_id=run.id, kind="status", data=status_event(run), uid=f"status-{run.status}"
    )


def submit(
    session: Session,
    *,
    name: str,
    spec: dict[str, Any] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Run:
    """Validate, store as queued, and queue it for a worker once the caller commits."""
    try:
        resolved = resolve_spec(spec=spec, preset=preset, overrides=overrides)
    except UnknownPreset as exc:
        known = ", ".join(sorted(PRESETS))
        raise InvalidInput(f"unknown preset {exc.name!r}; known: {known}", field="preset") from exc
    run = Run(
        name=name.strip(),
        spec=resolved.model_dump(mode="json"),
        preset=preset,
        status=RunStatus.queued.value,
    )
    session.add(run)
    _emit_status(session, run)
    dispatch.dispatch_after_commit(session, run.id)
    return run


def get(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def list_page(
    session: Session, *, limit: int, before_id: int | None = None, status: str | None = None
) -> tuple[list[Run], int]:
    """Newest first; page with before_id (the cursor is the last id of the previous page)."""
    where = []
    if status is not None:
        where.append(Run.status == status)
    total = int(session.scalar(select(func.count()).select_from(Run).where(*where)) or 0)
    if before_id is not None:
        where.append(Run.id < before_id)
    runs = list(session.scalars(select(Run).where(*where).order_by(Run.id.desc()).limit(limit)))
    return runs, total


def undispatched(session: Session, *, older_than_s: float) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stmt = select(Run.id).where(
        Run.status == RunStatus.queued.value,
        Run.dispatched_at.is_(None),
        Run.created_at < cutoff,
    )
    return list(session.scalars(stmt))


def claim(session: Session, *, run_id: int, worker_host: str) -> bool:
    """queued -> running, atomically: True for exactly one caller, ever."""
    now = utcnow()
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued.value)
        .values(
            status=RunStatus.running.value,
            started_at=now,
            heartbeat_at=now,
            worker_host=worker_host,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    run = get(session, run_id)
    session.refresh(run)
    _emit_status(session, run)
    return True


def heartbeat(session: Session, *, run_id: int) -> bool:
    """Mark a running run alive; returns whether a cancel was requested."""
    session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running.value)
        .values(heartbeat_at=utcnow())
    )
    return session.scalar(select(Run.cancel_requested_at).where(Run.id == run_id)) is not None


def cancel_requested(session: Session, *, run_id: int) -> bool:
    return session.scalar(select(Run.cancel_requested_at).where(Run.id == run_id)) is not None


def request_cancel(session: Session, *, run_id: int) -> Run:
    """A queued run is cancelled now (it will never start); a running one is asked to stop."""
    run = get(session, run_id)
    if RunStatus(run.status).finished:
        raise Conflict(f"run {run_id} already {run.status}")
    now = utcnow()
    if run.cancel_requested_at is None:
        run.cancel_requested_at = now
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued.value)
        .values(status=RunStatus.cancelled.value, finished_at=now, cancel_requested_at=now)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.refresh(run)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        _emit_status(session, run)
    else:
        events.append(
            session, run_id=run.id, kind="status", data=status_event(run), uid="cancel-requested"
        )
        events.announce_cancel(session, run_id=run.id)
    return run


def finish(
    session: Session,
    *,
    run_id: int,
    status: RunStatus,
    reason: str | None = None,
    traceback: str | None = None,
) -> bool:
    """running -> succeeded | failed | cancelled; False if the run had already finished."""
    assert status.finished
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running.value)
        .values(
            status=status.value,
            finished_at=utcnow(),
            failure_reason=reason,
            failure_traceback=traceback[-TRACEBACK_TAIL_CHARS:] if traceback else None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    run = get(session, run_id)
    session.refresh(run)
    _emit_status(session, run)
    return True


def set_model_summary(session: Session, *, run_id: int, summary: dict[str, Any]) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(model_summary=summary))


def stale_running(session: Session, *, timeout_s: float) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    stmt = select(Run.id).where(Run.status == RunStatus.running.value, Run.heartbeat_at < cutoff)
    return list(session.scalars(stmt))
