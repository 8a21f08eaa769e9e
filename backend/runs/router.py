"""HTTP routes of runs: submit, list (search, filter, sort, page), read, edit, cancel, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from backend.api.deps import SessionDep
from backend.artifacts.store import get_store
from backend.events import service as events
from backend.metrics import service as metrics
from backend.runs import query
from backend.runs import service as runs
from backend.runs.models import Run
from backend.runs.schemas import (
    FacetValue,
    RunCreate,
    RunFacets,
    RunOut,
    RunPage,
    RunPatch,
    RunSummary,
)

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such run"}}

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
    q: Annotated[
        str | None, Query(max_length=200, description="Words to find in name, tags or notes")
    ] = None,
    status: Annotated[
        list[str] | None, Query(description="Repeat it or give a comma list: queued,running")
    ] = None,
    dataset: str | None = None,
    preset: str | None = None,
    tag: Annotated[list[str] | None, Query(description="Repeat for runs with every tag")] = None,
    created_after: Annotated[
        str | None, Query(description="ISO date or datetime, inclusive (a date is UTC midnight)")
    ] = None,
    created_before: Annotated[
        str | None, Query(description="ISO date or datetime, exclusive (a date is UTC midnight)")
    ] = None,
    sort: Annotated[
        str,
        Query(
            description="created_at, name, status, duration, dataset, preset, metric:<key> or "
            "param:<spec path>; a leading '-' sorts descending. Missing values sort last."
        ),
    ] = query.DEFAULT_SORT,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    before_id: Annotated[
        int | None, Query(description="Cursor for the default sort: next_cursor of a page")
    ] = None,
) -> RunPage:
    """Runs matching every filter given, one page of them, with their final metrics."""
    filters = query.parse_filters(
        q=q,
        status=status,
        dataset=dataset,
        preset=preset,
        tag=tag,
        created_after=created_after,
        created_before=created_before,
    )
    page = query.page(
        session,
        filters=filters,
        sort=query.parse_sort(sort),
        limit=limit,
        offset=offset,
        before_id=before_id,
    )
    finals = metrics.latest(session, run_ids=[r.id for r in page.items])
    return RunPage(
        items=[RunSummary.of(r, finals[r.id]) for r in page.items],
        total=page.total,
        next_cursor=page.next_cursor,
        offset=offset,
        limit=limit,
    )


@router.get("/facets", response_model=RunFacets)
def run_facets(session: SessionDep) -> RunFacets:
    """Statuses, datasets, presets and tags in use, with how many runs have each."""
    found = query.facets(session)
    return RunFacets(
        **{name: [FacetValue(value=v, count=n) for v, n in pairs] for name, pairs in found.items()}
    )


@router.get("/{run_id}", response_model=RunOut, responses=_ERRORS)
def get_run(run_id: int, session: SessionDep) -> RunOut:
    return _full(session, runs.get(session, run_id))


@router.patch("/{run_id}", response_model=RunOut, responses=_ERRORS)
def edit_run(run_id: int, body: RunPatch, session: SessionDep) -> RunOut:
    """Rename a run, replace its tags, or write its notes."""
    run = runs.edit(session, run_id=run_id, name=body.name, tags=body.tags, notes=body.notes)
    session.commit()
    return _full(session, run)


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_ERRORS, 409: {"description": "The run is queued or running"}},
)
def delete_run(run_id: int, session: SessionDep) -> Response:
    """Delete a finished run with its metrics, events and artifact files."""
    runs.delete(session, run_id=run_id, store=get_store())
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{run_id}/cancel", response_model=RunOut)
def cancel_run(run_id: int, session: SessionDep) -> RunOut:
    """A queued run never starts; a running one stops within a couple of batches."""
    run = runs.request_cancel(session, run_id=run_id)
    session.commit()
    return _full(session, run)
