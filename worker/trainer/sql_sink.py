"""The metric flusher's Sink on the database: metrics.record and events.append, one transaction.

Cancels arrive over Redis pub/sub (a blocking read on its own thread: no CPU, no GIL while
idle), with a slower SQL check as the fallback when Redis is away.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis

from backend.config import get_settings
from backend.db.session import session_scope
from backend.evaluation import service as evaluations
from backend.events import bus
from backend.events import service as events_service
from backend.metrics import service as metrics
from backend.metrics.service import Point
from backend.runs import service as runs
from worker.trainer.streaming import Event

log = logging.getLogger(__name__)

# how often SQL is asked about a cancel when Redis is the fast path
SQL_CANCEL_CHECK_S = 2.0
REDIS_RETRY_S = 5.0


class SqlSink:
    """Writes batches with metrics.record and events.append in one transaction."""

    def __init__(
        self, run_id: int, *, url: str | None = None, redis_url: str | None = None
    ) -> None:
        self.run_id = run_id
        self.url = url
        self._redis_url = redis_url or get_settings().redis_url
        self._cancelled = threading.Event()
        self._next_sql_check = 0.0
        self._listener: threading.Thread | None = None

    def write(self, uid: str, points: Sequence[Point], events: Sequence[Event]) -> None:
        with session_scope(self.url) as session:
            if points:
                metrics.record(session, run_id=self.run_id, points=points, uid=uid)
            for event in events:
                if event.kind == evaluations.EPOCH_EVENT:  # stored in epoch_evaluations
                    evaluations.save_epoch(session, run_id=self.run_id, uid=event.uid, **event.data)
                    continue
                events_service.append(
                    session, run_id=self.run_id, kind=event.kind, data=event.data, uid=event.uid
                )

    def cancel_requested(self) -> bool:
        if self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, name=f"cancel-listener-{self.run_id}", daemon=True
            )
            self._listener.start()
        if self._cancelled.is_set():
            return True
        now = time.monotonic()
        if now < self._next_sql_check:
            return False
        self._next_sql_check = now + SQL_CANCEL_CHECK_S
        with session_scope(self.url) as session:
            if runs.cancel_requested(session, run_id=self.run_id):
                self._cancelled.set()
        return self._cancelled.is_set()

    def _listen(self) -> None:
        while not self._cancelled.is_set():
            try:
                client = redis.Redis.from_url(self._redis_url, socket_connect_timeout=2.0)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(bus.cancel_channel(self.run_id))
                for message in pubsub.listen():
                    if message and message.get("type") == "message":
                        self._cancelled.set()
                        return
            except (redis.RedisError, OSError) as exc:
                log.debug("run=%s event=cancel_listener_down error=%s", self.run_id, exc)
                time.sleep(REDIS_RETRY_S)
