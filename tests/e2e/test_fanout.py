"""A whole team watching one run: every viewer gets every event once, in order, from one feed
per API process (one Redis subscription, one SQL read per batch), and a viewer that stops
reading delays nobody."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from tests.conftest import LiveStack

pytestmark = pytest.mark.e2e

VIEWERS = 100
BATCHES = 20


async def _watch(
    client: httpx.AsyncClient, run_id: int, ids: list[int], *, last_event_id: int | None = None
) -> None:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    async with client.stream("GET", f"/api/v1/runs/{run_id}/stream", headers=headers) as r:
        assert r.status_code == 200
        event: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line:
                name, _, value = line.partition(": ")
                event[name] = value
                continue
            if event.get("event") == "end":
                return
            if "id" in event:
                ids.append(int(event["id"]))
            event = {}


def test_many_viewers_get_every_event_once_and_a_stalled_one_delays_nobody(
    live_stack: LiveStack,
) -> None:
    headers = {"Authorization": f"Bearer {live_stack.token}"}
    with live_stack.client() as api:
        run = api.post("/api/v1/runs/external", json={"name": f"fanout {uuid.uuid4().hex[:6]}"})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]

    async def scenario() -> tuple[list[list[int]], list[int], list[int], dict]:
        limits = httpx.Limits(max_connections=VIEWERS + 10)
        async with httpx.AsyncClient(
            base_url=live_stack.url, headers=headers, timeout=60, limits=limits
        ) as client:
            seen: list[list[int]] = [[] for _ in range(VIEWERS)]
            viewers = [asyncio.create_task(_watch(client, run_id, ids)) for ids in seen]
            # a viewer that opens the stream and never reads it
            stalled = await client.send(
                client.build_request("GET", f"/api/v1/runs/{run_id}/stream"), stream=True
            )
            await asyncio.sleep(1.0)
            during = (await client.get("/api/v1/health")).json()["live_view"]
            for batch in range(BATCHES):
                points = [
                    {"key": "loss", "step": batch * 10 + i, "value": 1.0 / (i + 1)}
                    for i in range(1, 11)
                ]
                sent = await client.post(
                    f"/api/v1/runs/{run_id}/points",
                    json={"points": points, "uid": f"b{batch}"},
                )
                assert sent.status_code == 200, sent.text
                await asyncio.sleep(0.05)
            done = await client.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
            assert done.status_code == 200, done.text
            started = time.monotonic()
            await asyncio.wait_for(asyncio.gather(*viewers), 60)
            assert time.monotonic() - started < 30, "the viewers were held up"
            # one that comes late, resuming from the middle, gets exactly the rest
            middle = seen[0][len(seen[0]) // 2]
            late: list[int] = []
            await _watch(client, run_id, late, last_event_id=middle)
            everything: list[int] = []
            await _watch(client, run_id, everything)
            await stalled.aclose()
            return seen, late, everything, during

    seen, late, everything, during = asyncio.run(scenario())
    assert during["viewers"] >= VIEWERS and during["redis"] is True
    assert len(everything) >= BATCHES + 2  # status events and one per batch of points
    assert everything == sorted(set(everything)), "in id order, no duplicate"
    for ids in seen:
        assert ids == everything, "every viewer got every event exactly once, in order"
    assert late == [i for i in everything if i > seen[0][len(seen[0]) // 2]]
