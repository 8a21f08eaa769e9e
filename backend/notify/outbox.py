"""The outbox: the notification rows a run's or sweep's end, or a stall, writes in the caller's
transaction, for whoever asked (a submit's ``notify``, else the launcher's Account defaults).

Imports the runs' and sweeps' models only; run_ended and sweep_ended are hooks of runs and
sweeps (backend.lifecycle installs them), called in the transaction that ended the run or sweep.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.upsert import insert_ignore
from backend.metrics.models import LatestMetric, MetricPoint
from backend.notify.models import (
    Notification,
    NotifyEvent,
    NotifySettings,
    NotifyWatch,
    WebhookState,
)
from backend.runs.models import Run, RunStatus
from backend.sweeps.models import Sweep, SweepStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Wish:
    user_id: int
    webhook: bool
    browser: bool
    events: frozenset[str]


def _wishes(
    session: Session,
    *,
    run_id: int | None = None,
    sweep_id: int | None = None,
    launcher_id: int | None,
    account_defaults: bool,
) -> list[_Wish]:
    """Who wants to hear of it: explicit watches, else the launcher's Account defaults."""
    where = NotifyWatch.run_id == run_id if run_id is not None else NotifyWatch.sweep_id == sweep_id
    wishes = {
        w.user_id: _Wish(w.user_id, w.webhook, w.browser, frozenset(w.events or ()))
        for w in session.scalars(select(NotifyWatch).where(where))
    }
    if account_defaults and launcher_id is not None and launcher_id not in wishes:
        row = session.get(NotifySettings, launcher_id)
        if row is not None and row.events:
            wishes[launcher_id] = _Wish(launcher_id, True, row.browser, frozenset(row.events))
    return list(wishes.values())


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def absolute_link(link: str) -> str | None:
    base = get_settings().public_url.rstrip("/")
    return base + link if base else None


def _text(
    subject: str, subject_id: int, name: str, what: str, reason: str | None, link: str
) -> str:
    label = _slack_escape(f"{subject} {subject_id} “{name}”")
    url = absolute_link(link)
    head = f"<{url}|{label}>" if url else label
    tail = f": {_slack_escape(reason)}" if reason else ""
    return f"Fitboard: {head} {what}{tail}"


def _write(
    session: Session,
    wishes: list[_Wish],
    *,
    event: NotifyEvent,
    dedupe_key: str,
    subject_type: str,
    subject_id: int,
    subject_name: str,
    status: str,
    reason: str | None,
    what: str,
) -> int:
    """One outbox row per wish that wants ``event`` and has a channel; a key already written
    for that user is skipped (an end is told once)."""
    now = utcnow()
    link = f"/{subject_type}s/{subject_id}"
    text = _text(subject_type.capitalize(), subject_id, subject_name, what, reason, link)
    rows: list[dict[str, Any]] = []
    for wish in wishes:
        if event.value not in wish.events:
            continue
        own = session.get(NotifySettings, wish.user_id)
        url = own.webhook_url if own is not None and wish.webhook else None
        if not url and not wish.browser:
            continue
        rows.append(
            {
                "user_id": wish.user_id,
                "dedupe_key": dedupe_key,
                "event": event.value,
                "subject_type": subject_type,
                "subject_id": subject_id,
                "subject_name": subject_name[:200],
                "status": status,
                "reason": reason,
                "text": text,
                "link": link,
                "browser": wish.browser,
                "webhook_state": (WebhookState.pending if url else WebhookState.none).value,
                "webhook_url": url,
                "attempts": 0,
                "next_attempt_at": now if url else None,
                "created_at": now,
            }
        )
    written = insert_ignore(session, Notification.__table__, rows)  # type: ignore[arg-type]
    if written:
        log.info("%s %s: %s notification(s) of %s", subject_type, subject_id, written, event.value)
    return written


def run_ended(session: Session, *, run: Run) -> int:
    """Outbox rows for a run that just ended (call in the transaction that ended it)."""
    status = RunStatus(run.status)
    event = NotifyEvent.failed if status is RunStatus.failed else NotifyEvent.ended
    wishes = _wishes(
        session,
        run_id=run.id,
        launcher_id=run.launched_by_id,
        account_defaults=run.sweep_id is None,  # a sweep's trials: the sweep's end is told
    )
    if not wishes:
        return 0
    return _write(
        session,
        wishes,
        event=event,
        dedupe_key=f"run:{run.id}:end",
        subject_type="run",
        subject_id=run.id,
        subject_name=run.name,
        status=status.value,
        reason=run.failure_reason if status is RunStatus.failed else None,
        what=status.value,
    )


def sweep_ended(session: Session, *, sweep_id: int) -> int:
    """Outbox rows for a sweep that just finished or was cancelled; one whose trials all
    failed (none succeeded or was pruned) counts as failed."""
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        return 0
    wishes = _wishes(
        session, sweep_id=sweep_id, launcher_id=sweep.launched_by_id, account_defaults=True
    )
    if not wishes:
        return 0
    status = session.scalar(select(Sweep.status).where(Sweep.id == sweep_id)) or sweep.status
    good = session.scalar(
        select(func.count()).where(
            Run.sweep_id == sweep_id,
            Run.status.in_([RunStatus.succeeded.value, RunStatus.pruned.value]),
        )
    )
    failed = status == SweepStatus.finished.value and not good
    return _write(
        session,
        wishes,
        event=NotifyEvent.failed if failed else NotifyEvent.ended,
        dedupe_key=f"sweep:{sweep_id}:end",
        subject_type="sweep",
        subject_id=sweep_id,
        subject_name=sweep.name,
        status=status,
        reason="no trial succeeded" if failed else None,
        what="failed" if failed else str(status),
    )


def find_stalled(session: Session, *, stall_after_s: float, now: datetime | None = None) -> int:
    """Outbox rows for running runs with no new metric point for ``stall_after_s`` (once per
    attempt). The newest point of each key is one primary-key lookup, so this stays cheap."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=stall_after_s)
    candidates = session.execute(
        select(Run.id, Run.name, Run.attempt, Run.launched_by_id, Run.sweep_id).where(
            Run.status == RunStatus.running.value, Run.started_at < cutoff
        )
    ).all()
    written = 0
    for run_id, name, attempt, launcher_id, sweep_id in candidates:
        wishes = _wishes(
            session, run_id=run_id, launcher_id=launcher_id, account_defaults=sweep_id is None
        )
        if not any(NotifyEvent.stalled.value in w.events for w in wishes):
            continue
        last = session.scalar(
            select(func.max(MetricPoint.wall_time))
            .select_from(LatestMetric)
            .join(
                MetricPoint,
                and_(
                    MetricPoint.run_id == LatestMetric.run_id,
                    MetricPoint.key == LatestMetric.key,
                    MetricPoint.step == LatestMetric.step,
                ),
            )
            .where(LatestMetric.run_id == run_id)
        )
        if last is not None and last >= cutoff.timestamp():
            continue
        minutes = stall_after_s / 60
        written += _write(
            session,
            wishes,
            event=NotifyEvent.stalled,
            dedupe_key=f"run:{run_id}:stalled:a{attempt}",
            subject_type="run",
            subject_id=run_id,
            subject_name=name,
            status=RunStatus.running.value,
            reason=f"no new metric point for {minutes:g} min",
            what="stalled",
        )
    return written
