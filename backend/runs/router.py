"""HTTP routes of runs: submit, list, read, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from backend.api.deps import SessionDep
from backend.events import service as events
from backend.metrics import service as metrics
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from backend.runs.schemas import RunCreate, RunOut, RunPage, RunSummary

router = APIRouter(prefix="/runs", tags=["runs"])


def _full(session: SessionDep, run: Run) -> RunOut:
    final = metrics.latest(session, run_ids=[run.id])[run.id]
    return RunOut.full(run, final, events.last_id(session, run_id=run.id))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunOut)
def submit_run(body: RunCreate, session: SessionDep) -> RunOut:
    """Queue a run from a spec, or from a preset with overrides."""
    run = runs.submit(
        session, name=body.name, spec=body.spec, preset=body.preset, overrides=body.overrides
    )
    session.commit()
    return _full(session, run)


@router.get("", response_model=RunPage)
def list_runs(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before_id: Annotated[int | None, Query(description="Cursor: next_cursor of a page")] = None,
    status: RunStatus | None = None,
) -> RunPage:
    """Runs, newest first."""
    items, total = runs.list_page(
        session, limit=limit, before_id=before_id, status=status.value if status else None
    )
    finals = metrics.latest(session, run_ids=[r.id for r in items])
    next_cursor = items[-1].id if len(items) == limit else None
    return RunPage(
        items=[RunSummary.of(r, finals[r.id]) for r in items], total=total, next_cursor=next_cursor
    )


@router.get("/{run_id}", response_model=RunOut)
def get_run(run_id: int, session: SessionDep) -> RunOut:
    return _full(session, runs.get(session, run_id))


@router.post("/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: int, session: SessionDep) -> RunOut:
    """A queued run never starts; a running one stops within a couple of batches."""
    run = runs.request_cancel(session, run_id=run_id)
    session.commit()
    return _full(session, run)
