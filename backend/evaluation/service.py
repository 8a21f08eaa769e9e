"""Store and read a run's confusion matrix and classification report."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from backend.errors import NotFound
from backend.evaluation.models import Evaluation
from backend.events import service as events


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


def get(session: Session, *, run_id: int) -> Evaluation:
    evaluation = session.get(Evaluation, run_id)
    if evaluation is None:
        raise NotFound(f"run {run_id} has no evaluation yet")
    return evaluation
