"""A warm start: one standby training process per worker that has imported Keras and
TensorFlow (seconds of a cold start) before any run exists. The next unpinned run is handed
to it over stdin; a new standby is started right after, from the same long-lived thread (the
parent-death signal follows the thread that started a process).

Runs pinned to GPUs start cold: ``CUDA_VISIBLE_DEVICES`` must be set before TensorFlow loads.
``FITBOARD_WARM_TRAINER=false`` turns standby trainers off.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from backend.config import get_settings
from worker import lifeline

log = logging.getLogger(__name__)

_lock = threading.Lock()
_spare: subprocess.Popen[bytes] | None = None


def keep_one() -> None:
    """Start a standby trainer unless one is waiting (or they are turned off)."""
    global _spare
    settings = get_settings()
    if not settings.warm_trainer:
        return
    with _lock:
        if _spare is not None and _spare.poll() is None:
            return
        folder = settings.home.resolve() / "worker-logs"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "standby.log").open("ab") as out:
            _spare = subprocess.Popen(
                [sys.executable, "-m", "worker.trainer", "--standby"],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **lifeline.supervisor_env()},
            )
        log.debug("standby trainer started (pid %s)", _spare.pid)


def take() -> subprocess.Popen[bytes] | None:
    """The waiting standby trainer, now this caller's; None when there is none alive."""
    global _spare
    with _lock:
        spare, _spare = _spare, None
    if spare is None or spare.poll() is not None:
        return None
    return spare


def hand_over(
    spare: subprocess.Popen[bytes], run_id: int, log_path: Path, env: dict[str, str]
) -> bool:
    """Give the standby its run; False when it died meanwhile (start one cold instead)."""
    job = {"run_id": run_id, "log": str(log_path), "env": env}
    try:
        assert spare.stdin is not None
        spare.stdin.write((json.dumps(job) + "\n").encode())
        spare.stdin.close()
        return True
    except (OSError, ValueError) as exc:
        log.warning("standby trainer %s gone (%s); starting run %s cold", spare.pid, exc, run_id)
        spare.kill()
        return False


def release() -> None:
    """Let the waiting standby go (the worker stops)."""
    spare = take()
    if spare is not None and spare.stdin is not None:
        try:
            spare.stdin.close()  # it reads end-of-input and exits
            spare.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            spare.kill()
