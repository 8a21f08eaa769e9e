"""Request and response bodies of the auth and users API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.users.models import ApiToken, Role, User


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=Role(user.role),
            is_active=user.is_active,
            created_at=user.created_at,
        )


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class MeOut(BaseModel):
    user: UserOut
    auth: Literal["session", "token", "off"] = Field(
        description="How this request was identified: session cookie, API token, or "
        "FITBOARD_AUTH=off."
    )
    csrf_token: str | None = Field(
        default=None,
        description="With a session cookie: send it back as X-CSRF-Token on every POST, PATCH "
        "and DELETE.",
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["laptop notebook"])


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart.")
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, token: ApiToken) -> TokenOut:
        return cls(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            last_used_at=token.last_used_at,
        )


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown this once, only its hash is kept.")


class TokenList(BaseModel):
    items: list[TokenOut]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    role: Role = Role.member
    display_name: str = Field(default="", max_length=200)
    password: str | None = Field(
        default=None, max_length=1024, description="Leave out to get a generated one (shown once)."
    )


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = None
    display_name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, max_length=1024)
    reset_password: bool = Field(
        default=False, description="Set a generated password and return it (shown once)."
    )


class UserWithPassword(BaseModel):
    user: UserOut
    password: str | None = Field(
        default=None, description="A generated password, shown this once; null if none was made."
    )


class UserList(BaseModel):
    items: list[UserOut]
