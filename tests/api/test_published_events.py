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
from backend.events.stream import event_stream as fanout_stream
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


def test_a_viewer_that_falls_behind_the_feed_is_told_to_reconnect_and_resumes_exactly(
    on_pg: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fanout, "BUFFER_EVENTS", 4)
    run_id = _new_run()

    def append(count: int) -> list[int]:
        for step in range(count):
            with session_scope() as session:
                events.append(
                    session, run_id=run_id, kind="metrics", data={"points": [[0, step, 1.0, 1.0]]}
                )
        with session_scope() as session:
            return [e.id for e in events.after(session, run_id=run_id, after_id=0, limit=100)][
                -count:
            ]

    async def until(predicate: object, what: str) -> None:
        deadline = time.monotonic() + 10
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.02)

    async def scenario() -> tuple[int, str, list[int], list[int]]:
        stream = fanout_stream(run_id, 0)
        assert (await anext(stream)).startswith(b"retry:")
        feed = fanout.hub().feeds[run_id]
        await until(lambda: fanout.hub().redis_ok, "the subscription is up")
        (first,) = append(1)
        text = (await asyncio.wait_for(anext(stream), 10)).decode()
        assert f"id: {first}\n" in text, "served live from the feed"
        # the viewer stops reading while ten more come: the feed keeps four
        later = append(10)
        await until(lambda: feed.last_id == later[-1], "the feed has them all")
        assert feed.floor > first
        told = (await asyncio.wait_for(anext(stream), 10)).decode()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        # it comes back with Last-Event-ID: the rest, from SQL then the feed, exactly once
        resumed = fanout_stream(run_id, first)
        seen: list[int] = []
        while not seen or seen[-1] != later[-1]:
            chunk = (await asyncio.wait_for(anext(resumed), 10)).decode()
            seen += [int(line[4:]) for line in chunk.splitlines() if line.startswith("id: ")]
        await resumed.aclose()
        return first, told, later, seen

    first, told, later, seen = asyncio.run(scenario())
    assert told.splitlines()[:3] == ["retry: 250", f"id: {first}", "event: reconnect"]
    assert seen == later
