"""Points ingested over HTTP into PostgreSQL: the per-point body against the columnar one,
beside MLflow's tracking server where it is installed.

A real API (uvicorn, bench/api_server.py) on a scratch PostgreSQL database
(fitboard_bench_ingest on the local server, dropped at the end unless --keep). --posters
processes each create an external run and post --batches batches of --batch points (--keys
``batch/*`` keys, consecutive steps) to POST /api/v1/runs/{id}/points, one after another on one
keep-alive connection. Every body is encoded before the clock starts: the clock times the API
taking points in, from the first post to the last answer. Each format runs on its own runs,
the formats alternate for --rounds rounds, and the best round of each is reported.

The peer (``--peers mlflow``, the default when mlflow is importable; ``--no-peers`` leaves it
out): MLflow's tracking server (``mlflow server``, uvicorn, one worker process as the API gets
by default) on its own scratch database (mlflow_bench_ingest), taking the same points from the
same number of posters: each creates a run in an experiment made first and posts its batches
to POST /api/2.0/mlflow/runs/log-batch, each --batch split into requests of at most 1,000
metrics (MLflow's cap), null values as NaN. It alternates with the formats, on the same clock.
If its server does not start, the script says why and goes on without it.

Then it counts the rows of every run: stored must equal acknowledged (the sum of the
answers' ``points``; for MLflow, the metrics of the requests answered 200), or the script
exits 1 (a peer's mismatch is printed, never an exit 1).

    .venv/bin/python bench/ingest.py [--posters 4] [--batches 10] [--batch 5000]
        [--rounds 2] [--api-workers 1] [--peers mlflow | --no-peers] [--profile out.prof]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import importlib.metadata
import importlib.util
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_ingest"
MLFLOW_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/mlflow_bench_ingest"
GOAL = 100_000  # points per second
FORMATS = ("points", "columns")
PEERS = ("mlflow",)
MLFLOW_BATCH = 1000  # MLflow's MAX_METRICS_PER_BATCH: log-batch refuses more
WALL = 1_764_800_000.0

# one post: (path, encoded body, metrics in it: None when the answer says how many it took)
Post = tuple[str, bytes, int | None]


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
    peers = parser.add_mutually_exclusive_group()
    peers.add_argument(
        "--peers",
        nargs="+",
        choices=PEERS,
        default=None,
        help="servers timed beside Fitboard in the same rounds (default: mlflow when importable)",
    )
    peers.add_argument("--no-peers", action="store_true", help="time Fitboard's API alone")
    parser.add_argument(
        "--mlflow-database-url", default=MLFLOW_URL, help="the peer's scratch database"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="instead: cProfile the endpoint's work in-process, stats to FILE.<format>",
    )
    return parser.parse_args(argv)


@dataclass
class Batch:
    """The points of one batch, as arrays: every key at each step, steps consecutive."""

    names: list[str]
    key_index: list[int]
    steps: list[int]
    values: list[float | None]
    walls: list[float]


def batches_of(*, batches: int, batch: int, keys: int, seed: int) -> list[Batch]:
    """The batches of one poster: steps go on from batch to batch, every key each step."""
    names = [f"batch/metric_{k}" for k in range(keys)]
    out = []
    steps_per_batch = batch // keys
    for b in range(batches):
        first = b * steps_per_batch + 1
        steps = [first + i // keys for i in range(batch)]
        values: list[float | None] = [
            None if (i + seed) % 997 == 0 else 1.0 / (1 + i + seed) for i in range(batch)
        ]
        out.append(
            Batch(
                names=names,
                key_index=[i % keys for i in range(batch)],
                steps=steps,
                values=values,
                walls=[WALL + s * 0.01 for s in steps],
            )
        )
    return out


def bodies(fmt: str, *, batches: int, batch: int, keys: int, seed: int) -> list[bytes]:
    """The encoded posts of one poster to Fitboard's points endpoint, in format ``fmt``."""
    out = []
    for b, arrays in enumerate(batches_of(batches=batches, batch=batch, keys=keys, seed=seed)):
        uid = f"{fmt}-{seed}-{b}"
        if fmt == "points":
            body: dict[str, Any] = {
                "uid": uid,
                "points": [
                    {"key": arrays.names[k], "step": s, "value": v, "wall_time": w}
                    for k, s, v, w in zip(
                        arrays.key_index, arrays.steps, arrays.values, arrays.walls, strict=True
                    )
                ],
            }
        else:
            body = {
                "uid": uid,
                "columns": {
                    "keys": arrays.names,
                    "key_index": arrays.key_index,
                    "steps": arrays.steps,
                    "values": arrays.values,
                    "wall_times": arrays.walls,
                },
            }
        out.append(orjson.dumps(body))
    return out


