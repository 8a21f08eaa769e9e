"""The worker's Celery app: `celery -A worker.celery_app worker`. Registers the tasks."""

from __future__ import annotations

import logging

from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutting_down,
)

from backend import logs
from backend.broker import get_celery
from backend.config import get_settings

app = get_celery()

from worker import tasks  # noqa: E402,F401  (registers the tasks on app)


@setup_logging.connect
def _configure_logging(loglevel: object = None, **_: object) -> None:
    """Fitboard's log format in the worker too (Celery leaves logging to this handler)."""
    logs.configure(get_settings().log_level)


@worker_init.connect
def _check_join(**_: object) -> None:
    """Say how this worker reaches Fitboard; refuse to start when it cannot."""
    from worker import port

    try:
        port.describe_join()
    except ValueError as exc:
        logging.getLogger("worker").error("%s", exc)
        raise SystemExit(2) from None


@worker_ready.connect
def _say_join(sender: object = None, **_: object) -> None:
    from worker import port
    from worker.beat import HostBeat

    logging.getLogger("worker").info("joined %s", port.describe_join())
    name = str(getattr(sender, "hostname", "") or "worker")
    controller = getattr(sender, "controller", None)
    concurrency = getattr(controller, "concurrency", None)
    HostBeat(name, concurrency=int(concurrency) if concurrency else None).start()
    _consume_gpu_queues(sender)
    _consume_own_queue(sender, name)
    from worker import runner, standby

    if not runner.gpu_pool().devices:
        standby.keep_one()  # from this long-lived thread: the first run starts warm


def _consume_gpu_queues(consumer: object) -> None:
    """A worker with N GPUs also takes runs that ask for 1..N GPUs (each waits on its own
    queue, so a worker never takes a run it could not train)."""
    from backend.broker import gpu_queues
    from worker import runner

    add = getattr(consumer, "add_task_queue", None)
    count = len(runner.gpu_pool().devices)
    if add is None or not count:
        return
    for queue in gpu_queues(get_settings().queue, count):
        add(queue)
    logging.getLogger("worker").info("also takes runs that ask for 1 to %d GPUs", count)


def _consume_own_queue(consumer: object, name: str) -> None:
    """The runs the API books on this very worker (for their GPU type or pool) come on a
    queue of its own."""
    from backend.broker import worker_queue

    add = getattr(consumer, "add_task_queue", None)
    if add is not None:
        add(worker_queue(get_settings().queue, name))


@worker_process_init.connect
def _configure_child(**_: object) -> None:
    logs.configure(get_settings().log_level)


@worker_shutting_down.connect
def _stop_training(**_: object) -> None:
    from worker import runner

    runner.stop_all("the worker is shutting down")
