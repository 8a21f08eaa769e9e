"""The worker's Celery app: `celery -A worker.celery_app worker`. Registers the tasks."""

from __future__ import annotations

from celery.signals import setup_logging, worker_process_init, worker_shutting_down

from backend import logs
from backend.config import get_settings
from backend.dispatch import get_celery
from backend.runs.models import Run  # noqa: F401  (tables known before the first query)

app = get_celery()

from worker import tasks  # noqa: E402,F401  (registers the tasks on app)


@setup_logging.connect
def _configure_logging(loglevel: object = None, **_: object) -> None:
    """Fitboard's log format in the worker too (Celery leaves logging to this handler)."""
    logs.configure(get_settings().log_level)


@worker_process_init.connect
def _configure_child(**_: object) -> None:
    logs.configure(get_settings().log_level)


@worker_shutting_down.connect
def _stop_training(**_: object) -> None:
    from worker import runner

    runner.stop_all("the worker is shutting down")
