"""GET /api/v1/queue: the queued runs in the order they will start, and why each waits.
(A run's priority is changed at POST /runs/{id}/priority and /runs/{id}/move-to-top.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from backend.api.deps import SessionDep
from backend.config import get_settings
from backend.runqueue import service as runqueue
from backend.runqueue.schemas import QueuedRun, QueueOut
from backend.users import service as users
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/queue", tags=["queue"])


@router.get("", response_model=QueueOut)
def get_queue(
    session: SessionDep,
    _: ReaderUser,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> QueueOut:
    """Queued runs in the order they will start, each with its position, priority, launcher,
    GPUs asked, since when it waits and why."""
    found = runqueue.listing(session, lost_after_s=get_settings().worker_lost_after_s, limit=limit)
    ids = {i["launched_by_id"] for i in found["items"] if i["launched_by_id"] is not None}
    names = users.usernames(session, user_ids=ids)
    return QueueOut(
        items=[
            QueuedRun(**item, launched_by=names.get(item["launched_by_id"] or 0))
            for item in found["items"]
        ],
        total=found["total"],
        workers_reporting=found["workers_reporting"],
    )
