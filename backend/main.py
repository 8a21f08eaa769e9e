"""ASGI entry point: uvicorn backend.main:app"""

from backend import heap
from backend.api.app import create_app

app = create_app()
# what the imports and the app made leaves the collector's view: a full collection no longer
# walks it (one took 190 ms, and every request waited); only a server process imports this
heap.settle()
