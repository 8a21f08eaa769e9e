"""Run one training process per run: claim, spawn, heartbeat, cancel, and record crashes."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from backend.config import get_settings
from backend.spec.gpus import demand_of, pool_matches
from worker import host, lifeline, oom, port, standby

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000
_active: dict[int, subprocess.Popen[bytes]] = {}
_stop_reasons: dict[int, str] = {}
_attempts: dict[int, int] = {}
_pool: host.GpuPool | None = None
# how long a run waits for GPUs that other runs of this worker hold, before it is queued again
GPU_WAIT_S = 600.0
_lock = threading.Lock()
SUPERSEDED = "superseded"
# the next standby trainer starts this long after a run's process did (or when it ends)
SPARE_AFTER_S = 3.0
T = TypeVar("T")


# what a call through the port raises while the API is away (tried again)
TRANSIENT: tuple[type[BaseException], ...] = (port.Unreachable, OSError)


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - LOG_TAIL_CHARS))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _exit_reason(code: int, *, oom_killed: bool = False) -> str:
    if code == -signal.SIGKILL and oom_killed:
        # "out of memory" is what the API reads as a failure a retry cannot fix
        return "the training process was killed by the kernel's OOM killer (out of memory)"
    if code < 0:
        try:
            return f"the training process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"the training process was killed by signal {-code}"
    return f"the training process exited with code {code}"


def execute(run_id: int, *, worker_host: str) -> None:
    """Claim the run (at most once, ever), train it in a child process, record how it ended."""
    run_port = port.for_run(run_id)
    if not _retrying(lambda: run_port.claim(worker_host), what=f"run {run_id}: claim"):
        log.info("run %s: not queued any more (started elsewhere or cancelled); skipped", run_id)
        return
    attempt = run_port.attempt
    assert attempt is not None
    pool = gpu_pool()
    spec = getattr(run_port, "claimed_spec", {})
    demand = demand_of(spec)
    try:
        if not pool_matches(get_settings().pool, demand.pool):
            raise host.NotEnoughGpus(
                f"it asks for pool {demand.pool}; this worker is in "
                + (f"pool {get_settings().pool}" if get_settings().pool else "no pool")
            )
        taken = pool.take(
            run_id,
            pool.wanted(_requested_gpus(spec)),
            wait_s=GPU_WAIT_S,
            beat=run_port.heartbeat,
            gpu_type=demand.gpu_type,
        )
    except host.NotEnoughGpus as exc:
        run_port.finish("failed", f"this worker cannot train it (not retried): {exc}")
        log.warning("run %s: %s", run_id, exc)
        return
    except TimeoutError as exc:
        run_port.record_exit(reason=str(exc), cancelled=False, traceback=None)
        return
    try:
        _train(
            run_port, worker_host, taken, host.child_env(taken, host_has_gpus=bool(pool.devices))
        )
    finally:
        pool.give_back(run_id)


def _train(
    run_port: port.RunPort, worker_host: str, taken: list[host.Gpu], pinning: dict[str, str]
) -> None:
    run_id, attempt = run_port.run_id, run_port.attempt
    gpus = ", ".join(f"GPU {g.index}" for g in taken) or "CPU"
    log.info("run %s: attempt %s started on %s (%s)", run_id, attempt, worker_host, gpus)
    oom_before = oom.kills()
    with run_port.run_log() as (out, path):
        run_env = {
            "PYTHONUNBUFFERED": "1",
            lifeline.ATTEMPT_ENV: str(attempt),
            lifeline.LOG_ENV: str(path),
            lifeline.LOG_OFFSET_ENV: str(getattr(run_port, "log_offset", 0)),
            **pinning,
        }
        # a standby trainer has imported Keras already; a pinned run (GPUs) starts cold, as
        # CUDA_VISIBLE_DEVICES must come before TensorFlow loads
        spare = None if pinning else standby.take()
        if spare is not None and standby.hand_over(spare, run_id, path, run_env):
            proc = spare
            log.info("run %s: trained by the standby trainer (pid %s)", run_id, proc.pid)
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker.trainer", str(run_id)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **run_env, **lifeline.supervisor_env()},  # dies with us
            )
        with _lock:
            _active[run_id] = proc
            _attempts[run_id] = attempt or 0
        try:
            # the next standby starts a little later: its imports (seconds of CPU) would slow
            # this run's own start (its first batch) on a small machine
            spare_after_s = None if pinning else SPARE_AFTER_S
            code = _supervise(run_id, proc, run_port, spare_after_s=spare_after_s)
        finally:
            with _lock:
                _active.pop(run_id, None)
                _attempts.pop(run_id, None)
            if not pinning:
                standby.keep_one()  # from this long-lived thread: the next run starts warm
    _record_exit(
        run_port, code, path, oom_killed=code == -signal.SIGKILL and oom.struck(oom_before)
    )


def _requested_gpus(spec: dict[str, Any]) -> int | None:
    """The spec's resources.gpus (one for a GPU type without a count); with none given,
    `devices` GPUs when that is set."""
    requested = demand_of(spec).gpus
    if requested is None and spec.get("devices") and gpu_pool().devices:
        return int(spec["devices"])
    return int(requested) if requested is not None else None


def gpu_pool() -> host.GpuPool:
    """This worker's GPUs (probed once)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = host.GpuPool(host.gpus())
        return _pool


