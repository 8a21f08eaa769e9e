"""The metric flusher's Sink straight on a database, for benchmarks and for tests of the
flusher through a database outage. Workers never use it: they reach Fitboard over the worker
protocol (worker.port); this calls the same services (backend.workers.protocol) in-process,
so its process installs the lifecycle hooks first (backend.lifecycle.install())."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from backend.db.session import session_scope
from backend.metrics.service import Point
from backend.workers import protocol


class _Event(Protocol):
    kind: str
    data: dict[str, Any]
    uid: str


class DatabaseSink:
    """write() stores one flusher batch (idempotent by uid); cancel_requested() asks SQL."""

    def __init__(self, run_id: int, *, url: str | None = None, attempt: int | None = None):
        self.run_id = run_id
        self.url = url
        self.attempt = attempt

    def write(self, uid: str, points: Iterable[Point], events: Iterable[_Event]) -> None:
        with session_scope(self.url) as session:
            protocol.write_batch(
                session,
                run_id=self.run_id,
                attempt=self.attempt,
                uid=uid,
                points=list(points),
                batch_events=[(e.kind, e.data, e.uid) for e in events],
            )

    def cancel_requested(self) -> bool:
        with session_scope(self.url) as session:
            return protocol.cancel_requested(session, run_id=self.run_id)
