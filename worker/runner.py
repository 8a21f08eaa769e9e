"""Run one training process per run: claim, spawn, heartbeat, cancel, and record crashes."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from backend.config import get_settings
from backend.db.session import session_scope
from backend.runlogs.service import log_path
from backend.runs import service as runs
from backend.runs.models import RunStatus

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000
_active: dict[int, subprocess.Popen[bytes]] = {}
_stop_reasons: dict[int, str] = {}
_lock = threading.Lock()


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - LOG_TAIL_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"the training process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the training process was killed by signal {-code}"
    return f"the training process exited with code {code}"


def execute(run_id: int, *, worker_host: str) -> None:
    """Claim the run (at most once, ever), train it in a child process, record how it ended."""
    with session_scope() as session:
        if not runs.claim(session, run_id=run_id, worker_host=worker_host):
            log.info(
                "run %s: not queued any more (started elsewhere or cancelled); skipped", run_id
            )
            return
    log.info("run %s: started on %s", run_id, worker_host)
    path = log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "worker.trainer", str(run_id)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    with _lock:
        _active[run_id] = proc
    try:
        code = _supervise(run_id, proc)
    finally:
        with _lock:
            _active.pop(run_id, None)
    _record_exit(run_id, code, path)


def _supervise(run_id: int, proc: subprocess.Popen[bytes]) -> int:
    settings = get_settings()
    cancel_seen: float | None = None
    next_beat = 0.0
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now >= next_beat:
            next_beat = now + settings.heartbeat_interval_s
            try:
                with session_scope() as session:
                    if runs.heartbeat(session, run_id=run_id) and cancel_seen is None:
                        cancel_seen = now
            except SQLAlchemyError as exc:
                log.warning("run %s: heartbeat failed (%s); training goes on", run_id, exc)
        if cancel_seen is not None and now - cancel_seen > settings.cancel_grace_s:
            log.warning(
                "run %s: did not stop %ss after cancel; killing it", run_id, settings.cancel_grace_s
            )
            _stop_reasons[run_id] = "cancelled"
            proc.kill()


def _record_exit(run_id: int, code: int, path: Path) -> None:
    """The trainer records its own outcome; this covers a process that could not."""
    stop_reason = _stop_reasons.pop(run_id, None)
    for attempt in range(30):
        try:
            with session_scope() as session:
                if runs.get(session, run_id).status != RunStatus.running.value:
                    break
                if stop_reason == "cancelled":
                    runs.finish(
                        session,
                        run_id=run_id,
                        status=RunStatus.cancelled,
                        reason="cancelled; the training process was killed after the grace period",
                    )
                else:
                    reason = _exit_reason(code)
                    if stop_reason:
                        reason = f"{stop_reason}: {reason}"
                    runs.finish(
                        session,
                        run_id=run_id,
                        status=RunStatus.failed,
                        reason=reason,
                        traceback=_tail(path),
                    )
                log.warning("run %s: %s", run_id, stop_reason or _exit_reason(code))
            break
        except SQLAlchemyError as exc:
            log.warning("run %s: could not record its end (%s); retry %s", run_id, exc, attempt)
            time.sleep(2)
    log.info("run %s: training process ended with code %s", run_id, code)


def stop_all(reason: str) -> None:
    """Stop every training process of this worker (on shutdown)."""
    with _lock:
        active = dict(_active)
    for run_id, proc in active.items():
        _stop_reasons[run_id] = reason
        log.warning("run %s: stopping its training process: %s", run_id, reason)
        proc.terminate()
