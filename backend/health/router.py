"""GET /health: database, Redis and live workers."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from backend import dispatch
from backend.config import get_settings
from backend.db.session import get_engine, session_scope
from backend.events import fanout
from backend.runs import service as runs

router = APIRouter(tags=["health"])


def _database() -> dict[str, Any]:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"ok": True, "backend": get_engine().dialect.name}
    except Exception as exc:  # any driver error means "down"; the reason is reported
        return {"ok": False, "backend": get_engine().dialect.name, "error": str(exc)[:300]}


def _redis() -> dict[str, Any]:
    try:
        redis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=1.0).ping()
        return {"ok": True}
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": str(exc)[:300]}


def _workers(redis_ok: bool) -> int:
    if not redis_ok:
        return 0
    try:
        return dispatch.live_workers(timeout_s=1.0)
    except Exception:  # the broker went away between the two checks
        return 0


def _queue(database_ok: bool, redis_ok: bool) -> dict[str, Any]:
    """Queued runs, the messages the broker holds for them, and those waiting without one
    (housekeeping sends those again after FITBOARD_REQUEUE_UNACCOUNTED_AFTER_S)."""
    if not database_ok:
        return {}
    settings = get_settings()
    with session_scope() as session:
        queued = runs.queued_summary(session)
        overdue = runs.queued_dispatched_before(
            session, older_than_s=settings.requeue_unaccounted_after_s, queue=settings.queue
        )
    report: dict[str, Any] = {"queued": queued["count"], "oldest_wait_s": queued["oldest_s"]}
    outstanding = (
        dispatch.outstanding_run_ids(held_for_at_most_s=settings.requeue_unaccounted_after_s)
        if redis_ok
        else None
    )
    if outstanding is not None:
        report["messages"] = len(outstanding)
        report["without_message"] = sum(1 for run_id in overdue if run_id not in outstanding)
    return report


def check() -> dict[str, Any]:
    database, broker = _database(), _redis()
    workers = _workers(broker["ok"])
    ok = database["ok"] and broker["ok"] and workers > 0
    return {
        "status": "ok" if ok else "degraded",
        "database": database,
        "redis": broker,
        "workers": workers,
        "queue": _queue(database["ok"], broker["ok"]),
        # this API process' live view: one feed per watched run; redis false = polling SQL
        "live_view": fanout.stats(),
    }


@router.get("/health")
async def health() -> dict[str, Any]:
    """status is "ok" when the database and Redis answer and at least one worker is live.

    queue: runs waiting, how long the oldest has, the messages the broker holds for runs, and
    runs queued without one (housekeeping sends those again)."""
    return await run_in_threadpool(check)
