"""Notifications: each user's channels and signing secret, what a run or sweep asked for on
submit, reading the outbox (a tab's recent ones, the admins' delivery log), and the bookkeeping
of webhook attempts (claimed when due, posted by backend.notify.delivery, recorded with
backoff). What an end or a stall writes to the outbox is backend.notify.outbox.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.errors import InvalidInput
from backend.notify import outbox, targets
from backend.notify.models import (
    DeliveryAttempt,
    Notification,
    NotifyEvent,
    NotifySettings,
    NotifyWatch,
    WebhookState,
)
from backend.notify.webhook import Delivery, Outcome
from backend.users.models import User

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 3600.0
CLAIM_LEASE_S = 60.0  # a claimed attempt that never reports back is tried again after this
SECRET_BYTES = 32


# ---- settings and watches --------------------------------------------------------------------


def settings_of(session: Session, *, user_id: int) -> NotifySettings | None:
    return session.get(NotifySettings, user_id)


def save_settings(
    session: Session,
    *,
    user_id: int,
    webhook_url: str | None,
    events: Iterable[str],
    browser: bool,
) -> tuple[NotifySettings, str | None]:
    """Replace the user's settings; returns them and the signing secret when this made one
    (the first webhook URL gets a secret, shown once)."""
    if webhook_url:
        try:
            targets.check_url(webhook_url, get_settings().webhook_networks, must_resolve=False)
        except targets.Refused as exc:
            raise InvalidInput(f"webhook_url: {exc}", field="webhook_url") from exc
    row = settings_of(session, user_id=user_id)
    if row is None:
        row = NotifySettings(user_id=user_id)
        session.add(row)
    row.webhook_url = webhook_url
    row.events = sorted({NotifyEvent(e).value for e in events})
    row.browser = browser
    row.updated_at = utcnow()
    made = None
    if webhook_url and not row.secret:
        made = row.secret = _new_secret()
    session.flush()
    return row, made


def regenerate_secret(session: Session, *, user_id: int) -> str:
    """A new signing secret (the old one stops verifying at once); returned once."""
    row = settings_of(session, user_id=user_id)
    if row is None:
        row = NotifySettings(user_id=user_id, events=[], browser=False)
        session.add(row)
    row.secret = _new_secret()
    row.updated_at = utcnow()
    session.flush()
    return row.secret


def _new_secret() -> str:
    return "fbwh_" + secrets.token_urlsafe(SECRET_BYTES)


def watch(
    session: Session,
    *,
    user_id: int,
    run_id: int | None = None,
    sweep_id: int | None = None,
    webhook: bool,
    browser: bool,
    events: Iterable[str],
) -> None:
    """What the launcher asked for on submit; it replaces their Account defaults for it."""
    assert (run_id is None) != (sweep_id is None)
    session.add(
        NotifyWatch(
            user_id=user_id,
            run_id=run_id,
            sweep_id=sweep_id,
            webhook=webhook,
            browser=browser,
            events=sorted({NotifyEvent(e).value for e in events}),
        )
    )


# ---- reading ---------------------------------------------------------------------------------


def recent(
    session: Session, *, user_id: int, after: int | None, limit: int = 50
) -> tuple[list[Notification], int]:
    """The user's browser notifications after ``after`` (oldest first) and the newest id;
    without ``after`` none, only the id to start from (a new tab does not replay old ones)."""
    latest = session.scalar(
        select(func.max(Notification.id)).where(
            Notification.user_id == user_id, Notification.browser.is_(True)
        )
    )
    if after is None:
        return [], int(latest or 0)
    rows = list(
        session.scalars(
            select(Notification)
            .where(
                Notification.user_id == user_id,
                Notification.browser.is_(True),
                Notification.id > after,
            )
            .order_by(Notification.id)
            .limit(limit)
        )
    )
    return rows, rows[-1].id if rows else max(after, int(latest or 0))


@dataclass(frozen=True)
class DeliveryLog:
    notification: Notification
    username: str | None
    attempts: list[DeliveryAttempt]


def deliveries(
    session: Session, *, before: int | None = None, limit: int = 50
) -> tuple[list[DeliveryLog], int | None]:
    """Webhook notifications, newest first, each with its attempts; and the next page's cursor."""
    stmt = (
        select(Notification, User.username)
        .outerjoin(User, User.id == Notification.user_id)
        .where(Notification.webhook_state != WebhookState.none.value)
        .order_by(Notification.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    rows = session.execute(stmt).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [n.id for n, _ in rows]
    by_id: dict[int, list[DeliveryAttempt]] = {i: [] for i in ids}
    if ids:
        for attempt in session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id.in_(ids))
            .order_by(DeliveryAttempt.number)
        ):
            by_id[attempt.notification_id].append(attempt)
    page = [DeliveryLog(n, username, by_id[n.id]) for n, username in rows]
    return page, (ids[-1] if more and ids else None)


