"""HTTP routes of runs: submit, list (search, filter, sort, page), read, edit, cancel, delete,
resume and fork."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status

from backend.api.deps import SessionDep
from backend.artifacts.store import get_store
from backend.audit import service as audit
from backend.bounds import MAX_INT64, Id
from backend.config import get_settings
from backend.events import service as events
from backend.metrics import service as metrics
from backend.notify import service as notify
from backend.runqueue import service as runqueue
from backend.runqueue.schemas import PriorityIn
from backend.runs import lineage, query
from backend.runs import service as runs
from backend.runs.filters import RunFiltersDep, RunSortDep
from backend.runs.models import Run, RunSource, RunStatus
from backend.runs.schemas import (
    FacetValue,
    RunColumns,
    RunCreate,
    RunFacets,
    RunFork,
    RunOut,
    RunPage,
    RunPatch,
    RunResume,
    RunSummary,
)
from backend.users import service as users
from backend.users.deps import AdminUser, MemberUser, ReaderUser, ensure_can_modify

MAX_WITH_PARAMS = 60
_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such run"}}

router = APIRouter(prefix="/runs", tags=["runs"])


def _full(session: SessionDep, run: Run) -> RunOut:
    final = metrics.latest(session, run_ids=[run.id])[run.id]
    launcher = _launchers(session, [run]).get(run.launched_by_id or 0)
    return RunOut.full(
        run,
        final,
        events.last_id(session, run_id=run.id),
        launched_by=launcher,
        lineage=lineage.lineage(session, run),
    )


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
        priority=body.priority,
    )
    if body.notify is not None:
        notify.watch(
            session,
            user_id=user.id,
            run_id=run.id,
            webhook=body.notify.webhook,
            browser=body.notify.browser,
            events=body.notify.on,
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
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
    before_id: Annotated[
        Id | None, Query(description="Cursor for the default sort: next_cursor of a page")
    ] = None,
    with_params: Annotated[
        str | None,
        Query(
            max_length=MAX_WITH_PARAMS * 201,
            description="Spec paths, a comma list (fit.batch_size,fit.epochs): each item's "
            "`params` holds its spec's values there",
        ),
    ] = None,
) -> RunPage:
    """Runs matching every filter given, one page of them, with their final metrics.

    Also ``param.<spec path>=<value>`` (repeatable, e.g. ``param.fit.batch_size=64``): runs whose
    spec holds that value there (numbers compared as numbers, true/false as booleans).
    """
    paths = query.parse_param_paths(with_params, field="with_params", limit=MAX_WITH_PARAMS)
    page = query.page(
        session, filters=filters, sort=sort, limit=limit, offset=offset, before_id=before_id
    )
    finals = metrics.latest(session, run_ids=[r.id for r in page.items])
    names = _launchers(session, page.items)
    return RunPage(
        items=[
            RunSummary.of(
                r, finals[r.id], launched_by=names.get(r.launched_by_id or 0), param_paths=paths
            )
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


@router.get("/columns", response_model=RunColumns)
def run_columns(session: SessionDep, _: ReaderUser) -> RunColumns:
    """Final metric keys and spec paths the runs table can show and sort by (recent runs')."""
    return RunColumns(**query.column_keys(session))


@router.get("/{run_id}", response_model=RunOut, responses=_ERRORS)
def get_run(run_id: Id, session: SessionDep, _: ReaderUser) -> RunOut:
    """One run with its spec, status, final metrics and the last event id of its stream; a
    queued run says why it waits when no live worker could take it."""
    run = runs.get(session, run_id)
    out = _full(session, run)
    if run.status == RunStatus.queued.value and run.source == RunSource.worker.value:
        lost_after = get_settings().worker_lost_after_s
        out.waiting = runqueue.waiting_reason(session, run=run, lost_after_s=lost_after)
    return out


@router.patch("/{run_id}", response_model=RunOut, responses=_ERRORS)
def edit_run(run_id: Id, body: RunPatch, session: SessionDep, user: MemberUser) -> RunOut:
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
def delete_run(run_id: Id, request: Request, session: SessionDep, user: MemberUser) -> Response:
    """Delete a finished run with its metrics, events and artifact files."""
    _check_owner(session, user, run_id)
    name = runs.get(session, run_id).name
    runs.delete(session, run_id=run_id, store=get_store())
    audit.record(
        session,
        action=audit.Action.run_deleted,
        actor=user,
        target_type="run",
        target_id=run_id,
        target_name=name,
        address=audit.client_address(request),
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{run_id}/cancel",
    response_model=RunOut,
    responses={409: {"description": "The run already finished"}},
)
def cancel_run(run_id: Id, session: SessionDep, user: MemberUser) -> RunOut:
    """A queued run never starts; a running one stops within a couple of batches."""
    _check_owner(session, user, run_id)
    run = runs.request_cancel(session, run_id=run_id)
    session.commit()
    return _full(session, run)


@router.post(
    "/{run_id}/resume",
    response_model=RunOut,
    responses={
        **_ERRORS,
        409: {"description": "Not resumable: running, no checkpoint, external, a sweep trial"},
    },
)
def resume_run(
    run_id: Id, session: SessionDep, user: MemberUser, body: RunResume | None = None
) -> RunOut:
    """Queue a failed, cancelled or succeeded run again as its next attempt: it goes on from
    its newest checkpoint (same run, curves continuing), optionally for more epochs."""
    _check_owner(session, user, run_id)
    run = lineage.resume(session, run_id=run_id, epochs=body.epochs if body else None)
    session.commit()
    return _full(session, run)


_QUEUED_ONLY: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "The run is not queued any more"},
}


@router.post("/{run_id}/priority", response_model=RunOut, responses=_QUEUED_ONLY)
def set_run_priority(run_id: Id, body: PriorityIn, session: SessionDep, user: MemberUser) -> RunOut:
    """Change a queued run's priority (members their own runs, admins any): its place in
    GET /api/v1/queue."""
    _check_owner(session, user, run_id)
    run = runqueue.set_priority(session, run_id=run_id, priority=body.priority)
    session.commit()
    return _full(session, run)


@router.post(
    "/{run_id}/fork",
    status_code=status.HTTP_201_CREATED,
    response_model=RunOut,
    responses={**_ERRORS, 409: {"description": "The run has no checkpoint, or still trains"}},
)
def fork_run(run_id: Id, body: RunFork, session: SessionDep, user: MemberUser) -> RunOut:
    """A new run from this run's checkpoint at ``from_epoch`` (the newest by default), its spec
    with ``overrides``; its curves start with this run's up to that epoch."""
    run = lineage.fork(
        session,
        source_id=run_id,
        name=body.name,
        from_epoch=body.from_epoch,
        overrides=body.overrides,
        launched_by_id=user.id,
    )
    session.commit()
    return _full(session, run)


@router.post("/{run_id}/move-to-top", response_model=RunOut, responses=_QUEUED_ONLY)
def move_run_to_top(run_id: Id, session: SessionDep, _: AdminUser) -> RunOut:
    """Admins: the queued run starts before every other (the latest moved first)."""
    run = runqueue.move_to_top(session, run_id=run_id)
    session.commit()
    return _full(session, run)
