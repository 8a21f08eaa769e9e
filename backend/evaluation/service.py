"""Store and read a run's confusion matrix and classification report (final, and per epoch)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from backend.errors import NotFound
from backend.evaluation.models import EpochEvaluation, Evaluation
from backend.events import kinds
from backend.events import service as events

# the live event (and the worker's flusher event) that carries one epoch's evaluation
EPOCH_EVENT = kinds.EPOCH_EVALUATION


def save(
    session: Session,
    *,
    run_id: int,
    split: str,
    class_names: list[str],
    confusion_matrix: list[list[int]],
    report: dict[str, Any],
) -> Evaluation:
    evaluation = session.get(Evaluation, run_id) or Evaluation(run_id=run_id)
    evaluation.split = split
    evaluation.class_names = class_names
    evaluation.confusion_matrix = confusion_matrix
    evaluation.report = report
    session.add(evaluation)
    events.append(
        session, run_id=run_id, kind="evaluation", data={"split": split}, uid="evaluation"
    )
    return evaluation


def forget_epochs(session: Session, *, run_id: int, after_epoch: int = 0) -> None:
    """Drop a run's per-epoch evaluations after ``after_epoch`` (a lost attempt's; the next
    one writes them again from there)."""
    session.execute(
        delete(EpochEvaluation).where(
            EpochEvaluation.run_id == run_id, EpochEvaluation.epoch > after_epoch
        )
    )


def get(session: Session, *, run_id: int) -> Evaluation:
    evaluation = session.get(Evaluation, run_id)
    if evaluation is None:
        raise NotFound(f"run {run_id} has no evaluation yet")
    return evaluation


def save_epoch(
    session: Session,
    *,
    run_id: int,
    epoch: int,
    split: str,
    class_names: list[str],
    confusion_matrix: list[list[int]],
    report: dict[str, Any],
    uid: str | None = None,
) -> EpochEvaluation:
    """Store one epoch's matrix and report (again: replaced), and tell live viewers."""
    row = session.get(EpochEvaluation, (run_id, epoch)) or EpochEvaluation(
        run_id=run_id, epoch=epoch
    )
    row.split = split
    row.class_names = class_names
    row.confusion_matrix = confusion_matrix
    row.report = report
    session.add(row)
    accuracy = report.get("accuracy")
    events.append(
        session,
        run_id=run_id,
        kind=EPOCH_EVENT,
        data={"epoch": epoch, "split": split, "accuracy": accuracy},
        uid=uid or f"epoch-evaluation-{epoch}",
    )
    return row


def list_epochs(session: Session, *, run_id: int) -> list[EpochEvaluation]:
    stmt = (
        select(EpochEvaluation)
        .where(EpochEvaluation.run_id == run_id)
        .order_by(EpochEvaluation.epoch)
    )
    return list(session.scalars(stmt))


def get_epoch(session: Session, *, run_id: int, epoch: int) -> EpochEvaluation:
    row = session.get(EpochEvaluation, (run_id, epoch))
    if row is None:
        raise NotFound(f"run {run_id} has no evaluation for epoch {epoch}")
    return row
