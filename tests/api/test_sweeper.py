"""Housekeeping: a run whose worker went silent does not stay 'running'."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from backend.runs.sweeper import sweep_once
from backend.spec import resolve_spec


@pytest.fixture
def settings_on_pg(pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("FITBOARD_HEARTBEAT_TIMEOUT_S", "60")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _running(beat_age_s: float) -> int:
    spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    with session_scope() as session:
        run = Run(name="sweep", spec=spec, status="queued")
        session.add(run)
        session.flush()
        runs.claim(session, run_id=run.id, worker_host="gone@nowhere")
        run.heartbeat_at = utcnow() - timedelta(seconds=beat_age_s)
        return run.id


def test_silent_run_is_failed_and_live_one_is_left_alone(settings_on_pg: None) -> None:
    silent, alive = _running(beat_age_s=300), _running(beat_age_s=1)
    sweep_once()
    with session_scope() as session:
        lost = runs.get(session, silent)
        assert lost.status == "failed" and lost.finished_at is not None
        assert "worker lost" in (lost.failure_reason or "")
        assert runs.get(session, alive).status == "running"
        runs.finish(session, run_id=alive, status=RunStatus.cancelled)
