"""Housekeeping the API runs every few seconds: no run stays 'running' after its worker died,
and no run stays queued because the broker was away when it was submitted."""

from __future__ import annotations

import logging

from backend import dispatch
from backend.config import get_settings
from backend.db.session import session_scope
from backend.runs import service as runs
from backend.runs.models import RunStatus

log = logging.getLogger(__name__)

REDISPATCH_AFTER_S = 10.0


def sweep_once() -> None:
    settings = get_settings()
    with session_scope() as session:
        for run_id in runs.stale_running(session, timeout_s=settings.heartbeat_timeout_s):
            reason = (
                f"worker lost: no heartbeat for {settings.heartbeat_timeout_s:.0f} s "
                "(the worker process or its machine stopped)"
            )
            if runs.finish(session, run_id=run_id, status=RunStatus.failed, reason=reason):
                log.warning("run %s: %s", run_id, reason)
        stuck = runs.undispatched(session, older_than_s=REDISPATCH_AFTER_S)
    for run_id in stuck:
        dispatch.dispatch(run_id)
