"""GET /runs/{id}/evaluation (final) and /evaluation/epochs[/{epoch}]: matrix and report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from backend.api.deps import SessionDep
from backend.bounds import Count32, Id
from backend.evaluation import service as evaluations
from backend.runs import service as runs
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/runs/{run_id}", tags=["evaluation"])


class EvaluationOut(BaseModel):
    run_id: int
    split: str
    class_names: list[str]
    confusion_matrix: list[list[int]]
    report: dict[str, Any]


class EpochEvaluationOut(EvaluationOut):
    epoch: int


class EpochSummary(BaseModel):
    epoch: int
    split: str
    accuracy: float | None


class EpochListOut(BaseModel):
    run_id: int
    items: list[EpochSummary]


@router.get("/evaluation", response_model=EvaluationOut)
def get_evaluation(run_id: Id, session: SessionDep, _: ReaderUser) -> EvaluationOut:
    """Rows of the matrix are true classes, columns predicted; report as scikit-learn's."""
    runs.get(session, run_id)
    e = evaluations.get(session, run_id=run_id)
    return EvaluationOut(
        run_id=run_id,
        split=e.split,
        class_names=e.class_names,
        confusion_matrix=e.confusion_matrix,
        report=e.report,
    )


@router.get("/evaluation/epochs", response_model=EpochListOut)
def list_epoch_evaluations(run_id: Id, session: SessionDep, _: ReaderUser) -> EpochListOut:
    """Epochs evaluated so far (spec evaluation.every_epoch), oldest first; empty when none."""
    runs.get(session, run_id)
    rows = evaluations.list_epochs(session, run_id=run_id)
    return EpochListOut(
        run_id=run_id,
        items=[
            EpochSummary(epoch=r.epoch, split=r.split, accuracy=_accuracy(r.report)) for r in rows
        ],
    )


@router.get("/evaluation/epochs/{epoch}", response_model=EpochEvaluationOut)
def get_epoch_evaluation(
    run_id: Id, epoch: Count32, session: SessionDep, _: ReaderUser
) -> EpochEvaluationOut:
    """The matrix and report at the end of one epoch (1-based, as the epoch metrics)."""
    runs.get(session, run_id)
    e = evaluations.get_epoch(session, run_id=run_id, epoch=epoch)
    return EpochEvaluationOut(
        run_id=run_id,
        epoch=e.epoch,
        split=e.split,
        class_names=e.class_names,
        confusion_matrix=e.confusion_matrix,
        report=e.report,
    )


def _accuracy(report: dict[str, Any]) -> float | None:
    value = report.get("accuracy")
    return float(value) if isinstance(value, int | float) else None
