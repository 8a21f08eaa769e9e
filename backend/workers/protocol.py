"""What a worker does to a run, as services: claim, heartbeat, read the spec, write batches of
points and events, the model summary, the evaluation, artifacts, finish, and record an exit.

The HTTP worker protocol (backend.workers.router) is their one caller from workers;
backend.workers.local_sink uses them in-process (benchmarks, tests). Every write of
an attempt is refused (:class:`Superseded`) once the run is no longer that attempt's.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.errors import Conflict
from backend.evaluation import service as evaluations
from backend.events import service as events
from backend.metrics import service as metrics
from backend.metrics.ingest import PointColumns
from backend.metrics.service import Point
from backend.runlogs import service as runlogs
from backend.runs import checkpoints
from backend.runs import service as runs
from backend.runs.models import RunStatus
from backend.sweeps import pruning

log = logging.getLogger(__name__)

CANCELLED_AFTER_GRACE = "cancelled; the training process was killed after the grace period"


class Superseded(Conflict):
    """The attempt no longer owns its run (housekeeping queued it again, or it ended)."""

    code = "superseded"


class NotRunning(Conflict):
    """The run is not running: nothing to train."""

    code = "not_running"


@dataclass(frozen=True)
class Claimed:
    attempt: int
    spec: dict[str, Any]
    log_offset: int  # where this attempt's log lines go in the run's log


def claim(
    session: Session, *, run_id: int, worker_host: str, token_id: int | None = None
) -> Claimed | None:
    """queued -> running for exactly one caller, ever; None for everyone else."""
    if not runs.claim(session, run_id=run_id, worker_host=worker_host):
        return None
    run = runs.get(session, run_id)
    run.worker_token_id = token_id
    session.flush()
    return Claimed(attempt=run.attempt, spec=dict(run.spec), log_offset=runlogs.size(run_id))


def _owned(
    session: Session, run_id: int, attempt: int | None, known: runs.Holding | None = None
) -> None:
    if attempt is None:
        return
    try:
        runs.check_owner(session, run_id=run_id, attempt=attempt, known=known)
    except runs.StaleAttempt as exc:
        raise Superseded(str(exc)) from None


def heartbeat(session: Session, *, run_id: int, attempt: int | None) -> bool:
    """Marks the attempt alive; whether a cancel was asked for."""
    try:
        return runs.heartbeat(session, run_id=run_id, attempt=attempt)
    except runs.StaleAttempt as exc:
        raise Superseded(str(exc)) from None


def running_spec(session: Session, *, run_id: int, attempt: int | None) -> dict[str, Any]:
    run = runs.get(session, run_id)
    if run.status != RunStatus.running.value:
        raise NotRunning(f"run {run_id} is {run.status}, not running; a worker claims it first")
    _owned(session, run_id, attempt)
    return dict(run.spec)


def write_batch(
    session: Session,
    *,
    run_id: int,
    attempt: int | None,
    uid: str,
    points: Sequence[Point] | PointColumns,
    batch_events: Iterable[tuple[str, Mapping[str, Any], str]],
    known: runs.Holding | None = None,
) -> None:
    """One batch of the flusher (points, then events as (kind, data, uid)), idempotent by uid.
    ``known``: the run as this transaction already read it (its owner is checked on that)."""
    _owned(session, run_id, attempt, known)
    if len(points):
        metrics.record(session, run_id=run_id, points=points, uid=uid)
    for kind, data, event_uid in batch_events:
        if kind == evaluations.EPOCH_EVENT:  # stored in epoch_evaluations
            evaluations.save_epoch(session, run_id=run_id, uid=event_uid, **data)
            continue
        events.append(session, run_id=run_id, kind=kind, data=dict(data), uid=event_uid)


def cancel_requested(session: Session, *, run_id: int) -> bool:
    return runs.cancel_requested(session, run_id=run_id)


def set_model_summary(
    session: Session, *, run_id: int, attempt: int | None, summary: dict[str, Any]
) -> None:
    _owned(session, run_id, attempt)
    runs.set_model_summary(session, run_id=run_id, summary=summary)


def save_evaluation(
    session: Session,
    *,
    run_id: int,
    attempt: int | None,
    split: str,
    class_names: list[str],
    confusion_matrix: list[list[int]],
    report: dict[str, Any],
) -> None:
    _owned(session, run_id, attempt)
    evaluations.save(
        session,
        run_id=run_id,
        split=split,
        class_names=class_names,
        confusion_matrix=confusion_matrix,
        report=report,
    )


def add_artifact(
    session: Session, *, run_id: int, attempt: int | None, name: str, kind: str, source: Path
) -> int:
    """Store a file the attempt made as the run's artifact ``name``; its size in bytes."""
    _owned(session, run_id, attempt)
    artifact = artifacts.add(
        session, store=get_store(), run_id=run_id, name=name, kind=kind, source=source
    )
    return int(artifact.size_bytes)


