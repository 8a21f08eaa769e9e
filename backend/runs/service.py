"""Runs: create, read, list, edit, delete, and every status transition (each a live event)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from backend import dispatch
from backend.artifacts.store import ArtifactStore, run_prefix
from backend.datasets import service as datasets
from backend.db.base import utcnow
from backend.db.upsert import upsert
from backend.errors import Conflict, InvalidInput, NotFound
from backend.events import service as events
from backend.runs import params as run_params  # noqa: F401  (indexes specs on flush)
from backend.runs.models import Run, RunSearch, RunStatus, RunTag, build_search_text, dataset_of
from backend.spec import PRESETS, resolve_spec
from backend.spec.presets import UnknownPreset
from backend.sweeps import scheduler as sweep_scheduler

log = logging.getLogger(__name__)

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


def emit_status(session: Session, run: Run, *, uid: str | None = None) -> None:
    """The run's status event (once per status unless ``uid`` says otherwise)."""
    session.flush()
    events.append(
        session,
        run_id=run.id,
        kind="status",
        data=status_event(run),
        uid=uid or f"status-{run.status}",
    )


def submit(
    session: Session,
    *,
    name: str,
    spec: dict[str, Any] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    launched_by_id: int | None = None,
) -> Run:
    """Validate, store as queued, and queue it for a worker once the caller commits."""
    try:
        resolved = resolve_spec(spec=spec, preset=preset, overrides=overrides)
    except UnknownPreset as exc:
        known = ", ".join(sorted(PRESETS))
        raise InvalidInput(f"unknown preset {exc.name!r}; known: {known}", field="preset") from exc
    datasets.check_spec(session, resolved)  # an uploaded dataset must exist
    spec_json = resolved.model_dump(mode="json")
    run = Run(
        name=name.strip(),
        spec=spec_json,
        preset=preset,
        dataset=dataset_of(spec_json),
        status=RunStatus.queued.value,
        launched_by_id=launched_by_id,
    )
    session.add(run)
    emit_status(session, run)
    dispatch.dispatch_after_commit(session, run.id)
    return run


def get(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def edit(
    session: Session,
    *,
    run_id: int,
    name: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
) -> Run:
    """Change what people write about a run (any status); None leaves a field as it is."""
    run = get(session, run_id)
    if name is not None:
        run.name = name
    if notes is not None:
        run.notes = notes
    if tags is not None:
        # reuse the rows of tags that stay: deleting and re-adding one would collide on flush
        kept = {row.tag: row for row in run.tag_rows}
        run.tag_rows = [kept.get(tag) or RunTag(tag=tag) for tag in sorted(set(tags))]
    session.flush()
    upsert(
        session,
        RunSearch.__table__,  # type: ignore[arg-type]
        [{"run_id": run.id, "text": build_search_text(run.name, run.tags, run.notes)}],
        index_elements=["run_id"],
        update=["text"],
    )
    return run


_FILES_TO_DELETE = "fitboard.artifact_prefixes_to_delete"


def delete(session: Session, *, run_id: int, store: ArtifactStore) -> None:
    """Delete a finished run, its rows (by cascade) and, once committed, its artifact files."""
    run = get(session, run_id)
    if not RunStatus(run.status).finished:
        raise Conflict(f"run {run_id} is {run.status}: cancel it first")
    # only the finished states are deletable, so no worker is writing to it any more
    session.delete(run)
    session.flush()
    session.info.setdefault(_FILES_TO_DELETE, []).append((store, run_prefix(run_id)))
    log.info("run %s: deleted", run_id)


@event.listens_for(Session, "after_commit")
def _delete_files_after_commit(session: Session) -> None:
    # after the commit: a failed commit must not leave rows pointing at removed files
    for store, prefix in session.info.pop(_FILES_TO_DELETE, ()):
        try:
            store.delete_prefix(prefix)
        except OSError:
            log.exception("could not remove artifact files under %s", prefix)


@event.listens_for(Session, "after_rollback")
def _keep_files_after_rollback(session: Session) -> None:
    session.info.pop(_FILES_TO_DELETE, None)


def undispatched(session: Session, *, older_than_s: float) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stmt = select(Run.id).where(
        Run.status == RunStatus.queued.value,
        Run.dispatched_at.is_(None),
        Run.created_at < cutoff,
        Run.sweep_id.is_(None),  # a sweep's trials wait for a slot: sweeps.scheduler sends them
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
    emit_status(session, run)
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
        emit_status(session, run)
        if run.sweep_id is not None:  # its slot goes to the sweep's next trial
            sweep_scheduler.trial_finished(session, sweep_id=run.sweep_id)
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
    """running -> succeeded | failed | cancelled | pruned; False if it had already finished."""
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
    emit_status(session, run)
    if run.sweep_id is not None:  # its slot goes to the sweep's next trial
        sweep_scheduler.trial_finished(session, sweep_id=run.sweep_id)
    return True


def set_model_summary(session: Session, *, run_id: int, summary: dict[str, Any]) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(model_summary=summary))


def stale_running(session: Session, *, timeout_s: float) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    stmt = select(Run.id).where(Run.status == RunStatus.running.value, Run.heartbeat_at < cutoff)
    return list(session.scalars(stmt))
