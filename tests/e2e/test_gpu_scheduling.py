"""GPUs as resources, on a worker that offers two (FITBOARD_FAKE_GPUS: scheduled and pinned
like real ones; this machine has none): two one-GPU runs train at once, each pinned to its own
GPU; GET /api/v1/workers shows which GPU trains which run; a two-GPU run gets both; a run
that needs more GPUs than any worker offers waits, saying why, and is never taken by a worker
that could not train it."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import (
    Identity,
    free_port,
    start_api,
    start_worker,
    stop_process,
    wait_http,
    worker_token,
)
from tests.e2e.helpers import TOKENS, submit, wait_status

pytestmark = pytest.mark.e2e

LONG = {"fit": {"epochs": 30, "batch_size": 32}}


@dataclass
class Stack:
    url: str
    token: str
    queue: str
    env: dict[str, str]
    root: Path

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)


@pytest.fixture(scope="module")
def stack(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("gpus")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    queue = f"fitboard-gpus-{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(root / "home"),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": queue,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FITBOARD_URL": url,
        "FITBOARD_WORKER_TOKEN": worker_token(pg_url, "gpu scheduling"),
    }
    api = start_api(env, root / "api.out", port)
    TOKENS[url] = admin.token
    worker = start_worker(
        {**env, "FITBOARD_FAKE_GPUS": "2"}, root / "worker.out", "two-gpus", concurrency=2
    )
    try:
        wait_http(url + "/api/v1/health", api)
        yield Stack(url, admin.token, queue, env, root)
    finally:
        stop_process(worker)
        stop_process(api)


def _pinned(stack: Stack, run_id: int) -> str | None:
    """CUDA_VISIBLE_DEVICES of the run's training process (None until it runs)."""
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if "worker.trainer" in argv and str(run_id) in argv:
            try:
                environ = proc.environ()
            except psutil.Error:
                continue
            if environ.get("FITBOARD_QUEUE") == stack.queue:
                return environ.get("CUDA_VISIBLE_DEVICES")
    return None


def _fleet(client: httpx.Client) -> dict[str, object]:
    items = client.get("/api/v1/workers").json()["items"]
    [mine] = [w for w in items if w["name"].startswith("two-gpus") and w["online"]]
    return mine  # type: ignore[no-any-return]


def test_one_gpu_runs_share_the_worker_never_a_gpu(stack: Stack) -> None:
    with stack.client() as client:
        deadline = time.monotonic() + 90
        while (
            not [  # this stack's worker (other stacks' workers share the database)
                w
                for w in client.get("/api/v1/workers").json()["items"]
                if w["online"] and w["name"].startswith("two-gpus")
            ]
        ):
            assert time.monotonic() < deadline, "the worker never reported its GPUs"
            time.sleep(0.5)
        assert [g["name"] for g in _fleet(client)["gpus"]] == ["Fake GPU", "Fake GPU"]  # type: ignore[index]
        runs = [submit(client, f"gpu {i}", LONG) for i in range(2)]
        pins: dict[int, str] = {}
        deadline = time.monotonic() + 120
        while len(pins) < 2:
            assert time.monotonic() < deadline, f"both runs did not train at once: {pins}"
            for run in runs:
                pin = _pinned(stack, run["id"])
                if pin is not None:
                    pins[run["id"]] = pin
            time.sleep(0.2)
        assert sorted(pins.values()) == ["0", "1"], "each run on its own GPU"
        deadline = time.monotonic() + 30
        while True:
            busy = {g["index"]: g["run_id"] for g in _fleet(client)["gpus"]}  # type: ignore[index]
            if set(busy.values()) == {r["id"] for r in runs}:
                break
            assert time.monotonic() < deadline, f"the fleet view did not show both: {busy}"
            time.sleep(0.5)
        assert {busy[int(pin)]: None for pin in pins.values()} and all(
            busy[int(pin)] == run_id for run_id, pin in pins.items()
        ), "GET /workers names the run on each GPU"
        for run in runs:
            assert wait_status(client, run["id"], {"succeeded", "failed"}, 240)["status"] == (
                "succeeded"
            )


def test_runs_go_only_to_workers_that_offer_their_gpus(stack: Stack) -> None:
    with stack.client() as client:
        two = submit(client, "two gpus", {"resources": {"gpus": 2}, "fit": {"epochs": 3}})
        three = submit(client, "three gpus", {"resources": {"gpus": 3}, "fit": {"epochs": 1}})
        deadline = time.monotonic() + 120
        pin = None
        while pin is None:
            assert time.monotonic() < deadline, "the two-GPU run did not start"
            pin = _pinned(stack, two["id"])
            time.sleep(0.2)
        assert pin == "0,1", "both GPUs, on the one worker that has two"
        assert wait_status(client, two["id"], {"succeeded", "failed"}, 240)["status"] == "succeeded"
        # nobody offers three: it waits, and says why, instead of failing on the wrong worker
        waiting = client.get(f"/api/v1/runs/{three['id']}").json()
        assert waiting["status"] == "queued", waiting
        assert (
            waiting["waiting"] == "waiting: no live worker offers 3 GPUs (the most any offers is 2)"
        )
        assert client.post(f"/api/v1/runs/{three['id']}/cancel").status_code == 200
        assert wait_status(client, three["id"], {"cancelled"}, 60)["attempt"] == 1


def test_a_run_for_a_gpu_type_in_a_pool_trains_on_that_pools_worker(stack: Stack) -> None:
    research = start_worker(
        {
            **stack.env,
            "FITBOARD_FAKE_GPUS": "1",
            "FITBOARD_FAKE_GPU_NAME": "NVIDIA A100-SXM4-80GB",
            "FITBOARD_POOL": "research",
        },
        stack.root / "research.out",
        "a100-research",
    )
    try:
        with stack.client() as client:
            deadline = time.monotonic() + 90
            while True:
                items = client.get("/api/v1/workers").json()["items"]
                mine = [w for w in items if w["online"] and w["name"].startswith("a100-research")]
                if mine:
                    break
                assert time.monotonic() < deadline, "the research worker never reported"
                time.sleep(0.5)
            assert mine[0]["pool"] == "research"
            assert mine[0]["gpus"][0]["name"] == "NVIDIA A100-SXM4-80GB"
            # the beat carries (made-up, with the fake seam) readings of each GPU
            assert _fleet(client)["gpus"][0]["util_pct"] is not None  # type: ignore[index]

            wanted = {"gpu_type": "a100", "pool": "research"}
            typed = submit(client, "on the A100", {"resources": wanted, "fit": {"epochs": 1}})
            missing = submit(client, "an H100", {"resources": {"gpu_type": "H100"}})
            done = wait_status(client, typed["id"], {"succeeded", "failed"}, 240)
            assert done["status"] == "succeeded", done
            assert str(done["worker_host"]).startswith("a100-research"), done["worker_host"]
            waiting = client.get(f"/api/v1/runs/{missing['id']}").json()
            assert waiting["status"] == "queued"
            assert waiting["waiting"] == (
                "waiting: no live worker offers 1 GPU of type H100 (the most any offers is 0)"
            )
            assert client.post(f"/api/v1/runs/{missing['id']}/cancel").status_code == 200
    finally:
        stop_process(research)
