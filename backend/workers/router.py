"""The worker protocol, version 1: how a worker on any host trains runs with only the API's
address, a worker token and the broker (no database, no shared directory).

Every route takes ``Authorization: Bearer <worker token>``; a worker token opens these routes
and no other. A revoked token claims nothing new, but may finish the runs it holds.
Writes carry the attempt they come from: a stale attempt's get 409 ``superseded``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response, StreamingResponse

from backend.api.deps import SessionDep
from backend.api.errors import error_responses
from backend.artifacts import service as artifacts
from backend.artifacts.download import (
    DOWNLOAD_RESPONSES,
    IfRangeHeader,
    RangeHeader,
    artifact_response,
)
from backend.artifacts.store import get_store
from backend.audit import service as audit
from backend.bounds import Count64, Id
from backend.config import get_settings
from backend.datasets import objects as dataset_objects
from backend.datasets import store as datasets
from backend.db.session import session_scope
from backend.errors import NotFound, TooLarge
from backend.runlogs import service as runlogs
from backend.runqueue import service as runqueue
from backend.runs import service as runs
from backend.runs.models import RunStatus
from backend.users.deps import AdminUser, ReaderUser
from backend.workers import hosts, protocol
from backend.workers import service as tokens
from backend.workers.deps import active, holds, worker_token
from backend.workers.models import WorkerToken
from backend.workers.schemas import (
    ARTIFACT_NAME,
    ArtifactDeletedOut,
    ArtifactOut,
    AttemptIn,
    ClaimIn,
    ClaimOut,
    EvaluationIn,
    ExitIn,
    ExitOut,
    FinishIn,
    FinishOut,
    HeartbeatOut,
    HostIn,
    LogOut,
    ManifestFile,
    ManifestOut,
    ModelSummaryIn,
    PruneIn,
    PruneOut,
    ResumeOut,
    SpecOut,
    WorkerList,
    WorkerOut,
    WorkerTokenCreate,
    WorkerTokenCreated,
    WorkerTokenList,
    WorkerTokenOut,
)

router = APIRouter(prefix="/worker", tags=["worker protocol"])

_ERRORS = error_responses(401, 404, 409, 422)
CHUNK = 1 << 20
OCTETS = "application/octet-stream"
WORKER_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.@:-]*$"
BINARY_BODY = {
    "requestBody": {
        "required": True,
        "content": {OCTETS: {"schema": {"type": "string", "format": "binary"}}},
    }
}


WorkerDep = Annotated[WorkerToken, Depends(worker_token)]


@router.post(
    "/runs/{run_id}/claim",
    response_model=ClaimOut,
    responses=error_responses(401, 404, 409, 422),
)
def claim_run(run_id: Id, body: ClaimIn, session: SessionDep, token: WorkerDep) -> ClaimOut:
    """Take a queued run (atomic: one worker, once per attempt); 409 when it is not queued."""
    active(token)
    runs.get(session, run_id)  # 404 for no such run
    claimed = protocol.claim(session, run_id=run_id, worker_host=body.host, token_id=token.id)
    if claimed is None:
        raise protocol.NotRunning(
            f"run {run_id} is not queued any more (started elsewhere or cancelled)"
        )
    row = session.get(WorkerToken, token.id)
    if row is not None:
        row.last_host = body.host
    session.commit()  # before the answer: the worker acts on it at once
    return ClaimOut(
        run_id=run_id, attempt=claimed.attempt, spec=claimed.spec, log_offset=claimed.log_offset
    )


@router.post("/runs/{run_id}/heartbeat", response_model=HeartbeatOut, responses=_ERRORS)
def heartbeat(run_id: Id, body: AttemptIn, session: SessionDep, token: WorkerDep) -> HeartbeatOut:
    """The attempt is alive; the answer says whether someone asked it to stop."""
    holds(session, token, run_id)
    cancel = protocol.heartbeat(session, run_id=run_id, attempt=body.attempt)
    session.commit()  # before the answer: the worker acts on it at once
    return HeartbeatOut(cancel_requested=cancel)


@router.get("/runs/{run_id}/spec", response_model=SpecOut, responses=_ERRORS)
def running_spec(
    run_id: Id, session: SessionDep, token: WorkerDep, attempt: Id | None = None
) -> SpecOut:
    """The resolved spec of a running run (what its training process trains)."""
    holds(session, token, run_id)
    return SpecOut(spec=protocol.running_spec(session, run_id=run_id, attempt=attempt))


@router.put("/runs/{run_id}/model-summary", status_code=204, responses=_ERRORS)
def put_model_summary(
    run_id: Id, body: ModelSummaryIn, session: SessionDep, token: WorkerDep
) -> None:
    """The built model's summary (layers, parameter counts)."""
    holds(session, token, run_id)
    protocol.set_model_summary(session, run_id=run_id, attempt=body.attempt, summary=body.summary)
    session.commit()  # before the answer: the worker acts on it at once


