"""Who is asking: request dependencies for routes (the contract every router uses).

- ``ReaderUser``: any signed-in identity (viewer, member, admin); 401 otherwise.
- ``MemberUser``: a member or admin (may launch); 401 anonymous, 403 viewer.
- ``AdminUser``: an admin; 401 / 403 otherwise.
- ``ensure_can_modify(user, owner_id=...)``: members change only what they launched; admins
  change anything; raises Forbidden.

TEMPORARY BODY (being replaced by the auth work): every request is a local admin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy import select

from backend.api.deps import SessionDep
from backend.errors import Forbidden
from backend.users.models import Role, User


def current_user(session: SessionDep) -> User:
    user = session.scalar(select(User).where(User.username == "local"))
    if user is None:
        user = User(username="local", role=Role.admin.value)
        session.add(user)
        session.flush()
    return user


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


def ensure_can_modify(user: User, *, owner_id: int | None, what: str = "run") -> None:
    if user.role == Role.admin:
        return
    if user.role == Role.member and owner_id is not None and owner_id == user.id:
        return
    raise Forbidden(f"only the member who launched this {what}, or an admin, can change it")
