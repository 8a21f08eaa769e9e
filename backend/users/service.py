"""Users, sign-in sessions and API tokens: typed keyword-only functions on a caller's session."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from backend.users import security
from backend.users.models import ApiToken, Role, User, UserSession

log = logging.getLogger(__name__)

USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_PASSWORD_CHARS = 8
LOCAL_ADMIN = "local"  # the identity of every request when FITBOARD_AUTH=off
FIRST_ADMIN = "admin"
# api_tokens.last_used_at is written at most this often per token
LAST_USED_RESOLUTION = timedelta(minutes=1)
WRONG_LOGIN = "wrong username or password"


def _aware(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; every stored time is UTC
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _check_password(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD_CHARS} characters", field=field
        )


def get(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} does not exist")
    return user


def preferences(session: Session, *, user_id: int) -> dict[str, Any]:
    """What the pages remember for this user (UserPreferences as stored; {} when nothing)."""
    return dict(get(session, user_id).preferences or {})


def set_preferences(session: Session, *, user_id: int, values: dict[str, Any]) -> dict[str, Any]:
    """Replace what the pages remember for this user (already validated: UserPreferences)."""
    user = get(session, user_id)
    user.preferences = values
    session.flush()
    return dict(values)


def list_all(session: Session) -> list[User]:
    return list(session.scalars(select(User).where(User.username != LOCAL_ADMIN).order_by(User.id)))


def usernames(session: Session, *, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.username).where(User.id.in_(user_ids)))
    return {row.id: row.username for row in rows}


def user_id(session: Session, *, username: str) -> int | None:
    """The account's id of this username, None if there is none."""
    return session.scalar(select(User.id).where(User.username == username))


def create(
    session: Session,
    *,
    username: str,
    role: Role,
    password: str | None = None,
    display_name: str = "",
) -> tuple[User, str | None]:
    """A new user; with no password one is generated and returned (shown once)."""
    username = username.strip()
    if not USERNAME.fullmatch(username) or username == LOCAL_ADMIN:
        raise InvalidInput(
            "a username is 1-64 letters, digits, '_', '.', '@' or '-' (not 'local')",
            field="username",
        )
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise Conflict(f"a user named {username!r} already exists")
    generated = None
    if password is None:
        password = generated = security.new_password()
    _check_password(password)
    user = User(
        username=username,
        display_name=display_name.strip(),
        role=Role(role).value,
        password_hash=security.hash_password(password),
        is_active=True,
    )
    session.add(user)
    session.flush()
    log.info("user %s created with role %s", username, user.role)
    return user, generated


def _active_admins(session: Session) -> int:
    stmt = select(func.count()).where(
        User.role == Role.admin.value, User.is_active.is_(True), User.password_hash.is_not(None)
    )
    return int(session.scalar(stmt) or 0)


def update(
    session: Session,
    *,
    user_id: int,
    role: Role | None = None,
    is_active: bool | None = None,
    password: str | None = None,
    reset_password: bool = False,
    display_name: str | None = None,
) -> tuple[User, str | None]:
    """An admin's change to a user; reset_password returns a new generated password."""
    user = get(session, user_id)
    if user.username == LOCAL_ADMIN:
        raise InvalidInput("the local identity of FITBOARD_AUTH=off cannot be changed")
    losing_admin = (
        user.role == Role.admin.value
        and user.is_active
        and ((role is not None and role != Role.admin) or is_active is False)
    )
    if losing_admin and _active_admins(session) <= 1:
        raise Conflict("this is the last active admin: make another admin first")
    if role is not None:
        user.role = Role(role).value
    if display_name is not None:
        user.display_name = display_name.strip()
    generated = None
    if reset_password:
        password = generated = security.new_password()
    if password is not None:
        _check_password(password)
        user.password_hash = security.hash_password(password)
        # whoever knew the old password may hold a session or have made a token: end them all
        session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        revoke_all_tokens(session, user_id=user.id)
    if is_active is not None:
        user.is_active = is_active
        if not is_active:
            session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    session.flush()
    return user, generated


def change_own_password(
    session: Session, *, user_id: int, current: str, new: str, keep_session_hash: str | None
) -> int:
    """Set a new password and sign out every other browser of this user; how many were ended.

    ``keep_session_hash`` is the session that asked (it stays signed in); API tokens keep
    working (an admin's reset revokes them)."""
    user = get(session, user_id)
    if not security.verify_password(user.password_hash, current):
        raise InvalidInput("the current password is wrong", field="current_password")
    _check_password(new, field="new_password")
    user.password_hash = security.hash_password(new)
    others = select(UserSession).where(UserSession.user_id == user.id)
    if keep_session_hash:
        others = others.where(UserSession.id_hash != keep_session_hash)
    ended = session.scalars(others).all()
    for row in ended:
        session.delete(row)
    session.flush()
    return len(ended)


