"""Sweeps through the real worker: grid, random and bayesian sweeps finish with a best trial;
a pruner stops losing trials early; a sweep never runs more trials at once than it allows."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, create_engine, func, select

from backend.metrics.models import MetricPoint
from tests.conftest import ROOT, LiveStack, stop_process

BASE: dict[str, Any] = {
    "preset": "digits-mlp",
    "overrides": {"fit": {"epochs": 1, "batch_size": 64}},
    "objective": "val_accuracy",
}


def _wait_sweep(client: httpx.Client, sweep_id: int, timeout_s: float = 420) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    sweep: dict[str, Any] = {}
    while time.monotonic() < deadline:
        sweep = client.get(f"/api/v1/sweeps/{sweep_id}").json()
        if sweep["status"] != "running":
            return sweep
        time.sleep(1.0)
    raise AssertionError(f"sweep {sweep_id} still running after {timeout_s}s: {sweep}")


def test_grid_random_and_bayesian_sweeps_finish_with_their_best_trial(
    live_stack: LiveStack,
) -> None:
    lr = "compile.optimizer.learning_rate"
    bodies = [
        {**BASE, "name": "e2e grid", "strategy": "grid", "space": {lr: {"choice": [0.01, 0.001]}}},
        {
            **BASE,
            "name": "e2e random",
            "strategy": "random",
            "max_trials": 3,
            "seed": 1,
            "space": {
                lr: {"log_uniform": [1e-4, 1e-2]},
                "model.layers[2].rate": {"uniform": [0.1, 0.5]},
            },
        },
        {
            **BASE,
            "name": "e2e bayesian",
            "strategy": "bayesian",
            "max_trials": 3,
            "seed": 2,
            "space": {
                lr: {"log_uniform": [1e-4, 1e-2]},
                "model.layers[1].units": {"int": [16, 64], "step": 16},
            },
        },
    ]
    with live_stack.client() as client:
        created = []
        for body in bodies:
            r = client.post("/api/v1/sweeps", json=body)
            assert r.status_code == 201, r.text
            created.append(r.json())
        for sweep in created:
            done = _wait_sweep(client, sweep["id"])
            trials = client.get(f"/api/v1/sweeps/{sweep['id']}/trials").json()["items"]
            assert done["status"] == "finished", done
            assert done["progress"]["done"] == done["max_trials"] == len(trials)
            assert {t["status"] for t in trials} == {"succeeded"}, trials
            best = done["best"]
            assert best is not None
            assert best["objective"] == max(t["objective"] for t in trials)
            winner = client.get(f"/api/v1/runs/{best['run_id']}").json()
            assert winner["sweep_id"] == sweep["id"] and winner["status"] == "succeeded"
            assert winner["final_metrics"]["val_accuracy"] == best["objective"]
            for name, value in best["params"].items():
                node: Any = winner["spec"]
                for part in name.replace("[", ".").replace("]", "").split("."):
                    node = node[int(part)] if part.isdigit() else node[part]
                assert node == value


@pytest.fixture
def second_worker(live_stack: LiveStack) -> Iterator[None]:
    """Two more worker slots on the stack's queue: three in all, more than the sweep allows."""
    logs = live_stack.home / "logs"
    proc = subprocess.Popen(
        [
            sys.executable,
            *("-m", "celery", "-A", "worker.celery_app", "worker", "--pool", "threads"),
            *("--concurrency", "2", "--queues", live_stack.env["FITBOARD_QUEUE"]),
            *("--hostname", f"sweeps-{os.getpid()}@%h", "--loglevel", "INFO"),
        ],
        cwd=ROOT,
        env={k: v for k, v in live_stack.env.items() if k != "DATABASE_URL"},
        start_new_session=True,
        stdout=(logs / "worker-sweeps.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with live_stack.client() as client:
            deadline = time.monotonic() + 90
            while client.get("/api/v1/health").json()["workers"] < 2:
                assert time.monotonic() < deadline, "the second worker never answered"
                assert proc.poll() is None, "the second worker exited"
                time.sleep(0.5)
        yield
    finally:
        stop_process(proc)


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in edges:  # at equal times an end (-1) sorts before a start (+1)
        running += step
        peak = max(peak, running)
    return peak


def test_pruner_stops_losing_trials_and_the_cap_holds(
    live_stack: LiveStack, second_worker: None
) -> None:
    epochs = 4
    body = {
        **BASE,
        "name": "e2e pruned",
        "overrides": {"fit": {"epochs": epochs, "batch_size": 64}},
        "strategy": "grid",
        # two good rates first, then two that barely move: clearly worse at every epoch
        "space": {"compile.optimizer.learning_rate": {"choice": [0.01, 0.005, 1e-6, 2e-6]}},
        "objective": "val_loss",
        "max_concurrent": 2,
        "pruner": {"kind": "median", "warmup_epochs": 1, "min_trials": 1},
    }
    with live_stack.client() as client:
        r = client.post("/api/v1/sweeps", json=body)
        assert r.status_code == 201, r.text
        sweep = _wait_sweep(client, r.json()["id"])
        trials = client.get(f"/api/v1/sweeps/{sweep['id']}/trials").json()["items"]
    assert sweep["status"] == "finished" and sweep["direction"] == "minimize"
    pruned = [t for t in trials if t["status"] == "pruned"]
    slow = [t for t in trials if t["params"]["compile.optimizer.learning_rate"] < 1e-5]
    assert pruned, trials
    assert {t["run_id"] for t in slow} <= {t["run_id"] for t in pruned}, trials
    assert sweep["progress"]["pruned"] == len(pruned)
    engine = create_engine(live_stack.env["DATABASE_URL"])

    def batches(conn: Connection, run_id: int) -> int:
        count = conn.scalar(
            select(func.count()).where(
                MetricPoint.run_id == run_id, MetricPoint.key == "batch/loss"
            )
        )
        return int(count or 0)

    with engine.connect() as conn:
        completed = [t for t in trials if t["status"] == "succeeded"]
        assert completed, trials
        full = batches(conn, completed[0]["run_id"])  # every trial has the same batch size
        for trial in pruned:
            assert trial["failure_reason"].startswith("pruned at epoch "), trial
            assert "worse than median" in trial["failure_reason"]
            # stopped before the end of its last epoch (Keras stops at the next batch), with
            # the metrics it had kept
            assert 0 < batches(conn, trial["run_id"]) < full, (trial, full)
    engine.dispose()
    intervals = [
        (datetime.fromisoformat(t["started_at"]), datetime.fromisoformat(t["finished_at"]))
        for t in trials
    ]
    assert _max_overlap(intervals) <= 2, intervals
