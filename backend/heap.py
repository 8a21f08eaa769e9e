"""Keep a long-lived process' start-up heap out of Python's cyclic garbage collector.

A full collection walks every tracked object, and after the imports (FastAPI, SQLAlchemy and
pydantic in the API; Keras and TensorFlow in a training process) there are millions of them:
one full collection took 190 ms in the API (every request waited, a live point among them) and
100-200 ms in a training process (its fit and its metric flusher waited), measured on the
2-core machine (docs/benchmarks.md, round four). What exists once a process has started lives
as long as the process, so :func:`settle` moves it to the permanent generation (gc.freeze):
later collections walk only what was made since. Standard library only: the API and the
training processes both call it.

A server also collects its young objects less often (:data:`SERVER_THRESHOLDS`): with 1,000
viewers of a live run every batch makes ~50,000 short-lived objects (one wake-up and one write
per viewer), so at the default (700 allocations) the youngest generation was collected ~70
times a batch and whatever lived through one batch (each viewer's wait) was promoted; the
oldest generation then filled in ~2.7 s and each full collection stopped the process for
130-165 ms, every viewer's next point waiting (docs/benchmarks.md, round five). At 50,000 the
collector still runs (garbage cycles are freed within that many allocations; a young
collection then takes 25-40 ms, every few seconds under that load) but a batch no longer
promotes a viewer's state, and a full collection comes after 200 young ones.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

# (young, middle, old) collection thresholds for a server process (gc.set_threshold)
SERVER_THRESHOLDS = (50_000, 20, 10)


def settle(thresholds: tuple[int, int, int] | None = None) -> None:
    """One collection of the garbage start-up left, then everything alive now out of later
    collections; ``thresholds`` (gc.set_threshold) for the rest of the process, if given."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    log.info(
        "event=heap_settled frozen_objects=%d thresholds=%s seconds=%.2f",
        gc.get_freeze_count(),
        ",".join(map(str, gc.get_threshold())),
        time.perf_counter() - started,
    )
