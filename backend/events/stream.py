"""Server-Sent Events for one run: history from SQL, woken by Redis, resumable by event id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from backend.config import get_settings
from backend.db.session import session_scope
from backend.events import bus
from backend.events import service as events
from backend.runs import service as runs
from backend.runs.models import RunStatus

log = logging.getLogger(__name__)

BATCH = 500
KEEPALIVE_S = 15.0
# without Redis the stream still works, checking SQL this often
FALLBACK_POLL_S = 1.0
# with Redis, SQL is still checked this often in case a notification was lost
SAFETY_POLL_S = 5.0


@dataclass
class _Chunk:
    lines: list[str]
    last_id: int
    finished: bool
    full: bool


def _read(run_id: int, after_id: int) -> _Chunk:
    with session_scope() as session:
        status = RunStatus(runs.get(session, run_id).status)
        rows = events.after(session, run_id=run_id, after_id=after_id, limit=BATCH)
        lines = [
            f"id: {e.id}\nevent: {e.kind}\ndata: {json.dumps(e.data, separators=(',', ':'))}\n\n"
            for e in rows
        ]
        last = rows[-1].id if rows else after_id
    return _Chunk(lines, last, status.finished, len(rows) == BATCH)


_clients: dict[int, aioredis.Redis] = {}


def _client() -> aioredis.Redis:
    """One async client (and pool) per event loop."""
    loop_id = id(asyncio.get_running_loop())
    if loop_id not in _clients:
        _clients[loop_id] = aioredis.Redis.from_url(
            get_settings().redis_url, socket_connect_timeout=1.0
        )
    return _clients[loop_id]


async def _subscribe(run_id: int) -> aioredis.client.PubSub | None:
    try:
        pubsub = _client().pubsub()
        await pubsub.subscribe(bus.channel(run_id))
        return pubsub
    except (aioredis.RedisError, OSError) as exc:
        log.info(
            "run %s: live stream without Redis (%s); checking SQL every %ss",
            run_id,
            exc,
            FALLBACK_POLL_S,
        )
        return None


async def _close(pubsub: aioredis.client.PubSub | None) -> None:
    if pubsub is not None:
        with contextlib.suppress(aioredis.RedisError, OSError):
            await pubsub.aclose()


async def _wait(pubsub: aioredis.client.PubSub | None, timeout: float) -> bool:
    """Wait for a notification; returns False when Redis failed (caller falls back)."""
    if pubsub is None:
        await asyncio.sleep(timeout)
        return True
    try:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if msg is not None:
                return True
        return True
    except (aioredis.RedisError, OSError):
        return False


async def event_stream(run_id: int, after_id: int) -> AsyncIterator[str]:
    """Every event after after_id exactly once, in id order; ends once the run has finished."""
    pubsub = await _subscribe(run_id)  # subscribe before reading: no notification slips by
    last_sent = time.monotonic()
    try:
        yield "retry: 2000\n\n"
        while True:
            chunk = await run_in_threadpool(_read, run_id, after_id)
            if chunk.lines:
                after_id = chunk.last_id
                last_sent = time.monotonic()
                yield "".join(chunk.lines)
            if chunk.full:
                continue
            if chunk.finished:
                yield f"id: {after_id}\nevent: end\ndata: {{}}\n\n"
                return
            if time.monotonic() - last_sent > KEEPALIVE_S:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            timeout = SAFETY_POLL_S if pubsub is not None else FALLBACK_POLL_S
            if not await _wait(pubsub, min(timeout, KEEPALIVE_S)):
                await _close(pubsub)
                pubsub = None
    finally:
        await _close(pubsub)
