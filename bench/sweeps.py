"""Creating a big grid sweep: how long POST /api/v1/sweeps takes for 1,000 trials.

Every trial is an ordinary run (its row and search text), created with bulk inserts, and only
max_concurrent of them are sent to the queue; a large sweep's flattened params (run_params,
for sorting the history by a parameter) are written just after the response. Times the request
against a real uvicorn on PostgreSQL over HTTP, and how long until every trial's params are
indexed too:

    .venv/bin/python bench/sweeps.py [--database-url URL] [--trials 1000] [--repeats 5]

Without --database-url it creates a scratch database (fitboard_bench_sweeps on the local
server) and drops it at the end unless --keep. Trials go to a queue no worker reads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_sweeps"
TARGET_S = 1.0
QUIET = ("--no-access-log", "--log-level", "warning")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help=f"PostgreSQL URL (default: {DEFAULT_URL})")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--trials", type=int, default=1000, help="grid points (a multiple of 10)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the median misses 1 s")
    return parser.parse_args(argv)


@contextlib.contextmanager
def serve() -> Iterator[httpx.Client]:
    """A uvicorn (this environment's settings: auth off, on loopback) and a client for it."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "backend.main:app", "--port", str(port), *QUIET],
        cwd=REPO,
        env=os.environ.copy(),
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    client.get("/api/v1/health")
                    break
                except httpx.TransportError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the API server did not start") from None
                    time.sleep(0.2)
            yield client
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_indexed(url: str, sweep_id: int, started: float) -> float:
    engine = create_engine(url)
    query = text(
        "SELECT count(*) FROM runs r WHERE r.sweep_id = :id AND NOT EXISTS "
        "(SELECT 1 FROM run_params p WHERE p.run_id = r.id)"
    )
    try:
        while True:
            with engine.connect() as conn:
                if conn.scalar(query, {"id": sweep_id}) == 0:
                    return time.perf_counter() - started
            if time.perf_counter() - started > 120:
                raise TimeoutError(f"sweep {sweep_id}: params still not indexed")
            time.sleep(0.05)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url or DEFAULT_URL
    scratch = args.database_url is None
    if scratch:
        recreate(url)
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        FITBOARD_HOME=tempfile.mkdtemp(prefix="fitboard-bench-sweeps-"),
        FITBOARD_QUEUE="fitboard-bench-sweeps-unread",
        FITBOARD_AUTH="off",
        FITBOARD_HOST="127.0.0.1",
    )
    from backend.db.migrate import upgrade

    upgrade(url)
    per_batch = max(1, args.trials // 10)
    body = {
        "name": "bench grid",
        "preset": "digits-mlp",
        "space": {
            "fit.batch_size": {"int": [1, per_batch]},
            "model.layers[2].rate": {"choice": [round(0.05 * i, 2) for i in range(10)]},
        },
        "strategy": "grid",
        "max_concurrent": 4,
    }
    timings: list[float] = []
    indexed_after: list[float] = []
    try:
        with serve() as client:
            for _ in range(args.repeats):
                started = time.perf_counter()
                response = client.post("/api/v1/sweeps", json=body)
                timings.append(time.perf_counter() - started)
                if response.status_code != 201:
                    print(response.text)
                    return 1
                sweep = response.json()
                assert sweep["progress"]["created"] == per_batch * 10
                indexed_after.append(_wait_indexed(url, sweep["id"], started))
                client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    finally:
        if scratch and not args.keep:
            drop(url)
    median = statistics.median(timings)
    print(
        f"POST /api/v1/sweeps, {per_batch * 10}-trial grid: median {median:.3f} s, "
        f"min {min(timings):.3f} s, max {max(timings):.3f} s over {len(timings)} "
        f"(target < {TARGET_S:.0f} s)"
    )
    print(
        f"  every trial's params indexed (after the response): median "
        f"{statistics.median(indexed_after):.3f} s after the request started"
    )
    return 1 if args.strict and median >= TARGET_S else 0


if __name__ == "__main__":
    sys.exit(main())
