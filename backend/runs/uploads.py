"""Which runs use an uploaded dataset (a delete of the upload waits for them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.runs.models import Run, RunStatus
from backend.spec.dataset_options import UPLOAD


def active_runs_using(session: Session, *, dataset_id: int) -> list[int]:
    """Ids of queued or running runs whose spec names this upload."""
    active = session.execute(
        select(Run.id, Run.spec).where(
            Run.status.in_([RunStatus.queued.value, RunStatus.running.value])
        )
    )
    return [
        run_id
        for run_id, spec in active
        if ((spec or {}).get("dataset") or {}).get("name") == UPLOAD
        and spec["dataset"].get("upload_id") == dataset_id
    ]
