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

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# one thread started before lower(): what it starts keeps the priority the process had
_starter: ThreadPoolExecutor | None = None


def lower(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice``, keeping a starter at the current one."""
    global _starter
    if _starter is None:
        _starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="normal-priority")
        _starter.submit(lambda: None).result()  # its thread exists now, at this priority
    os.nice(nice)


def at_normal(call: Callable[[], Any]) -> None:
    """Run ``call`` (e.g. a thread's start) on the starter, raising what it raises: threads it
    starts keep the priority this process had before :func:`lower`. Directly when nothing
    was lowered."""
    if _starter is None:
        call()
    else:
        _starter.submit(call).result()


def nice_of(thread_id: int | None) -> int | None:
    """A thread's nice value by its id in the operating system; None for a thread not
    started (or where it cannot be read)."""
    if thread_id is None:
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, thread_id)
    except OSError:
        return None
