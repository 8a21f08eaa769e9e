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
from backend.runs.filters import RunFiltersDep, RunSortDep
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
from backend.users import service as users
from backend.users.deps import MemberUser, ReaderUser, ensure_can_modify

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such run"}}

router = APIRouter(prefix="/runs", tags=["runs"])


def _full(session: SessionDep, run: Run) -> RunOut:
    final = metrics.latest(session, run_ids=[run.id])[run.id]
    launcher = _launchers(session, [run]).get(run.launched_by_id or 0)
    return RunOut.full(run, final, events.last_id(session, run_id=run.id), launched_by=launcher)


def _launchers(session: SessionDep, items: list[Run]) -> dict[int, str]:
    ids = {r.launched_by_id for r in items if r.launched_by_id is not None}
    return users.usernames(session, user_ids=ids)


def _check_owner(session: SessionDep, user: MemberUser, run_id: int) -> None:
    ensure_can_modify(user, owner_id=runs.get(session, run_id).launched_by_id, what="run")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=RunOut)
def submit_run(body: RunCreate, session: SessionDep, user: MemberUser) -> RunOut:
    """Queue a run from a spec, or from a preset with overrides."""
    run = runs.submit(
        session,
        name=body.name,
        spec=body.spec,
        preset=body.preset,
        overrides=body.overrides,
        launched_by_id=user.id,
    )
    session.commit()
    return _full(session, run)


@router.get("", response_model=RunPage)
def list_runs(
    session: SessionDep,
    _: ReaderUser,
    filters: RunFiltersDep,
    sort: RunSortDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    before_id: Annotated[
        int | None, Query(description="Cursor for the default sort: next_cursor of a page")
    ] = None,
) -> RunPage:
    """Runs matching every filter given, one page of them, with their final metrics.

    Also ``param.<spec path>=<value>`` (repeatable, e.g. ``param.fit.batch_size=64``): runs whose
    spec holds that value there (numbers compared as numbers, true/false as booleans).
    """
    page = query.page(
        session, filters=filters, sort=sort, limit=limit, offset=offset, before_id=before_id
    )
    finals = metrics.latest(session, run_ids=[r.id for r in page.items])
    names = _launchers(session, page.items)
    return RunPage(
        items=[
            RunSummary.of(r, finals[r.id], launched_by=names.get(r.launched_by_id or 0))
            for r in page.items
        ],
        total=page.total,
        next_cursor=page.next_cursor,
        offset=offset,
        limit=limit,
    )


@router.get("/facets", response_model=RunFacets)
def run_facets(session: SessionDep, _: ReaderUser) -> RunFacets:
    """Statuses, datasets, presets and tags in use, with how many runs have each."""
    found = query.facets(session)
    return RunFacets(
        **{name: [FacetValue(value=v, count=n) for v, n in pairs] for name, pairs in found.items()}
    )


@router.get("/{run_id}", response_model=RunOut, responses=_ERRORS)
def get_run(run_id: int, session: SessionDep, _: ReaderUser) -> RunOut:
    """One run with its spec, status, final metrics and the last event id of its stream."""
    return _full(session, runs.get(session, run_id))


@router.patch("/{run_id}", response_model=RunOut, responses=_ERRORS)
def edit_run(run_id: int, body: RunPatch, session: SessionDep, user: MemberUser) -> RunOut:
    """Rename a run, replace its tags, or write its notes."""
    _check_owner(session, user, run_id)
    run = runs.edit(session, run_id=run_id, name=body.name, tags=body.tags, notes=body.notes)
    session.commit()
    return _full(session, run)


@router.delete(
    "/{run_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_ERRORS, 409: {"description": "The run is queued or running"}},
)
def delete_run(run_id: int, session: SessionDep, user: MemberUser) -> Response:
    """Delete a finished run with its metrics, events and artifact files."""
    _check_owner(session, user, run_id)
    runs.delete(session, run_id=run_id, store=get_store())
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{run_id}/cancel",
    response_model=RunOut,
    responses={409: {"description": "The run already finished"}},
)
def cancel_run(run_id: int, session: SessionDep, user: MemberUser) -> RunOut:
    """A queued run never starts; a running one stops within a couple of batches."""
    _check_owner(session, user, run_id)
    run = runs.request_cancel(session, run_id=run_id)
    session.commit()
    return _full(session, run)
