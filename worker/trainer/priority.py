"""Train at a lower CPU priority, stream at the worker's.

Linux keeps a nice value per thread, and a new thread takes the value of the thread that
starts it. So the training process starts one helper thread first, then lowers its own main
thread's priority: the training, and every thread it or TensorFlow starts, runs at the lower
priority (the API and the worker stay responsive on a busy host), while a thread started
through :func:`at_normal` (the metric flusher) gets a core as soon as it has a batch to send,
however busy the cores are with training. Where nice is per process, as on macOS, everything
simply runs at the lower priority.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_Job = tuple[Callable[[], Any], "queue.Queue[BaseException | None]"]
_jobs: queue.Queue[_Job] | None = None


def lower(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice``, keeping a starter at the current one."""
    global _jobs
    if _jobs is None:
        _jobs = queue.Queue()
        threading.Thread(target=_serve, args=(_jobs,), name="normal-priority", daemon=True).start()
    os.nice(nice)
    log.debug("event=priority_lowered nice=%d", os.getpriority(os.PRIO_PROCESS, 0))


def at_normal(call: Callable[[], Any]) -> None:
    """Run ``call`` (e.g. a thread's start) on the starter: threads it starts keep the
    priority this process had before :func:`lower`. Directly when nothing was lowered."""
    if _jobs is None:
        call()
        return
    done: queue.Queue[BaseException | None] = queue.Queue(maxsize=1)
    _jobs.put((call, done))
    failure = done.get()
    if failure is not None:
        raise failure


def _serve(jobs: queue.Queue[_Job]) -> None:
    while True:
        call, done = jobs.get()
        try:
            call()
        except BaseException as exc:  # handed back to the caller, who raises it
            done.put(exc)
        else:
            done.put(None)