@router.put("/runs/{run_id}/evaluation", status_code=204, responses=_ERRORS)
def put_evaluation(run_id: Id, body: EvaluationIn, session: SessionDep, token: WorkerDep) -> None:
    """The final evaluation: confusion matrix and classification report."""
    holds(session, token, run_id)
    protocol.save_evaluation(
        session,
        run_id=run_id,
        attempt=body.attempt,
        split=body.split,
        class_names=body.class_names,
        confusion_matrix=body.confusion_matrix,
        report=body.report,
    )
    session.commit()  # before the answer: the worker acts on it at once


@router.put(
    "/runs/{run_id}/artifacts/{name}",
    response_model=ArtifactOut,
    responses=error_responses(401, 404, 409, 413, 422),
    openapi_extra=BINARY_BODY,
)
async def put_artifact(
    run_id: Id,
    request: Request,
    token: WorkerDep,
    name: Annotated[str, PathParam(pattern=ARTIFACT_NAME)],
    kind: Annotated[str, Query(min_length=1, max_length=32, pattern=r"^[a-z_]+$")] = "file",
    attempt: Id | None = None,
) -> ArtifactOut:
    """Upload one artifact's bytes (the body, streamed); replaces one of the same name."""
    limit = get_settings().max_upload_mb * 2**20
    with tempfile.TemporaryDirectory(prefix="fitboard-artifact-") as tmp:
        path = Path(tmp) / name
        received = 0
        with path.open("wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise TooLarge(f"an artifact may be at most {limit // 2**20} MB")
                out.write(chunk)
        size = await run_in_threadpool(_store_artifact, token, run_id, attempt, name, kind, path)
    return ArtifactOut(name=name, size_bytes=size)


@router.delete(
    "/runs/{run_id}/artifacts/{name}", response_model=ArtifactDeletedOut, responses=_ERRORS
)
def delete_artifact(
    run_id: Id,
    session: SessionDep,
    token: WorkerDep,
    name: Annotated[str, PathParam(pattern=ARTIFACT_NAME)],
    attempt: Id | None = None,
) -> ArtifactDeletedOut:
    """Delete one of the run's artifacts (an old checkpoint): its row and its bytes."""
    holds(session, token, run_id)
    deleted = protocol.delete_artifact(session, run_id=run_id, attempt=attempt, name=name)
    session.commit()  # before the answer: the worker acts on it at once
    return ArtifactDeletedOut(deleted=deleted)


@router.get("/runs/{run_id}/resume", response_model=ResumeOut, responses=_ERRORS)
def resume_point(
    run_id: Id, session: SessionDep, token: WorkerDep, attempt: Id | None = None
) -> ResumeOut:
    """The checkpoint this attempt resumes from (chosen when the run was queued again)."""
    holds(session, token, run_id)
    point = protocol.resume_point(session, run_id=run_id, attempt=attempt)
    return ResumeOut(**point.as_dict()) if point is not None else ResumeOut()


def _check_holds(token: WorkerToken, run_id: int) -> None:
    with session_scope() as session:
        holds(session, token, run_id)


def _store_artifact(
    token: WorkerToken, run_id: int, attempt: int | None, name: str, kind: str, path: Path
) -> int:
    with session_scope() as session:
        holds(session, token, run_id)
        return protocol.add_artifact(
            session, run_id=run_id, attempt=attempt, name=name, kind=kind, source=path
        )


@router.post(
    "/runs/{run_id}/log",
    response_model=LogOut,
    responses=error_responses(401, 404, 409, 413, 422),
    openapi_extra=BINARY_BODY,
)
async def post_log(run_id: Id, request: Request, token: WorkerDep, offset: Count64) -> LogOut:
    """Append training-log bytes at ``offset`` (bytes already there are skipped: a retry is
    harmless); 422 naming the end when ``offset`` is past it."""
    data = await request.body()
    if len(data) > 8 * CHUNK:
        raise TooLarge("send the log in chunks of at most 8 MB")
    await run_in_threadpool(_check_holds, token, run_id)
    size = await run_in_threadpool(runlogs.append, run_id=run_id, offset=offset, data=data)
    return LogOut(size=size)


@router.post("/runs/{run_id}/finish", response_model=FinishOut, responses=_ERRORS)
def finish(run_id: Id, body: FinishIn, session: SessionDep, token: WorkerDep) -> FinishOut:
    """The training process's own end: succeeded, failed (with its traceback), cancelled,
    pruned."""
    holds(session, token, run_id)
    recorded = protocol.finish(
        session,
        run_id=run_id,
        attempt=body.attempt,
        status=RunStatus(body.status),
        reason=body.reason,
        traceback=body.traceback,
    )
    session.commit()  # before the answer: the worker acts on it at once
    return FinishOut(recorded=recorded)


@router.post("/runs/{run_id}/exit", response_model=ExitOut, responses=_ERRORS)
def record_exit(run_id: Id, body: ExitIn, session: SessionDep, token: WorkerDep) -> ExitOut:
    """The worker saw the training process end without recording its outcome: the run is
    queued again as its next attempt (spec.max_restarts) or fails."""
    holds(session, token, run_id)
    became = protocol.record_exit(
        session,
        run_id=run_id,
        attempt=body.attempt,
        reason=body.reason,
        cancelled=body.cancelled,
        traceback=body.traceback,
    )
    session.commit()  # before the answer: the worker acts on it at once
    return ExitOut(status=became)


@router.get("/runs/{run_id}/pruning", response_model=PruneOut, responses=_ERRORS)
def pruning_objective(run_id: Id, session: SessionDep, token: WorkerDep) -> PruneOut:
    """The epoch metric a sweep trial's pruner watches (null: the run has no pruner)."""
    holds(session, token, run_id)
    return PruneOut(objective=protocol.prune_objective(session, run_id=run_id))


@router.post("/runs/{run_id}/pruning", response_model=PruneOut, responses=_ERRORS)
def pruning_decision(run_id: Id, body: PruneIn, session: SessionDep, token: WorkerDep) -> PruneOut:
    """Whether the trial should stop after this epoch, from the other trials' values."""
    holds(session, token, run_id)
    value = float("nan") if body.value is None else body.value
    why = protocol.prune_decide(session, run_id=run_id, epoch=body.epoch, value=value)
    return PruneOut(prune=why)


@router.get(
    "/runs/{run_id}/artifacts/{name}",
    response_class=Response,
    responses={**DOWNLOAD_RESPONSES, **_ERRORS},
)
def get_artifact(
    run_id: Id,
    name: str,
    session: SessionDep,
    token: WorkerDep,
    range_header: RangeHeader = None,
    if_range: IfRangeHeader = None,
) -> Response:
    """Another run's artifact (a transfer run's base model, from_run), whole or one byte
    range (Range: 206)."""
    active(token)
    status = runs.get(session, run_id).status  # 404 naming a run that does not exist
    try:
        artifact = artifacts.get(session, run_id=run_id, name=name)
    except NotFound:
        raise NotFound(f"run {run_id} ({status}) has saved no {name}") from None
    return artifact_response(get_store(), artifact, range_header=range_header, if_range=if_range)


@router.get("/datasets/{dataset_id}/manifest", response_model=ManifestOut, responses=_ERRORS)
def dataset_manifest(dataset_id: Id, token: WorkerDep) -> ManifestOut:
    """Every file of an uploaded dataset with its size and SHA-256 (a worker caches and checks)."""
    active(token)
    try:
        files = dataset_objects.manifest(dataset_id)
    except datasets.UploadMissing as exc:
        raise NotFound(str(exc)) from None
    return ManifestOut(
        dataset_id=dataset_id, files={k: ManifestFile(**v) for k, v in files.items()}
    )


@router.get(
    "/datasets/{dataset_id}/files/{path:path}",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}}}, **_ERRORS},
)
def dataset_file(dataset_id: Id, path: str, token: WorkerDep) -> FileResponse | StreamingResponse:
    """One file of an uploaded dataset, by its manifest path (from this API's disk or the
    object store)."""
    active(token)
    try:
        found = dataset_objects.open_file(dataset_id, path)
    except (datasets.UploadMissing, FileNotFoundError) as exc:
        raise NotFound(str(exc)) from None
    if isinstance(found, Path):
        return FileResponse(found, media_type=OCTETS)
    return StreamingResponse(found, media_type=OCTETS)


