"""The runs page at 100,000 runs: how long the API takes to answer its first page.

Fills a PostgreSQL database with N runs (bulk COPY: tags, notes, final loss/accuracy/val_loss/
val_accuracy and the flattened spec in run_params for each), then times GET /api/v1/runs
in-process (FastAPI's TestClient, so the numbers are the API and the database, not a network)
for the page's usual first requests:

    .venv/bin/python bench/runs_page.py [--database-url URL] [--runs 100000] [--requests 50]

Without --database-url it creates a scratch database (fitboard_bench on the local server),
and drops it at the end unless --keep. A database that already holds N runs is reused as is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench"
TARGET_P95_MS = 100.0
PRESETS = ("digits-mlp", "mnist-mlp", "mnist-cnn", "imdb-lstm")
TAGS = [
    *("baseline", "sweep-lr", "sweep-bs", "ablation", "dropout", "augment", "prod-candidate"),
    *("regression", "flaky", "paper", "long", "debug", "night", "gpu", "cpu", "keep"),
    *(f"exp-{i:03d}" for i in range(40)),
]
WORDS = ["wide", "deep", "tiny", "fast", "retry", "warmup", "cosine", "adamw", "baseline", "v2"]
METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
COPY_CHUNK = 10_000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help=f"PostgreSQL URL (default: {DEFAULT_SERVER})")
    parser.add_argument("--runs", type=int, default=100_000, help="runs to store")
    parser.add_argument("--requests", type=int, default=50, help="timed requests per case")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--strict", action="store_true", help="exit 1 when a p95 misses 100 ms")
    return parser.parse_args(argv)


# --- the database --------------------------------------------------------------------------


def base_specs() -> dict[str, dict[str, Any]]:
    from backend.spec import resolve_spec

    return {
        p: resolve_spec(spec=None, preset=p, overrides=None).model_dump(mode="json")
        for p in PRESETS
    }


Generated = tuple[list[Any], list[str], dict[str, float], str, dict[str, Any]]


def generate(n: int, seed: int) -> Iterator[Generated]:
    """(runs row, tags, final metrics, search text, spec) for runs 1..n over the last year."""
    from backend.runs.models import build_search_text

    rng = random.Random(seed)
    specs = base_specs()
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / n
    for run_id in range(1, n + 1):
        preset = rng.choice(PRESETS)
        spec = json.loads(json.dumps(specs[preset]))
        spec["fit"]["batch_size"] = rng.choice([16, 32, 64, 128, 256])
        spec["compile"]["optimizer"]["learning_rate"] = rng.choice([1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
        name = f"{preset} {rng.choice(WORDS)} {rng.choice(WORDS)} #{run_id}"
        tags = sorted(set(rng.sample(TAGS, rng.choice([0, 1, 1, 2, 3]))))
        notes = f"{rng.choice(WORDS)} looked {rng.choice(['good', 'noisy', 'flat'])}" * (
            rng.random() < 0.1
        )
        created = start + step * run_id
        started = created + timedelta(seconds=rng.uniform(1, 30))
        finished = started + timedelta(seconds=rng.uniform(20, 3600))
        status = rng.choices(["succeeded", "failed", "cancelled"], [90, 6, 4])[0]
        accuracy = rng.uniform(0.5, 0.999)
        finals = {
            "loss": rng.uniform(0.01, 2.0),
            "accuracy": accuracy,
            "val_loss": rng.uniform(0.02, 2.5),
            "val_accuracy": accuracy - rng.uniform(0, 0.1),
        }
        row = [
            run_id,
            name,
            status,
            preset,
            json.dumps(spec),
            created,
            created,
            started,
            finished,
            finished,
            "bench-host",
            notes,
            spec["dataset"]["name"],
        ]
        yield row, tags, finals, build_search_text(name, tags, notes), spec


COPY_COLUMNS = {
    "runs": "id, name, status, preset, spec, created_at, dispatched_at, started_at, "
    "finished_at, heartbeat_at, worker_host, notes, dataset",
    "run_search": "run_id, text",
    "run_tags": "run_id, tag",
    "latest_metrics": "run_id, key, step, value",
    "run_params": "run_id, key, num_value, text_value",
}


def _copy(conn: Any, table: str, columns: str, rows: list[list[Any]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def fill(engine: Engine, n: int, seed: int) -> float:
    """Bulk-insert runs 1..n with their tags and final metrics; returns seconds taken."""
    from backend.runs.params import flatten

    began = time.perf_counter()
    raw = engine.raw_connection()
    try:
        conn: Any = raw.driver_connection  # psycopg 3: COPY is the bulk path
        tables: dict[str, list[list[Any]]] = {name: [] for name in COPY_COLUMNS}
        for row, run_tags, metrics, search_text, spec in generate(n, seed):
            tables["runs"].append(row)
            tables["run_search"].append([row[0], search_text])
            tables["run_tags"].extend([row[0], t] for t in run_tags)
            tables["latest_metrics"].extend([row[0], k, 1, v] for k, v in metrics.items())
            # what runs.submit writes (backend/runs/params.py)
            tables["run_params"].extend(
                [row[0], key, num, txt] for key, (num, txt) in flatten(spec).items()
            )
            if len(tables["runs"]) == COPY_CHUNK:
                _flush(conn, tables)
                print(f"  {row[0]:,} runs stored", file=sys.stderr, end="\r")
        _flush(conn, tables)
        with conn.cursor() as cur:
            cur.execute("SELECT setval('runs_id_seq', (SELECT max(id) FROM runs))")
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:  # what autovacuum would do: statistics and visibility map
            cur.execute("VACUUM ANALYZE " + ", ".join(COPY_COLUMNS))
    finally:
        raw.close()
    print(file=sys.stderr)
    return time.perf_counter() - began


def _flush(conn: Any, tables: dict[str, list[list[Any]]]) -> None:
    for table, rows in tables.items():  # runs first: the others refer to it
        _copy(conn, table, COPY_COLUMNS[table], rows)
        rows.clear()
    conn.commit()


# --- timing --------------------------------------------------------------------------------


def cases() -> list[tuple[str, dict[str, Any], bool]]:
    """(label, query parameters, part of the verdict)."""
    return [
        ("default sort (-created_at)", {}, True),
        ("sort -metric:val_accuracy", {"sort": "-metric:val_accuracy"}, True),
        ("text search q=cosine", {"q": "cosine"}, True),
        ("tag filter tag=sweep-lr", {"tag": "sweep-lr"}, True),
        ("sort metric:val_loss (asc)", {"sort": "metric:val_loss"}, False),
        ("search + tag + status", {"q": "warmup", "tag": "gpu", "status": "succeeded"}, False),
        ("sort -param:fit.batch_size", {"sort": "-param:fit.batch_size"}, True),
        ("sort param:compile.optimizer.name", {"sort": "param:compile.optimizer.name"}, False),
        ("param sort + tag filter", {"sort": "param:fit.batch_size", "tag": "gpu"}, False),
        ("param sort, page 100", {"sort": "param:fit.batch_size", "offset": 4950}, False),
        ("param filter param.fit.batch_size=64", {"param.fit.batch_size": "64"}, False),
        ("sort name", {"sort": "name"}, False),
        ("page 100 (offset 4950)", {"offset": 4950}, False),
    ]


def time_requests(url: str, n_requests: int) -> list[dict[str, Any]]:
    os.environ["DATABASE_URL"] = url
    os.environ["FITBOARD_AUTH"] = "off"  # in-process, loopback: timing the API, not sign-in
    os.environ.setdefault("FITBOARD_HOME", tempfile.mkdtemp(prefix="fitboard-bench-"))
    os.environ.setdefault("FITBOARD_LOG_LEVEL", "WARNING")
    from backend.config import get_settings

    get_settings.cache_clear()
    from fastapi.testclient import TestClient

    from backend.api.app import create_app

    # no `with`: the app's lifespan (housekeeping loop) is not needed to answer requests
    client = TestClient(create_app(), base_url="http://127.0.0.1:8000")  # a loopback connection
    results = []
    for label, params, verdict in cases():
        for _ in range(3):  # warm the connection pool and the plan cache
            client.get("/api/v1/runs", params=params)
        times = []
        body: dict[str, Any] = {}
        for _ in range(n_requests):
            began = time.perf_counter()
            response = client.get("/api/v1/runs", params=params)
            times.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: {response.status_code} {response.text}")
            body = response.json()
        times.sort()
        results.append(
            {
                "case": label,
                "params": params,
                "verdict": verdict,
                "total": body["total"],
                "rows": len(body["items"]),
                "p50_ms": statistics.median(times),
                "p95_ms": times[max(0, round(0.95 * len(times)) - 1)],
            }
        )
    client.close()
    return results


def report(results: list[dict[str, Any]], runs: int, n_requests: int) -> bool:
    print(
        f"\nGET /api/v1/runs (first page, limit 50) with {runs:,} runs, {n_requests} requests each"
    )
    print(f"{'case':38} {'matches':>9} {'p50 ms':>8} {'p95 ms':>8}  p95 <= {TARGET_P95_MS:.0f} ms")
    ok = True
    for r in results:
        passed = r["p95_ms"] <= TARGET_P95_MS
        if r["verdict"]:
            ok &= passed
        mark = ("yes" if passed else "NO") + ("" if r["verdict"] else "  (extra)")
        print(f"{r['case']:38} {r['total']:>9,} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f}  {mark}")
    n_target = sum(r["verdict"] for r in results)
    verdict = "yes" if ok else "NO"
    print(f"\nall {n_target} target cases within {TARGET_P95_MS:.0f} ms at p95: {verdict}")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url or DEFAULT_SERVER
    scratch = args.database_url is None
    if scratch:
        recreate(url)
    try:
        from backend.db.migrate import upgrade

        upgrade(url)
        engine = create_engine(url)
        from backend.runs.models import Run

        with engine.connect() as conn:
            present = int(conn.execute(select(func.count()).select_from(Run)).scalar() or 0)
        if present == 0:
            print(f"storing {args.runs:,} runs ...", file=sys.stderr)
            print(f"stored {args.runs:,} runs in {fill(engine, args.runs, args.seed):.1f} s")
        elif present < args.runs:
            raise SystemExit(f"{url} already holds {present:,} runs (< {args.runs:,}); use another")
        else:
            print(f"reusing the {present:,} runs already in the database")
        engine.dispose()
        results = time_requests(url, args.requests)
        ok = report(results, max(present, args.runs), args.requests)
    finally:
        from backend.db.session import _engines

        for pooled in _engines.values():
            pooled.dispose()
        if scratch and not args.keep:
            drop(url)
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
