"""The API's notification loop: post the webhooks that are due (each attempt in its own short
transaction, never holding one open across the network) and look for stalled runs."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.notify import outbox, webhook
from backend.notify import service as notify

log = logging.getLogger(__name__)

STALL_CHECK_EVERY_S = 30.0
PARALLEL_POSTS = 8  # one slow or dead receiver must not hold up everyone else's
_last_stall_check = 0.0


def deliver_once(*, now: datetime | None = None, limit: int = 20) -> int:
    """Post every webhook attempt due at ``now`` (several at once); returns how many were
    tried."""
    settings = get_settings()
    with session_scope() as session:
        due = notify.claim_due(session, now=now, limit=limit)

    def attempt(delivery: webhook.Delivery) -> None:
        at = now or utcnow()
        outcome = webhook.post(
            delivery, timeout_s=settings.notify_timeout_s, allowed=settings.webhook_networks
        )
        with session_scope() as session:
            notify.record_outcome(
                session,
                delivery=delivery,
                outcome=outcome,
                at=at,
                max_attempts=settings.notify_max_attempts,
                retry_base_s=settings.notify_retry_base_s,
            )

    if len(due) == 1:
        attempt(due[0])
    elif due:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_POSTS, len(due))) as pool:
            list(pool.map(attempt, due))  # list(): an attempt's exception is raised here
    return len(due)


def check_stalls(*, now: datetime | None = None) -> int:
    with session_scope() as session:
        return outbox.find_stalled(
            session, stall_after_s=get_settings().notify_stall_after_s, now=now
        )


def tick() -> None:
    """One pass of the loop: stalls every STALL_CHECK_EVERY_S, then the due webhooks."""
    global _last_stall_check
    if time.monotonic() - _last_stall_check >= STALL_CHECK_EVERY_S:
        _last_stall_check = time.monotonic()
        check_stalls()
    deliver_once()
