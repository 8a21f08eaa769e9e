"""GET /runs/{id}/stream: the live view's Server-Sent Events."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from backend.bounds import Count64, Id, parse_event_id
from backend.db.session import session_scope
from backend.errors import InvalidInput
from backend.events.stream import event_stream
from backend.runs import service as runs
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/runs/{run_id}", tags=["live"])


def _exists(run_id: int) -> None:
    with session_scope() as session:
        runs.get(session, run_id)


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE events"}},
)
async def stream_run(
    run_id: Id,
    _: ReaderUser,
    after: Annotated[Count64 | None, Query(description="Send events after this id")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """Events (metrics, status, train_begin, evaluation, artifact, end), each with an id.

    A client that reconnects with Last-Event-ID gets exactly what it missed."""
    start = after or 0
    try:
        resumed = parse_event_id(last_event_id)
    except ValueError as exc:
        raise InvalidInput(f"Last-Event-ID: {exc}", field="Last-Event-ID") from exc
    if resumed is not None:
        start = resumed
    await run_in_threadpool(_exists, run_id)
    return StreamingResponse(
        event_stream(run_id, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
