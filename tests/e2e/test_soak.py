"""An opt-in soak of the dispatcher (``FITBOARD_SOAK=1``, ``make soak``): 200 tiny runs
(``FITBOARD_SOAK_RUNS``) asking 0, 1 or 2 GPUs, from two launchers, on two real workers with
two fake GPUs and two slots each. Every run ends (succeeded); no GPU ever trains two runs at
once; every 2-GPU run gets both GPUs of one worker; and fair share holds: while both launchers
have runs waiting, neither gets far ahead of the other.

Which GPUs a run trained on, and when, come from the workers' own log lines ("run N: attempt
A started on HOST (GPU 0, GPU 1)" once its GPUs are taken, "run N: training process ended"
before they are given back), so the check is what the workers did, not what the API booked.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Identity,
    create_identity,
    free_port,
    start_api,
    start_worker,
    stop_process,
    wait_http,
    worker_token,
)
from tests.e2e.helpers import TOKENS

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(3600),  # 200 runs on 2 cores: about 15 minutes, more under load
    pytest.mark.skipif(os.environ.get("FITBOARD_SOAK") != "1", reason="opt-in: FITBOARD_SOAK=1"),
]

RUNS = int(os.environ.get("FITBOARD_SOAK_RUNS", "200"))
GPUS_PATTERN = (0, 1, 2, 1)  # each launcher's runs ask this in turn
FAIR_SLACK = 6  # 4 slots in the fleet, and a 2-GPU run may wait while CPU runs go
_STARTED = re.compile(
    r"^(\S+ \S+) INFO \S+: run (\d+): attempt \d+ started on (\S+) \(([^)]*)\)", re.M
)
_ENDED = re.compile(r"^(\S+ \S+) INFO \S+: run (\d+): training process ended", re.M)


def _when(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")


def _what_workers_did(logs: list[Path]) -> dict[int, tuple[str, list[int], datetime, datetime]]:
    """run id -> (worker, GPU indices, GPUs taken at, process ended at)."""
    started: dict[int, tuple[str, list[int], datetime]] = {}
    ended: dict[int, datetime] = {}
    for log in logs:
        text = log.read_text(errors="replace")
        for stamp, run_id, worker, gpus in _STARTED.findall(text):
            indices = [int(g.split()[-1]) for g in gpus.split(", ") if g.startswith("GPU")]
            started[int(run_id)] = (worker, indices, _when(stamp))
        for stamp, run_id in _ENDED.findall(text):
            ended[int(run_id)] = _when(stamp)
    return {
        run_id: (worker, gpus, at, ended[run_id])
        for run_id, (worker, gpus, at) in started.items()
        if run_id in ended
    }


def test_soak_mixed_gpu_runs_two_launchers_two_workers(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    queue = f"fitboard-soak-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(tmp_path / "home"),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": queue,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FITBOARD_URL": url,
        "FITBOARD_WORKER_TOKEN": worker_token(pg_url, "soak"),
    }
    api = start_api(env, tmp_path / "api.out", port)
    TOKENS[url] = admin.token
    logs = [tmp_path / f"worker-{n}.out" for n in range(2)]
    workers = [
        start_worker({**env, "FITBOARD_FAKE_GPUS": "2"}, log, f"soak{n}", concurrency=2)
        for n, log in enumerate(logs)
    ]
    colleague = create_identity(pg_url, f"soak-{uuid.uuid4().hex[:6]}", "member")
    try:
        wait_http(url + "/api/v1/health", api)
        launchers = {
            admin.user_id: httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {admin.token}"}
            ),
            colleague.user_id: httpx.Client(
                base_url=url, timeout=30, headers={"Authorization": f"Bearer {colleague.token}"}
            ),
        }
        watcher = launchers[admin.user_id]
        deadline = time.monotonic() + 120
        while len([w for w in watcher.get("/api/v1/workers").json()["items"]
                   if w["online"] and w["name"].startswith("soak")]) < 2:  # fmt: skip
            assert time.monotonic() < deadline, "the two workers never reported"
            time.sleep(0.5)
        # the admin queues all of theirs first, then the colleague: fair share must interleave
        asked: dict[int, int] = {}
        launcher_of: dict[int, int] = {}
        for launcher, client in launchers.items():
            for n in range(RUNS // 2):
                gpus = GPUS_PATTERN[n % len(GPUS_PATTERN)]
                body = {
                    "name": f"soak {launcher}-{n}",
                    "preset": "digits-mlp",
                    "overrides": {"fit": {"epochs": 1}, "resources": {"gpus": gpus}},
                }
                response = client.post("/api/v1/runs", json=body)
                assert response.status_code == 201, response.text
                asked[response.json()["id"]] = gpus
                launcher_of[response.json()["id"]] = launcher
        runs: dict[int, dict[str, object]] = {}
        deadline = time.monotonic() + 60 * 60
        while len(runs) < len(asked):
            assert time.monotonic() < deadline, f"{len(asked) - len(runs)} runs never ended"
            for run_id in asked:
                if run_id not in runs:
                    run = watcher.get(f"/api/v1/runs/{run_id}").json()
                    if run["status"] in ("succeeded", "failed", "cancelled", "pruned"):
                        runs[run_id] = run
            time.sleep(2)
    finally:
        for worker in workers:
            stop_process(worker)
        stop_process(api)

    failed = {i: r["failure_reason"] for i, r in runs.items() if r["status"] != "succeeded"}
    assert not failed, f"every run succeeds: {failed}"

    did = _what_workers_did(logs)
    assert set(did) == set(asked), "every run was trained once, by one worker"
    for run_id, (_worker, gpus, _, _) in did.items():
        assert len(gpus) == asked[run_id], f"run {run_id} asked {asked[run_id]} GPUs, got {gpus}"
        assert len(set(gpus)) == len(gpus)  # a 2-GPU run: two GPUs of the one worker it ran on

    # no GPU trains two runs at once
    by_gpu: dict[tuple[str, int], list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for run_id, (worker, gpus, began, ended) in did.items():
        for gpu in gpus:
            by_gpu[(worker, gpu)].append((began, ended, run_id))
    assert len(by_gpu) == 4, f"both GPUs of both workers were used: {sorted(by_gpu)}"
    for gpu, spans in by_gpu.items():
        spans.sort()
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            assert start >= end, f"{gpu}: run {second} started before run {first} ended"

    # fair share: in the order the runs started, while both launchers still had runs
    # waiting, the counts of their started runs stay close
    order = sorted(runs, key=lambda i: str(runs[i]["started_at"]))
    started: dict[int, int] = defaultdict(int)
    worst = 0
    for run_id in order:
        started[launcher_of[run_id]] += 1
        counts = [started[launcher] for launcher in launchers]
        if max(counts) >= RUNS // 2:
            break  # one launcher has none left waiting
        worst = max(worst, max(counts) - min(counts))
    assert worst <= FAIR_SLACK, f"fair share: one launcher got {worst} runs ahead"
    print(
        f"soak: {len(runs)} runs, 2 workers x 2 fake GPUs, largest lead of one launcher "
        f"{worst} runs; {sum(1 for g in asked.values() if g == 2)} 2-GPU runs"
    )
