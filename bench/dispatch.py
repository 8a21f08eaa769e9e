"""The dispatcher at 10,000 queued runs: how long one "dispatch next" decision takes, and how
soon a queued run is sent once a run's end frees its GPU.

Fills a scratch PostgreSQL database (bench/scratch_db.py) with 10,000 queued runs from several
launchers (mixed priorities, `resources.gpus` 0, 1 or 2; a sweep's trials among them, some let
go by their sweep), finished runs for a realistic table, and the reports of 25 workers with 4
fake GPUs each (100 GPUs), some of them busy with running runs. Then, in-process:

1. **decision**: `runqueue.release` (book the fleet's room, order the held runs, reserve the
   next ones) inside a transaction that is rolled back each round, so every round sees the
   same state; p50/p95 over `--rounds` rounds after warm-up rounds (goal: p95 < 50 ms).
2. **end -> sent**: with the fleet full (one real release committed, its picks left as sent
   and not yet taken), a running run ends (`runs.finish` in its own transaction, as the worker
   protocol's finish does); the clock runs from just before that commit until the next queued
   run's message is in the broker (Redis, `send_run` returning), which the commit's
   `release_after_commit` does. No worker process takes part: it measures the API's side of "a
   queued run starts within 1 s of a matching GPU freeing up", not a worker's pick-up.

    .venv/bin/python bench/dispatch.py [--database-url URL] [--runs 10000] [--rounds 30]

Without --database-url it creates fitboard_bench_dispatch on the local server and drops it at
the end unless --keep. Messages go to a queue no worker reads, deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.scratch_db import drop, recreate  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/fitboard_bench_dispatch"
QUEUE = "fitboard-bench-dispatch"
GOAL_DECISION_MS = 50.0
GOAL_END_TO_SENT_S = 1.0
WORKERS, GPUS_PER_WORKER = 25, 4
LAUNCHERS = 8
LOST_AFTER_S = 3600.0  # the reports are written once, before the rounds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help=f"PostgreSQL URL (default: {DEFAULT_URL})")
    parser.add_argument(
        "--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14")
    )
    parser.add_argument("--runs", type=int, default=10_000, help="queued runs")
    parser.add_argument("--finished", type=int, default=30_000, help="finished runs beside them")
    parser.add_argument("--rounds", type=int, default=30, help="timed release decisions")
    parser.add_argument("--ends", type=int, default=20, help="timed run ends")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--seed", type=int, default=11)
    return parser.parse_args(argv)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(q * len(ordered)) - 1)]


def fill(args: argparse.Namespace) -> dict[str, Any]:
    """Launchers, a sweep, queued/running/finished runs and 25 worker reports."""
    from sqlalchemy import insert, text

    from backend.db.base import utcnow
    from backend.db.session import session_scope
    from backend.runs.models import Run
    from backend.spec import resolve_spec
    from backend.sweeps.models import Sweep
    from backend.users.models import User
    from backend.workers.models import WorkerHost

    rng = random.Random(args.seed)
    base_spec = resolve_spec(preset="digits-mlp").model_dump(mode="json")
    specs = {g: {**base_spec, "resources": {"gpus": g}} for g in (0, 1, 2)}
    queues = {0: QUEUE, 1: f"{QUEUE}.gpus-1", 2: f"{QUEUE}.gpus-2"}
    now = utcnow()
    with session_scope() as session:
        users = [User(username=f"launcher-{n}", role="member") for n in range(LAUNCHERS)]
        session.add_all(users)
        session.flush()
        launchers = [u.id for u in users]
        sweep = Sweep(
            name="big sweep",
            base_spec=specs[1],
            space={"fit.batch_size": {"int": [1, 2000]}},
            strategy="grid",
            objective="val_accuracy",
            direction="maximize",
            max_trials=2000,
            max_concurrent=200,
            launched_by_id=launchers[0],
        )
        session.add(sweep)
        session.flush()

        def row(n: int, *, status: str, gpus: int, **extra: Any) -> dict[str, Any]:
            return {
                "name": f"run {n}",
                "status": status,
                "preset": "digits-mlp",
                "spec": specs[gpus],
                "created_at": now - timedelta(seconds=args.runs + args.finished - n),
                "launched_by_id": rng.choice(launchers),
                "priority": rng.choices(("high", "normal", "low"), (1, 7, 2))[0],
                "queue": queues[gpus],
                **extra,
            }

        rows = []
        for n in range(args.finished):
            rows.append(
                row(n, status="succeeded", gpus=rng.choice((0, 1, 2)), finished_at=now)
                | {"priority": "normal"}
            )
        trials = min(2000, args.runs // 5)
        for n in range(args.runs):
            gpus = rng.choices((0, 1, 2), (3, 5, 2))[0]
            extra: dict[str, Any] = {}
            if n < trials:  # the sweep's trials: its launcher's, one GPU, 200 let go
                gpus = 1
                extra = {
                    "sweep_id": sweep.id,
                    "trial_number": n + 1,
                    "launched_by_id": launchers[0],
                    "priority": "normal",
                    "admitted_at": now if n < 200 else None,
                }
            elif n % 997 == 0:  # an admin moved a few to the top
                extra = {"moved_to_top_at": now - timedelta(seconds=n)}
            elif n % 50 == 1:  # a few from before users (no launcher)
                extra = {"launched_by_id": None}
            rows.append(row(args.finished + n, status="queued", gpus=gpus) | extra)
        # the fleet: per worker, running runs on some GPUs (about 60 of the 100 busy)
        busy_gpus = 0
        hosts = []
        running_rows = []
        for w in range(WORKERS):
            name = f"bench-{w}@gpu-host-{w}"
            free = list(range(GPUS_PER_WORKER))
            held: list[tuple[int, list[int]]] = []
            while len(free) >= 1 and rng.random() < 0.6:
                want = min(len(free), rng.choice((1, 1, 2)))
                gpus_held, free = free[:want], free[want:]
                held.append((want, gpus_held))
                busy_gpus += want
            hosts.append((name, held))
            for want, gpus_held in held:
                running_rows.append(
                    (
                        name,
                        gpus_held,
                        row(
                            len(rows) + len(running_rows),
                            status="running",
                            gpus=want,
                            worker_host=name,
                            started_at=now,
                            heartbeat_at=now,
                            dispatched_at=now,
                        ),
                    )
                )
        began = time.perf_counter()
        for start in range(0, len(rows), 5000):
            session.execute(insert(Run), rows[start : start + 5000])
        running_ids = []
        for _, _, r in running_rows:
            run = Run(**r)
            session.add(run)
            session.flush()
            running_ids.append(run.id)
        by_host: dict[str, list[dict[str, Any]]] = {}
        for (name, gpus_held, _), run_id in zip(running_rows, running_ids, strict=True):
            by_host.setdefault(name, []).append({"run_id": run_id, "attempt": 1, "gpus": gpus_held})
        for name, _ in hosts:
            session.add(
                WorkerHost(
                    name=name,
                    host=name.split("@")[1],
                    resources={
                        "queue": QUEUE,
                        "concurrency": GPUS_PER_WORKER,
                        "own_queue": True,
                        "pool": None,
                        "gpus": [
                            {"index": i, "name": "Fake GPU", "memory_mb": 81920}
                            for i in range(GPUS_PER_WORKER)
                        ],
                    },
                    running=by_host.get(name, []),
                    last_seen_at=now,
                )
            )
        session.flush()
        stored_s = time.perf_counter() - began
    with session_scope() as session:  # the statistics autovacuum keeps on a live database
        session.execute(text("ANALYZE runs"))
    return {
        "busy_gpus": busy_gpus,
        "running": len(running_rows),
        "trials": trials,
        "stored_s": stored_s,
        "running_ids": running_ids,
    }


def check_order() -> int:
    """The order the dispatcher reads from SQL is the queue's order (order.ordered)."""
    from backend.db.session import session_scope
    from backend.runqueue import reads
    from backend.runqueue import service as runqueue
    from backend.runqueue.order import ordered

    with session_scope() as session:
        flying = runqueue._in_flight_by_launcher(session)
        in_sql = [w.run_id for w in reads.held_in_order(session, base=QUEUE, in_flight=flying)]
        held = runqueue._held(session, base=QUEUE)
        in_python = [w.run_id for w in ordered(held, in_flight=flying)]
        session.rollback()
    if in_sql != in_python:
        raise SystemExit("the SQL order differs from order.ordered: a bug in runqueue.reads")
    return len(in_sql)


