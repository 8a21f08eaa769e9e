"""Server-Sent Events for one run: every event after an id, exactly once, in id order.

Viewers are served by this process' feed of the run (backend.events.fanout): one SQL read per
new batch of events and one Redis subscription for every viewer; a viewer reads SQL itself only
to catch up to the feed. Resumable by event id (Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from backend.events import fanout

KEEPALIVE_S = 15.0


async def event_stream(run_id: int, after_id: int) -> AsyncIterator[str]:
    """Every event after after_id exactly once, in id order; ends once the run has finished."""
    hub = fanout.hub()
    feed = await hub.acquire(run_id)
    sent = after_id
    last_write = time.monotonic()
    try:
        yield "retry: 2000\n\n"
        while True:
            tick = feed.tick  # taken before looking: a change after it is not missed
            buffered = feed.since(sent)
            if buffered is None:  # older than what the feed holds: catch up from SQL
                chunk = await run_in_threadpool(fanout.read, run_id, sent)
                if chunk.lines:
                    sent = chunk.last_id
                    last_write = time.monotonic()
                    yield "".join(text for _, text in chunk.lines)
                if chunk.finished and not chunk.full:
                    yield f"id: {sent}\nevent: end\ndata: {{}}\n\n"
                    return
                if chunk.lines:
                    continue
                await asyncio.sleep(fanout.FALLBACK_POLL_S)  # the feed is down: poll SQL
            elif buffered:
                sent = buffered[-1][0]
                last_write = time.monotonic()
                yield "".join(text for _, text in buffered)
                continue
            elif feed.finished and sent >= feed.last_id:
                yield f"id: {sent}\nevent: end\ndata: {{}}\n\n"
                return
            if time.monotonic() - last_write >= KEEPALIVE_S:
                last_write = time.monotonic()
                yield ": keep-alive\n\n"
            if buffered is None:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_S):
                    await asyncio.shield(tick)
    finally:
        await hub.release(feed)
