"""Who is asking on the worker protocol: a worker token (never a user)."""

from __future__ import annotations

from fastapi import Request

from backend.db.session import session_scope
from backend.errors import Unauthenticated
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
