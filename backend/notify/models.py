"""Notifications: each user's channels, what a run or sweep asked for, and the outbox of what
is to be told (one row per event and user) with every webhook attempt."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, BigIntId, utcnow
from backend.launch import NotifyEvent as NotifyEvent


class WebhookState(enum.StrEnum):
    none = "none"  # no webhook for this notification (browser only)
    pending = "pending"  # waiting for its next attempt
    delivered = "delivered"
    gave_up = "gave_up"  # every attempt failed


class NotifySettings(Base):
    """One user's channels and the events they want for every run and sweep they launch."""

    __tablename__ = "notify_settings"

    user_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    # kept as it is (not hashed): deliveries are signed with it
    secret: Mapped[str | None] = mapped_column(String(128))
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    browser: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotifyWatch(Base):
    """What the launcher of one run or sweep asked for on submit (``notify`` in the body)."""

    __tablename__ = "notify_watches"
    __table_args__ = (
        Index("ix_notify_watches_run_id", "run_id"),
        Index("ix_notify_watches_sweep_id", "sweep_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("users.id", ondelete="CASCADE"))
    run_id: Mapped[int | None] = mapped_column(BigIntId, ForeignKey("runs.id", ondelete="CASCADE"))
    sweep_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("sweeps.id", ondelete="CASCADE")
    )
    webhook: Mapped[bool] = mapped_column(default=True)
    browser: Mapped[bool] = mapped_column(default=True)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)


class Notification(Base):
    """The outbox: written in the transaction that ended the run; the API's delivery loop
    posts its webhook. Unique per user and ``dedupe_key``, so an end is told once."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key"),
        Index("ix_notifications_webhook_state_next_attempt_at", "webhook_state", "next_attempt_at"),
        Index("ix_notifications_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("users.id", ondelete="CASCADE"))
    dedupe_key: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(16))
    subject_type: Mapped[str] = mapped_column(String(16))  # run | sweep
    subject_id: Mapped[int] = mapped_column(BigIntId)  # no foreign key: outlives a deleted run
    subject_name: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))  # the run's or sweep's status then
    reason: Mapped[str | None] = mapped_column(Text)  # why it failed or stalled
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(String(200))  # the page's path (/runs/12)
    browser: Mapped[bool] = mapped_column(default=False)
    webhook_state: Mapped[str] = mapped_column(String(16), default=WebhookState.none.value)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryAttempt(Base):
    """One POST of a notification's webhook: what came back, or why nothing did."""

    __tablename__ = "notify_attempts"
    __table_args__ = (Index("ix_notify_attempts_notification_id", "notification_id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("notifications.id", ondelete="CASCADE")
    )
    number: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    ok: Mapped[bool]
    duration_ms: Mapped[int]