# ---- delivering ------------------------------------------------------------------------------


def backoff_s(attempt: int, *, base_s: float) -> float:
    """Wait after failed attempt number ``attempt``: base, 2 base, 4 base, ... (at most 1 h)."""
    return float(min(base_s * 2 ** (attempt - 1), MAX_BACKOFF_S))


def _fitboard(row: Notification) -> dict[str, Any]:
    return {
        "event": row.event,
        "type": row.subject_type,
        f"{row.subject_type}_id": row.subject_id,
        "name": row.subject_name,
        "status": row.status,
        "reason": row.reason,
        "link": outbox.absolute_link(row.link) or row.link,
    }


def claim_due(session: Session, *, now: datetime | None = None, limit: int = 20) -> list[Delivery]:
    """The webhook attempts due now, claimed for this caller (their next try is pushed past a
    lease, so another API process skips them); post them after the commit."""
    now = now or utcnow()
    rows = list(
        session.scalars(
            select(Notification)
            .where(
                Notification.webhook_state == WebhookState.pending.value,
                Notification.next_attempt_at <= now,
            )
            .order_by(Notification.next_attempt_at, Notification.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=CLAIM_LEASE_S)
        own = settings_of(session, user_id=row.user_id)
        claimed.append(
            Delivery(
                notification_id=row.id,
                attempt=row.attempts,
                url=str(row.webhook_url),
                secret=own.secret if own is not None else None,
                text=row.text,
                fitboard=_fitboard(row),
            )
        )
    session.flush()
    return claimed


def record_outcome(
    session: Session,
    *,
    delivery: Delivery,
    outcome: Outcome,
    at: datetime,
    max_attempts: int,
    retry_base_s: float,
) -> str:
    """Log the attempt; the notification is delivered, retried after a backoff, or given up.
    Returns its webhook state."""
    row = session.get(Notification, delivery.notification_id)
    if row is None:  # its user was deleted meanwhile
        return WebhookState.gave_up.value
    session.add(
        DeliveryAttempt(
            notification_id=row.id,
            number=delivery.attempt,
            at=at,
            status_code=outcome.status_code,
            error=outcome.error,
            ok=outcome.ok,
            duration_ms=outcome.duration_ms,
        )
    )
    if outcome.ok:
        row.webhook_state = WebhookState.delivered.value
        row.delivered_at = utcnow()
        row.next_attempt_at = None
    elif delivery.attempt >= max_attempts:
        row.webhook_state = WebhookState.gave_up.value
        row.next_attempt_at = None
        log.warning("notification %s: gave up after %s attempts", row.id, delivery.attempt)
    else:
        wait = backoff_s(delivery.attempt, base_s=retry_base_s)
        row.next_attempt_at = at + timedelta(seconds=wait)
        log.info(
            "notification %s: attempt %s failed (%s); next in %.0f s",
            row.id,
            delivery.attempt,
            outcome.error,
            wait,
        )
    session.flush()
    return row.webhook_state
