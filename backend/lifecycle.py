"""Wires the run and sweep lifecycle hooks: when a run is queued or ends, or a sweep ends, the
run queue, the sweeps and the notifications (packages above runs) act in the same transaction;
and the live views (events, runlogs: below runs) learn from runs whether a run has ended.

Every entry point that changes runs calls ``install()`` once at start-up: the app factory
(backend.api.app), the tests (tests/conftest.py) and the benchmarks that call services
in-process. Installing again is harmless.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from backend.events import runstate
from backend.notify import outbox as notify_outbox
from backend.runqueue import service as runqueue
from backend.runs import hooks as run_hooks
from backend.runs import service as runs
from backend.runs.models import Run
from backend.sweeps import hooks as sweep_hooks
from backend.sweeps import scheduler as sweep_scheduler


def _queue_changed(session: Session) -> None:
    runqueue.release_after_commit(session)  # once the caller commits, send the next runs


def _tell_run_ended(session: Session, run: Run) -> None:
    notify_outbox.run_ended(session, run=run)


def _release_slot(session: Session, _run: Run) -> None:
    runqueue.release_after_commit(session)  # its worker has room for the next run


def _next_trial(session: Session, run: Run) -> None:
    if run.sweep_id is not None:  # its slot goes to the sweep's next trial
        sweep_scheduler.trial_finished(session, sweep_id=run.sweep_id)


def _tell_sweep_ended(session: Session, sweep_id: int) -> None:
    notify_outbox.sweep_ended(session, sweep_id=sweep_id)


def install() -> None:
    """Register every hook (in this order: a run's end is told, frees its slot, then starts its
    sweep's next trial)."""
    run_hooks.install(
        queue_changed=[_queue_changed],
        run_ended=[_tell_run_ended, _release_slot, _next_trial],
    )
    sweep_hooks.install(sweep_ended=[_tell_sweep_ended])
    runstate.install(runs.live_state)  # the live views: has a run ended


def installed() -> bool:
    return run_hooks.installed() and sweep_hooks.installed() and runstate.installed()
