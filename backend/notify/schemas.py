"""Request and response bodies of the notifications API, and ``notify`` of a run or sweep."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.launch import ALL_EVENTS as ALL_EVENTS
from backend.launch import NotifyRequest as NotifyRequest
from backend.launch import unique_events
from backend.notify.models import DeliveryAttempt, Notification, NotifyEvent, NotifySettings

URL_MAX_CHARS = 2000


class NotifySettingsIn(BaseModel):
    """Your channels, and the events you want for every run and sweep you launch."""

    model_config = ConfigDict(extra="forbid")

    webhook_url: str | None = Field(
        default=None,
        max_length=URL_MAX_CHARS,
        description="http(s) URL that gets a Slack-compatible JSON POST; null: no webhook.",
    )
    events: list[NotifyEvent] = Field(
        default_factory=list,
        max_length=len(ALL_EVENTS),
        description="Told for every run and sweep you launch (a submit's `notify` overrides).",
    )
    browser: bool = Field(default=False, description="Show notifications in open Fitboard tabs.")

    _check_events = field_validator("events")(unique_events)

    @field_validator("webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        url = url.strip()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("must name a host")
        _ = parts.port  # raises ValueError for a port out of range or not a number
        return url


class NotifySettingsOut(BaseModel):
    webhook_url: str | None
    events: list[NotifyEvent]
    browser: bool
    secret_set: bool = Field(description="Whether deliveries are signed (a secret exists).")
    secret: str | None = Field(
        default=None,
        description="The signing secret, only in the answer that made it: shown once.",
    )

    @classmethod
    def of(cls, row: NotifySettings | None, *, secret: str | None = None) -> NotifySettingsOut:
        if row is None:
            return cls(webhook_url=None, events=[], browser=False, secret_set=False)
        return cls(
            webhook_url=row.webhook_url,
            events=[NotifyEvent(e) for e in row.events or []],
            browser=row.browser,
            secret_set=bool(row.secret),
            secret=secret,
        )


class SecretOut(BaseModel):
    secret: str = Field(description="The new signing secret: shown only this once.")


class NotificationOut(BaseModel):
    id: int
    event: NotifyEvent
    subject_type: str = Field(description="run or sweep")
    subject_id: int
    subject_name: str
    status: str
    text: str
    link: str
    created_at: datetime

    @classmethod
    def of(cls, row: Notification) -> NotificationOut:
        return cls(
            id=row.id,
            event=NotifyEvent(row.event),
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            subject_name=row.subject_name,
            status=row.status,
            text=row.text,
            link=row.link,
            created_at=row.created_at,
        )


class RecentNotifications(BaseModel):
    items: list[NotificationOut] = Field(description="Yours for the browser, oldest first.")
    latest_id: int = Field(description="Pass as `after` next time (0 when there are none).")


class AttemptOut(BaseModel):
    number: int
    at: datetime
    status_code: int | None = Field(description="What the webhook answered; null: no answer.")
    error: str | None
    ok: bool
    duration_ms: int

    @classmethod
    def of(cls, row: DeliveryAttempt) -> AttemptOut:
        return cls(
            number=row.number,
            at=row.at,
            status_code=row.status_code,
            error=row.error,
            ok=row.ok,
            duration_ms=row.duration_ms,
        )


class DeliveryOut(NotificationOut):
    user_id: int
    username: str | None
    webhook_state: str = Field(description="pending, delivered or gave_up")
    webhook_url: str | None
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    delivered_at: datetime | None

    @classmethod
    def of(  # type: ignore[override]
        cls, row: Notification, username: str | None, attempts: list[DeliveryAttempt]
    ) -> DeliveryOut:
        return cls(
            **NotificationOut.of(row).model_dump(),
            user_id=row.user_id,
            username=username,
            webhook_state=row.webhook_state,
            webhook_url=row.webhook_url,
            attempts=[AttemptOut.of(a) for a in attempts],
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
        )


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page.")
