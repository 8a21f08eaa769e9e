"""The audit log: one row per security-relevant action (sign-ins, tokens, roles, deletes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, BigIntId, utcnow


class AuditEvent(Base):
    """Who did what to what, when and from where. Names are copied in, not joined, so an
    entry still reads right after its user or target is renamed or gone."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_actor_id_id", "actor_id", "id"),
        Index("ix_audit_events_target_user_id_id", "target_user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(64))
    # no foreign keys: the log outlives the users and things it names
    actor_id: Mapped[int | None] = mapped_column(BigIntId)
    actor_name: Mapped[str] = mapped_column(String(64), default="")
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    target_name: Mapped[str] = mapped_column(String(200), default="")
    # the user an action was done to (role change, reset): filterable like the actor
    target_user_id: Mapped[int | None] = mapped_column(BigIntId)
    address: Mapped[str] = mapped_column(String(64), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