def running() -> list[dict[str, Any]]:
    """What this worker trains now, on which GPUs (for its report to the API)."""
    with _lock:
        active = dict(_attempts)
    pool = gpu_pool()
    return [{"run_id": r, "attempt": a or None, "gpus": pool.of(r)} for r, a in active.items()]


def _retrying(call: Callable[[], T], *, what: str, attempts: int = 30) -> T:
    """A call the worker cannot skip, tried again while the API or database is away."""
    for retry in range(attempts):
        try:
            return call()
        except TRANSIENT as exc:
            if retry == attempts - 1:
                raise
            log.warning("%s failed (%s); retry %s", what, exc, retry + 1)
            time.sleep(2)
    raise AssertionError("unreachable")


def _supervise(
    run_id: int,
    proc: subprocess.Popen[bytes],
    run_port: port.RunPort,
    *,
    spare_after_s: float | None = None,
) -> int:
    """Wait for the training process, heartbeating and enforcing a cancel; ``spare_after_s``
    after it started, start the worker's next standby trainer (from this thread)."""
    settings = get_settings()
    cancel_seen: float | None = None
    next_beat = 0.0
    spare_at = time.monotonic() + spare_after_s if spare_after_s is not None else math.inf
    while True:
        try:
            return proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        if now >= spare_at:
            spare_at = math.inf
            standby.keep_one()
        if now >= next_beat:
            next_beat = now + settings.heartbeat_interval_s
            try:
                cancel = run_port.heartbeat()
                if cancel and cancel_seen is None:
                    cancel_seen = now
            except port.Superseded:
                # housekeeping gave the run to a next attempt (this worker looked lost)
                log.warning("run %s: attempt %s superseded; stopping it", run_id, run_port.attempt)
                _stop_reasons[run_id] = SUPERSEDED
                proc.kill()
                return proc.wait()
            except TRANSIENT as exc:
                log.warning("run %s: heartbeat failed (%s); training goes on", run_id, exc)
        if cancel_seen is not None and now - cancel_seen > settings.cancel_grace_s:
            log.warning(
                "run %s: did not stop %ss after cancel; killing it", run_id, settings.cancel_grace_s
            )
            _stop_reasons[run_id] = "cancelled"
            proc.kill()


def _record_exit(
    run_port: port.RunPort, code: int, path: Path, *, oom_killed: bool = False
) -> None:
    """The trainer records its own outcome; this covers a process that could not: one that
    crashed or was killed goes back to the queue as its next attempt (spec.max_restarts)."""
    run_id = run_port.run_id
    stop_reason = _stop_reasons.pop(run_id, None)
    if stop_reason != SUPERSEDED and code != 0:
        reason = _exit_reason(code, oom_killed=oom_killed)
        if stop_reason and stop_reason != "cancelled":
            reason = f"{stop_reason}: {reason}"
        try:
            became = _retrying(
                lambda: run_port.record_exit(
                    reason=reason, cancelled=stop_reason == "cancelled", traceback=_tail(path)
                ),
                what=f"run {run_id}: recording its end",
            )
            log.warning("run %s: %s (run %s)", run_id, reason, became)
        except TRANSIENT as exc:
            log.error("run %s: could not record its end (%s); housekeeping will", run_id, exc)
    log.info("run %s: training process ended with code %s", run_id, code)


def stop_all(reason: str) -> None:
    """Stop every training process of this worker (on shutdown)."""
    with _lock:
        active = dict(_active)
    for run_id, proc in active.items():
        _stop_reasons[run_id] = reason
        log.warning("run %s: stopping its training process: %s", run_id, reason)
        proc.terminate()
    standby.release()
