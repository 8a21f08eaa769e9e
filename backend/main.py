"""ASGI entry point: uvicorn backend.main:app"""

from backend import heap
from backend.api.app import create_app

app = create_app()
# what the imports and the app made leaves the collector's view: a full collection no longer
# walks it (one took 190 ms, and every request waited), and young objects are collected less
# often (many viewers' wake-ups no longer fill the old generation); only a server imports this
heap.settle(heap.SERVER_THRESHOLDS)
