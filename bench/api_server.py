"""An API process for a benchmark (uvicorn on the bench's database) and a worker token for it:
a benchmark's training processes reach Fitboard as a worker does, over the worker protocol."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def start(database_url: str, home: Path, *, processes: int = 1) -> tuple[str, str]:
    """(url, worker token); the process (with ``processes`` uvicorn workers) stops when this one
    exits."""
    from backend.db.session import session_scope
    from backend.workers import service as workers

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url, "FITBOARD_HOME": str(home)}
    argv = [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port)]
    if processes > 1:
        argv += ["--workers", str(processes)]
    home.mkdir(parents=True, exist_ok=True)
    out = (home / "bench-api.log").open("ab")
    proc = subprocess.Popen([*argv, "--log-level", "warning"], env=env, stdout=out, stderr=out)
    atexit.register(proc.terminate)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/api/v1/health", timeout=2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the bench's API did not start: see {out.name}") from None
            time.sleep(0.3)
    with session_scope(database_url) as session:
        _, token = workers.create_token(session, name="bench", created_by_id=None)
    return url, token