def time_decisions(rounds: int) -> tuple[list[float], int]:
    from backend.db.session import session_factory
    from backend.runqueue import service as runqueue

    make = session_factory()
    times: list[float] = []
    picked = 0
    for n in range(rounds + 3):  # three warm-up rounds: the pool, the plan cache
        session = make()
        try:
            began = time.perf_counter()
            picks = runqueue.release(session, base=QUEUE, lost_after_s=LOST_AFTER_S)
            elapsed = (time.perf_counter() - began) * 1000
        finally:
            session.rollback()  # the same state for the next round
            session.close()
        if n >= 3:
            times.append(elapsed)
            picked = len(picks)
    return times, picked


def time_end_to_sent(running_ids: list[int], ends: int) -> list[float]:
    """From just before a run's end commits to the next run's message being in the broker."""
    import backend.dispatch as dispatch_module
    from backend import lifecycle
    from backend.db.session import session_scope
    from backend.runqueue import service as runqueue
    from backend.runs import service as runs
    from backend.runs.models import RunStatus

    lifecycle.install()  # a run's end frees its slot (runs.finish fires the hooks)

    # the fleet full: the room it has now goes to runs reserved (as sent, not yet taken)
    with session_scope() as session:
        runqueue.release(session, base=QUEUE, lost_after_s=LOST_AFTER_S)
    real_send = dispatch_module.send_run
    sent_at: list[float] = []

    def timed_send(run_id: int, queue: str | None = None) -> None:
        real_send(run_id, queue)
        sent_at.append(time.perf_counter())

    dispatch_module.send_run = timed_send  # type: ignore[assignment]
    results: list[float] = []
    try:
        for run_id in running_ids[:ends]:
            sent_at.clear()
            session_cm = session_scope()
            session = session_cm.__enter__()
            runs.finish(session, run_id=run_id, status=RunStatus.succeeded)
            began = time.perf_counter()
            session_cm.__exit__(None, None, None)  # the commit, and release_after_commit
            if sent_at:
                results.append(sent_at[0] - began)
    finally:
        dispatch_module.send_run = real_send  # type: ignore[assignment]
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = args.database_url or DEFAULT_URL
    scratch = args.database_url is None
    os.environ.update(
        DATABASE_URL=url,
        REDIS_URL=args.redis_url,
        FITBOARD_QUEUE=QUEUE,
        FITBOARD_WORKER_LOST_AFTER_S=str(LOST_AFTER_S),
        FITBOARD_LOG_LEVEL="WARNING",
    )
    os.environ.setdefault("FITBOARD_HOME", tempfile.mkdtemp(prefix="fitboard-bench-"))
    if scratch:
        recreate(url)
    import logging

    logging.disable(logging.INFO)
    try:
        from backend.config import get_settings
        from backend.db.migrate import upgrade

        get_settings.cache_clear()
        upgrade(url)
        print(f"storing {args.runs:,} queued and {args.finished:,} finished runs ...", flush=True)
        made = fill(args)
        print(
            f"stored in {made['stored_s']:.1f} s: {WORKERS} workers x {GPUS_PER_WORKER} GPUs, "
            f"{made['busy_gpus']} GPUs busy with {made['running']} running runs; "
            f"{made['trials']:,} of the queued runs are one sweep's trials (200 let go)"
        )
        print(f"the SQL order of the {check_order():,} held runs equals order.ordered's")
        times, picked = time_decisions(args.rounds)
        load = os.getloadavg()
        p50, p95 = statistics.median(times), _pct(times, 0.95)
        verdict = "yes" if p95 < GOAL_DECISION_MS else "NO"
        print(
            f"dispatch decision (runqueue.release, rolled back), {args.rounds} rounds, "
            f"{picked} runs picked a round: p50 {p50:.1f} ms, p95 {p95:.1f} ms "
            f"(goal p95 < {GOAL_DECISION_MS:.0f} ms: {verdict}); "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        ends = time_end_to_sent(made["running_ids"], args.ends)
        load = os.getloadavg()
        if ends:
            e50, e_max = statistics.median(ends) * 1000, max(ends) * 1000
            verdict = "yes" if e_max < GOAL_END_TO_SENT_S * 1000 else "NO"
            print(
                f"run end committed -> next queued run in the broker (in-process, no worker), "
                f"{len(ends)} ends: p50 {e50:.1f} ms, max {e_max:.1f} ms "
                f"(goal < {GOAL_END_TO_SENT_S:.0f} s: {verdict}); "
                f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
            )
        else:
            print("run end -> sent: no run was sent after an end (the broker unreachable?)")
    finally:
        from backend.db.session import _engines

        for pooled in _engines.values():
            pooled.dispose()
        try:
            import redis

            client = redis.Redis.from_url(args.redis_url)
            for key in client.scan_iter(match=f"{QUEUE}*"):
                client.delete(key)
        except Exception as exc:  # a benchmark's clean-up: say so, do not fail
            print(f"could not delete the bench queue's messages: {exc}", file=sys.stderr)
        if scratch and not args.keep:
            drop(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
