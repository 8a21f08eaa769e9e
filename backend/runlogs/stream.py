"""GET /runs/{id}/log/stream: the training log as Server-Sent Events, tailed from the file.

Each `log` event's id is the byte offset after its text, so a browser that reconnects with
Last-Event-ID continues exactly where it stopped. File reads and the run's status check run
in a worker thread: the event loop never blocks on disk or database.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
from starlette.concurrency import run_in_threadpool

from backend.db.session import session_scope
from backend.events import runstate
from backend.runlogs import service as runlogs

POLL_S = 0.5
KEEPALIVE_S = 15.0
CHUNK_BYTES = 65_536
# a training process may still write a line or two after it has recorded its end
LINGER_S = 2.0


def _finished_since(run_id: int) -> float | None:
    """Seconds since the run finished, or None while it is queued or running."""
    with session_scope() as session:
        run = runstate.state(session, run_id)
        if not run.finished:
            return None
        if run.finished_at is None:
            return LINGER_S
        finished_at = run.finished_at
        if finished_at.tzinfo is None:
            finished_at = finished_at.replace(tzinfo=UTC)
        return (datetime.now(UTC) - finished_at).total_seconds()


def _event(chunk: runlogs.LogChunk) -> str:
    data = json.dumps({"text": chunk.text}, separators=(",", ":"))
    return f"id: {chunk.next_offset}\nevent: log\ndata: {data}\n\n"


async def log_stream(run_id: int, offset: int) -> AsyncIterator[str]:
    """The log from offset on, chunk by chunk; ends once the run has finished and all is sent."""
    yield "retry: 2000\n\n"
    last_sent = time.monotonic()
    while True:
        # status first: a run seen finished before this read has nothing left to write after it
        finished_since = await run_in_threadpool(_finished_since, run_id)
        chunk = await run_in_threadpool(
            runlogs.read_chunk, run_id=run_id, offset=offset, limit=CHUNK_BYTES
        )
        if chunk.next_offset > offset:
            offset = chunk.next_offset
            last_sent = time.monotonic()
            yield _event(chunk)
            if offset < chunk.size:
                continue
        if finished_since is not None and finished_since >= LINGER_S:
            # all sent (or only a character that will never complete is left)
            yield f"id: {offset}\nevent: end\ndata: {{}}\n\n"
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield ": keep-alive\n\n"
        await anyio.sleep(POLL_S)
