"""Checkpoints of a run (artifacts ``checkpoint-epoch-<k>.keras``, each announced by a
``checkpoint`` event): which one a lost attempt's successor resumes from, and what of the lost
attempt's record is kept because it lies before that checkpoint.

A fork starts from another run's checkpoint: its ``forked`` event {run_id, epoch, step,
artifact} names it (and the source run's ``fork`` events name its forks). Until the fork has
a checkpoint of its own, a lost attempt of it resumes from that point again."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.artifacts import service as artifacts
from backend.artifacts.store import get_store
from backend.evaluation import service as evaluations
from backend.events import service as events
from backend.events.models import RunEvent
from backend.metrics import service as metrics

KIND = "checkpoint"  # the artifacts' kind and the event's
RESUMED_EVENT = "resumed"
FORKED_EVENT = "forked"  # on a fork: where it started
FORK_EVENT = "fork"  # on the source run: one per fork made from it
_NAME = re.compile(r"^checkpoint-epoch-(\d+)\.keras$")


def artifact_name(epoch: int) -> str:
    return f"checkpoint-epoch-{epoch}.keras"


def epoch_of(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ResumePoint:
    """Where a new attempt starts: after ``epoch`` (1-based), whose last batch was ``step``."""

    epoch: int
    step: int
    artifact: str
    # whose artifact it is: None for the run's own, a source run's id for a fork's start
    run_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ResumePoint | None:
        if not data:
            return None
        source = data.get("run_id")
        return cls(
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            artifact=str(data["artifact"]),
            run_id=int(source) if source is not None else None,
        )


def stored(session: Session, *, run_id: int) -> list[ResumePoint]:
    """Every checkpoint a run can resume or be forked from, oldest first: its bytes are stored
    and its event came after its metrics (the flusher writes in order: every point up to it
    is stored)."""
    names = {a.name for a in artifacts.list_for_run(session, run_id=run_id) if a.kind == KIND}
    announced = session.scalars(
        select(RunEvent.data).where(RunEvent.run_id == run_id, RunEvent.kind == KIND)
    )
    found: dict[int, ResumePoint] = {}
    for data in announced:
        name = str(data.get("name", ""))
        if name not in names or "epoch" not in data or "step" not in data:
            continue
        epoch = int(data["epoch"])
        found[epoch] = ResumePoint(epoch=epoch, step=int(data["step"]), artifact=name)
    return [found[epoch] for epoch in sorted(found)]


def newest(session: Session, *, run_id: int) -> ResumePoint | None:
    """The newest checkpoint of :func:`stored`, or None."""
    points = stored(session, run_id=run_id)
    return points[-1] if points else None


def fork_point(session: Session, *, run_id: int) -> ResumePoint | None:
    """Where a fork started (another run's checkpoint), or None for a run that is no fork."""
    data = session.scalar(
        select(RunEvent.data).where(RunEvent.run_id == run_id, RunEvent.uid == FORKED_EVENT)
    )
    return ResumePoint.from_dict(data)


def start_point(session: Session, *, run_id: int) -> ResumePoint | None:
    """What a new attempt of the run goes on from: its newest checkpoint, else its fork
    point."""
    return newest(session, run_id=run_id) or fork_point(session, run_id=run_id)


def forks_of(session: Session, *, run_id: int) -> list[dict[str, Any]]:
    """The forks made from a run: [{run_id, epoch}] in the order they were made."""
    rows = session.scalars(
        select(RunEvent.data)
        .where(RunEvent.run_id == run_id, RunEvent.kind == FORK_EVENT)
        .order_by(RunEvent.id)
    )
    return [{"run_id": int(d["run_id"]), "epoch": int(d["epoch"])} for d in rows]


def keep_until(session: Session, *, run_id: int) -> ResumePoint | None:
    """A lost attempt's record, cut back to its newest checkpoint (all of it without one):
    points, epoch evaluations, checkpoints and their events after it go, as do the attempt's
    other events (the next attempt sends its own); status history stays."""
    point = start_point(session, run_id=run_id)
    if point is None:
        metrics.forget_run(session, run_id=run_id)
        evaluations.forget_epochs(session, run_id=run_id)
    else:
        metrics.forget_after(session, run_id=run_id, epoch=point.epoch, batch_step=point.step)
        evaluations.forget_epochs(session, run_id=run_id, after_epoch=point.epoch)
    kept = point.epoch if point is not None else 0
    events.forget_run(
        session,
        run_id=run_id,
        keep_kinds=("status", KIND, RESUMED_EVENT, FORKED_EVENT, FORK_EVENT),
    )
    for event_id, data in session.execute(
        select(RunEvent.id, RunEvent.data).where(RunEvent.run_id == run_id, RunEvent.kind == KIND)
    ).all():
        if int(data.get("epoch", 0)) > kept:
            session.execute(delete(RunEvent).where(RunEvent.id == event_id))
    store = get_store()
    for artifact in artifacts.list_for_run(session, run_id=run_id):
        epoch = epoch_of(artifact.name)
        if artifact.kind == KIND and (epoch is None or epoch > kept):
            artifacts.delete(session, store=store, run_id=run_id, name=artifact.name)
    return point


def chosen(session: Session, *, run_id: int, attempt: int) -> ResumePoint | None:
    """The checkpoint ``attempt`` resumes from: what requeue (or a resume by hand) chose when
    it queued it; a fork's first attempt starts from its fork point."""
    if attempt <= 1:
        return fork_point(session, run_id=run_id)
    data = session.scalar(
        select(RunEvent.data).where(
            RunEvent.run_id == run_id, RunEvent.uid == f"requeued-{attempt - 1}"
        )
    )
    return ResumePoint.from_dict((data or {}).get("resume_from"))
