"""HTTP routes of the training log: read by byte offset, or follow it live."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.api.deps import SessionDep
from backend.bounds import Id, Offset64, parse_event_id
from backend.db.session import session_scope
from backend.errors import InvalidInput
from backend.runlogs import service as runlogs
from backend.runlogs.schemas import LogChunkOut
from backend.runlogs.stream import log_stream
from backend.runs import service as runs
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/runs/{run_id}/log", tags=["log"])

OffsetQuery = Annotated[
    Offset64,
    Query(description="Byte offset; negative counts back from the end (-65536: the last 64 KiB)"),
]


@router.get("", response_model=LogChunkOut)
def read_log(
    run_id: Id,
    session: SessionDep,
    _: ReaderUser,
    offset: OffsetQuery = 0,
    limit: Annotated[int, Query(ge=4, le=runlogs.MAX_LIMIT)] = runlogs.DEFAULT_LIMIT,
) -> LogChunkOut:
    """Up to limit bytes of the training process's stdout/stderr from offset on."""
    runs.get(session, run_id)
    chunk = runlogs.read_chunk(run_id=run_id, offset=offset, limit=limit)
    return LogChunkOut(
        offset=chunk.offset, next_offset=chunk.next_offset, text=chunk.text, size=chunk.size
    )


def _start_offset(run_id: int, offset: int) -> int:
    with session_scope() as session:
        runs.get(session, run_id)
    # checks the offset (422 past the end) and turns a negative one into a position
    return runlogs.read_chunk(run_id=run_id, offset=offset, limit=4).offset


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE log events"}},
)
async def stream_log(
    run_id: Id,
    _: ReaderUser,
    offset: OffsetQuery = 0,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """`log` events ({"text"}, id = byte offset after it) while the run trains, then `end`.

    A client that reconnects with Last-Event-ID continues from that byte."""
    try:
        resumed = parse_event_id(last_event_id)
    except ValueError as exc:
        raise InvalidInput(f"Last-Event-ID: {exc}", field="Last-Event-ID") from exc
    if resumed is not None:
        offset = resumed
    start = await run_in_threadpool(_start_offset, run_id, offset)
    return StreamingResponse(
        log_stream(run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
