"""Points ingested over HTTP into PostgreSQL: the per-point body against the columnar one.

A real API (uvicorn, bench/api_server.py) on a scratch PostgreSQL database
(fitboard_bench_ingest on the local server, dropped at the end unless --keep). --posters
processes each create an external run and post --batches batches of --batch points (--keys
``batch/*`` keys, consecutive steps) to POST /api/v1/runs/{id}/points, one after another on one
keep-alive connection. Every body is encoded before the clock starts: the clock times the API
taking points in, from the first post to the last answer. Each format runs on its own runs,
the formats alternate for --rounds rounds, and the best round of each is reported.

Then it counts the rows of every run: stored must equal acknowledged (the sum of the
answers' ``points``), or the script exits 1.

    .venv/bin/python bench/ingest.py [--posters 4] [--batches 10] [--batch 5000]
        [--rounds 2] [--api-workers 1] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_ingest"
GOAL = 100_000  # points per second
FORMATS = ("points", "columns")
WALL = 1_764_800_000.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--posters", type=int, default=4, help="concurrent posting processes")
    parser.add_argument("--batches", type=int, default=10, help="batches per poster per round")
    parser.add_argument("--batch", type=int, default=5000, help="points per batch")
    parser.add_argument("--keys", type=int, default=4, help="distinct keys in a batch")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=FORMATS,
        default=list(FORMATS),
        help="the bodies to send (an API from before columns takes only points)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="instead: cProfile the endpoint's work in-process, stats to FILE.<format>",
    )
    return parser.parse_args(argv)


def bodies(fmt: str, *, batches: int, batch: int, keys: int, seed: int) -> list[bytes]:
    """The encoded posts of one poster: steps go on from batch to batch, every key each step."""
    names = [f"batch/metric_{k}" for k in range(keys)]
    out = []
    steps_per_batch = batch // keys
    for b in range(batches):
        first = b * steps_per_batch + 1
        steps = [first + i // keys for i in range(batch)]
        key_index = [i % keys for i in range(batch)]
        values = [None if (i + seed) % 997 == 0 else 1.0 / (1 + i + seed) for i in range(batch)]
        walls = [WALL + s * 0.01 for s in steps]
        uid = f"{fmt}-{seed}-{b}"
        if fmt == "points":
            body: dict[str, Any] = {
                "uid": uid,
                "points": [
                    {"key": names[k], "step": s, "value": v, "wall_time": w}
                    for k, s, v, w in zip(key_index, steps, values, walls, strict=True)
                ],
            }
        else:
            body = {
                "uid": uid,
                "columns": {
                    "keys": names,
                    "key_index": key_index,
                    "steps": steps,
                    "values": values,
                    "wall_times": walls,
                },
            }
        out.append(orjson.dumps(body))
    return out


def poster(api: str, run_id: int, posts: list[bytes], start: Any, done: Any) -> None:
    """Wait for the start, post every body in turn, report (points acknowledged, seconds)."""
    parts = urlsplit(api)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    path = f"/api/v1/runs/{run_id}/points"
    headers = {"Content-Type": "application/json"}
    acknowledged = 0
    start.wait()
    for body in posts:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise SystemExit(f"run {run_id}: HTTP {response.status}: {answer[:300]!r}")
        acknowledged += int(orjson.loads(answer)["points"])
    done.put((run_id, acknowledged, time.perf_counter()))
    conn.close()


def create_run(api: str, name: str) -> int:
    parts = urlsplit(api)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    conn.request(
        "POST",
        "/api/v1/runs/external",
        body=orjson.dumps({"name": name}),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    if response.status != 201:
        raise SystemExit(f"creating a run: HTTP {response.status}: {answer[:300]!r}")
    return int(orjson.loads(answer)["id"])


def one_round(api: str, fmt: str, args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Event(), ctx.Queue()
    procs = []
    for p in range(args.posters):
        run_id = create_run(api, f"ingest {fmt} r{round_no} p{p}")
        posts = bodies(
            fmt, batches=args.batches, batch=args.batch, keys=args.keys, seed=round_no * 100 + p
        )
        proc = ctx.Process(target=poster, args=(api, run_id, posts, start, done))
        proc.start()
        procs.append(proc)
    time.sleep(1.0)  # every poster has its bodies and waits
    began = time.perf_counter()
    start.set()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
        if proc.exitcode:
            raise SystemExit(f"a poster failed (exit {proc.exitcode})")
    seconds = max(end for _, _, end in results) - began
    acknowledged = sum(n for _, n, _ in results)
    return {
        "format": fmt,
        "round": round_no,
        "runs": [run_id for run_id, _, _ in results],
        "acknowledged": acknowledged,
        "seconds": seconds,
        "points_per_s": acknowledged / seconds,
    }


def stored_rows(url: str, run_ids: list[int]) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(
            text("SELECT count(*) FROM metric_points WHERE run_id = ANY(:ids)"), {"ids": run_ids}
        ).scalar_one()
    engine.dispose()
    return int(count)


def start_api(url: str, home: Path, workers: int) -> str:
    os.environ["FITBOARD_AUTH"] = "off"  # loopback only: timing ingest, not sign-in
    os.environ.setdefault("FITBOARD_LOG_LEVEL", "WARNING")
    import api_server

    return api_server.start(url, home, processes=workers)[0]


def profile(url: str, args: argparse.Namespace, out: str) -> None:
    """cProfile of what the endpoint does with each format's body, in this process (the API
    runs a sync route on a worker thread, which cProfile does not follow): JSON decoding as
    Starlette does it, the body's validation, the service call and the commit."""
    import cProfile
    import json
    import pstats

    os.environ["DATABASE_URL"] = url
    from backend.config import get_settings

    get_settings.cache_clear()
    from backend.db.session import session_scope
    from backend.external import service as external
    from backend.external.schemas import PointsIn
    from backend.users import service as users

    for fmt in args.formats:
        with session_scope(url) as session:
            user = users.local_admin(session)
            run_id = external.create(session, user=user, name=f"profile {fmt}").id
        posts = bodies(fmt, batches=args.batches, batch=args.batch, keys=args.keys, seed=999)
        profiler = cProfile.Profile()
        began = time.perf_counter()
        profiler.enable()
        for raw in posts:
            body = PointsIn.model_validate(json.loads(raw))
            points = external.posted_points(
                (p.model_dump() for p in body.points),
                columns=body.columns.arrays() if body.columns is not None else None,
            )
            with session_scope(url) as session:
                user = users.local_admin(session)
                external.record_points(
                    session, user=user, run_id=run_id, points=points, uid=body.uid
                )
        profiler.disable()
        seconds = time.perf_counter() - began
        n = args.batches * args.batch
        print(f"\n{fmt}: {n / seconds:,.0f} points/s in one thread, profiled", file=sys.stderr)
        profiler.dump_stats(f"{out}.{fmt}")
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url
    recreate(url)
    load_before = os.getloadavg()
    try:
        from backend.db.migrate import upgrade

        upgrade(url)
        sys.path.insert(0, str(REPO / "bench"))
        home = Path(tempfile.mkdtemp(prefix="fitboard-bench-ingest-"))
        if args.profile:
            profile(url, args, args.profile)
            return 0
        api = start_api(url, home, args.api_workers)
        results = []
        for round_no in range(args.rounds):
            for fmt in args.formats if round_no % 2 == 0 else reversed(args.formats):
                result = one_round(api, fmt, args, round_no)
                result["stored"] = stored_rows(url, result["runs"])
                print(
                    f"round {round_no + 1} {fmt:8s} {result['acknowledged']:>9,} points "
                    f"in {result['seconds']:6.2f} s: {result['points_per_s']:>9,.0f} points/s, "
                    f"stored {result['stored']:,}",
                    file=sys.stderr,
                )
                results.append(result)
    finally:
        if not args.keep:
            drop(url)
    load_after = os.getloadavg()
    lost = [r for r in results if r["stored"] != r["acknowledged"]]
    print(
        f"\n{args.posters} posters x {args.batches} batches x {args.batch:,} points "
        f"({args.keys} keys), {args.rounds} rounds, {args.api_workers} API process(es), "
        f"PostgreSQL\n"
    )
    print("| format | acknowledged points/s: best round | worst | goal | stored == acknowledged |")
    print("|---|---:|---:|---:|---|")
    for fmt in args.formats:
        mine = [r for r in results if r["format"] == fmt]
        best = max(r["points_per_s"] for r in mine)
        worst = min(r["points_per_s"] for r in mine)
        same = "yes" if all(r["stored"] == r["acknowledged"] for r in mine) else "NO"
        rows = sum(r["stored"] for r in mine)
        print(f"| {fmt} | {best:,.0f} | {worst:,.0f} | >= {GOAL:,} | {same} ({rows:,} rows) |")
    print(
        f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} (1 and 5 min), {os.cpu_count()} CPUs"
    )
    if lost:
        print("stored != acknowledged: points were lost or doubled", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
