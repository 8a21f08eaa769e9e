"""HTTP routes of sign-in (/auth) and, for admins, of user management (/users)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, status

from backend.api.deps import SessionDep
from backend.audit import service as audit
from backend.bounds import Id
from backend.config import get_settings
from backend.errors import Forbidden, Unauthenticated
from backend.users import service as users
from backend.users.deps import CSRF_COOKIE, SESSION_COOKIE, AdminUser, ReaderUser
from backend.users.models import ApiToken, User
from backend.users.redirects import safe_next
from backend.users.schemas import (
    LoginIn,
    LoginOut,
    MeOut,
    PasswordChange,
    TokenCreate,
    TokenCreated,
    TokenList,
    TokenOut,
    UserCreate,
    UserList,
    UserOut,
    UserPatch,
    UserPreferences,
    UserWithPassword,
)
from backend.users.signin import sign_in

auth_router = APIRouter(prefix="/auth", tags=["auth"])
users_router = APIRouter(prefix="/users", tags=["users"])


def _check_origin(request: Request) -> None:
    """A browser names the page that sent a POST: sign-in only from this site's own pages."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser form or fetch (curl, scripts)
    parts = urlsplit(origin)
    if parts.netloc != request.headers.get("host", "") or parts.scheme != request.url.scheme:
        raise Forbidden("sign-in from another site is refused (Origin does not match)")


def _me(request: Request, user: ReaderUser) -> MeOut:
    kind = getattr(request.state, "auth_kind", "token")
    return MeOut(
        user=UserOut.of(user), auth=kind, csrf_token=getattr(request.state, "csrf_token", None)
    )


@auth_router.post(
    "/login",
    response_model=LoginOut,
    responses={
        401: {"description": "Wrong login"},
        403: {"description": "Sent from another site's page (Origin does not match)"},
        429: {
            "description": "Too many failed sign-ins for this account or client address: "
            "wait the seconds in Retry-After"
        },
    },
)
def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> LoginOut:
    """Check the password and set the session cookie; returns who you are and the CSRF token.

    Failed sign-ins are throttled per account and per client address with growing delays
    (429 with Retry-After)."""
    _check_origin(request)
    address = audit.client_address(request)
    try:
        user = sign_in(session, username=body.username, password=body.password, address=address)
    except Unauthenticated:
        session.commit()  # keep the failed sign-in's audit entry
        raise
    ttl = timedelta(hours=get_settings().session_hours)
    new = users.start_session(session, user_id=user.id, ttl=ttl)
    session.commit()
    secure = request.url.scheme == "https"
    max_age = int(ttl.total_seconds())
    response.set_cookie(
        SESSION_COOKIE,
        new.session_id,
        max_age=max_age,
        httponly=True,
        samesite="lax",
        secure=secure,
        path="/",
    )
    response.set_cookie(
        CSRF_COOKIE, new.csrf_token, max_age=max_age, samesite="lax", secure=secure, path="/"
    )
    return LoginOut(
        user=UserOut.of(user),
        auth="session",
        csrf_token=new.csrf_token,
        next=safe_next(body.next),
    )


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(request: Request, user: ReaderUser, session: SessionDep) -> Response:
    """End this browser's session (a token request has none: nothing to end)."""
    id_hash = getattr(request.state, "session_id_hash", None)
    if id_hash:
        users.end_session(session, session_id_hash=id_hash)
        audit.record(
            session, action=audit.Action.signout, actor=user, address=audit.client_address(request)
        )
        session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@auth_router.get("/me", response_model=MeOut)
def me(request: Request, user: ReaderUser) -> MeOut:
    """Who is signed in (or whose API token this is), with their role."""
    return _me(request, user)


@auth_router.get("/me/preferences", response_model=UserPreferences)
def my_preferences(user: ReaderUser, session: SessionDep) -> UserPreferences:
    """What the pages remember for you (the runs table's columns); null fields are defaults."""
    return UserPreferences.stored(users.preferences(session, user_id=user.id))


@auth_router.put("/me/preferences", response_model=UserPreferences)
def save_my_preferences(
    body: UserPreferences, user: ReaderUser, session: SessionDep
) -> UserPreferences:
    """Replace what the pages remember for you; a field left out goes back to its default."""
    saved = users.set_preferences(
        session, user_id=user.id, values=body.model_dump(mode="json", exclude_none=True)
    )
    session.commit()
    return UserPreferences.stored(saved)


