"""GET /health: database, Redis and live workers."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from backend import dispatch
from backend.config import get_settings
from backend.db.session import get_engine

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


def check() -> dict[str, Any]:
    database, broker = _database(), _redis()
    workers = _workers(broker["ok"])
    ok = database["ok"] and broker["ok"] and workers > 0
    return {
        "status": "ok" if ok else "degraded",
        "database": database,
        "redis": broker,
        "workers": workers,
    }


@router.get("/health")
async def health() -> dict[str, Any]:
    """status is "ok" when the database and Redis answer and at least one worker is live."""
    return await run_in_threadpool(check)
