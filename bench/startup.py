"""Submit -> first batch on the page: a cold training process (imports TensorFlow after the run
arrives) against a standby one (FITBOARD_WARM_TRAINER), side by side in one run.

A real stack on a scratch SQLite database: the API (bench/api_server.py), an embedded
redis-server unless REDIS_URL is set, and one Celery worker per variant. Each run is digits-mlp
for one epoch, submitted to an idle worker (``--settle`` seconds after the last run ended); the
clock runs from the POST that submits it to the first batch point the API serves. A second
table says when each stage happened (stored, claimed, the stages the run reported, its first
batch point's wall time), so a slow start shows where its time went.

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _redis(tmp: Path) -> str:
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    from backend.stack import _redis_server_binary, free_port

    port = free_port()
    proc = subprocess.Popen(
        [str(_redis_server_binary()), "--port", str(port), "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL,
    )
    import atexit

    atexit.register(proc.terminate)
    time.sleep(0.5)
    return f"redis://127.0.0.1:{port}/0"


def _worker(env: dict[str, str], log: Path, *, concurrency: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool",
         "threads", "--concurrency", str(concurrency), "--queues", env["FITBOARD_QUEUE"],
         "--hostname", f"bench-{os.getpid()}-{env['FITBOARD_WARM_TRAINER']}@%h"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def _first_batch_s(client: Any, n: int) -> tuple[float, float | None, dict[str, float]]:
    """Seconds from submit to the first served batch point, the run's own startup_s, and when
    (seconds after submit) each of its stages happened."""
    started = time.monotonic()
    submitted = time.time()
    body = {"name": f"startup {n}", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}}
    run = client.post("/api/v1/runs", json=body).json()
    while True:
        series = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"]
        if any(key.startswith("batch/") for key in series):
            first = time.monotonic() - started
            break
        if time.monotonic() - started > 300:
            raise SystemExit(f"run {run['id']} sent no batch in 300 s")
        time.sleep(0.02)
    while client.get(f"/api/v1/runs/{run['id']}").json()["status"] in ("queued", "running"):
        time.sleep(0.2)
    startup_s, stages = _stages(client, run["id"], submitted)
    stages["first batch served"] = first
    finished = client.get(f"/api/v1/runs/{run['id']}").json()
    for field, stage in (("created_at", "stored by the API"), ("started_at", "claimed")):
        if finished.get(field):
            stamp = datetime.fromisoformat(finished[field].replace("Z", "+00:00"))
            stages[stage] = stamp.timestamp() - submitted
    return first, startup_s, stages


def _stages(client: Any, run_id: int, submitted: float) -> tuple[float | None, dict[str, float]]:
    """The run's startup_s and, from its (finished) event stream, when each stage and its
    first batch point happened, in seconds after submit (the training process's clock is
    this machine's)."""
    import json

    startup_s: float | None = None
    stages: dict[str, float] = {}
    with client.stream("GET", f"/api/v1/runs/{run_id}/stream", params={"after": 0}) as response:
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and kind == "stage":
                data = json.loads(line.split(":", 1)[1])
                stages[str(data.get("stage"))] = float(data["wall_time"]) - submitted
                if data.get("stage") == "process_started" and data.get("startup_s") is not None:
                    startup_s = float(data["startup_s"])
            elif line.startswith("data:") and kind == "metrics" and "first batch" not in stages:
                for key, _step, _value, wall in json.loads(line.split(":", 1)[1])["points"]:
                    if key.startswith("batch/"):
                        stages["first batch"] = float(wall) - submitted
                        break
            elif kind == "end":
                break
    return startup_s, stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (median)")
    parser.add_argument(
        "--settle",
        type=float,
        default=6.0,
        help="seconds between one run's end and the next submit (its process exits, the next "
        "standby imports TensorFlow): what a submit to an idle worker sees",
    )
    args = parser.parse_args(argv)
    import httpx

    with tempfile.TemporaryDirectory(prefix="fitboard-bench-startup-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp / 'fitboard.db'}"
        os.environ.update(
            DATABASE_URL=url,
            FITBOARD_HOME=str(tmp / "home"),
            REDIS_URL=_redis(tmp),
            FITBOARD_QUEUE=f"bench-startup-{os.getpid()}",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        from backend.config import get_settings

        get_settings.cache_clear()
        from backend.db.migrate import upgrade
        from backend.db.session import session_scope
        from backend.users import service as users
        from backend.users.models import Role

        upgrade(url)
        sys.path.insert(0, str(ROOT / "bench"))
        import api_server

        api_url, worker_token = api_server.start(url, tmp / "home")
        with session_scope(url) as session:
            user, _ = users.create(session, username="bench", role=Role.admin)
            _, token = users.create_token(session, user_id=user.id, name="bench")
        results: dict[str, list[tuple[float, float | None, dict[str, float]]]] = {}
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=api_url, headers=headers, timeout=30) as client:
            for label, warm in (("cold start", "false"), ("standby trainer", "true")):
                env = {
                    **os.environ,
                    "FITBOARD_URL": api_url,
                    "FITBOARD_WORKER_TOKEN": worker_token,
                    "FITBOARD_WARM_TRAINER": warm,
                }
                env.pop("DATABASE_URL")
                worker = _worker(env, tmp / f"worker-{warm}.log")
                try:
                    while client.get("/api/v1/health").json()["workers"] < 1:
                        time.sleep(0.3)
                    _first_batch_s(client, 0)  # warms caches (dataset, Python files)
                    results[label] = []
                    for n in range(1, args.runs + 1):
                        # an idle worker: the last run's process gone, a new standby imported
                        time.sleep(args.settle)
                        results[label].append(_first_batch_s(client, n))
                finally:
                    worker.terminate()
                    worker.wait(timeout=60)
    print("\n| start | submit -> first batch, median s | process start-up, median s | runs |")
    print("|---|---:|---:|---:|")
    medians = {}
    for label, rows in results.items():
        firsts = [r[0] for r in rows]
        startups = [r[1] for r in rows if r[1] is not None]
        medians[label] = statistics.median(firsts)
        startup = f"{statistics.median(startups):.2f}" if startups else "-"
        print(f"| {label} | {medians[label]:.2f} | {startup} | {len(rows)} |")
    names = sorted(
        {stage for rows in results.values() for r in rows for stage in r[2]},
        key=lambda stage: statistics.median(
            r[2][stage] for rows in results.values() for r in rows if stage in r[2]
        ),
    )
    print("\nwhen each stage happened, seconds after submit (median):\n")
    print("| stage | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for stage in names:
        cells = []
        for rows in results.values():
            seen = [r[2][stage] for r in rows if stage in r[2]]
            cells.append(f"{statistics.median(seen):.2f}" if seen else "-")
        print(f"| {stage} | " + " | ".join(cells) + " |")
    ratio = medians["standby trainer"] / medians["cold start"]
    print(f"\nstandby / cold: {ratio:.2f} (goal: first batch <= 2 s after submit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
