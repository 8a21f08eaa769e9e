"""The run page for a run with 1,000,000 points of one metric: API answer and first plot.

Fills its own PostgreSQL database (fitboard_bench_run_page on the local server, dropped at the
end unless --keep) with one run holding N points of ``batch/loss`` (bulk COPY) plus its epoch
metrics, then measures

1. GET /api/v1/runs/{id}/metrics?keys=batch/loss&max_points=2000 in-process (FastAPI's
   TestClient: the API and the database, no network), p50/p95 over --requests requests;
   also the page's own request (every key, max_points=2000). Target: p95 <= 100 ms.
2. The run page in headless Chromium (/usr/bin/chromium, or FITBOARD_CHROMIUM) against a real
   uvicorn on that database: from navigation start to the User Timing mark
   ``fitboard:first-curve`` that frontend/static/js/charts.js sets once the first curves are
   drawn. Target: <= 1 s. Cold (a fresh browser context), warm (its second load: the HTTP
   cache) and third visits (V8's code cache too), median and worst of --navigations rounds,
   beside empty pages that only load each plotly.js bundle and, with --compare-with DIR,
   another checkout's run page on the same database.

    .venv/bin/python bench/run_page.py [--points 1000000] [--requests 30] [--navigations 5]
        [--compare-with DIR]
"""

from __future__ import annotations

import argparse
import html
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_run_page"
TARGET_API_P95_MS = 100.0
TARGET_PLOT_MS = 1000.0
KEY = "batch/loss"
STEPS_PER_EPOCH = 10_000
COPY_CHUNK = 100_000
MARK = "fitboard:first-curve"  # the User Timing mark charts.js sets
VISITS = ("cold", "warm", "third")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL, help="PostgreSQL URL (scratch)")
    parser.add_argument("--points", type=int, default=1_000_000, help=f"points of {KEY}")
    parser.add_argument("--max-points", type=int, default=2000, help="the page's max_points")
    parser.add_argument("--requests", type=int, default=30, help="timed API requests per case")
    parser.add_argument("--navigations", type=int, default=5, help="timed page loads")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium part")
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout (e.g. before a change): its run page is timed alongside",
    )
    args = parser.parse_args(argv)
    if args.navigations < 1 or args.requests < 1:
        parser.error("--navigations and --requests must be at least 1")
    return args


