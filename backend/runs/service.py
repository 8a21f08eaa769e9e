"""Runs: create, read, list, edit, delete, and every status transition (each a live event)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, or_, select, update
from sqlalchemy.orm import Session

from backend.artifacts.store import ArtifactStore, run_prefix
from backend.broker import GPUS_SUFFIX, ON_WORKER, queue_for
from backend.config import get_settings
from backend.datasets import service as datasets
from backend.db.base import utcnow
from backend.db.upsert import upsert
from backend.errors import Conflict, InvalidInput, NotFound
from backend.events import service as events
from backend.events.runstate import RunState
from backend.runlogs import service as runlogs
from backend.runs import checkpoints, hooks
from backend.runs import params as run_params  # noqa: F401  (indexes specs on flush)
from backend.runs.models import (
    Run,
    RunSearch,
    RunSource,
    RunStatus,
    RunTag,
    build_search_text,
    dataset_of,
)
from backend.spec import PRESETS, resolve_spec
from backend.spec.presets import UnknownPreset

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
        "attempt": run.attempt,
    }


def _status_uid(run: Run) -> str:
    # a later attempt's statuses are new events (a viewer sees it run again)
    suffix = f"-a{run.attempt}" if run.attempt and run.attempt > 1 else ""
    return f"status-{run.status}{suffix}"


def emit_status(session: Session, run: Run, *, uid: str | None = None) -> None:
    """The run's status event (once per status unless ``uid`` says otherwise)."""
    session.flush()
    events.append(
        session,
        run_id=run.id,
        kind="status",
        data=status_event(run),
        uid=uid or _status_uid(run),
    )


def submit(
    session: Session,
    *,
    name: str,
    spec: dict[str, Any] | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    launched_by_id: int | None = None,
    priority: str = "normal",
) -> Run:
    """Validate and store as queued; once the caller commits it is sent to a worker as soon as
    the fleet has room for it (backend.runqueue, through hooks.queue_changed)."""
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
        priority=priority,
        queue=queue_for(spec_json, get_settings().queue),
    )
    session.add(run)
    emit_status(session, run)
    hooks.queue_changed(session)
    return run


