"""The API away while a worker on another host trains: the worker reaches the API only through
a TCP proxy that the test cuts mid-run (every open connection dropped, new ones refused) and
restores a few seconds later. Training goes on; once the API is back every point, event, log
line and artifact arrives exactly once, and the run ends as the attempt that started it."""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    create_identity,
    free_port,
    fresh_database,
    start_api,
    start_worker,
    stop_process,
    wait_http,
)
from tests.e2e.helpers import TOKENS, submit, wait_status
from tests.proxy import CuttableProxy

pytestmark = pytest.mark.e2e

EPOCHS = 30
OUTAGE_S = 5.0  # well inside FITBOARD_WORKER_LOST_AFTER_S (10 s): a blip, not a lost worker


@dataclass
class Cut:
    url: str
    token: str
    proxy: CuttableProxy
    worker_log: Path


@pytest.fixture(scope="module")
def cut(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cut]:
    # a database of its own: no other test's API (the session's live stack) judges this run's
    # heartbeats while the proxy is cut
    pg_url = fresh_database(pg_url, "api_outage")
    admin = create_identity(pg_url, "outage-admin")
    root = tmp_path_factory.mktemp("api-outage")
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(root / "api-home"),
        "FITBOARD_DATA_DIR": str(data_dir),
        "FITBOARD_QUEUE": f"fitboard-outage-{os.getpid()}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start_api(env, root / "api.out", port)
    TOKENS[url] = admin.token
    worker = None
    try:
        wait_http(url + "/api/v1/health", api)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin.token}"}) as c:
            token = c.post("/api/v1/worker-tokens", json={"name": "outage"}).json()["token"]
        proxy = CuttableProxy(("127.0.0.1", port))
        worker_env = {
            k: v for k, v in env.items() if k not in ("DATABASE_URL", "FITBOARD_HOME")
        } | {
            "FITBOARD_HOME": str(root / "gpu-host"),
            "FITBOARD_URL": f"http://127.0.0.1:{proxy.port}",
            "FITBOARD_WORKER_TOKEN": token,
        }
        worker_log = root / "worker.out"
        worker = start_worker(worker_env, worker_log, "behind-proxy")
        yield Cut(url, admin.token, proxy, worker_log)
    finally:
        if worker is not None:
            stop_process(worker)
        stop_process(api)


def test_an_api_outage_mid_run_loses_and_duplicates_nothing(cut: Cut) -> None:
    headers = {"Authorization": f"Bearer {cut.token}"}
    with httpx.Client(base_url=cut.url, timeout=30, headers=headers) as client:
        deadline = time.monotonic() + 90
        while client.get("/api/v1/health").json()["workers"] < 1:
            assert time.monotonic() < deadline, "the worker did not join"
            time.sleep(0.5)
        run = submit(client, "api outage", {"fit": {"epochs": EPOCHS, "batch_size": 32}})
        wait_status(client, run["id"], {"running"}, timeout_s=120)
        deadline = time.monotonic() + 90
        # the first batch's points (sys/* samples may come before it on a slow machine)
        while "batch/loss" not in client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"]:
            assert time.monotonic() < deadline, "no batch arrived"
            time.sleep(0.2)
        before = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"]
        cut.proxy.cut()
        time.sleep(OUTAGE_S)
        during = client.get(f"/api/v1/runs/{run['id']}/metrics").json()["series"]
        cut.proxy.restore()
        final = wait_status(client, run["id"], {"succeeded", "failed", "cancelled"}, 240)
        assert final["status"] == "succeeded", final
        assert final["attempt"] == 1, "a blip is not a lost worker"
        # nothing moved while the worker could not reach the API
        assert len(during["batch/loss"]["steps"]) <= len(before["batch/loss"]["steps"]) + 60

        series = client.get(
            f"/api/v1/runs/{run['id']}/metrics", params={"max_points": 100_000}
        ).json()["series"]
        assert series["loss"]["steps"] == list(range(1, EPOCHS + 1)), "every epoch once"
        batch = series["batch/loss"]["steps"]
        assert batch == sorted(set(batch)), "no batch step twice"
        gaps = {b - a for a, b in itertools.pairwise(batch)}
        assert len(gaps) <= 1, f"no batch step missing: {sorted(gaps)[:5]}"

        log = client.get(
            f"/api/v1/runs/{run['id']}/log", params={"offset": 0, "limit": 1_000_000}
        ).json()["text"]
        epochs = re.findall(r"^Epoch (\d+)/\d+$", log, flags=re.M)
        assert epochs == [str(e) for e in range(1, EPOCHS + 1)], "every log line once, in order"
        assert "event=fit_end" in log
        names = {
            a["name"] for a in client.get(f"/api/v1/runs/{run['id']}/artifacts").json()["items"]
        }
        assert "model.keras" in names
        evaluation = client.get(f"/api/v1/runs/{run['id']}/evaluation")
        assert evaluation.status_code == 200
    assert cut.proxy.cut_count == 1
    assert "heartbeat failed" in cut.worker_log.read_text(), "the worker did see the outage"
