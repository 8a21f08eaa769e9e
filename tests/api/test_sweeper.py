"""Housekeeping: a run whose worker went silent does not stay 'running' (it is queued again as
its next attempt, or fails when it has no restarts left), and a queued run whose message the
broker lost is sent again."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis

from backend import dispatch
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.events import service as events
from backend.health import router as health
from backend.housekeeping import sweep_once
from backend.metrics import service as metrics
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from backend.spec import resolve_spec


@pytest.fixture
def settings_on_pg(pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("FITBOARD_HEARTBEAT_TIMEOUT_S", "60")
    monkeypatch.setenv("FITBOARD_WORKER_LOST_AFTER_S", "30")
    monkeypatch.setenv("FITBOARD_QUEUE", f"fitboard-sweeper-test-{uuid.uuid4().hex[:8]}")
    get_settings.cache_clear()
    dispatch.get_celery.cache_clear()  # runs queued again go to this test's queue
    yield
    get_settings.cache_clear()
    dispatch.get_celery.cache_clear()


def _running(beat_age_s: float, max_restarts: int = 3) -> int:
    spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    spec["max_restarts"] = max_restarts
    with session_scope() as session:
        run = Run(name="sweep", spec=spec, status="queued")
        session.add(run)
        session.flush()
        runs.claim(session, run_id=run.id, worker_host="gone@nowhere")
        run.heartbeat_at = utcnow() - timedelta(seconds=beat_age_s)
        return run.id


def test_silent_run_without_restarts_fails_and_live_one_is_left_alone(
    settings_on_pg: None,
) -> None:
    silent, alive = _running(beat_age_s=300, max_restarts=0), _running(beat_age_s=1)
    sweep_once()
    with session_scope() as session:
        lost = runs.get(session, silent)
        assert lost.status == "failed" and lost.finished_at is not None
        assert "worker lost" in (lost.failure_reason or "")
        assert runs.get(session, alive).status == "running"
        runs.finish(session, run_id=alive, status=RunStatus.cancelled)


def test_silent_run_goes_back_to_the_queue_as_its_next_attempt(settings_on_pg: None) -> None:
    lost_id = _running(beat_age_s=300)
    with session_scope() as session:  # what the lost attempt wrote
        metrics.record(
            session,
            run_id=lost_id,
            points=[{"key": "loss", "step": 1, "value": 0.5, "wall_time": 1.0}],
            uid="attempt-1-batch-1",
        )
    sweep_once()
    with session_scope() as session:
        run = runs.get(session, lost_id)
        assert run.status == "queued" and run.attempt == 2 and run.worker_host is None
        assert run.dispatched_at is not None, "sent to the queue again"
        assert metrics.keys(session, run_id=lost_id) == [], "the lost attempt's curves are gone"
        statuses = [
            (e.data["status"], e.data.get("attempt"))
            for e in events.after(session, run_id=lost_id, after_id=0)
            if e.kind == "status"
        ]
        assert statuses[-1] == ("queued", 2)
        assert (
            "worker lost"
            in events.after(session, run_id=lost_id, after_id=0)[-1].data["requeued_because"]
        )
        # the lost attempt can no longer write or finish the run; the next one claims it
        with pytest.raises(runs.StaleAttempt):
            runs.heartbeat(session, run_id=lost_id, attempt=1)
        assert not runs.finish(session, run_id=lost_id, status=RunStatus.failed, attempt=1)
        assert runs.claim(session, run_id=lost_id, worker_host="next@host")
        runs.check_owner(session, run_id=lost_id, attempt=2)
        with pytest.raises(runs.StaleAttempt):
            runs.check_owner(session, run_id=lost_id, attempt=1)
        assert runs.finish(session, run_id=lost_id, status=RunStatus.succeeded, attempt=2)
    sweep_once()  # a finished run is left alone
    with session_scope() as session:
        assert runs.get(session, lost_id).status == "succeeded"


def test_a_freshly_started_api_waits_out_the_silence_it_could_not_hear(
    settings_on_pg: None,
) -> None:
    """Heartbeats sent while no API listened could not arrive: an API up for less than the
    allowance (30 s here) calls no worker lost; once up that long it does."""
    silent = _running(beat_age_s=300)
    sweep_once(up_for_s=4)
    with session_scope() as session:
        assert runs.get(session, silent).status == "running", "not judged on unheard silence"
    sweep_once(up_for_s=30)
    with session_scope() as session:
        run = runs.get(session, silent)
        assert run.status == "queued" and run.attempt == 2


def test_cancelled_or_exhausted_runs_are_not_restarted(settings_on_pg: None) -> None:
    exhausted = _running(beat_age_s=300, max_restarts=1)
    with session_scope() as session:
        session.get(Run, exhausted).attempt = 2  # type: ignore[union-attr]
    asked_to_stop = _running(beat_age_s=300)
    with session_scope() as session:
        runs.request_cancel(session, run_id=asked_to_stop)
    sweep_once()
    with session_scope() as session:
        assert runs.get(session, exhausted).status == "failed"
        assert runs.get(session, asked_to_stop).status == "failed"


def test_queued_run_whose_message_is_gone_is_sent_again(
    settings_on_pg: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FITBOARD_REQUEUE_UNACCOUNTED_AFTER_S", "5")
    get_settings.cache_clear()
    dispatch.get_celery.cache_clear()
    spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    with session_scope() as session:
        waiting, lost = Run(name="waiting", spec=spec), Run(name="lost", spec=spec)
        session.add_all([waiting, lost])
        session.flush()
        ids = waiting.id, lost.id
    for run_id in ids:
        assert dispatch.dispatch(run_id)
    queue = get_settings().queue
    client = redis.Redis.from_url(get_settings().redis_url)
    assert dispatch.outstanding_run_ids(held_for_at_most_s=5) >= set(ids)  # type: ignore[operator]
    # the broker forgets one message (a restart without persistence would forget both)
    for raw in client.lrange(queue, 0, -1):
        if dispatch._run_id_of(raw) == ids[1]:
            client.lrem(queue, 1, raw)
    with session_scope() as session:  # both were sent a while ago
        for run_id in ids:
            session.get(Run, run_id).dispatched_at = utcnow() - timedelta(seconds=60)  # type: ignore[union-attr]
    queue_health = health.check()["queue"]
    assert queue_health["without_message"] == 1 and queue_health["queued"] >= 2
    sweep_once()
    assert health.check()["queue"]["without_message"] == 0
    with session_scope() as session:
        resent = runs.get(session, ids[1]).dispatched_at
        kept = runs.get(session, ids[0]).dispatched_at
    assert resent is not None and resent > utcnow() - timedelta(seconds=30), "lost one re-sent"
    assert kept is not None and kept < utcnow() - timedelta(seconds=30), "waiting one left"
    assert [dispatch._run_id_of(raw) for raw in client.lrange(queue, 0, -1)].count(ids[1]) == 1
    client.delete(queue)
    dispatch.get_celery.cache_clear()
