"""The Celery app as both sides see it: the API sends a run id by task name, the worker
(worker.celery_app) registers the task on this same app. No database here: a worker on
another host imports it too."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from celery import Celery

from backend.config import get_settings
from backend.spec.gpus import demand_of

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


GPUS_SUFFIX = ".gpus-"
# a run that asks for a GPU type or a pool goes to the one worker the dispatcher booked for it
ON_WORKER = ".on-"


def queue_for(spec: dict[str, Any] | None, base: str) -> str:
    """Where a run waits: the base queue, or ``<base>.gpus-N`` for a run that asks for N GPUs
    (only a worker with at least N GPUs consumes it, so no worker takes a run it cannot
    train)."""
    gpus = demand_of(spec).min_gpus
    if gpus >= 1:
        return f"{base}{GPUS_SUFFIX}{gpus}"
    return base


def gpu_queues(base: str, gpu_count: int) -> list[str]:
    """The GPU queues a worker with ``gpu_count`` GPUs consumes besides its base queue."""
    return [f"{base}{GPUS_SUFFIX}{n}" for n in range(1, gpu_count + 1)]


QUEUE_MAX_CHARS = 200  # runs.queue


def worker_queue(base: str, worker: str) -> str:
    """The queue only ``worker`` consumes: runs booked on it for their GPU type or pool. A
    name too long for runs.queue (a long host name) ends in a digest of the worker's name."""
    queue = f"{base}{ON_WORKER}{worker}"
    if len(queue) <= QUEUE_MAX_CHARS:
        return queue
    digest = hashlib.sha256(worker.encode()).hexdigest()[:16]
    keep = max(0, QUEUE_MAX_CHARS - len(base) - len(ON_WORKER) - len(digest) - 1)
    return f"{base}{ON_WORKER}{worker[:keep]}~{digest}"


def worker_of_queue(queue: str | None, base: str, workers: Iterable[str]) -> str | None:
    """The worker a run was sent to on its own queue: one of ``workers``, or ``""`` for an
    own queue of a worker not among them; None for a shared queue."""
    if not queue or not queue.startswith(base + ON_WORKER):
        return None
    return next((w for w in workers if worker_queue(base, w) == queue), "")


def send_run(run_id: int, queue: str | None = None) -> None:
    """Queue a run by id on ``queue`` (this API's by default); raises if the broker is away."""
    get_celery().send_task(TRAIN_TASK, args=[run_id], retry=False, queue=queue or None)