def mlflow_bodies(run_id: str, *, batches: int, batch: int, keys: int, seed: int) -> list[Post]:
    """The same points as ``bodies`` for one MLflow run, as log-batch requests of at most
    1,000 metrics (wall times in ms, a null value as NaN: MLflow stores it with is_nan)."""
    out: list[Post] = []
    for arrays in batches_of(batches=batches, batch=batch, keys=keys, seed=seed):
        metrics = [
            {
                "key": arrays.names[k],
                "value": "NaN" if v is None else v,
                "timestamp": round(w * 1000),
                "step": s,
            }
            for k, s, v, w in zip(
                arrays.key_index, arrays.steps, arrays.values, arrays.walls, strict=True
            )
        ]
        for i in range(0, len(metrics), MLFLOW_BATCH):
            chunk = metrics[i : i + MLFLOW_BATCH]
            body = orjson.dumps({"run_id": run_id, "metrics": chunk})
            out.append(("/api/2.0/mlflow/runs/log-batch", body, len(chunk)))
    return out


def poster(api: str, run_id: int | str, posts: list[Post], start: Any, done: Any) -> None:
    """Wait for the start, post every body in turn, report (run, points acknowledged, end,
    error or None)."""
    parts = urlsplit(api)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    headers = {"Content-Type": "application/json"}
    acknowledged = 0
    start.wait()
    try:
        for path, body, count in posts:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                error = f"run {run_id}: HTTP {response.status}: {answer[:300]!r}"
                done.put((run_id, acknowledged, time.perf_counter(), error))
                return
            acknowledged += int(orjson.loads(answer)["points"]) if count is None else count
    except Exception as exc:  # reported to the parent, which decides
        done.put((run_id, acknowledged, time.perf_counter(), f"run {run_id}: {exc!r}"))
        return
    finally:
        conn.close()
    done.put((run_id, acknowledged, time.perf_counter(), None))


def request_json(api: str, path: str, body: dict[str, Any], expect: int) -> Any:
    parts = urlsplit(api)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    conn.request(
        "POST", path, body=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )
    response = conn.getresponse()
    answer = response.read()
    conn.close()
    if response.status != expect:
        raise RuntimeError(f"POST {path}: HTTP {response.status}: {answer[:300]!r}")
    return orjson.loads(answer)


def create_run(api: str, name: str) -> int:
    try:
        return int(request_json(api, "/api/v1/runs/external", {"name": name}, 201)["id"])
    except RuntimeError as exc:
        raise SystemExit(f"creating a run: {exc}") from None


class PosterFailed(RuntimeError):
    pass


@dataclass
class MlflowPeer:
    url: str  # the tracking server
    database_url: str
    experiment_id: str
    stop: Callable[[], None]

    def create_run(self, name: str) -> str:
        body = {
            "experiment_id": self.experiment_id,
            "run_name": name,
            "start_time": round(time.time() * 1000),
        }
        answer = request_json(self.url, "/api/2.0/mlflow/runs/create", body, 200)
        return str(answer["run"]["info"]["run_id"])


def one_round(
    api: str, fmt: str, args: argparse.Namespace, round_no: int, peer: MlflowPeer | None = None
) -> dict[str, Any]:
    """One timed round of ``fmt`` (a Fitboard format, or ``mlflow`` with ``peer``)."""
    ctx = multiprocessing.get_context("fork")
    start, done = ctx.Event(), ctx.Queue()
    target = api if peer is None else peer.url
    work: list[tuple[int | str, list[Post]]] = []
    for p in range(args.posters):
        seed = round_no * 100 + p
        name = f"ingest {fmt} r{round_no} p{p}"
        run_id: int | str
        if peer is not None:
            run_id = peer.create_run(name)
            posts = mlflow_bodies(
                run_id, batches=args.batches, batch=args.batch, keys=args.keys, seed=seed
            )
        else:
            run_id = create_run(api, name)
            path = f"/api/v1/runs/{run_id}/points"
            encoded = bodies(fmt, batches=args.batches, batch=args.batch, keys=args.keys, seed=seed)
            posts = [(path, body, None) for body in encoded]
        work.append((run_id, posts))
    procs = []
    for run_id, posts in work:
        proc = ctx.Process(target=poster, args=(target, run_id, posts, start, done), daemon=True)
        proc.start()
        procs.append(proc)
    time.sleep(1.0)  # every poster has its bodies and waits
    began = time.perf_counter()
    start.set()
    results = [done.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [error for _, _, _, error in results if error]
    if errors:
        raise PosterFailed("; ".join(errors))
    for proc in procs:
        if proc.exitcode:
            raise PosterFailed(f"a poster failed (exit {proc.exitcode})")
    seconds = max(end for _, _, end, _ in results) - began
    acknowledged = sum(n for _, n, _, _ in results)
    return {
        "format": fmt,
        "round": round_no,
        "runs": [run_id for run_id, _, _, _ in results],
        "acknowledged": acknowledged,
        "seconds": seconds,
        "points_per_s": acknowledged / seconds,
    }


def stored_rows(url: str, run_ids: list[Any], *, table: str = "metric_points") -> int:
    column = "run_uuid" if table == "metrics" else "run_id"
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE {column} = ANY(:ids)"), {"ids": run_ids}
        ).scalar_one()
    engine.dispose()
    return int(count)


