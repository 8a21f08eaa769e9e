"""HTTP routes of sign-in (/auth) and, for admins, of user management (/users)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response, status

from backend.api.deps import SessionDep
from backend.config import get_settings
from backend.errors import Forbidden
from backend.users import service as users
from backend.users.deps import CSRF_COOKIE, SESSION_COOKIE, AdminUser, ReaderUser
from backend.users.schemas import (
    LoginIn,
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
    UserWithPassword,
)

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


@auth_router.post("/login", response_model=MeOut, responses={401: {"description": "Wrong login"}})
def login(body: LoginIn, request: Request, response: Response, session: SessionDep) -> MeOut:
    """Check the password and set the session cookie; returns who you are and the CSRF token."""
    _check_origin(request)
    user = users.authenticate(session, username=body.username, password=body.password)
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
    return MeOut(user=UserOut.of(user), auth="session", csrf_token=new.csrf_token)


@auth_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def logout(request: Request, user: ReaderUser, session: SessionDep) -> Response:
    """End this browser's session (a token request has none: nothing to end)."""
    id_hash = getattr(request.state, "session_id_hash", None)
    if id_hash:
        users.end_session(session, session_id_hash=id_hash)
        session.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@auth_router.get("/me", response_model=MeOut)
def me(request: Request, user: ReaderUser) -> MeOut:
    """Who is signed in (or whose API token this is), with their role."""
    return _me(request, user)


@auth_router.post("/password", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
def change_password(body: PasswordChange, user: ReaderUser, session: SessionDep) -> Response:
    """Change your own password (the current one is asked for again)."""
    users.change_own_password(
        session, user_id=user.id, current=body.current_password, new=body.new_password
    )
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@auth_router.get("/tokens", response_model=TokenList)
def list_tokens(user: ReaderUser, session: SessionDep) -> TokenList:
    """Your API tokens that are not revoked (names and prefixes; never the tokens)."""
    return TokenList(items=[TokenOut.of(t) for t in users.list_tokens(session, user_id=user.id)])


@auth_router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, user: ReaderUser, session: SessionDep) -> TokenCreated:
    """A new personal API token: the answer holds it once; send it as Authorization: Bearer."""
    token, plaintext = users.create_token(session, user_id=user.id, name=body.name)
    session.commit()
    return TokenCreated(**TokenOut.of(token).model_dump(), token=plaintext)


@auth_router.delete(
    "/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response
)
def revoke_token(token_id: int, user: ReaderUser, session: SessionDep) -> Response:
    """Revoke one of your API tokens; it stops working at once."""
    users.revoke_token(session, user_id=user.id, token_id=token_id)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@users_router.get("", response_model=UserList)
def list_users(_: AdminUser, session: SessionDep) -> UserList:
    """Every user with their role (admins only)."""
    return UserList(items=[UserOut.of(u) for u in users.list_all(session)])


@users_router.post("", status_code=status.HTTP_201_CREATED, response_model=UserWithPassword)
def create_user(body: UserCreate, _: AdminUser, session: SessionDep) -> UserWithPassword:
    """Create a user; without a password one is generated and returned once."""
    user, generated = users.create(
        session,
        username=body.username,
        role=body.role,
        password=body.password,
        display_name=body.display_name,
    )
    session.commit()
    return UserWithPassword(user=UserOut.of(user), password=generated)


@users_router.patch("/{user_id}", response_model=UserWithPassword)
def update_user(
    user_id: int, body: UserPatch, _: AdminUser, session: SessionDep
) -> UserWithPassword:
    """Change a role, (de)activate, or set or reset a password (signs the user out)."""
    user, generated = users.update(
        session,
        user_id=user_id,
        role=body.role,
        is_active=body.is_active,
        display_name=body.display_name,
        password=body.password,
        reset_password=body.reset_password,
    )
    session.commit()
    return UserWithPassword(user=UserOut.of(user), password=generated)
