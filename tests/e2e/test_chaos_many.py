"""Chaos at volume: 20 runs on a worker that is killed with SIGKILL twice while they train.

Every run ends `succeeded`; each trained once (an attempt per loss of the worker it ran on, at
most, and its curves contiguous with no step twice: a lost attempt's steps after its checkpoint
are replaced, never kept beside the next attempt's); no training process is left behind.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Identity,
    free_port,
    start_api,
    start_worker,
    stop_process,
    wait_http,
    wait_workers,
    worker_token,
)
from tests.e2e.helpers import TOKENS, submit, trainer_processes

pytestmark = pytest.mark.e2e

RUNS = 20
EPOCHS = 3
CONCURRENCY = 2


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    logs: Path
    token: str
    workers: list[object] = field(default_factory=list)

    def start_worker(self, name: str) -> int:
        proc = start_worker(self.env, self.logs / f"{name}.out", name, concurrency=CONCURRENCY)
        self.workers.append(proc)
        return proc.pid


@pytest.fixture(scope="module")
def stack(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("chaos-many")
    logs = home / "logs"
    logs.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(home),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": f"fitboard-chaos-many-{os.getpid()}",
        "FITBOARD_WORKER_CONCURRENCY": str(CONCURRENCY),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FITBOARD_URL": f"http://127.0.0.1:{port}",
        "FITBOARD_WORKER_TOKEN": worker_token(pg_url, "chaos many"),
    }
    api = start_api(env, logs / "api.out", port)
    made = Stack(f"http://127.0.0.1:{port}", env, logs, admin.token)
    TOKENS[made.url] = admin.token
    try:
        wait_http(made.url + "/api/v1/health", api)
        yield made
    finally:
        for proc in made.workers:
            stop_process(proc)  # type: ignore[arg-type]
        stop_process(api)


def _statuses(client: httpx.Client, ids: list[int]) -> dict[int, dict]:
    return {i: client.get(f"/api/v1/runs/{i}").json() for i in ids}


def _wait(client: httpx.Client, ids: list[int], until, what: str, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        runs = _statuses(client, ids)
        if until(runs):
            return
        counts = {s: sum(r["status"] == s for r in runs.values()) for s in ("queued", "running")}
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s: {counts}"
        time.sleep(0.5)


def _done(runs: dict[int, dict]) -> int:
    return sum(r["status"] in ("succeeded", "failed", "cancelled") for r in runs.values())


def _running(runs: dict[int, dict]) -> int:
    return sum(r["status"] == "running" for r in runs.values())


def test_twenty_runs_survive_their_worker_killed_twice(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    with httpx.Client(base_url=stack.url, timeout=30, headers=headers) as client:
        doomed = stack.start_worker("many-a")
        wait_workers(client)
        spec = {"fit": {"epochs": EPOCHS, "batch_size": 64}}
        ids = [submit(client, f"many {i}", spec)["id"] for i in range(RUNS)]
        for kill, (ended_before, name) in enumerate(((3, "many-b"), (10, "many-c"))):
            # kill it while it trains, after some runs have ended
            _wait(
                client,
                ids,
                lambda r, n=ended_before: _done(r) >= n and _running(r) >= 1,
                f"kill {kill + 1}: {ended_before} runs ended and one training",
                300,
            )
            os.kill(doomed, signal.SIGKILL)
            doomed = stack.start_worker(name)
        _wait(client, ids, lambda r: _done(r) == RUNS, "every run ending", 600)
        runs = _statuses(client, ids)
        assert {r["status"] for r in runs.values()} == {"succeeded"}, {
            i: (r["status"], r.get("failure_reason")) for i, r in runs.items()
        }
        retried = sum(r["attempt"] - 1 for r in runs.values())
        assert 1 <= retried <= 2 * CONCURRENCY, f"{retried} extra attempts for 2 kills"
        for run_id in ids:
            series = client.get(
                f"/api/v1/runs/{run_id}/metrics", params={"max_points": 100_000}
            ).json()["series"]
            assert series["loss"]["steps"] == list(range(1, EPOCHS + 1)), run_id
            batch = series["batch/loss"]["steps"]
            assert batch == sorted(set(batch)), f"run {run_id}: a batch step twice"
            assert {b - a for a, b in itertools.pairwise(batch)} == {1}, f"run {run_id}: a gap"
    queue = stack.env["FITBOARD_QUEUE"]
    deadline = time.monotonic() + 30
    while any(trainer_processes(i, queue) for i in ids):
        assert time.monotonic() < deadline, "a training process outlived its run"
        time.sleep(0.5)
