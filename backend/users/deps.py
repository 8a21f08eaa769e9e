"""Who is asking: request dependencies for routes (the contract every router uses).

- ``ReaderUser``: any signed-in identity (viewer, member, admin); 401 otherwise.
- ``MemberUser``: a member or admin (may launch); 401 anonymous, 403 viewer.
- ``AdminUser``: an admin; 401 / 403 otherwise.
- ``ensure_can_modify(user, owner_id=...)``: members change only what they launched; admins
  change anything; raises Forbidden.

An identity comes from ``Authorization: Bearer <API token>`` (no CSRF token needed: a browser
never adds it by itself) or from the session cookie, where a mutating request must also send
the session's CSRF token in ``X-CSRF-Token``. With FITBOARD_AUTH=off everyone is a local admin.
The lookup uses its own short session, so a streaming response never holds a connection.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Annotated

from fastapi import Depends, Request

from backend.config import Settings, get_settings
from backend.db.session import session_scope
from backend.errors import Forbidden, Unauthenticated
from backend.users import service as users
from backend.users.models import Role, User
from backend.users.service import ensure_can_modify as ensure_can_modify

SESSION_COOKIE = "fitboard_session"
# readable by the page's scripts, which send it back as X-CSRF-Token; checked against the session
CSRF_COOKIE = "fitboard_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_IN = "sign in, or send an API token as 'Authorization: Bearer <token>'"


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth_setting(settings: Settings) -> None:
    """FITBOARD_AUTH=off makes everyone an admin: only allowed on a loopback address."""
    if settings.auth == "off" and not is_loopback(settings.host):
        raise RuntimeError(
            f"FITBOARD_AUTH=off makes every request an admin, so the API only starts with it "
            f"on a loopback FITBOARD_HOST (127.0.0.1, ::1 or localhost), not {settings.host!r}. "
            "Turn auth on (FITBOARD_AUTH=on) to listen on other addresses."
        )


def _identify(request: Request) -> User | None:
    """The identity of a request, or None when it brings none; 401 for a bad token."""
    with session_scope() as session:
        if get_settings().auth == "off":
            # also per connection: a server started some other way (uvicorn --host 0.0.0.0)
            # still lends the local admin only to connections made to a loopback address
            server = request.scope.get("server") or ("", None)
            if not is_loopback(str(server[0])):
                raise Forbidden(
                    "FITBOARD_AUTH=off only serves connections to a loopback address; "
                    "turn auth on to serve other addresses"
                )
            request.state.auth_kind = "off"
            return users.local_admin(session)
        header = request.headers.get("authorization")
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("send the API token as 'Authorization: Bearer <token>'")
            user = users.token_user(session, token=token.strip())
            if user is None:
                raise Unauthenticated(
                    "this API token is not valid: unknown, revoked, or its user is deactivated"
                )
            request.state.auth_kind = "token"
            return user
        cookie = request.cookies.get(SESSION_COOKIE)
        found = users.session_user(session, session_id=cookie) if cookie else None
        if found is None:
            return None
        user, user_session = found
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), user_session.csrf_token.encode()):
                raise Forbidden(
                    f"missing or wrong {CSRF_HEADER} header: reload the page and try again"
                )
        request.state.auth_kind = "session"
        request.state.session_id_hash = user_session.id_hash
        request.state.csrf_token = user_session.csrf_token
        return user


def current_user(request: Request) -> User:
    user = _identify(request)
    if user is None:
        raise Unauthenticated(SIGN_IN)
    return user


def optional_user(request: Request) -> User | None:
    """For HTML pages: who is signed in (by cookie), or None to redirect to /login."""
    try:
        return _identify(request)
    except (Unauthenticated, Forbidden):
        return None


def require_member(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role not in (Role.admin, Role.member):
        raise Forbidden("viewers cannot change anything; ask an admin for the member role")
    return user


def require_admin(user: Annotated[User, Depends(current_user)]) -> User:
    if user.role != Role.admin:
        raise Forbidden("only an admin can do this")
    return user


ReaderUser = Annotated[User, Depends(current_user)]
MemberUser = Annotated[User, Depends(require_member)]
AdminUser = Annotated[User, Depends(require_admin)]
