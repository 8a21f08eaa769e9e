"""Who is asking on the worker protocol: a worker token (never a user)."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.orm import Session

from backend.db.session import session_scope
from backend.errors import Conflict, Unauthenticated
from backend.runs import service as runs
from backend.runs.models import RunSource
from backend.workers import service as tokens
from backend.workers.models import WorkerToken

WORKER_TOKEN = "send the worker token as 'Authorization: Bearer <worker token>'"


def worker_token(request: Request) -> WorkerToken:
    """The worker token of the request (revoked ones too: each route decides); 401 otherwise."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(WORKER_TOKEN)
    with session_scope() as session:
        row = tokens.find(session, token=token.strip())
        if row is None:
            raise Unauthenticated("this worker token is not valid")
        session.expunge(row)
    return row


def is_worker_token(request: Request) -> bool:
    """Whether the request carries a worker token (they start ``fbw_``; user tokens do not)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith(tokens.TOKEN_PREFIX)


def active(token: WorkerToken) -> None:
    if token.revoked_at is not None:
        raise Unauthenticated(f"worker token {token.prefix}... was revoked")


def holds(session: Session, token: WorkerToken, run_id: int) -> None:
    """A worker token reaches only runs workers train (never a script's external run); a
    revoked one may still write to a run its worker claimed before the revocation."""
    run = runs.get(session, run_id)
    if run.source != RunSource.worker.value:
        raise Conflict(
            f"run {run_id} is streamed in by a script: a worker token reaches only the runs "
            "workers train"
        )
    if token.revoked_at is not None and run.worker_token_id != token.id:
        active(token)
