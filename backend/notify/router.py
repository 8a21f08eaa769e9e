"""HTTP routes of notifications: your settings and signing secret, your recent browser
notifications, and the webhook delivery log (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.bounds import MAX_INT64
from backend.notify import service as notify
from backend.notify.schemas import (
    DeliveryOut,
    DeliveryPage,
    NotificationOut,
    NotifySettingsIn,
    NotifySettingsOut,
    RecentNotifications,
    SecretOut,
)
from backend.users.deps import AdminUser, ReaderUser

router = APIRouter(prefix="/notifications", tags=["notifications"])
# any identity changes its own settings; only a browser session's request can be refused
_CSRF: dict[int | str, dict[str, Any]] = {
    403: {"description": "A signed-in browser's request without its X-CSRF-Token"}
}


@router.get("/settings", response_model=NotifySettingsOut)
def my_notify_settings(user: ReaderUser, session: SessionDep) -> NotifySettingsOut:
    """Your webhook URL, the events you want for every run and sweep you launch, browser on/off."""
    return NotifySettingsOut.of(notify.settings_of(session, user_id=user.id))


@router.put("/settings", response_model=NotifySettingsOut, responses=_CSRF)
def save_my_notify_settings(
    body: NotifySettingsIn, user: ReaderUser, session: SessionDep
) -> NotifySettingsOut:
    """Replace your settings; the first webhook URL gets a signing secret, shown in this answer
    only."""
    row, secret = notify.save_settings(
        session,
        user_id=user.id,
        webhook_url=body.webhook_url,
        events=body.events,
        browser=body.browser,
    )
    return NotifySettingsOut.of(row, secret=secret)


@router.post("/settings/secret", response_model=SecretOut, responses=_CSRF)
def regenerate_my_webhook_secret(user: ReaderUser, session: SessionDep) -> SecretOut:
    """A new signing secret for your webhook (the old one stops at once); shown only here."""
    return SecretOut(secret=notify.regenerate_secret(session, user_id=user.id))


@router.get("/recent", response_model=RecentNotifications)
def recent_notifications(
    user: ReaderUser,
    session: SessionDep,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_INT64,
            description="Only those after this id (latest_id of the last "
            "answer); without it, none: only latest_id to start from.",
        ),
    ] = None,
) -> RecentNotifications:
    """Your browser notifications (an open tab polls this every 10 s)."""
    rows, latest = notify.recent(session, user_id=user.id, after=after)
    return RecentNotifications(items=[NotificationOut.of(r) for r in rows], latest_id=latest)


@router.get("/deliveries", response_model=DeliveryPage)
def list_deliveries(
    _: AdminUser,
    session: SessionDep,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_INT64, description="Older than this id (paging).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DeliveryPage:
    """Every webhook notification, newest first, with each attempt: status code, error, time."""
    page, next_before = notify.deliveries(session, before=before, limit=limit)
    items = [DeliveryOut.of(e.notification, e.username, e.attempts) for e in page]
    return DeliveryPage(items=items, next_before=next_before)
