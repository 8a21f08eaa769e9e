"""The Celery app as the API sees it: send a run id to the queue, count live workers.

The worker registers its tasks on this same app (worker.celery_app); the API only sends by name,
so it never imports the training side.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import get_engine
from backend.runs.models import Run

log = logging.getLogger(__name__)

TRAIN_TASK = "fitboard.train_run"


@lru_cache
def get_celery() -> Celery:
    settings = get_settings()
    app = Celery("fitboard", broker=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.queue,
        task_serializer="json",
        accept_content=["json"],
        # a run is acknowledged only once its task returns; a lost worker's run is redelivered,
        # and the atomic queued -> running claim keeps a redelivered run from starting twice
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
    )
    return app


def send_run(run_id: int) -> None:
    """Queue a run by id (raises if the broker cannot be reached)."""
    get_celery().send_task(TRAIN_TASK, args=[run_id], retry=False)


def live_workers(timeout_s: float = 1.0) -> int:
    replies = get_celery().control.ping(timeout=timeout_s) or []
    return len(replies)


_PENDING = "fitboard.runs_to_dispatch"


def dispatch_after_commit(session: Session, run_id: int) -> None:
    """Queue the run once its row is committed (a worker must always find it)."""
    session.info.setdefault(_PENDING, []).append(run_id)


def dispatch(run_id: int) -> bool:
    """Send now and record it; False when the broker is away (the API's sweeper retries)."""
    try:
        send_run(run_id)
    except Exception as exc:  # kombu raises several unrelated types for an unreachable broker
        log.warning("run %s: could not reach the queue (%s); will retry", run_id, exc)
        return False
    with get_engine().begin() as conn:
        conn.execute(update(Run).where(Run.id == run_id).values(dispatched_at=utcnow()))
    log.info("run %s: queued", run_id)
    return True


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    for run_id in session.info.pop(_PENDING, ()):
        dispatch(run_id)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
