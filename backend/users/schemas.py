"""Request and response bodies of the auth and users API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    next: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the browser wants to go after signing in; the answer's `next` is "
        "this when it is a path on this site, else '/'.",
    )


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


class LoginOut(MeOut):
    next: str = Field(
        default="/", description="A same-origin path to go to now (never another host)."
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


# a runs-table column: a built-in one, a final metric or a spec parameter (the list's sort keys)
RUNS_COLUMN_PATTERN = (
    r"^(name|status|preset|dataset|tags|launcher|started|duration"
    r"|metric:[A-Za-z0-9_./-]{1,200}"
    r"|param:[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*)$"
)
MAX_RUNS_COLUMNS = 60

RunsColumn = Annotated[str, Field(max_length=210, pattern=RUNS_COLUMN_PATTERN)]


class UserPreferences(BaseModel):
    """What the pages remember for you; a field left null means the page's default."""

    model_config = ConfigDict(extra="forbid")

    runs_columns: list[RunsColumn] | None = Field(
        default=None,
        max_length=MAX_RUNS_COLUMNS,
        description="The runs table's columns, in order: name, status, preset, dataset, tags, "
        "launcher, started, duration, metric:<key> (a final metric) or param:<spec path>.",
        examples=[["name", "status", "metric:val_accuracy", "param:fit.batch_size"]],
    )

    @classmethod
    def stored(cls, values: dict[str, Any]) -> UserPreferences:
        """What a user's row holds; a value an older release allowed but this one refuses
        reads as the default rather than failing the page."""
        fields = {}
        for name in cls.model_fields:
            try:
                fields[name] = cls.model_validate({name: values.get(name)}).__dict__[name]
            except ValidationError:
                fields[name] = None
        return cls(**fields)

    @field_validator("runs_columns")
    @classmethod
    def _no_repeats(cls, columns: list[str] | None) -> list[str] | None:
        if columns is not None and len(set(columns)) != len(columns):
            repeated = next(c for c in columns if columns.count(c) > 1)
            raise ValueError(f"{repeated!r} is listed twice")
        return columns
