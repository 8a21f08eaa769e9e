"""Celery tasks: thin, they take an id and call the runner."""

from __future__ import annotations

from celery import shared_task

from backend.broker import TRAIN_TASK
from worker import runner


@shared_task(name=TRAIN_TASK, bind=True, acks_late=True)
def train_run(self, run_id: int) -> None:  # type: ignore[no-untyped-def]
    """Train one run in its own OS process; a redelivered or cancelled run is skipped."""
    runner.execute(run_id, worker_host=self.request.hostname or "unknown")
