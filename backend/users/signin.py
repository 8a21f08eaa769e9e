"""Signing in: the throttle, the password check and the record of the attempt, in one place."""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.audit import service as audit
from backend.config import get_settings
from backend.errors import Unauthenticated
from backend.users import service as users
from backend.users import throttle
from backend.users.models import User


def sign_in(session: Session, *, username: str, password: str, address: str) -> User:
    """The user with this password, unless this account or address must wait (Throttled).

    Both outcomes go in the audit log; on a failure the caller commits before answering 401,
    so the entry outlives the failed request."""
    limiter = throttle.for_settings(get_settings())
    limiter.check(username=username, address=address)
    try:
        user = users.authenticate(session, username=username, password=password)
    except Unauthenticated:
        limiter.failed(username=username, address=address)
        audit.record(
            session,
            action=audit.Action.signin_failed,
            actor=None,
            actor_name=username.strip(),
            address=address,
        )
        raise
    limiter.succeeded(username=username)
    audit.record(session, action=audit.Action.signin, actor=user, address=address)
    return user