def fill(url: str, points: int) -> tuple[int, float]:
    """One finished run with `points` batch losses and per-epoch metrics; (run id, seconds)."""
    import json

    from backend.spec import resolve_spec

    began = time.perf_counter()
    spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    epochs = max(1, math.ceil(points / STEPS_PER_EPOCH))
    spec["fit"]["epochs"] = epochs
    engine = create_engine(url)
    with engine.begin() as conn:
        run_id = int(
            conn.execute(
                text(
                    "INSERT INTO runs (name, status, preset, dataset, spec, created_at, "
                    "started_at, finished_at) VALUES ('one million points', 'succeeded', "
                    "'digits-mlp', 'digits', CAST(:spec AS jsonb), now() - interval '2 hours', "
                    "now() - interval '2 hours', now()) RETURNING id"
                ),
                {"spec": json.dumps(spec)},
            ).scalar_one()
        )
        conn.execute(
            text(
                "INSERT INTO run_events (run_id, uid, kind, data, created_at) VALUES (:r, "
                "'train_begin', 'train_begin', CAST(:d AS json), now())"
            ),
            {
                "r": run_id,
                "d": json.dumps({"epochs": epochs, "steps_per_epoch": STEPS_PER_EPOCH}),
            },
        )
    rng = random.Random(1)
    t0 = time.time() - 7200
    raw = engine.raw_connection()
    try:
        pg: Any = raw.driver_connection
        columns = "run_id, key, step, value, wall_time"
        with pg.cursor() as cur, cur.copy(f"COPY metric_points ({columns}) FROM STDIN") as copy:
            for step in range(1, points + 1):
                loss = 2.3 * math.exp(-step / (points / 4)) + 0.05 + rng.random() * 0.1
                copy.write_row((run_id, KEY, step, loss, t0 + step * 0.005))
                if step % COPY_CHUNK == 0:
                    print(f"  {step:,} points", file=sys.stderr, end="\r")
            for epoch in range(1, epochs + 1):
                for key, value in (
                    ("loss", 2.0 / epoch),
                    ("accuracy", 1 - 0.5 / epoch),
                    ("val_loss", 2.1 / epoch),
                    ("val_accuracy", 1 - 0.55 / epoch),
                ):
                    copy.write_row((run_id, key, epoch, value, t0 + epoch))
        with pg.cursor() as cur:
            cur.execute(
                "INSERT INTO latest_metrics (run_id, key, step, value) "
                "SELECT DISTINCT ON (key) run_id, key, step, value FROM metric_points "
                "WHERE run_id = %s ORDER BY key, step DESC",
                (run_id,),
            )
        pg.commit()
        pg.autocommit = True
        with pg.cursor() as cur:  # what autovacuum would do: statistics and visibility map
            cur.execute("VACUUM ANALYZE metric_points, latest_metrics")
    finally:
        raw.close()
        engine.dispose()
    print(file=sys.stderr)
    return run_id, time.perf_counter() - began


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def time_api(url: str, run_id: int, n: int, max_points: int) -> list[dict[str, Any]]:
    os.environ["DATABASE_URL"] = url
    os.environ["FITBOARD_AUTH"] = "off"  # in-process, loopback: timing the API, not sign-in
    os.environ.setdefault("FITBOARD_HOME", tempfile.mkdtemp(prefix="fitboard-bench-"))
    os.environ.setdefault("FITBOARD_LOG_LEVEL", "WARNING")
    from backend.config import get_settings

    get_settings.cache_clear()
    from fastapi.testclient import TestClient

    from backend.api.app import create_app

    client = TestClient(create_app(), base_url="http://127.0.0.1:8000")  # a loopback connection
    cases = [
        (f"{KEY} only", {"keys": KEY, "max_points": max_points}),
        ("every key (what the page asks)", {"max_points": max_points}),
    ]
    results = []
    began = time.perf_counter()  # the first read aggregates the raw points into metric_rollups
    client.get(f"/api/v1/runs/{run_id}/metrics", params=cases[0][1]).raise_for_status()
    first_ms = (time.perf_counter() - began) * 1000
    for label, params in cases:
        for _ in range(3):  # warm the pool and the plan cache
            client.get(f"/api/v1/runs/{run_id}/metrics", params=params)
        times = []
        body: dict[str, Any] = {}
        for _ in range(n):
            began = time.perf_counter()
            response = client.get(f"/api/v1/runs/{run_id}/metrics", params=params)
            times.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"{label}: {response.status_code} {response.text}")
            body = response.json()
        series = body["series"][KEY]
        results.append(
            {
                "case": label,
                "count": series["count"],
                "returned": len(series["steps"]),
                "p50_ms": statistics.median(times),
                "p95_ms": p95(times),
                "first_ms": first_ms,
            }
        )
    client.close()
    return results


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def probe_app() -> Any:
    """The app plus /_bench/plotly-only?src=...: an empty page that only loads plotly.js."""
    from fastapi.responses import HTMLResponse

    from backend.api.app import create_app

    app = create_app()

    @app.get("/_bench/plotly-only", include_in_schema=False)
    def plotly_only(src: str) -> HTMLResponse:
        # the same mark and flag as the run page's first curve, set once plotly.js has run
        return HTMLResponse(
            f'<!doctype html><html><head><title>plotly.js only</title><script src="'
            f'{html.escape(src)}"></script><script>performance.mark("{MARK}");'
            'document.documentElement.dataset.firstCurve = "drawn";</script></head>'
            "<body></body></html>"
        )

    return app