@router.put(
    "/hosts/{name}",
    response_model=WorkerOut,
    responses=error_responses(401, 422),
)
def report_host(
    name: Annotated[str, PathParam(min_length=1, max_length=255, pattern=WORKER_NAME)],
    body: HostIn,
    session: SessionDep,
    token: WorkerDep,
) -> WorkerOut:
    """A worker's report, at start and with every beat: its host's CPUs, memory and GPUs, and
    which run trains on which GPU (GET /api/v1/workers shows them)."""
    active(token)
    hosts.report(
        session,
        name=name,
        host=body.host,
        token_id=token.id,
        version=body.version,
        resources=body.resources.model_dump(),
        running=[r.model_dump() for r in body.running],
    )
    runqueue.release_after_commit(session)  # a worker (back) with room takes the next runs
    settings = get_settings()
    [found] = [
        w
        for w in hosts.fleet(session, lost_after_s=settings.worker_lost_after_s)
        if w["name"] == name
    ]
    session.commit()  # before the answer: the worker acts on it at once
    return WorkerOut.model_validate(found)


workers_router = APIRouter(prefix="/workers", tags=["workers"])


@workers_router.get("", response_model=WorkerList, responses=error_responses(401))
def list_workers(session: SessionDep, _: ReaderUser) -> WorkerList:
    """The fleet: every worker seen in the last day (online first), its host's resources,
    each GPU free or busy with which run, and the runs it trains."""
    settings = get_settings()
    items = hosts.fleet(session, lost_after_s=settings.worker_lost_after_s)
    return WorkerList(items=[WorkerOut.model_validate(w) for w in items])


