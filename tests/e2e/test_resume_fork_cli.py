"""Resume and fork by hand with the `fitboard` CLI against a live stack (API + real worker): a
run cancelled while it trains resumes from its newest checkpoint and ends with contiguous
curves; a fork of it trains on from its newest checkpoint."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveStack
from tests.e2e.helpers import auth_headers, iter_events, submit, wait_status
from tests.e2e.test_client_cli import fitboard

pytestmark = pytest.mark.e2e

EPOCHS = 30  # long enough that the cancel lands while it trains


def _series(client: httpx.Client, run_id: int) -> dict[str, dict[str, list[float]]]:
    answer = client.get(f"/api/v1/runs/{run_id}/metrics", params={"max_points": 100_000})
    return dict(answer.json()["series"])


def _assert_contiguous(series: dict[str, dict[str, list[float]]], epochs: int) -> None:
    assert series["loss"]["steps"] == list(range(1, epochs + 1)), "epoch steps 1..N, once each"
    batch = series["batch/loss"]["steps"]
    assert batch == sorted(set(batch)), "batch steps strictly increasing: no duplicate"
    gaps = {b - a for a, b in itertools.pairwise(batch)}
    assert len(gaps) <= 1, f"batch steps evenly spaced, no hole: {sorted(gaps)[:5]}"


def test_cancelled_run_resumes_and_a_fork_goes_on_from_it(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    with httpx.Client(
        base_url=live_stack.url, headers=auth_headers(live_stack.url), timeout=30
    ) as client:
        run = submit(client, "cli resume", {"fit": {"epochs": EPOCHS, "batch_size": 16}})
        run_id = run["id"]
        next(
            e
            for e in iter_events(live_stack.url, run_id, after=0, timeout_s=180)
            if e.kind == "checkpoint"
        )
        cancelled = fitboard(live_stack, "cancel", str(run_id))
        assert cancelled.returncode == 0, cancelled.stderr
        stopped = wait_status(client, run_id, {"cancelled", "succeeded", "failed"}, 120)
        assert stopped["status"] == "cancelled", stopped
        assert stopped["resumable"] and stopped["checkpoints"], stopped
        newest = max(stopped["checkpoints"])
        assert newest < EPOCHS

        resumed = fitboard(live_stack, "resume", str(run_id), "--wait", "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        assert resumed.stdout.startswith(f"run {run_id} ") and "attempt 2" in resumed.stdout
        final = client.get(f"/api/v1/runs/{run_id}").json()
        assert final["status"] == "succeeded" and final["attempt"] == 2, final
        _assert_contiguous(_series(client, run_id), EPOCHS)
        [event] = [
            e.data for e in iter_events(live_stack.url, run_id, after=0) if e.kind == "resumed"
        ]
        assert event["from_epoch"] == newest and event["attempt"] == 2

        refused = fitboard(live_stack, "fork", str(run_id), "--name", "x", "--from-epoch", "1")
        assert refused.returncode == 1 and "from_epoch" in refused.stderr, refused.stderr
        forked = fitboard(
            live_stack,
            "fork",
            str(run_id),
            "--name",
            "cli fork",
            "--set",
            f"fit.epochs={EPOCHS + 2}",
            "--set",
            "compile.optimizer.learning_rate=0.0005",
            "--wait",
            "--quiet",
        )
        assert forked.returncode == 0, forked.stderr
        assert f"forked from run {run_id} at epoch {EPOCHS}" in forked.stdout
        fork_id = int(forked.stdout.split()[1])
        fork = client.get(f"/api/v1/runs/{fork_id}").json()
        assert fork["status"] == "succeeded" and fork["forked_from"]["run_id"] == run_id
        series = _series(client, fork_id)
        _assert_contiguous(series, EPOCHS + 2)
        source = _series(client, run_id)
        assert series["loss"]["values"][:EPOCHS] == source["loss"]["values"]
        assert client.get(f"/api/v1/runs/{run_id}").json()["forks"][0]["run_id"] == fork_id