def start_api(url: str, home: Path, workers: int) -> str:
    os.environ["FITBOARD_AUTH"] = "off"  # loopback only: timing ingest, not sign-in
    os.environ.setdefault("FITBOARD_LOG_LEVEL", "WARNING")
    import api_server

    return api_server.start(url, home, processes=workers)[0]


def wanted_peers(args: argparse.Namespace, *, quiet: bool = False) -> list[str]:
    if args.no_peers:
        return []
    if args.peers is not None:
        return list(args.peers)
    if importlib.util.find_spec("mlflow") is None:
        if not quiet:
            print("no peer: mlflow is not installed (pip install -e '.[bench]')", file=sys.stderr)
        return []
    return ["mlflow"]


def mlflow_version() -> str:
    for dist in ("mlflow", "mlflow-skinny"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


def _why(log: Path) -> str:
    """The telling line of a server's log: the last exception, else its last line."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line:
            return line.strip()
    return lines[-1].strip() if lines else "(its log is empty)"


def start_mlflow(database_url: str, home: Path) -> MlflowPeer:
    """``mlflow server`` on a fresh ``database_url`` with one uvicorn worker, and an experiment
    for the bench; raises RuntimeError with the reason when it does not come up."""
    if importlib.util.find_spec("mlflow") is None:
        raise RuntimeError("mlflow is not installed (pip install -e '.[bench]')")
    recreate(database_url)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    artifacts = home / "mlflow-artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        database_url,
        "--default-artifact-root",
        artifacts.as_uri(),
        "--no-serve-artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        # as bench/api_server.py runs Fitboard's: warnings only, no access log
        "--uvicorn-opts",
        "--log-level warning --no-access-log",
    ]
    env = {
        **os.environ,
        # the job runner (a second process, for GenAI scorers) has nothing to do here
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONWARNINGS": "ignore",
    }
    log = home / "mlflow-server.log"
    out = log.open("ab")
    # its own process group: `mlflow server` is a parent that runs uvicorn as a child
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out, start_new_session=True)

    def stop() -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    atexit.register(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # it migrates its database first
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            ok = conn.getresponse().status == 200
            conn.close()
            if ok:
                break
        except OSError:
            pass
        if proc.poll() is not None:
            stop()
            raise RuntimeError(f"`mlflow server` exited ({proc.returncode}): {_why(log)}")
        if time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"`mlflow server` did not answer in 180 s: {_why(log)}")
        time.sleep(0.5)
    try:
        answer = request_json(
            url,
            "/api/2.0/mlflow/experiments/create",
            {"name": "bench-ingest", "artifact_location": artifacts.as_uri()},
            200,
        )
    except (RuntimeError, OSError) as exc:
        stop()
        raise RuntimeError(f"creating MLflow's experiment: {exc}") from None
    return MlflowPeer(
        url=url,
        database_url=database_url,
        experiment_id=str(answer["experiment_id"]),
        stop=stop,
    )


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
    results: list[dict[str, Any]] = []
    peer: MlflowPeer | None = None
    peer_note = ""
    try:
        from backend.db.migrate import upgrade

        upgrade(url)
        sys.path.insert(0, str(REPO / "bench"))
        home = Path(tempfile.mkdtemp(prefix="fitboard-bench-ingest-"))
        if args.profile:
            profile(url, args, args.profile)
            return 0
        api = start_api(url, home, args.api_workers)
        if "mlflow" in wanted_peers(args):
            try:
                peer = start_mlflow(args.mlflow_database_url, home)
            except Exception as exc:  # the peer never fails Fitboard's rows
                peer_note = f"MLflow's tracking server left out: {exc}"
                print(peer_note, file=sys.stderr)
        for round_no in range(args.rounds):
            order = [*args.formats, *(["mlflow"] if peer is not None else [])]
            for fmt in order if round_no % 2 == 0 else reversed(order):
                if fmt == "mlflow":
                    if peer is None:
                        continue  # it failed in an earlier round
                    try:
                        result = one_round(api, fmt, args, round_no, peer)
                        result["stored"] = stored_rows(
                            peer.database_url, result["runs"], table="metrics"
                        )
                    except Exception as exc:  # the peer never fails Fitboard's rows
                        peer_note = f"MLflow's round {round_no + 1} failed: {exc}"
                        print(peer_note, file=sys.stderr)
                        peer.stop()
                        peer = None
                        continue
                else:
                    try:
                        result = one_round(api, fmt, args, round_no)
                    except PosterFailed as exc:
                        raise SystemExit(str(exc)) from None
                    result["stored"] = stored_rows(url, result["runs"])
                print(
                    f"round {round_no + 1} {fmt:8s} {result['acknowledged']:>9,} points "
                    f"in {result['seconds']:6.2f} s: {result['points_per_s']:>9,.0f} points/s, "
                    f"stored {result['stored']:,}",
                    file=sys.stderr,
                )
                results.append(result)
    finally:
        if peer is not None:
            peer.stop()
        if not args.keep:
            drop(url)
            if wanted_peers(args, quiet=True):
                try:
                    drop(args.mlflow_database_url)
                except Exception as exc:  # say so, and go on
                    print(f"dropping MLflow's database: {exc}", file=sys.stderr)
    load_after = os.getloadavg()
    lost = [r for r in results if r["format"] != "mlflow" and r["stored"] != r["acknowledged"]]
    print(
        f"\n{args.posters} posters x {args.batches} batches x {args.batch:,} points "
        f"({args.keys} keys), {args.rounds} rounds, {args.api_workers} API process(es), "
        f"PostgreSQL\n"
    )
    print(
        "| server | body | acknowledged points/s: best round | worst | goal "
        "| stored == acknowledged |"
    )
    print("|---|---|---:|---:|---:|---|")
    api_label = f"Fitboard API, {args.api_workers} process{'es' if args.api_workers > 1 else ''}"
    rows = [(fmt, api_label, fmt) for fmt in args.formats]
    mlflow_label = f"MLflow {mlflow_version()} tracking server, 1 process"
    rows.append(("mlflow", mlflow_label, f"log-batch ({MLFLOW_BATCH:,} metrics a request)"))
    for fmt, server, body in rows:
        mine = [r for r in results if r["format"] == fmt]
        if not mine:
            continue
        best = max(r["points_per_s"] for r in mine)
        worst = min(r["points_per_s"] for r in mine)
        same = "yes" if all(r["stored"] == r["acknowledged"] for r in mine) else "NO"
        stored = sum(r["stored"] for r in mine)
        acked = sum(r["acknowledged"] for r in mine)
        detail = f"{stored:,} rows" if same == "yes" else f"{stored:,} rows of {acked:,}"
        print(
            f"| {server} | {body} | {best:,.0f} | {worst:,.0f} | >= {GOAL:,} | {same} ({detail}) |"
        )
    if any(r["format"] == "mlflow" for r in results):
        print(
            f"\nMLflow: `mlflow server` (uvicorn, --workers 1, job execution off) on its own "
            f"PostgreSQL database; each {args.batch:,}-point batch posted as "
            f"{-(-args.batch // MLFLOW_BATCH)} log-batch requests of at most {MLFLOW_BATCH:,} "
            f"metrics (MLflow's cap); acknowledged = metrics in requests answered 200"
        )
    if peer_note:
        print(f"\n{peer_note}")
    print(
        f"\nload average before {load_before[0]:.2f} {load_before[1]:.2f}, "
        f"after {load_after[0]:.2f} {load_after[1]:.2f} (1 and 5 min), {os.cpu_count()} CPUs"
    )
    if any(r["format"] == "mlflow" and r["stored"] != r["acknowledged"] for r in results):
        print("MLflow: stored != acknowledged (reported, not an exit 1)", file=sys.stderr)
    if lost:
        print("stored != acknowledged: points were lost or doubled", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