def revoke_all_tokens(session: Session, *, user_id: int) -> int:
    """Revoke every API token of a user that is still valid; how many were."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
    ).all()
    now = utcnow()
    for token in tokens:
        token.revoked_at = now
    session.flush()
    return len(tokens)


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The active user with this password; the same error for any wrong part (no enumeration)."""
    user = session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.password_hash:
        security.burn_password_check(password)
        raise Unauthenticated(WRONG_LOGIN)
    if not security.verify_password(user.password_hash, password) or not user.is_active:
        raise Unauthenticated(WRONG_LOGIN)
    return user


@dataclass(frozen=True)
class NewSession:
    session_id: str  # goes in the cookie; only its SHA-256 is stored
    csrf_token: str
    expires_at: datetime


def start_session(session: Session, *, user_id: int, ttl: timedelta) -> NewSession:
    now = utcnow()
    session.execute(
        delete(UserSession).where(UserSession.user_id == user_id, UserSession.expires_at < now)
    )
    session_id, csrf = security.new_session_id(), security.new_csrf_token()
    row = UserSession(
        id_hash=security.sha256_hex(session_id),
        user_id=user_id,
        csrf_token=csrf,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(row)
    session.flush()
    return NewSession(session_id, csrf, row.expires_at)


def session_user(session: Session, *, session_id: str) -> tuple[User, UserSession] | None:
    row = session.get(UserSession, security.sha256_hex(session_id))
    if row is None or _aware(row.expires_at) <= utcnow():
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    return user, row


def end_session(session: Session, *, session_id_hash: str) -> None:
    session.execute(delete(UserSession).where(UserSession.id_hash == session_id_hash))


def create_token(session: Session, *, user_id: int, name: str) -> tuple[ApiToken, str]:
    """A new API token; the plaintext is returned once and never stored."""
    name = name.strip()
    if not name:
        raise InvalidInput("give the token a name", field="name")
    plaintext = security.new_api_token()
    token = ApiToken(
        user_id=user_id,
        name=name,
        prefix=plaintext[: security.TOKEN_PREFIX_CHARS],
        token_hash=security.sha256_hex(plaintext),
        created_at=utcnow(),
    )
    session.add(token)
    session.flush()
    return token, plaintext


def list_tokens(session: Session, *, user_id: int) -> list[ApiToken]:
    stmt = (
        select(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.id.desc())
    )
    return list(session.scalars(stmt))


def revoke_token(session: Session, *, user_id: int, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens (another user's is 'not found')."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user_id or token.revoked_at is not None:
        raise NotFound(f"token {token_id} does not exist")
    token.revoked_at = utcnow()
    session.flush()
    return token


def token_user(session: Session, *, token: str) -> User | None:
    """The active user of a valid token; marks it used (at most once a minute)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == security.sha256_hex(token)))
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        return None
    now = utcnow()
    if row.last_used_at is None or now - _aware(row.last_used_at) >= LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.flush()
    return user


def local_admin(session: Session) -> User:
    """The identity of every request when FITBOARD_AUTH=off (it has no password)."""
    user = session.scalar(select(User).where(User.username == LOCAL_ADMIN))
    if user is None:
        user = User(username=LOCAL_ADMIN, role=Role.admin.value, display_name="local admin")
        session.add(user)
        session.flush()
    return user


def ensure_first_admin(session: Session, *, password: str = "") -> str | None:
    """On a database with nobody who can sign in, create `admin`; returns its password."""
    someone = session.scalar(select(User.id).where(User.password_hash.is_not(None)).limit(1))
    if someone is not None:
        return None
    password = password or security.new_password()
    existing = session.scalar(select(User).where(User.username == FIRST_ADMIN))
    if existing is None:
        create(session, username=FIRST_ADMIN, role=Role.admin, password=password)
    else:
        _check_password(password)
        existing.role, existing.is_active = Role.admin.value, True
        existing.password_hash = security.hash_password(password)
        session.flush()
    return password


def ensure_can_modify(user: User, *, owner_id: int | None, what: str = "run") -> None:
    """Members change only what they launched; admins change anything; Forbidden otherwise."""
    if user.role == Role.admin:
        return
    if user.role == Role.member and owner_id is not None and owner_id == user.id:
        return
    raise Forbidden(f"only the member who launched this {what}, or an admin, can change it")
