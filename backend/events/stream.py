"""Server-Sent Events for one run: every event after an id, exactly once, in id order.

Viewers are served by this process' feed of the run (backend.events.fanout): one SQL read per
new batch of events and one Redis subscription for every viewer; a viewer reads SQL itself only
to catch up to the feed (a Last-Event-ID older than what the feed holds). Resumable by event id
(Last-Event-ID).

A viewer that stops reading holds up nobody (the feed never waits for a viewer) and holds no
more than its connection's send buffer. One that falls so far behind that the feed no longer
holds what it has not read is told to reconnect (``event: reconnect``, then the stream ends):
browsers' EventSource and the Python client come back at once with Last-Event-ID and catch up
from SQL, on a fresh connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool

from backend.events import fanout

# a viewer with nothing to read gets a keep-alive comment after this long
KEEPALIVE_S = 15.0
KEEPALIVE = b": keep-alive\n\n"
# how soon a viewer told to reconnect comes back (the SSE retry field, in ms)
RECONNECT_RETRY_MS = 250


async def event_stream(run_id: int, after_id: int) -> AsyncIterator[bytes]:
    """Every event after after_id exactly once, in id order, as SSE bytes; ends once the run
    has finished."""
    hub = fanout.hub()
    feed = await hub.acquire(run_id)
    sent = after_id
    live = False  # served from the feed's buffer at least once
    last_write = time.monotonic()
    try:
        yield b"retry: 2000\n\n"
        while True:
            version = feed.version  # taken before looking: a change after it is not missed
            buffered = feed.text_after(sent)
            if buffered is None:  # older than what the feed holds
                if live and not feed.failed:  # fell behind the feed
                    yield (
                        f"retry: {RECONNECT_RETRY_MS}\nid: {sent}\nevent: reconnect\n"
                        f'data: {{"reason": "behind", "after": {sent}}}\n\n'
                    ).encode()
                    return
                chunk = await run_in_threadpool(fanout.read, run_id, sent)  # catch up
                if chunk.lines:
                    sent = chunk.last_id
                    last_write = time.monotonic()
                    yield "".join(text for _, text in chunk.lines).encode()
                if chunk.finished and not chunk.full:
                    yield _end(sent)
                    return
                if chunk.lines:
                    continue
            else:
                live = True
                last_id, text = buffered
                if text:
                    sent = last_id
                    last_write = time.monotonic()
                    yield text
                    continue
                if feed.finished and sent >= feed.last_id:
                    yield _end(sent)
                    return
            if time.monotonic() - last_write >= KEEPALIVE_S:
                last_write = time.monotonic()
                yield KEEPALIVE
            if buffered is None:
                await asyncio.sleep(fanout.FALLBACK_POLL_S)  # the feed is down: poll SQL
            else:
                await feed.changed(version)
    finally:
        await hub.release(feed)


def _end(last_id: int) -> bytes:
    return f"id: {last_id}\nevent: end\ndata: {{}}\n\n".encode()
