"""GET /runs/{id}/evaluation: confusion matrix and classification report."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from backend.api.deps import SessionDep
from backend.evaluation import service as evaluations
from backend.runs import service as runs

router = APIRouter(prefix="/runs/{run_id}", tags=["evaluation"])


class EvaluationOut(BaseModel):
    run_id: int
    split: str
    class_names: list[str]
    confusion_matrix: list[list[int]]
    report: dict[str, Any]


@router.get("/evaluation", response_model=EvaluationOut)
def get_evaluation(run_id: int, session: SessionDep) -> EvaluationOut:
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
