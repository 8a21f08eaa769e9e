"""A whole team watching one live run: SSE delivery latency to N viewers, and GET /runs while
they watch.

One real API process (uvicorn, as `make api` starts it: FITBOARD_API_WORKERS=1) on a scratch
PostgreSQL database and Redis. A poster streams a run the way a training process does (a batch
of points every 0.1 s through POST /api/v1/runs/{id}/points, each point stamped with its send
time); N viewers hold /api/v1/runs/{id}/stream open. For each N, side by side in one run:

- delivery: from a point's send time to a viewer parsing it (p50 / p99 over every viewer and
  point), and whether every viewer got every point once;
- GET /api/v1/runs?limit=50 p95 while they watch (and with no viewer, the baseline).

    .venv/bin/python bench/viewers.py --viewers 10,100,1000 --seconds 20

Viewers and the poster run in this one process (asyncio + httpx), so on a small machine they
compete with the API for the same cores: the numbers are an upper bound of what a browser sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_viewers"
BENCH_REDIS = "redis://127.0.0.1:6379/14"
GOAL_DELIVERY_P99_MS = 250.0
GOAL_RUNS_P95_MS = 100.0
BATCH_EVERY_S = 0.1
POINTS_PER_BATCH = 10


@dataclass
class Viewer:
    latencies: list[float] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    connected: bool = False
    error: str | None = None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _watch(
    client: httpx.AsyncClient, run_id: int, viewer: Viewer, stop: asyncio.Event
) -> None:
    try:
        async with client.stream("GET", f"/api/v1/runs/{run_id}/stream", params={"after": 0}) as r:
            viewer.connected = r.status_code == 200
            fields: dict[str, str] = {}
            async for line in r.aiter_lines():
                if stop.is_set():
                    return
                if line:
                    name, _, value = line.partition(": ")
                    fields[name] = value
                    continue
                if fields.get("event") == "metrics":
                    now = time.time()
                    for key, step, _value, wall in json.loads(fields["data"])["points"]:
                        if key == "batch/loss":
                            viewer.steps.append(int(step))
                            viewer.latencies.append((now - float(wall)) * 1000)
                elif fields.get("event") == "end":
                    return
                fields = {}
    except (httpx.HTTPError, asyncio.CancelledError) as exc:
        if not stop.is_set():
            viewer.error = f"{type(exc).__name__}: {exc}"


async def _post(client: httpx.AsyncClient, run_id: int, seconds: float) -> int:
    step = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        points = []
        for _ in range(POINTS_PER_BATCH):
            step += 1
            points.append(
                {
                    "key": "loss",
                    "step": step,
                    "value": 1.0 / step,
                    "kind": "batch",
                    "wall_time": time.time(),
                }
            )
        answer = await client.post(
            f"/api/v1/runs/{run_id}/points", json={"uid": uuid.uuid4().hex[:16], "points": points}
        )
        answer.raise_for_status()
        await asyncio.sleep(max(0.0, BATCH_EVERY_S - (time.monotonic() - started)))
    return step


async def _list_runs(client: httpx.AsyncClient, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        (await client.get("/api/v1/runs", params={"limit": 50})).raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.1)


async def _round(url: str, token: str, viewers: int, seconds: float) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(60.0)
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as poster,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as lister,
        httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=timeout) as watch,
    ):
        run_id = (
            await poster.post("/api/v1/runs/external", json={"name": f"watched by {viewers}"})
        ).json()["id"]
        stop = asyncio.Event()
        crowd = [Viewer() for _ in range(viewers)]
        tasks = [asyncio.create_task(_watch(watch, run_id, v, stop)) for v in crowd]
        deadline = time.monotonic() + 60
        while sum(v.connected for v in crowd) < viewers and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        listed: list[float] = []
        lister_task = asyncio.create_task(_list_runs(lister, stop, listed))
        sent = await _post(poster, run_id, seconds)
        await asyncio.sleep(2.0)  # the last batch reaches everyone
        stop.set()
        await poster.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
        await asyncio.sleep(0.5)
        for task in [*tasks, lister_task]:
            task.cancel()
        await asyncio.gather(*tasks, lister_task, return_exceptions=True)
    latencies = [ms for v in crowd for ms in v.latencies]
    complete = sum(sorted(set(v.steps)) == list(range(1, sent + 1)) for v in crowd)
    duplicated = sum(len(v.steps) != len(set(v.steps)) for v in crowd)
    return {
        "viewers": viewers,
        "connected": sum(v.connected for v in crowd),
        "points": sent,
        "p50": _percentile(latencies, 0.50),
        "p99": _percentile(latencies, 0.99),
        "complete": complete,
        "duplicated": duplicated,
        "runs_p95": _percentile(listed, 0.95),
        "errors": sorted({v.error for v in crowd if v.error})[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", default="10,100,1000", help="comma-separated viewer counts")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the run streams")
    args = parser.parse_args()
    counts = [int(n) for n in args.viewers.split(",") if n]

    from backend.db.migrate import upgrade
    from backend.db.session import session_scope
    from backend.users import service as users
    from backend.users.models import User
    from bench import api_server, scratch_db

    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", BENCH_REDIS)
    database = os.environ.get("BENCH_DATABASE_URL", BENCH_DB)
    scratch_db.recreate(database)
    upgrade(database)
    with session_scope(database) as session:
        user = User(username="bench", role="admin", password_hash=None)
        session.add(user)
        session.flush()
        _, token = users.create_token(session, user_id=user.id, name="bench")
    home = Path(tempfile.mkdtemp(prefix="fitboard-bench-viewers-"))
    url, _ = api_server.start(database, home)
    rows = []
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as c:
            idle = []
            for _ in range(30):
                started = time.perf_counter()
                c.get("/api/v1/runs", params={"limit": 50}).raise_for_status()
                idle.append((time.perf_counter() - started) * 1000)
        for count in counts:
            rows.append(asyncio.run(_round(url, token, count, args.seconds)))
    finally:
        scratch_db.drop(database)
    load = os.getloadavg()
    print(
        f"\nbench/viewers.py: one API process, {os.cpu_count()} cores, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; a batch of {POINTS_PER_BATCH} points "
        f"every {BATCH_EVERY_S:.1f} s for {args.seconds:.0f} s"
    )
    print(f"GET /runs?limit=50 with no viewer: p95 {_percentile(idle, 0.95):.1f} ms\n")
    print(
        "| viewers | connected | delivery p50 ms | delivery p99 ms (goal <= 250) | every point, "
        "once | GET /runs p95 ms while watched (goal <= 100) |"
    )
    print("|---:|---:|---:|---:|---|---:|")
    for row in rows:
        everyone = f"{row['complete']}/{row['viewers']}"
        if row["duplicated"]:
            everyone += f", {row['duplicated']} saw a step twice"
        print(
            f"| {row['viewers']} | {row['connected']} | {row['p50']:.0f} | {row['p99']:.0f} "
            f"| {everyone} | {row['runs_p95']:.0f} |"
        )
        errors = [str(e) for e in row["errors"]]  # type: ignore[attr-defined]
        if errors:
            print(f"|  | errors: {'; '.join(errors)} | | | | |")


if __name__ == "__main__":
    main()
