"""HTTP routes of sweeps: create (and its dry run), list, read, trials, importance, cancel."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, status

from backend.api.deps import SessionDep
from backend.bounds import MAX_INT64, Id
from backend.db.session import session_scope
from backend.notify import service as notify
from backend.sweeps import importance
from backend.sweeps import service as sweeps
from backend.sweeps.schemas import (
    ImportanceOut,
    SweepCreate,
    SweepOut,
    SweepPage,
    SweepPreview,
    TrialList,
)
from backend.users.deps import MemberUser, ReaderUser, ensure_can_modify

_ERRORS: dict[int | str, dict[str, Any]] = {404: {"description": "No such sweep"}}

router = APIRouter(prefix="/sweeps", tags=["sweeps"])
log = logging.getLogger(__name__)


def _index_trial_params(sweep_id: int) -> None:
    """After the response: the flattened params of trials created without them."""
    with session_scope() as session:
        indexed = sweeps.index_trial_params(session, sweep_id=sweep_id)
    if indexed:
        log.info("sweep %s: indexed the params of %s trials", sweep_id, indexed)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SweepOut)
def create_sweep(
    body: SweepCreate, session: SessionDep, user: MemberUser, background: BackgroundTasks
) -> SweepOut:
    """Validate the space against the spec, create every trial, start max_concurrent of them."""
    sweep = sweeps.create(session, body=body, user_id=user.id)
    if body.notify is not None:
        notify.watch(
            session,
            user_id=user.id,
            sweep_id=sweep.id,
            webhook=body.notify.webhook,
            browser=body.notify.browser,
            events=body.notify.on,
        )
    session.commit()
    if not sweep.params_indexed:
        background.add_task(_index_trial_params, sweep.id)
    return sweeps.out(session, sweep)


@router.post("/preview", response_model=SweepPreview)
def preview_sweep(body: SweepCreate, session: SessionDep, _: MemberUser) -> SweepPreview:
    """A dry run of POST /sweeps: the same checks and 422s, and the trial count; stores nothing."""
    return sweeps.preview(session, body=body)


@router.get("", response_model=SweepPage)
def list_sweeps(
    session: SessionDep,
    _: ReaderUser,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
) -> SweepPage:
    """Sweeps, newest first, with their progress and best trial."""
    items, total = sweeps.page(session, limit=limit, offset=offset)
    return SweepPage(
        items=[sweeps.out(session, s) for s in items], total=total, limit=limit, offset=offset
    )


@router.get("/{sweep_id}", response_model=SweepOut, responses=_ERRORS)
def get_sweep(sweep_id: Id, session: SessionDep, _: ReaderUser) -> SweepOut:
    """Progress counts, the best trial so far, the objective and its direction."""
    return sweeps.out(session, sweeps.get(session, sweep_id), with_spec=True)


@router.get("/{sweep_id}/trials", response_model=TrialList, responses=_ERRORS)
def list_trials(sweep_id: Id, session: SessionDep, _: ReaderUser) -> TrialList:
    """Every trial: its params, status and final objective."""
    sweep = sweeps.get(session, sweep_id)
    return TrialList(
        sweep_id=sweep.id,
        objective=sweep.objective,
        direction=sweep.direction,
        items=sweeps.trial_rows(session, sweep),
    )


@router.get("/{sweep_id}/importance", response_model=ImportanceOut, responses=_ERRORS)
def get_importance(sweep_id: Id, session: SessionDep, _: ReaderUser) -> ImportanceOut:
    """Each parameter's share of the objective's variance (fANOVA) once enough trials succeeded."""
    return importance.of_sweep(session, sweeps.get(session, sweep_id))


@router.post(
    "/{sweep_id}/cancel",
    response_model=SweepOut,
    responses={**_ERRORS, 409: {"description": "The sweep already ended"}},
)
def cancel_sweep(sweep_id: Id, session: SessionDep, user: MemberUser) -> SweepOut:
    """Cancel the queued trials, stop the running ones, mark the sweep cancelled."""
    sweep = sweeps.get(session, sweep_id)
    ensure_can_modify(user, owner_id=sweep.launched_by_id, what="sweep")
    sweeps.cancel(session, sweep_id=sweep_id)
    session.commit()
    return sweeps.out(session, sweep)
