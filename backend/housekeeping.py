"""Housekeeping the API runs every few seconds: no run stays 'running' after its worker died
(it goes back to the queue as its next attempt, or fails), and no run stays queued without a
live message (never sent because the broker was away, or lost with the broker's memory or
with a worker that died holding it); the queue's next runs go out as the fleet frees room."""

from __future__ import annotations

import logging
import math

from sqlalchemy.orm import Session

from backend import dispatch
from backend.config import get_settings
from backend.db.session import session_scope
from backend.external import service as external
from backend.runqueue import service as runqueue
from backend.runs import service as runs
from backend.runs.models import RunSource, RunStatus
from backend.sweeps import scheduler as sweeps
from backend.sweeps import service as sweep_service

log = logging.getLogger(__name__)


def sweep_once(*, up_for_s: float = math.inf) -> None:
    """One round of housekeeping; ``up_for_s``: how long this API process has been taking
    heartbeats (a run's silence counts only once it has been up that long)."""
    settings = get_settings()
    with session_scope() as session:
        if up_for_s >= settings.worker_lost_after_s:
            _lost_workers(session, lost_after_s=settings.worker_lost_after_s)
        if up_for_s >= settings.heartbeat_timeout_s:
            _silent_external_runs(session, timeout_s=settings.heartbeat_timeout_s)
        waiting = runs.queued_dispatched_before(
            session, older_than_s=settings.requeue_unaccounted_after_s, queue=settings.queue
        )
        # params of bulk-created sweep trials that the after-response job did not write
        for sweep_id in sweep_service.unindexed(session):
            sweep_service.index_trial_params(session, sweep_id=sweep_id)
    # the next queued runs for the fleet's free room (and any a broker outage kept back)
    runqueue.release_now()
    if waiting:
        _resend_unaccounted(waiting, held_for_at_most_s=settings.requeue_unaccounted_after_s)
    sweeps.top_up()  # free sweep slots get their next trial; finished sweeps are marked


def _lost_workers(session: Session, *, lost_after_s: float) -> None:
    """A worker's run without a heartbeat: queued again as its next attempt (on the queue it
    came from, whichever API notices first), or failed."""
    for run_id in runs.stale_running(session, timeout_s=lost_after_s, source=RunSource.worker):
        run = runs.get(session, run_id)
        reason = (
            f"worker lost: no heartbeat for {lost_after_s:.0f} s from {run.worker_host} "
            "(the worker process or its machine stopped)"
        )
        if runs.can_restart(run):
            runs.requeue(session, run_id=run_id, attempt=run.attempt, reason=reason)
        elif runs.finish(
            session, run_id=run_id, status=RunStatus.failed, reason=reason, attempt=run.attempt
        ):
            log.warning("run %s: silent, marked failed: %s", run_id, reason)


def _silent_external_runs(session: Session, *, timeout_s: float) -> None:
    """A run streamed in by a script elsewhere ends by its own rule (RemoteMonitor)."""
    for run_id in runs.stale_running(session, timeout_s=timeout_s, source=RunSource.external):
        outcome = external.stale_outcome(session, run_id=run_id)
        if outcome is None:
            continue
        status, reason = outcome
        if runs.finish(session, run_id=run_id, status=status, reason=reason):
            log.warning("run %s: silent, marked %s: %s", run_id, status.value, reason)


def _resend_unaccounted(waiting: list[int], *, held_for_at_most_s: float) -> None:
    """Send again each queued run whose message the broker no longer holds; a duplicate is
    harmless (the queued -> running claim lets only one start)."""
    outstanding = dispatch.outstanding_run_ids(held_for_at_most_s=held_for_at_most_s)
    if outstanding is None:
        return  # the broker is away: nothing can be sent anyway
    for run_id in waiting:
        if run_id not in outstanding:
            log.warning("run %s: queued but its message is gone; sending it again", run_id)
            dispatch.dispatch(run_id)
