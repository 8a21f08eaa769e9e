"""Recording and reading the audit log: typed keyword-only functions on a caller's session."""

from __future__ import annotations

import enum
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from backend.audit.models import AuditEvent
from backend.db.base import utcnow


class Action(enum.StrEnum):
    signin = "signin"
    signin_failed = "signin_failed"
    signout = "signout"
    password_changed = "password_changed"  # by the user themselves
    password_reset = "password_reset"  # by an admin (set or generated)
    token_created = "token_created"
    token_revoked = "token_revoked"
    worker_token_created = "worker_token_created"
    worker_token_revoked = "worker_token_revoked"
    user_created = "user_created"
    role_changed = "role_changed"
    user_deactivated = "user_deactivated"
    user_activated = "user_activated"
    run_deleted = "run_deleted"
    dataset_deleted = "dataset_deleted"
    # sweeps and users have no delete endpoint (a user is deactivated: logged above)


class Actor(Protocol):
    """Who acted (a user; the audit log sits below the users package and reads no table of it)."""

    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...


class ChangedUser(Actor, Protocol):
    """A user whose role, state or password an admin changed."""

    @property
    def role(self) -> str: ...

    @property
    def is_active(self) -> bool: ...


class _Peer(Protocol):
    @property
    def host(self) -> str: ...


class _Request(Protocol):
    """What an HTTP request (Starlette's) offers here: its client's address."""

    @property
    def client(self) -> _Peer | None: ...


def client_address(request: _Request) -> str:
    return request.client.host[:64] if request.client else ""


def record(
    session: Session,
    *,
    action: Action,
    actor: Actor | None,
    actor_name: str | None = None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    target_name: str = "",
    target_user_id: int | None = None,
    address: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add one entry; it is written with the caller's transaction."""
    event = AuditEvent(
        at=utcnow(),
        action=action.value,
        actor_id=actor.id if actor is not None else None,
        actor_name=(actor_name if actor_name is not None else actor.username if actor else "")[:64],
        target_type=target_type,
        target_id=None if target_id is None else str(target_id)[:64],
        target_name=target_name[:200],
        target_user_id=target_user_id,
        address=address[:64],
        details=details or {},
    )
    session.add(event)
    session.flush()
    return event


def record_user_change(
    session: Session,
    *,
    actor: Actor,
    user: ChangedUser,
    old_role: str,
    old_active: bool,
    password_set: bool,
    address: str,
) -> None:
    """The entries an admin's change to a user makes: role, state, password."""
    common: dict[str, Any] = {
        "actor": actor,
        "target_type": "user",
        "target_id": user.id,
        "target_name": user.username,
        "target_user_id": user.id,
        "address": address,
    }
    if user.role != old_role:
        record(
            session,
            action=Action.role_changed,
            details={"from": old_role, "to": user.role},
            **common,
        )
    if user.is_active != old_active:
        action = Action.user_activated if user.is_active else Action.user_deactivated
        record(session, action=action, **common)
    if password_set:
        details = {"sessions_ended": True, "tokens_revoked": True}
        record(session, action=Action.password_reset, details=details, **common)


def list_events(
    session: Session,
    *,
    action: Action | None = None,
    username: str | None = None,
    user_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> tuple[list[AuditEvent], int | None]:
    """Newest first; ``username`` matches who acted or whom it was done to (``user_id``: that
    username's account, if one exists). Returns the page and the ``before`` cursor of the next
    page (None at the end)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action.value)
    if username:
        matches = [AuditEvent.actor_name == username]
        if user_id is not None:
            matches += [AuditEvent.actor_id == user_id, AuditEvent.target_user_id == user_id]
        stmt = stmt.where(or_(*matches))
    if before is not None:
        stmt = stmt.where(AuditEvent.id < before)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
