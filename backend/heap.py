"""Keep a long-lived process' start-up heap out of Python's cyclic garbage collector.

A full collection walks every tracked object, and after the imports (FastAPI, SQLAlchemy and
pydantic in the API; Keras and TensorFlow in a training process) there are millions of them:
one full collection took 190 ms in the API (every request waited, a live point among them) and
100-200 ms in a training process (its fit and its metric flusher waited), measured on the
2-core machine (docs/benchmarks.md, round four). What exists once a process has started lives
as long as the process, so :func:`settle` moves it to the permanent generation (gc.freeze):
later collections walk only what was made since. Standard library only: the API and the
training processes both call it.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)


def settle() -> None:
    """One collection of the garbage start-up left, then everything alive now out of later
    collections."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "event=heap_settled frozen_objects=%d seconds=%.2f",
        gc.get_freeze_count(),
        time.perf_counter() - started,
    )