@auth_router.post("/password", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def change_password(
    body: PasswordChange, request: Request, user: ReaderUser, session: SessionDep
) -> Response:
    """Change your own password (the current one is asked for again); signs out your other
    browsers (this one stays signed in); your API tokens keep working."""
    ended = users.change_own_password(
        session,
        user_id=user.id,
        current=body.current_password,
        new=body.new_password,
        keep_session_hash=getattr(request.state, "session_id_hash", None),
    )
    audit.record(
        session,
        action=audit.Action.password_changed,
        actor=user,
        target_type="user",
        target_id=user.id,
        target_name=user.username,
        target_user_id=user.id,
        address=audit.client_address(request),
        details={"other_sessions_ended": ended},
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/tokens", response_model=TokenList)
def list_tokens(user: ReaderUser, session: SessionDep) -> TokenList:
    """Your API tokens that are not revoked (names and prefixes; never the tokens)."""
    return TokenList(items=[TokenOut.of(t) for t in users.list_tokens(session, user_id=user.id)])


@auth_router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(
    body: TokenCreate, request: Request, user: ReaderUser, session: SessionDep
) -> TokenCreated:
    """A new personal API token: the answer holds it once; send it as Authorization: Bearer."""
    token, plaintext = users.create_token(session, user_id=user.id, name=body.name)
    _token_event(session, audit.Action.token_created, request, user, token)
    session.commit()
    return TokenCreated(**TokenOut.of(token).model_dump(), token=plaintext)


@auth_router.delete(
    "/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def revoke_token(token_id: Id, request: Request, user: ReaderUser, session: SessionDep) -> Response:
    """Revoke one of your API tokens; it stops working at once."""
    token = users.revoke_token(session, user_id=user.id, token_id=token_id)
    _token_event(session, audit.Action.token_revoked, request, user, token)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _token_event(
    session: SessionDep, action: audit.Action, request: Request, user: User, token: ApiToken
) -> None:
    audit.record(
        session,
        action=action,
        actor=user,
        target_type="token",
        target_id=token.id,
        target_name=token.name,
        target_user_id=user.id,
        address=audit.client_address(request),
        details={"prefix": token.prefix},
    )


@users_router.get("", response_model=UserList)
def list_users(_: AdminUser, session: SessionDep) -> UserList:
    """Every user with their role (admins only)."""
    return UserList(items=[UserOut.of(u) for u in users.list_all(session)])


@users_router.post("", status_code=status.HTTP_201_CREATED, response_model=UserWithPassword)
def create_user(
    body: UserCreate, request: Request, admin: AdminUser, session: SessionDep
) -> UserWithPassword:
    """Create a user; without a password one is generated and returned once."""
    user, generated = users.create(
        session,
        username=body.username,
        role=body.role,
        password=body.password,
        display_name=body.display_name,
    )
    audit.record(
        session,
        action=audit.Action.user_created,
        actor=admin,
        target_type="user",
        target_id=user.id,
        target_name=user.username,
        target_user_id=user.id,
        address=audit.client_address(request),
        details={"role": user.role},
    )
    session.commit()
    return UserWithPassword(user=UserOut.of(user), password=generated)


@users_router.patch("/{user_id}", response_model=UserWithPassword)
def update_user(
    user_id: Id, body: UserPatch, request: Request, admin: AdminUser, session: SessionDep
) -> UserWithPassword:
    """Change a role, (de)activate, or set or reset a password; a new password signs the user
    out everywhere and revokes all their API tokens."""
    before = users.get(session, user_id)
    old_role, old_active = before.role, before.is_active
    user, generated = users.update(
        session,
        user_id=user_id,
        role=body.role,
        is_active=body.is_active,
        display_name=body.display_name,
        password=body.password,
        reset_password=body.reset_password,
    )
    audit.record_user_change(
        session,
        actor=admin,
        user=user,
        old_role=old_role,
        old_active=old_active,
        password_set=body.password is not None or body.reset_password,
        address=audit.client_address(request),
    )
    session.commit()
    return UserWithPassword(user=UserOut.of(user), password=generated)
