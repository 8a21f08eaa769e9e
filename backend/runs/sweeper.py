"""Housekeeping the API runs every few seconds: no run stays 'running' after its worker died,
and no run stays queued because the broker was away when it was submitted."""

from __future__ import annotations

import logging

from backend import dispatch
from backend.config import get_settings
from backend.db.session import session_scope
from backend.external import service as external
from backend.runs import service as runs
from backend.runs.models import RunStatus
from backend.sweeps import scheduler as sweeps
from backend.sweeps import service as sweep_service

log = logging.getLogger(__name__)

REDISPATCH_AFTER_S = 10.0


def sweep_once() -> None:
    settings = get_settings()
    with session_scope() as session:
        for run_id in runs.stale_running(session, timeout_s=settings.heartbeat_timeout_s):
            reason: str | None = (
                f"worker lost: no heartbeat for {settings.heartbeat_timeout_s:.0f} s "
                "(the worker process or its machine stopped)"
            )
            status = RunStatus.failed
            # a run streamed in by a script elsewhere ends by its own rule (RemoteMonitor)
            outcome = external.stale_outcome(session, run_id=run_id)
            if outcome is not None:
                status, reason = outcome
            if runs.finish(session, run_id=run_id, status=status, reason=reason):
                log.warning("run %s: silent, marked %s: %s", run_id, status.value, reason)
        stuck = runs.undispatched(session, older_than_s=REDISPATCH_AFTER_S)
        # params of bulk-created sweep trials that the after-response job did not write
        for sweep_id in sweep_service.unindexed(session):
            sweep_service.index_trial_params(session, sweep_id=sweep_id)
    for run_id in stuck:
        dispatch.dispatch(run_id)
    sweeps.top_up()  # free sweep slots get their next trial; finished sweeps are marked
