"""Worker tokens: created by an admin (shown once, stored as SHA-256), used, revoked.

A worker token authenticates the worker protocol only (backend.workers.router); it is no
user and reads nothing else. A revoked token claims no new run; the runs its worker already
trains may finish (so revoking never strands a run)."""

from __future__ import annotations

import secrets
from datetime import UTC, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.errors import InvalidInput, NotFound
from backend.users import security
from backend.workers.models import WorkerToken

TOKEN_PREFIX = "fbw_"
LAST_USED_RESOLUTION = timedelta(minutes=1)
EMBEDDED_NAME = "embedded worker (make run)"


def create_token(
    session: Session, *, name: str, created_by_id: int | None
) -> tuple[WorkerToken, str]:
    """A new worker token; the plaintext is returned once and never stored."""
    name = name.strip()
    if not name:
        raise InvalidInput("give the worker token a name", field="name")
    if len(name) > 100:
        raise InvalidInput("at most 100 characters", field="name")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = WorkerToken(
        name=name,
        prefix=plaintext[: security.TOKEN_PREFIX_CHARS],
        token_hash=security.sha256_hex(plaintext),
        created_by_id=created_by_id,
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    return token, plaintext


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[WorkerToken]:
    stmt = select(WorkerToken).order_by(WorkerToken.id.desc())
    if not include_revoked:
        stmt = stmt.where(WorkerToken.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_token(session: Session, *, token_id: int) -> WorkerToken:
    token = session.get(WorkerToken, token_id)
    if token is None or token.revoked_at is not None:
        raise NotFound(f"worker token {token_id} does not exist")
    token.revoked_at = utcnow()
    session.flush()
    return token


def find(session: Session, *, token: str) -> WorkerToken | None:
    """The token row of a plaintext (revoked ones too: the caller decides); marks it used."""
    row = session.scalar(
        select(WorkerToken).where(WorkerToken.token_hash == security.sha256_hex(token))
    )
    if row is None:
        return None
    now = utcnow()
    last = row.last_used_at
    if last is not None and last.tzinfo is None:  # SQLite gives naive datetimes back
        last = last.replace(tzinfo=UTC)
    if last is None or now - last >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return row


MIN_GIVEN_TOKEN_CHARS = 24


def ensure_token(session: Session, *, name: str, plaintext: str) -> bool:
    """Register a token an operator chose (compose's FITBOARD_WORKER_TOKEN) unless it is
    already known; True when it was added. A revoked one stays revoked."""
    if len(plaintext) < MIN_GIVEN_TOKEN_CHARS:
        raise InvalidInput(
            f"a worker token needs at least {MIN_GIVEN_TOKEN_CHARS} characters",
            field="FITBOARD_WORKER_TOKEN",
        )
    digest = security.sha256_hex(plaintext)
    if session.scalar(select(WorkerToken.id).where(WorkerToken.token_hash == digest)):
        return False
    session.add(
        WorkerToken(
            name=name.strip() or "worker",
            prefix=plaintext[: security.TOKEN_PREFIX_CHARS],
            token_hash=digest,
            created_at=utcnow(),
        )
    )
    session.flush()
    return True


def embedded_token(session: Session) -> str:
    """A fresh token for the worker `make run` starts; the ones of earlier starts are revoked."""
    session.execute(
        update(WorkerToken)
        .where(WorkerToken.name == EMBEDDED_NAME, WorkerToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    _, plaintext = create_token(session, name=EMBEDDED_NAME, created_by_id=None)
    return plaintext
