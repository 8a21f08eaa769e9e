"""The metric flusher's Sink on the database: metrics.record and events.append, one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from backend.db.session import session_scope
from backend.events import service as events_service
from backend.metrics import service as metrics
from backend.metrics.service import Point
from backend.runs import service as runs
from worker.trainer.streaming import Event


class SqlSink:
    """Writes batches with metrics.record and events.append in one transaction."""

    def __init__(self, run_id: int, *, url: str | None = None) -> None:
        self.run_id = run_id
        self.url = url

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        with session_scope(self.url) as session:
            if points:
                metrics.record(session, run_id=self.run_id, points=points, uid=uid)
            for event in events:
                events_service.append(
                    session, run_id=self.run_id, kind=event.kind, data=event.data, uid=event.uid
                )

    def cancel_requested(self) -> bool:
        with session_scope(self.url) as session:
            return runs.cancel_requested(session, run_id=self.run_id)
