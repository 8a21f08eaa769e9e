"""Response bodies of the audit API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from backend.audit.models import AuditEvent


class AuditEventOut(BaseModel):
    id: int
    at: datetime
    action: str = Field(description="signin, signin_failed, token_created, role_changed, ...")
    actor_id: int | None = Field(description="Who acted; null for a failed sign-in.")
    actor_name: str = Field(
        description="Their username then (for a failed sign-in: the one tried)."
    )
    target_type: str | None = Field(description="user, token, run, dataset, sweep, or null.")
    target_id: str | None
    target_name: str
    target_user_id: int | None = Field(description="The user the action was done to, if any.")
    address: str = Field(description="The client address the request came from.")
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventOut:
        return cls(
            id=event.id,
            at=event.at,
            action=event.action,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            target_type=event.target_type,
            target_id=event.target_id,
            target_name=event.target_name,
            target_user_id=event.target_user_id,
            address=event.address,
            details=event.details or {},
        )


class AuditPage(BaseModel):
    items: list[AuditEventOut]
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null at the end."
    )