@contextmanager
def serve(url: str, tree: Path, app: str) -> Iterator[str]:
    """A uvicorn on `url`'s database serving `tree`'s backend and frontend; its base URL."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "FITBOARD_AUTH": "off",
        "FITBOARD_HOST": "127.0.0.1",
        "FITBOARD_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(tree),  # before the editable install: another checkout's backend
    }
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log"]
    if app.endswith("probe_app"):
        command.append("--factory")
    server = subprocess.Popen(command, cwd=tree, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"the API server for {tree} did not start")
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(10)


@dataclass(frozen=True)
class Variant:
    label: str
    url: str


def _visit(context: Any, variant: Variant) -> dict[str, float | None]:
    """One navigation in `context`: ms to the first curve, and when plotly.js and /metrics came."""
    page = context.new_page()
    try:
        page.goto(variant.url)
        page.wait_for_function(
            "document.documentElement.dataset.firstCurve === 'drawn'", timeout=60_000
        )
        timing: dict[str, float | None] = page.evaluate(
            """(mark) => {
              const entries = performance.getEntriesByType("resource");
              const plotly = entries.find((e) => /plotly[^/]*\\.js/.test(e.name));
              const metrics = entries.find((e) => e.name.includes("/metrics"));
              return {
                first_curve_ms: performance.getEntriesByName(mark)[0].startTime,
                plotly_bytes: plotly ? plotly.transferSize : null,
                plotly_loaded_ms: plotly ? plotly.responseEnd : null,
                metrics_start_ms: metrics ? metrics.startTime : null,
              };
            }""",
            MARK,
        )
        return timing
    finally:
        page.close()


def time_page(
    url: str, run_id: int, navigations: int, compare_with: Path | None
) -> dict[str, dict[str, list[dict[str, float | None]]]] | str:
    """Per variant and visit (cold, warm, third): each navigation's timings; or why skipped.

    Every round opens a fresh browser context (an empty HTTP cache, a new renderer: a cold
    visit) per variant and loads the page three times in it: the second load finds plotly.js
    in the HTTP cache (warm), the third also in V8's code cache, which Chromium fills on a
    script's second load. Variants alternate within a round, so load from other work on the
    machine reaches them alike.
    """
    chromium = os.environ.get("FITBOARD_CHROMIUM", "/usr/bin/chromium")
    if not Path(chromium).exists():
        return f"skipped: no Chromium at {chromium} (set FITBOARD_CHROMIUM)"
    from playwright import sync_api

    from backend.web.router import PLOTLY_JS, PLOTLY_JS_VERSION, VENDOR
    from tests.browser.support import CHROMIUM_ARGS

    with ExitStack() as stack:
        try:
            base = stack.enter_context(serve(url, REPO, "bench.run_page:probe_app"))
            other = None
            if compare_with:
                other = stack.enter_context(serve(url, compare_with, "backend.main:app"))
        except RuntimeError as exc:
            return f"skipped: {exc}"
        variants = [Variant("run page", f"{base}/runs/{run_id}")]
        if other:
            variants.append(Variant(f"run page of {compare_with}", f"{other}/runs/{run_id}"))
        bundles = [(f"plotly-{PLOTLY_JS_VERSION}.min.js", "full")]
        bundles += [(path.name, "partial") for path in sorted(VENDOR.glob("plotly-*.min.js"))]
        for name, kind in bundles:
            size = (PLOTLY_JS if kind == "full" else VENDOR / name).stat().st_size
            variants.append(
                Variant(
                    f"empty page + {name} ({size / 1e6:.1f} MB)",
                    f"{base}/_bench/plotly-only?src=/static/vendor/{name}",
                )
            )
        results: dict[str, dict[str, list[dict[str, float | None]]]] = {
            v.label: {visit: [] for visit in VISITS} for v in variants
        }
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium, headless=True, args=CHROMIUM_ARGS
            )
            for round_ in range(navigations + 1):  # round 0 warms the servers: not counted
                order = variants[round_ % len(variants) :] + variants[: round_ % len(variants)]
                for variant in order:
                    context = browser.new_context(viewport={"width": 1366, "height": 900})
                    for visit in VISITS:
                        timing = _visit(context, variant)
                        if round_:
                            results[variant.label][visit].append(timing)
                    context.close()
                print(f"  page loads: round {round_}/{navigations}", file=sys.stderr, end="\r")
            browser.close()
        print(file=sys.stderr)
        return results


def print_pages(pages: dict[str, dict[str, list[dict[str, float | None]]]]) -> bool:
    """The page table; whether this tree's run page met the target on every visit kind."""

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values):>6.0f} / {max(values):>5.0f}" if values else "-"

    some = next(iter(next(iter(pages.values())).values()))
    print(
        f"\nChromium, navigation -> first curve drawn (empty pages: -> plotly.js has run), ms, "
        f"median / worst of {len(some)} fresh contexts"
    )
    print(f"{'page':58} {'cold':>14} {'warm (2nd)':>14} {'3rd visit':>14}")
    for label, visits in pages.items():
        cells = [ms([float(t["first_curve_ms"] or 0) for t in visits[v]]) for v in VISITS]
        print(f"{label:58} {cells[0]:>14} {cells[1]:>14} {cells[2]:>14}")
    ok = True
    for label, visits in pages.items():
        if not label.startswith("run page"):
            continue
        verdicts = []
        for visit in VISITS:
            worst = max(float(t["first_curve_ms"] or 0) for t in visits[visit])
            passed = worst <= TARGET_PLOT_MS
            if label == "run page":
                ok &= passed
            verdicts.append(f"{visit} {'yes' if passed else 'NO'}")
        cached = sum(1 for t in visits["warm"] if t["plotly_bytes"] == 0)
        starts = [t["metrics_start_ms"] for t in visits["cold"] if t["metrics_start_ms"]]
        loaded = [t["plotly_loaded_ms"] for t in visits["cold"] if t["plotly_loaded_ms"]]
        print(
            f"{label}: worst <= {TARGET_PLOT_MS:.0f} ms: {', '.join(verdicts)}; plotly.js from "
            f"the HTTP cache on {cached}/{len(visits['warm'])} warm visits; cold visits ask "
            f"/metrics at {statistics.median(starts or [0]):.0f} ms, plotly.js arrived at "
            f"{statistics.median(loaded or [0]):.0f} ms (medians)"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url
    recreate(url)
    try:
        from backend.db.migrate import upgrade

        upgrade(url)
        print(f"storing {args.points:,} points of {KEY} ...", file=sys.stderr)
        run_id, seconds = fill(url, args.points)
        print(f"stored {args.points:,} points in {seconds:.1f} s (run {run_id})")
        api = time_api(url, run_id, args.requests, args.max_points)
        page = (
            "skipped: --no-browser"
            if args.no_browser
            else time_page(url, run_id, args.navigations, args.compare_with)
        )
    finally:
        from backend.db.session import _engines

        for pooled in _engines.values():
            pooled.dispose()
        if not args.keep:
            drop(url)

    print(f"\nGET /api/v1/runs/{{id}}/metrics, {args.requests} requests each")
    print(f"{'case':34} {'points':>10} {'returned':>9} {'p50 ms':>8} {'p95 ms':>8}  target")
    ok = True
    for r in api:
        passed = r["p95_ms"] <= TARGET_API_P95_MS
        ok &= passed
        print(
            f"{r['case']:34} {r['count']:>10,} {r['returned']:>9,} {r['p50_ms']:>8.1f} "
            f"{r['p95_ms']:>8.1f}  p95 <= {TARGET_API_P95_MS:.0f} ms: {'yes' if passed else 'NO'}"
        )
    print(f"(the very first read, which fills metric_rollups once: {api[0]['first_ms']:.0f} ms)")
    if isinstance(page, str):
        print(f"\nrun page in Chromium: {page}")
    else:
        ok &= print_pages(page)
    print(f"\nrun page with {args.points:,} points within its targets: {'yes' if ok else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
