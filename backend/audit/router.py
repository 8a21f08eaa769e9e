"""HTTP route of the audit log (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.audit import service as audit
from backend.audit.schemas import AuditEventOut, AuditPage
from backend.users import service as users
from backend.users.deps import AdminUser

router = APIRouter(prefix="/audit", tags=["audit"])
MAX_ID = 2**63 - 1


@router.get("", response_model=AuditPage)
def list_audit_events(
    _: AdminUser,
    session: SessionDep,
    action: Annotated[audit.Action | None, Query(description="Only this action.")] = None,
    user: Annotated[
        str | None,
        Query(max_length=64, description="Only entries this username did or that were done to it."),
    ] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Entries older than this id (paging).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AuditPage:
    """Security-relevant actions, newest first: sign-ins (and failed ones), tokens, roles,
    password changes and resets, deletes."""
    rows, next_before = audit.list_events(
        session,
        action=action,
        username=user,
        user_id=users.user_id(session, username=user) if user else None,
        before=before,
        limit=limit,
    )
    return AuditPage(items=[AuditEventOut.of(r) for r in rows], next_before=next_before)
