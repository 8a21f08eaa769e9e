"""Routes for runs trained elsewhere: create, post points and evaluation, finish; RemoteMonitor."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.api.deps import SessionDep
from backend.api.errors import error_responses
from backend.bounds import MAX_INT32, Id
from backend.errors import InvalidInput
from backend.events import bus
from backend.events import service as events
from backend.external import service as external
from backend.external.schemas import (
    EvaluationIn,
    ExternalRunCreate,
    FinishIn,
    PointsAccepted,
    PointsIn,
    RemoteMonitorAccepted,
    reserved_kind_error,
)
from backend.metrics import service as metrics
from backend.runs.models import Run, RunStatus
from backend.runs.schemas import RunOut
from backend.users import service as users
from backend.users.deps import MemberUser, current_user, require_member
from backend.users.models import User
from backend.workers import protocol
from backend.workers.deps import holds, is_worker_token, token_in
from backend.workers.models import WorkerToken

router = APIRouter(tags=["external runs"])

_POST_ERRORS = error_responses(401, 403, 404, 409, 422)


def _full(session: SessionDep, run: Run) -> RunOut:
    final = metrics.latest(session, run_ids=[run.id])[run.id]
    ids = {run.launched_by_id} if run.launched_by_id is not None else set()
    launcher = users.usernames(session, user_ids=ids).get(run.launched_by_id or 0)
    return RunOut.full(run, final, events.last_id(session, run_id=run.id), launched_by=launcher)


@router.post(
    "/runs/external",
    status_code=status.HTTP_201_CREATED,
    response_model=RunOut,
    responses=error_responses(401, 403, 422),
)
def create_external_run(body: ExternalRunCreate, session: SessionDep, user: MemberUser) -> RunOut:
    """Start a run that a script elsewhere trains (status running, source external)."""
    run = external.create(
        session,
        user=user,
        name=body.name,
        spec=body.spec,
        params=body.params,
        dataset=body.dataset,
        tags=body.tags,
    )
    session.commit()
    return _full(session, run)


def batch_sender(request: Request, session: SessionDep) -> User | WorkerToken:
    """Who posts points: a worker (its worker token, read in the request's session) for a run
    it trains, or a member for an external run (a user token or the browser's session)."""
    if is_worker_token(request):
        return token_in(session, request)
    return require_member(current_user(request))


@router.post("/runs/{run_id}/points", response_model=PointsAccepted, responses=_POST_ERRORS)
def post_points(
    run_id: Id,
    body: PointsIn,
    session: SessionDep,
    sender: Annotated[User | WorkerToken, Depends(batch_sender)],
) -> PointsAccepted:
    """Append a batch of metric points and timeline events to a running run, idempotent per
    uid and key/step: what FitboardCallback sends for an external run, and what a worker's
    training process sends for the run it trains (with its worker token and ``attempt``).

    Points come one object each (``points``) or as parallel arrays (``columns``: keys named
    once, then key_index, steps, values and wall_times per point), which is parsed and stored
    in bulk; a bad entry is a 422 naming it (``columns.steps.17``). Each post is also the
    run's heartbeat; the answer says whether a cancel was requested."""
    points = external.posted_points(
        (p.model_dump() for p in body.points),
        columns=body.columns.arrays() if body.columns is not None else None,
    )
    batch_events = [(e.kind, e.data, e.uid) for e in body.events]
    if isinstance(sender, WorkerToken):
        run = holds(session, sender, run_id)  # one read: owner, attempt, cancel request
        if body.train_begin is not None:
            batch_events.insert(0, ("train_begin", body.train_begin.model_dump(), "train_begin"))
        protocol.write_batch(
            session,
            run_id=run_id,
            attempt=body.attempt,
            uid=body.uid or uuid.uuid4().hex,
            points=points,
            batch_events=batch_events,
            known=run,
        )
        session.commit()  # before the answer: the worker acts on it at once
        return _accepted(run_id, len(points), run.cancel_requested)
    for index, event in enumerate(body.events):
        refused = reserved_kind_error(event.kind)
        if refused is not None:
            raise InvalidInput(refused, field=f"events.{index}.kind")
    cancel = external.record_points(
        session,
        user=sender,
        run_id=run_id,
        points=points,
        uid=body.uid,
        train_begin=body.train_begin.model_dump() if body.train_begin else None,
        batch_events=batch_events,
    )
    session.commit()
    return _accepted(run_id, len(points), cancel)


def _accepted(run_id: int, points: int, cancel: bool) -> PointsAccepted:
    """The answer to a committed batch (whether anyone watches: its publish just told)."""
    return PointsAccepted(
        run_id=run_id, points=points, cancel_requested=cancel, watched=bus.watched(run_id)
    )


@router.post(
    "/runs/{run_id}/evaluation",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    responses={201: {"description": "Stored; read it with GET"}, **_POST_ERRORS},
)
def post_evaluation(run_id: Id, body: EvaluationIn, session: SessionDep, user: MemberUser) -> None:
    """Store an external run's confusion matrix (and report, computed when omitted)."""
    external.save_evaluation(
        session,
        user=user,
        run_id=run_id,
        split=body.split,
        class_names=body.class_names,
        confusion_matrix=body.confusion_matrix,
        report=body.report,
    )
    session.commit()


@router.post("/runs/{run_id}/finish", response_model=RunOut, responses=_POST_ERRORS)
def finish_external_run(
    run_id: Id, body: FinishIn, session: SessionDep, user: MemberUser
) -> RunOut:
    """Mark an external run succeeded, failed (with a reason) or cancelled."""
    run = external.finish(
        session,
        user=user,
        run_id=run_id,
        status=RunStatus(body.status),
        reason=body.reason,
        traceback=body.traceback,
    )
    session.commit()
    return _full(session, run)


async def remote_monitor_logs(
    request: Request,
    field: Annotated[
        str, Query(max_length=100, description="RemoteMonitor's `field` (form posts)")
    ] = "data",
) -> dict[str, Any]:
    """The epoch logs of a RemoteMonitor post: a form field holding JSON, or a JSON body.

    Parsed leniently: Python's json.dumps writes NaN and Infinity as bare words."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        text = (await request.body()).decode("utf-8", errors="replace")
    else:
        try:
            form = await request.form()
        except StarletteHTTPException as exc:  # a malformed multipart body
            raise InvalidInput(f"malformed form body: {exc.detail}", field=field) from None
        value = form.get(field)
        if not isinstance(value, str):
            raise InvalidInput(
                f"expected a form field {field!r} holding the epoch logs as JSON "
                "(or a JSON body: RemoteMonitor(send_as_json=True))",
                field=field,
            )
        text = value
    try:
        logs = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"the epoch logs are not JSON: {exc}", field=field) from exc
    if not isinstance(logs, dict):
        raise InvalidInput("the epoch logs must be a JSON object", field=field)
    return logs


@router.post(
    "/remote-monitor/{name}",
    response_model=RemoteMonitorAccepted,
    responses=error_responses(401, 403, 409, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {"data": {"type": "string", "description": "JSON logs"}},
                        "required": ["data"],
                    }
                },
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "epoch": {"type": "integer", "minimum": 0, "maximum": MAX_INT32}
                        },
                        "required": ["epoch"],
                        "additionalProperties": {"type": ["number", "null"]},
                    }
                },
            },
        }
    },
)
def remote_monitor(
    name: str,
    session: SessionDep,
    user: MemberUser,
    logs: Annotated[dict[str, Any], Depends(remote_monitor_logs)],
    epochs: Annotated[
        int | None,
        Query(
            ge=1,
            le=MAX_INT32,
            description="The fit's epochs: the run succeeds when the last one arrives",
        ),
    ] = None,
) -> RemoteMonitorAccepted:
    """Endpoint for keras.callbacks.RemoteMonitor: each named stream becomes a run.

    Epoch 0 starts a new run; later epochs append to the latest one of that name and user.
    The run succeeds at the last epoch when ?epochs= is given, when a new epoch 0 of the same
    name arrives, or (without ?epochs=) once it stays silent for the heartbeat timeout."""
    run, epoch, count = external.remote_monitor_epoch(
        session, user=user, name=name, logs=logs, epochs=epochs
    )
    session.commit()
    return RemoteMonitorAccepted(run_id=run.id, epoch=epoch, points=count, status=run.status)
