"""Chaos: kill -9 a worker mid-run, or lose a queued run's message, on a stack of its own.

Each test asserts the final status, the attempt count, and that every series is contiguous with
no duplicate step; a run killed after a checkpoint resumes from it. The settings are the
defaults an operator gets (worker lost after 10 s, housekeeping every 2 s, a lost message
re-sent after 20 s).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import redis

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
from tests.e2e.helpers import (
    TOKENS,
    assert_contiguous,
    iter_events,
    submit,
    trainer_processes,
    wait_for,
    wait_status,
)

pytestmark = pytest.mark.e2e

DETECTION_LIMIT_S = 15.0
EPOCHS = 30


@dataclass
class Chaos:
    url: str
    env: dict[str, str]
    logs: Path
    token: str
    workers: list[psutil.Popen]

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)

    def start_worker(self, name: str) -> int:
        proc = start_worker(self.env, self.logs / f"{name}.out", name=name)
        self.workers.append(proc)  # type: ignore[arg-type]
        return proc.pid


@pytest.fixture(scope="module")
def chaos(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chaos]:
    home = tmp_path_factory.mktemp("chaos-home")
    logs = home / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(home),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": f"fitboard-chaos-{os.getpid()}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    port = free_port()
    env["FITBOARD_URL"] = f"http://127.0.0.1:{port}"
    env["FITBOARD_WORKER_TOKEN"] = worker_token(pg_url, "chaos")
    api = start_api(env, logs / "api.out", port)
    stack = Chaos(f"http://127.0.0.1:{port}", env, logs, admin.token, [])
    TOKENS[stack.url] = admin.token  # the raw SSE client of the e2e helpers sends it
    try:
        wait_http(stack.url + "/api/v1/health", api)
        yield stack
    finally:
        for proc in stack.workers:
            stop_process(proc)  # type: ignore[arg-type]
        stop_process(api)


def _trainers(stack: Chaos, run_id: int) -> list[psutil.Process]:
    """This stack's training processes of a run (other stacks on the machine number runs too)."""
    return trainer_processes(run_id, stack.env["FITBOARD_QUEUE"])


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_kill_9_of_the_worker_resumes_the_run_on_another(chaos: Chaos) -> None:
    first = chaos.start_worker("doomed")
    with chaos.client() as client:
        wait_workers(client)
        run = submit(client, "chaos worker kill", {"fit": {"epochs": EPOCHS, "batch_size": 32}})
        wait_status(client, run["id"], {"running"}, timeout_s=120)
        # training, with a checkpoint (spec.checkpoint's default: every epoch) stored
        first_checkpoint = next(
            e.data
            for e in iter_events(chaos.url, run["id"], after=0, timeout_s=90)
            if e.kind == "checkpoint"
        )
        assert first_checkpoint["epoch"] == 1 and first_checkpoint["bytes"] > 0
        [trainer] = _trainers(chaos, run["id"])
        os.kill(first, signal.SIGKILL)
        killed_at = time.monotonic()
        # the training process dies with its worker: nothing trains unsupervised
        wait_for(lambda: not trainer.is_running() or trainer.status() == "zombie", 5, "orphan gone")
        # the loss is noticed and the run goes back to the queue as attempt 2
        wait_for(
            lambda: client.get(f"/api/v1/runs/{run['id']}").json()["status"] == "queued",
            DETECTION_LIMIT_S + 5,
            "requeue",
        )
        detection_s = time.monotonic() - killed_at
        assert detection_s <= DETECTION_LIMIT_S, f"worker loss noticed after {detection_s:.1f} s"
        chaos.start_worker("rescuer")
        final = wait_status(client, run["id"], {"succeeded", "failed", "cancelled"}, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 2
        assert_contiguous(client, run["id"], EPOCHS)
        artifacts = client.get(f"/api/v1/runs/{run['id']}/artifacts").json()["items"]
        kept = sorted(a["name"] for a in artifacts if a["kind"] == "checkpoint")
        assert kept == [f"checkpoint-epoch-{EPOCHS - 1}.keras", f"checkpoint-epoch-{EPOCHS}.keras"]
    # attempt 2 went on from the newest checkpoint attempt 1 stored, not from epoch 0
    [resumed] = [e.data for e in iter_events(chaos.url, run["id"], after=0) if e.kind == "resumed"]
    assert resumed["attempt"] == 2 and resumed["from_epoch"] >= 1, resumed
    assert resumed["host"]
    # the trainer records its end, then exits: none is left behind a moment later
    wait_for(lambda: not _trainers(chaos, run["id"]), 30, "every training process ending")


def test_queued_run_whose_message_is_lost_starts_anyway(chaos: Chaos) -> None:
    queue = chaos.env["FITBOARD_QUEUE"]
    broker = redis.Redis.from_url(chaos.env["REDIS_URL"])
    for proc in chaos.workers:  # nobody takes the message while it is lost
        stop_process(proc)  # type: ignore[arg-type]
    with chaos.client() as client:
        # runs wait in the database until a worker has room: one reports room and dies before
        # it takes the message it was sent
        phantom = httpx.put(
            f"{chaos.url}/api/v1/worker/hosts/phantom-{os.getpid()}@gone",
            json={"host": "gone", "resources": {"queue": queue, "concurrency": 1}},
            headers={"Authorization": f"Bearer {chaos.env['FITBOARD_WORKER_TOKEN']}"},
        )
        assert phantom.status_code == 200, phantom.text
        run = submit(client, "chaos lost message", {"fit": {"epochs": 2}})
        wait_for(lambda: broker.llen(queue) > 0, 30, "message queued")
        broker.delete(queue)  # what a Redis restart without persistence does to it
        chaos.start_worker("after-restart")
        # re-sent after 20 s unaccounted for (+ housekeeping's 2 s tick + a worker's start-up)
        waited = wait_for(
            lambda: client.get(f"/api/v1/runs/{run['id']}").json()["status"] != "queued",
            45,
            "the lost run starting",
        )
        assert waited <= 45
        final = wait_status(client, run["id"], {"succeeded", "failed", "cancelled"}, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 1, "sent again, trained once"


def test_kill_9_of_the_training_process_trains_it_again(chaos: Chaos) -> None:
    if not any(proc.poll() is None for proc in chaos.workers):
        chaos.start_worker("steady")
    with chaos.client() as client:
        wait_workers(client)
        run = submit(client, "chaos trainer kill", {"fit": {"epochs": EPOCHS, "batch_size": 32}})
        wait_status(client, run["id"], {"running"}, timeout_s=120)
        wait_for(
            lambda: client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"],
            90,
            "first batches",
        )
        [trainer] = _trainers(chaos, run["id"])
        trainer.kill()
        final = wait_status(client, run["id"], {"succeeded", "failed", "cancelled"}, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 2
        assert_contiguous(client, run["id"], EPOCHS)
        series = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"]
        # system metrics, sampled every 2 s while it trained (the 2nd attempt's only)
        assert series["sys/rss_mb"]["values"] and min(series["sys/rss_mb"]["values"]) > 50
        assert "sys/cpu_percent" in series
    # the run's history says why it trained twice
    statuses = [e.data for e in iter_events(chaos.url, run["id"], after=0) if e.kind == "status"]
    assert [(s["status"], s["attempt"]) for s in statuses] == [
        ("queued", 1),
        ("running", 1),
        ("queued", 2),
        ("running", 2),
        ("succeeded", 2),
    ]
    assert "SIGKILL" in statuses[2]["requeued_because"]
