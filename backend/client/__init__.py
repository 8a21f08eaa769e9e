"""A small typed client for Fitboard's REST API (httpx + pyyaml + stdlib only).

    from backend.client import Fitboard
    fb = Fitboard("http://127.0.0.1:8000", token="...")   # or FITBOARD_URL / FITBOARD_TOKEN
    run = fb.submit_run("spec.yaml")
    fb.wait(run["id"])

Nothing here imports the rest of backend/, TensorFlow, SQLAlchemy or FastAPI.
"""

from backend.client.api import Event, Fitboard, load_file
from backend.client.errors import FieldError, FitboardError

__all__ = ["Event", "FieldError", "Fitboard", "FitboardError", "load_file"]