tokens_router = APIRouter(prefix="/worker-tokens", tags=["worker tokens"])


def _token_out(row: WorkerToken) -> WorkerTokenOut:
    return WorkerTokenOut.model_validate(row, from_attributes=True)


@tokens_router.get("", response_model=WorkerTokenList, responses=error_responses(401, 403))
def list_worker_tokens(session: SessionDep, _: AdminUser) -> WorkerTokenList:
    """Worker tokens that are not revoked, newest first (admins)."""
    return WorkerTokenList(items=[_token_out(t) for t in tokens.list_tokens(session)])


@tokens_router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WorkerTokenCreated,
    responses=error_responses(401, 403, 422),
)
def create_worker_token(
    body: WorkerTokenCreate, request: Request, session: SessionDep, admin: AdminUser
) -> WorkerTokenCreated:
    """A token a worker on another host joins with; its value is shown only in this answer."""
    row, plaintext = tokens.create_token(session, name=body.name, created_by_id=admin.id)
    audit.record(
        session,
        action=audit.Action.worker_token_created,
        actor=admin,
        target_type="worker_token",
        target_id=row.id,
        target_name=row.name,
        address=audit.client_address(request),
    )
    session.commit()  # before the answer: the worker acts on it at once
    return WorkerTokenCreated(**_token_out(row).model_dump(), token=plaintext)


@tokens_router.delete("/{token_id}", status_code=204, responses=error_responses(401, 403, 404))
def revoke_worker_token(
    token_id: Id, request: Request, session: SessionDep, admin: AdminUser
) -> None:
    """Revoke a worker token: its worker claims no new run (the runs it trains may finish)."""
    row = tokens.revoke_token(session, token_id=token_id)
    audit.record(
        session,
        action=audit.Action.worker_token_revoked,
        actor=admin,
        target_type="worker_token",
        target_id=row.id,
        target_name=row.name,
        address=audit.client_address(request),
    )
    session.commit()  # before the answer: the worker acts on it at once