def get(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    return run


def live_state(session: Session, run_id: int) -> RunState:
    """For the live views (events.runstate): has it ended, and when; NotFound if it is gone.
    One small read (a feed asks on every batch of new events)."""
    status, finished_at = _columns(session, run_id, Run.status, Run.finished_at)
    return RunState(finished=RunStatus(status).finished, finished_at=finished_at)


def _columns(session: Session, run_id: int, *columns: Any) -> Any:
    """These columns of one run, without loading the run; NotFound if it does not exist."""
    row = session.execute(select(*columns).where(Run.id == run_id)).first()
    if row is None:
        raise NotFound(f"run {run_id} does not exist")
    return row


@dataclass(frozen=True)
class Holding:
    """What the worker protocol checks on every call about a run, read in one query."""

    source: str
    worker_token_id: int | None
    status: str
    attempt: int
    cancel_requested: bool

    def owned_by(self, attempt: int) -> bool:
        """Whether ``attempt`` is the run's current, running attempt."""
        return self.status == RunStatus.running.value and self.attempt == attempt


def holding(session: Session, run_id: int) -> Holding:
    """The run's owner, status, attempt and cancel request; NotFound if it does not exist."""
    source, token_id, status, attempt, cancel_at = _columns(
        session,
        run_id,
        Run.source,
        Run.worker_token_id,
        Run.status,
        Run.attempt,
        Run.cancel_requested_at,
    )
    return Holding(source, token_id, status, attempt, cancel_at is not None)


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
_LOGS_TO_DELETE = "fitboard.run_logs_to_delete"


def delete(session: Session, *, run_id: int, store: ArtifactStore) -> None:
    """Delete a finished run, its rows (by cascade) and, once committed, its artifact files."""
    run = get(session, run_id)
    if not RunStatus(run.status).finished:
        raise Conflict(f"run {run_id} is {run.status}: cancel it first")
    # only the finished states are deletable, so no worker is writing to it any more
    session.delete(run)
    session.flush()
    session.info.setdefault(_FILES_TO_DELETE, []).append((store, run_prefix(run_id)))
    session.info.setdefault(_LOGS_TO_DELETE, []).append(runlogs.log_path(run_id))
    log.info("run %s: deleted", run_id)


@event.listens_for(Session, "after_commit")
def _delete_files_after_commit(session: Session) -> None:
    # after the commit: a failed commit must not leave rows pointing at removed files
    for store, prefix in session.info.pop(_FILES_TO_DELETE, ()):
        try:
            store.delete_prefix(prefix)
        except OSError:
            log.exception("could not remove artifact files under %s", prefix)
    for path in session.info.pop(_LOGS_TO_DELETE, ()):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.exception("could not remove the training log %s", path)


@event.listens_for(Session, "after_rollback")
def _keep_files_after_rollback(session: Session) -> None:
    session.info.pop(_FILES_TO_DELETE, None)
    session.info.pop(_LOGS_TO_DELETE, None)


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


def heartbeat(session: Session, *, run_id: int, attempt: int | None = None) -> bool:
    """Mark a running run alive; returns whether a cancel was requested.

    With ``attempt``, raises :class:`StaleAttempt` when the run is no longer that attempt's to
    train (housekeeping gave it to another one, or it ended): the caller stops training."""
    stmt = update(Run).where(Run.id == run_id, Run.status == RunStatus.running.value)
    if attempt is not None:
        stmt = stmt.where(Run.attempt == attempt)
    result = session.execute(stmt.values(heartbeat_at=utcnow()))
    if attempt is not None and result.rowcount != 1:  # type: ignore[attr-defined]
        # ended by its own training process: still this attempt's; queued again: not any more
        owner = session.scalar(select(Run.attempt).where(Run.id == run_id))
        if owner != attempt or _status(session, run_id) == RunStatus.queued.value:
            raise StaleAttempt(run_id, attempt)
    return session.scalar(select(Run.cancel_requested_at).where(Run.id == run_id)) is not None


def _status(session: Session, run_id: int) -> str | None:
    return session.scalar(select(Run.status).where(Run.id == run_id))


class StaleAttempt(Exception):
    """An attempt that no longer owns its run: what it writes is refused."""

    def __init__(self, run_id: int, attempt: int) -> None:
        super().__init__(f"run {run_id}: attempt {attempt} no longer owns the run")
        self.run_id = run_id
        self.attempt = attempt


def check_owner(
    session: Session, *, run_id: int, attempt: int, known: Holding | None = None
) -> None:
    """Raise :class:`StaleAttempt` unless ``attempt`` is the run's current, running attempt
    (``known``: the run as this transaction already read it)."""
    try:
        state = known if known is not None else holding(session, run_id)
    except NotFound:
        raise StaleAttempt(run_id, attempt) from None
    if not state.owned_by(attempt):
        raise StaleAttempt(run_id, attempt)


def can_restart(run: Run) -> bool:
    """Whether a worker's run that lost its process may train again as its next attempt."""
    if run.source != RunSource.worker.value or run.cancel_requested_at is not None:
        return False
    max_restarts = int((run.spec or {}).get("max_restarts", 3))
    return run.attempt <= max_restarts


def requeue(session: Session, *, run_id: int, attempt: int, reason: str) -> bool:
    """running -> queued as the next attempt, once per lost attempt; False if it moved on.

    The next attempt resumes from the newest checkpoint (spec.checkpoint) when there is one:
    the lost attempt's curves and epoch evaluations up to it are kept, the rest (and its other
    events, but the status history) dropped, so the next one writes them again from there:
    never duplicated, never mixed. Without a checkpoint it starts over from epoch 0.
    """
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.running.value, Run.attempt == attempt)
        .values(
            status=RunStatus.queued.value,
            attempt=attempt + 1,
            heartbeat_at=None,
            dispatched_at=None,
            worker_host=None,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    resume = checkpoints.keep_until(session, run_id=run_id)
    run = get(session, run_id)
    session.refresh(run)
    events.append(
        session,
        run_id=run.id,
        kind="status",
        data={
            **status_event(run),
            "requeued_because": reason,
            "resume_from": resume.as_dict() if resume is not None else None,
        },
        uid=f"requeued-{attempt}",
    )
    hooks.queue_changed(session)  # back in the queue, where it came from
    log.warning(
        "run %s: attempt %s lost (%s); queued again as attempt %s, %s",
        run_id,
        attempt,
        reason,
        attempt + 1,
        f"resuming after epoch {resume.epoch}" if resume else "from the start",
    )
    return True


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
        # notifications, its slot (a message sent for it frees it), its sweep's next trial
        hooks.run_ended(session, run)
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
    attempt: int | None = None,
) -> bool:
    """running -> succeeded | failed | cancelled | pruned; False if it had already finished
    (or, with ``attempt``, if another attempt owns it now)."""
    assert status.finished
    owned = [Run.id == run_id, Run.status == RunStatus.running.value]
    if attempt is not None:
        owned.append(Run.attempt == attempt)
    result = session.execute(
        update(Run)
        .where(*owned)
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
    # the notification outbox rows (they commit with the end, or neither does), its worker's
    # room for the next run, its sweep's next trial
    hooks.run_ended(session, run)
    return True


def set_model_summary(session: Session, *, run_id: int, summary: dict[str, Any]) -> None:
    session.execute(update(Run).where(Run.id == run_id).values(model_summary=summary))


def stale_running(
    session: Session, *, timeout_s: float, source: RunSource | None = None
) -> list[int]:
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    stmt = select(Run.id).where(Run.status == RunStatus.running.value, Run.heartbeat_at < cutoff)
    if source is not None:
        stmt = stmt.where(Run.source == source.value)
    return list(session.scalars(stmt))


def queued_summary(session: Session) -> dict[str, Any]:
    """How many runs wait in the queue, and for how long the oldest has (seconds)."""
    count, oldest = session.execute(
        select(func.count(Run.id), func.min(Run.created_at)).where(
            Run.status == RunStatus.queued.value
        )
    ).one()
    oldest_s = None
    if oldest is not None:
        if oldest.tzinfo is None:  # SQLite hands back naive UTC
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        oldest_s = round((utcnow() - oldest).total_seconds(), 1)
    return {"count": int(count), "oldest_s": oldest_s}


def queued_dispatched_before(session: Session, *, older_than_s: float, queue: str) -> list[int]:
    """Queued runs sent to ``queue`` (or its GPU queues, or its workers' own) more than
    ``older_than_s`` ago (sweep trials too)."""
    cutoff = utcnow() - timedelta(seconds=older_than_s)
    stmt = select(Run.id).where(
        Run.status == RunStatus.queued.value,
        Run.dispatched_at.is_not(None),
        Run.dispatched_at < cutoff,
        or_(
            Run.queue == queue,
            Run.queue.startswith(queue + GPUS_SUFFIX, autoescape=True),
            Run.queue.startswith(queue + ON_WORKER, autoescape=True),
        ),
    )
    return list(session.scalars(stmt))
