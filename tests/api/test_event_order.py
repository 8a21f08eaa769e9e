"""A run's events become visible in id order, however many requests write them at once: a
reader that resumes after id N (SSE Last-Event-ID) must never miss a smaller id that commits
later."""

from __future__ import annotations

import threading

import pytest

from backend.config import get_settings
from backend.db.session import session_scope
from backend.events import service as events
from backend.runs.models import Run


@pytest.fixture
def on_pg(pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _visible(run_id: int) -> list[int]:
    with session_scope() as session:
        return [e.id for e in events.after(session, run_id=run_id, after_id=0)]


def test_a_later_writer_waits_for_an_earlier_one_to_commit(on_pg: None) -> None:
    with session_scope() as session:
        run = Run(name="event order", spec={}, status="running")
        session.add(run)
        session.flush()
        run_id = run.id
    second_done = threading.Event()

    def second_writer() -> None:  # an artifact upload while a batch is still being written
        with session_scope() as session:
            events.append(session, run_id=run_id, kind="artifact", data={}, uid="second")
        second_done.set()

    with session_scope() as first:  # a flusher batch, its id taken, not yet committed
        events.append(first, run_id=run_id, kind="metrics", data={}, uid="first")
        first.flush()
        writer = threading.Thread(target=second_writer)
        writer.start()
        # what a reader could see now: nothing, or only what it can never miss
        assert not second_done.wait(1.5), "the second writer committed before the first"
        assert _visible(run_id) == []
    writer.join(10)
    assert second_done.is_set()
    with session_scope() as session:
        kinds = [e.kind for e in events.after(session, run_id=run_id, after_id=0)]
    assert kinds == ["metrics", "artifact"], "ids in commit order"
