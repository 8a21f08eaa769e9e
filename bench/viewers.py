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

The viewers run in VIEWER_PROCESSES processes of their own, each on bare sockets (as light as a
browser's EventSource, unlike an HTTP library), the poster in this one; on a small machine they
all still share the API's cores, so the numbers are an upper bound of what browsers elsewhere
see.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

BENCH_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_viewers"
BENCH_REDIS = "redis://127.0.0.1:6379/14"
GOAL_DELIVERY_P99_MS = 250.0
GOAL_RUNS_P95_MS = 100.0
BATCH_EVERY_S = 0.1
POINTS_PER_BATCH = 10
VIEWER_PROCESSES = 4


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


async def _watch(host: str, port: int, token: str, run_id: int, viewer: Viewer, ready: Any) -> None:
    """One SSE viewer on a bare socket (HTTP/1.1, chunked): a browser's work, not httpx's."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"GET /api/v1/runs/{run_id}/stream?after=0 HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        status = await reader.readline()
        viewer.connected = b" 200 " in status
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # headers
        with ready.get_lock():
            ready.value += 1
        text = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            text += (await reader.readexactly(size + 2))[:-2]
            while b"\n\n" in text:
                block, text = text.split(b"\n\n", 1)
                fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
                kind = fields.get(b"event")
                if kind == b"end":
                    return
                if kind == b"metrics":
                    now = time.time()
                    for key, step, _value, wall in orjson.loads(fields[b"data"])["points"]:
                        if key == "batch/loss":
                            viewer.steps.append(int(step))
                            viewer.latencies.append((now - float(wall)) * 1000)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        viewer.error = f"{type(exc).__name__}: {exc}"


def _viewer_process(url: str, token: str, run_id: int, count: int, ready: Any, out: Any) -> None:
    """``count`` viewers in this process until the run ends; their results go to ``out``."""
    parts = urlsplit(url)
    crowd = [Viewer() for _ in range(count)]

    async def watch_all() -> None:
        await asyncio.gather(
            *(
                _watch(parts.hostname or "", parts.port or 80, token, run_id, v, ready)
                for v in crowd
            )
        )

    asyncio.run(watch_all())
    out.put([(v.latencies, v.steps, v.connected, v.error) for v in crowd])


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
    timeout = httpx.Timeout(60.0)
    context = multiprocessing.get_context("spawn")
    ready = context.Value("i", 0)
    out = context.Queue()
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as poster,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout) as lister,
    ):
        run_id = (
            await poster.post("/api/v1/runs/external", json={"name": f"watched by {viewers}"})
        ).json()["id"]
        shares = [
            viewers // VIEWER_PROCESSES + (i < viewers % VIEWER_PROCESSES)
            for i in range(VIEWER_PROCESSES)
        ]
        procs = [
            context.Process(target=_viewer_process, args=(url, token, run_id, n, ready, out))
            for n in shares
            if n
        ]
        for proc in procs:
            proc.start()
        deadline = time.monotonic() + 60
        while ready.value < viewers and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        stop = asyncio.Event()
        listed: list[float] = []
        lister_task = asyncio.create_task(_list_runs(lister, stop, listed))
        sent = await _post(poster, run_id, seconds)
        await asyncio.sleep(2.0)  # the last batch reaches everyone
        stop.set()
        await lister_task
        await poster.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
        results = []
        for _ in procs:  # each viewer returns once it sees the run's end
            results.extend(await asyncio.to_thread(out.get, True, 60))
        for proc in procs:
            proc.join(10)
    crowd = [Viewer(lat, steps, connected, error) for lat, steps, connected, error in results]
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
