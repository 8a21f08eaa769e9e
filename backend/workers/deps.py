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
    """The worker token of the request (revoked ones too: each route decides); 401 otherwise.
    Read in a session of its own: a route that streams a body holds no connection meanwhile."""
    with session_scope() as session:
        row = token_in(session, request)
        session.expunge(row)
    return row


def token_in(session: Session, request: Request) -> WorkerToken:
    """:func:`worker_token`, read in the caller's session (for a hot route that uses its
    session at once: one connection per call)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(WORKER_TOKEN)
    row = tokens.find(session, token=token.strip())
    if row is None:
        raise Unauthenticated("this worker token is not valid")
    return row


def is_worker_token(request: Request) -> bool:
    """Whether the request carries a worker token (they start ``fbw_``; user tokens do not)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and token.strip().startswith(tokens.TOKEN_PREFIX)


def active(token: WorkerToken) -> None:
    if token.revoked_at is not None:
        raise Unauthenticated(f"worker token {token.prefix}... was revoked")


def holds(session: Session, token: WorkerToken, run_id: int) -> runs.Holding:
    """A worker token reaches only runs workers train (never a script's external run); a
    revoked one may still write to a run its worker claimed before the revocation. The run's
    state as read for the check (one query), for the caller to go on with."""
    run = runs.holding(session, run_id)
    if run.source != RunSource.worker.value:
        raise Conflict(
            f"run {run_id} is streamed in by a script: a worker token reaches only the runs "
            "workers train"
        )
    if token.revoked_at is not None and run.worker_token_id != token.id:
        active(token)
    return run
