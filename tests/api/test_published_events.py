"""Committed events reach live feeds whole: each message holds the event's SSE text, its id and
the id of the run's event before it, so a feed appends it without reading SQL and sees any gap.
A rolled-back event is never published; the batch answer says whether anyone watches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from backend.config import get_settings
from backend.db.session import session_scope
from backend.events import bus, fanout
from backend.events import service as events
from backend.runs.models import Run


@pytest.fixture
def on_pg(pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _new_run() -> int:
    with session_scope() as session:
        run = Run(name="published", spec={}, status="running")
        session.add(run)
        session.flush()
        return run.id


def _received(pubsub: redis.client.PubSub, count: int) -> list[bus.Published]:
    got: list[bus.Published] = []
    deadline = time.monotonic() + 10
    while len(got) < count and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message and message["type"] == "message":
            event = bus.Published.parse(message["data"].decode())
            assert event is not None, f"not a whole event: {message['data'][:80]!r}"
            got.append(event)
    return got


def test_each_committed_event_is_published_whole_after_the_one_before(on_pg: None) -> None:
    run_id = _new_run()
    client = redis.Redis.from_url(get_settings().redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(bus.channel(run_id))
    assert pubsub.get_message(timeout=2)  # the subscription is in place
    with session_scope() as session:
        events.append(session, run_id=run_id, kind="metrics", data={"points": [[0, 1, 0.5, 1.0]]})
    with session_scope() as session:  # two in one transaction: each its own message, in order
        events.append(session, run_id=run_id, kind="status", data={"status": "running"})
        events.append(session, run_id=run_id, kind="metrics", data={"points": []}, uid="b")
    with session_scope() as session:  # a retried uid: nothing new, nothing published whole
        events.append(session, run_id=run_id, kind="metrics", data={"points": []}, uid="b")
    with pytest.raises(RuntimeError), session_scope() as session:
        events.append(session, run_id=run_id, kind="metrics", data={}, uid="rolled-back")
        raise RuntimeError("the request failed")

    published = _received(pubsub, 3)
    assert pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is not None  # "new"
    assert pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0) is None
    chunk = fanout.read(run_id, 0)
    assert [(e.id, e.sse) for e in published] == chunk.lines, "the same text SQL gives"
    assert [e.prev for e in published] == [0, published[0].id, published[1].id]
    assert [e.kind for e in published] == ["metrics", "status", "metrics"]
    assert bus.watched(run_id), "a subscriber got the last message"
    pubsub.close()
    with session_scope() as session:
        events.append(session, run_id=run_id, kind="metrics", data={"points": []})
    assert not bus.watched(run_id), "nobody subscribes any more"


def test_a_feed_appends_what_follows_and_reads_sql_for_a_gap() -> None:
    async def scenario() -> None:
        feed = fanout.Feed(run_id=1, base=10, last_id=10, floor=10)
        assert feed.offer(bus.Published(12, 10, "metrics", "a"))
        assert feed.since(10) == [(12, "a")]
        assert feed.offer(bus.Published(12, 10, "metrics", "a")), "a repeat is no gap"
        assert not feed.offer(bus.Published(15, 13, "metrics", "c")), "13 is missing"
        assert feed.last_id == 12
        feed._append([(13, "b"), (15, "c")])  # what the pump reads from SQL
        assert not feed.offer(bus.Published(16, 15, "status", "d")), "may end the run"
        assert feed.since(12) == [(13, "b"), (15, "c"), (16, "d")]
        assert feed.since(16) == []

    asyncio.run(scenario())


def test_the_answer_to_a_batch_says_whether_anyone_watches(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs/external", json={"name": "watched?"}).json()["id"]
    body = {"points": [{"key": "loss", "step": 1, "value": 1.0}]}
    assert api.post(f"/api/v1/runs/{run_id}/points", json=body).json()["watched"] is False
    client = redis.Redis.from_url(get_settings().redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(bus.channel(run_id))
    assert pubsub.get_message(timeout=2)
    body = {"points": [{"key": "loss", "step": 2, "value": 0.5}]}
    assert api.post(f"/api/v1/runs/{run_id}/points", json=body).json()["watched"] is True
    pubsub.close()