def delete_artifact(session: Session, *, run_id: int, attempt: int | None, name: str) -> bool:
    """Delete the run's artifact ``name`` (an old checkpoint); False when it had none."""
    _owned(session, run_id, attempt)
    return artifacts.delete(session, store=get_store(), run_id=run_id, name=name)


def resume_point(
    session: Session, *, run_id: int, attempt: int | None
) -> checkpoints.ResumePoint | None:
    """The checkpoint this attempt resumes from (chosen when the run was queued again)."""
    _owned(session, run_id, attempt)
    if attempt is None:
        attempt = runs.get(session, run_id).attempt
    return checkpoints.chosen(session, run_id=run_id, attempt=attempt)


def finish(
    session: Session,
    *,
    run_id: int,
    attempt: int | None,
    status: RunStatus,
    reason: str | None,
    traceback: str | None = None,
) -> bool:
    if not status.finished:
        raise Conflict(f"{status.value} is not an end: succeeded, failed, cancelled or pruned")
    return runs.finish(
        session, run_id=run_id, status=status, reason=reason, traceback=traceback, attempt=attempt
    )


def record_exit(
    session: Session,
    *,
    run_id: int,
    attempt: int,
    reason: str,
    cancelled: bool = False,
    traceback: str | None = None,
) -> str:
    """A training process that ended without recording its outcome (crashed or killed): the
    run goes back to the queue as its next attempt (spec.max_restarts), or fails; one killed
    after a cancel's grace period is cancelled, one whose log tail shows a failure a retry
    cannot fix (:func:`not_retried`) fails. Returns what became of the run."""
    run = runs.get(session, run_id)
    if run.status != RunStatus.running.value or run.attempt != attempt:
        return run.status  # it recorded its own end, or another attempt owns it
    if cancelled:
        runs.finish(
            session,
            run_id=run_id,
            status=RunStatus.cancelled,
            reason=CANCELLED_AFTER_GRACE,
            attempt=attempt,
        )
        return RunStatus.cancelled.value
    # the worker's own reason counts too: it says when the kernel's OOM killer struck
    unfixable = not_retried("\n".join(filter(None, (reason, traceback))))
    if unfixable is not None:
        reason = f"{reason}; not retried: {unfixable}"
    elif runs.can_restart(run):
        runs.requeue(session, run_id=run_id, attempt=attempt, reason=reason)
        return RunStatus.queued.value
    runs.finish(
        session,
        run_id=run_id,
        status=RunStatus.failed,
        reason=reason,
        traceback=traceback,
        attempt=attempt,
    )
    return RunStatus.failed.value


# what a training process's last output says when a retry cannot help: class, markers
UNFIXABLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "out of memory",
        (
            "ResourceExhaustedError",
            "OOM when allocating",
            "CUDA_ERROR_OUT_OF_MEMORY",
            "out of memory",
            "MemoryError",
            "std::bad_alloc",
        ),
    ),
    ("NaN loss", ("NaN loss", "Batch 0: Invalid loss", "Invalid loss, terminating training")),
    (
        "spec or data error",
        ("ValidationError", "ModelSpecError", "DatasetUnavailable", "UploadMissing"),
    ),
)


def not_retried(log_tail: str | None) -> str | None:
    """The class of failure a retry cannot fix that the log tail shows, or None."""
    if not log_tail:
        return None
    for label, markers in UNFIXABLE:
        for marker in markers:
            if marker in log_tail:
                return f"{label} ({marker})"
    return None


def prune_objective(session: Session, *, run_id: int) -> str | None:
    """The epoch metric a sweep trial's pruner watches; None for a run without a pruner."""
    rule = pruning.rule_for(session, run_id=run_id)
    return rule.objective if rule is not None else None


def prune_decide(session: Session, *, run_id: int, epoch: int, value: float) -> str | None:
    """Why the trial should stop after ``epoch`` with ``value``, or None to go on."""
    rule = pruning.rule_for(session, run_id=run_id)
    if rule is None:
        return None
    value = value if math.isfinite(value) else math.nan
    return pruning.decide(session, rule=rule, run_id=run_id, epoch=epoch, value=value)
