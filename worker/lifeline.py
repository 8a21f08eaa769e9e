"""A training process never outlives the worker that supervises it.

Linux delivers SIGKILL to the process the moment its parent dies (PR_SET_PDEATHSIG), whatever
killed the parent (kill -9 included); a watchdog thread covers systems without prctl and the
instant between the fork and the prctl call. The worker passes its pid in
``FITBOARD_SUPERVISOR_PID``; a process started by hand (no such variable) is left alone.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

from backend import parentdeath

log = logging.getLogger(__name__)

SUPERVISOR_ENV = "FITBOARD_SUPERVISOR_PID"
# which attempt of its run a training process trains (runs.attempt when the worker claimed it)
ATTEMPT_ENV = "FITBOARD_ATTEMPT"
# the attempt's local log and where it starts in the run's log: the training process sends its
# tail itself before it records its end, so a finished run's log is already whole
LOG_ENV = "FITBOARD_RUN_LOG"
LOG_OFFSET_ENV = "FITBOARD_RUN_LOG_OFFSET"
WATCH_EVERY_S = 1.0
ORPHAN_EXIT_CODE = 4


def supervisor_env() -> dict[str, str]:
    """What the worker adds to a training process' environment."""
    return {SUPERVISOR_ENV: str(os.getpid())}


def bind_to_supervisor() -> bool:
    """Die with the supervising worker; False when not started by one."""
    value = os.environ.get(SUPERVISOR_ENV, "")
    if not value.isdigit():
        return False
    supervisor = int(value)
    _set_parent_death_signal()
    if os.getppid() != supervisor:  # it died before the signal was armed
        _orphaned(supervisor)
    threading.Thread(
        target=_watch, args=(supervisor,), name="supervisor-watchdog", daemon=True
    ).start()
    return True


def _set_parent_death_signal() -> None:
    if not parentdeath.arm(signal.SIGKILL):  # not Linux: the watchdog alone
        log.info("no prctl here; a watchdog thread ends this process if its worker dies")


def _watch(supervisor: int) -> None:
    while True:
        time.sleep(WATCH_EVERY_S)
        if os.getppid() != supervisor:
            _orphaned(supervisor)


def _orphaned(supervisor: int) -> None:
    log.error("the supervising worker (pid %s) is gone; this training process ends", supervisor)
    logging.shutdown()
    os._exit(ORPHAN_EXIT_CODE)
