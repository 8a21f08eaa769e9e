"""A team's fleet: the API on PostgreSQL and two workers that each have only the API's address,
a worker token and the broker: no DATABASE_URL, each its own empty home directory.

Runs submitted over REST train on both; their curves, evaluation, log and artifacts are served
by the API; a dataset uploaded through the API trains on both (each worker fetches and checks
it once). The worker homes never get a database. The same tests run with the API's artifacts
in a directory and in S3 (a moto server process): the workers are the same either way, they
upload through the API and never see the store.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    Identity,
    S3Server,
    free_port,
    start_api,
    start_worker,
    stop_process,
    wait_http,
)
from tests.e2e.helpers import TOKENS, submit, wait_status

pytestmark = pytest.mark.e2e

SMALL = {"fit": {"epochs": 2, "batch_size": 64}, "dataset": {"train_limit": 600, "test_limit": 200}}


@dataclass
class Fleet:
    url: str
    token: str
    homes: list[Path]
    api_home: Path
    s3: dict[str, str]  # the API's FITBOARD_S3_* settings; empty: the local directory store

    def client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, timeout=30, headers=headers)


def _worker_env(base: dict[str, str], home: Path, url: str, token: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in base.items()
        if k not in ("DATABASE_URL", "FITBOARD_DATABASE_URL", "FITBOARD_HOME")
        and not k.startswith("FITBOARD_S3_")  # the API alone knows the store
    }
    return {
        **env,
        "FITBOARD_HOME": str(home),
        "FITBOARD_URL": url,
        "FITBOARD_WORKER_TOKEN": token,
    }


@pytest.fixture(scope="module", params=["local-store", "s3-store"])
def fleet(
    pg_url: str,
    redis_url: str,
    data_dir: Path,
    admin: Identity,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Fleet]:
    s3: dict[str, str] = {}
    if request.param == "s3-store":
        server: S3Server = request.getfixturevalue("s3_server")
        s3 = server.env(bucket=f"fleet-{os.getpid()}")
    root = tmp_path_factory.mktemp("fleet")
    logs = root / "logs"
    logs.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "FITBOARD_HOME": str(root / "api-home"),
        "FITBOARD_DATA_DIR": str(data_dir),  # Keras' datasets, offline (not Fitboard's data)
        "FITBOARD_QUEUE": f"fitboard-fleet-{os.getpid()}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        **s3,
    }
    for name in ("FITBOARD_URL", "FITBOARD_WORKER_TOKEN"):
        env.pop(name, None)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = start_api(env, logs / "api.out", port)
    TOKENS[url] = admin.token
    workers = []
    try:
        wait_http(url + "/api/v1/health", api)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin.token}"}) as c:
            created = c.post("/api/v1/worker-tokens", json={"name": "fleet test"})
            assert created.status_code == 201, created.text
            token = created.json()["token"]
        homes = [root / "gpu-host-a", root / "gpu-host-b"]
        for home in homes:
            home.mkdir()
            worker_env = _worker_env(env, home, url, token)
            proc = start_worker(worker_env, logs / f"{home.name}.out", home.name)
            workers.append(proc)
        yield Fleet(url, admin.token, homes, root / "api-home", s3)
    finally:
        for proc in workers:
            stop_process(proc)
        stop_process(api)


def _wait_two_workers(client: httpx.Client, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while client.get("/api/v1/health").json()["workers"] < 2:
        assert time.monotonic() < deadline, "two workers did not join"
        time.sleep(0.5)


def _served_completely(client: httpx.Client, run: dict[str, object]) -> None:
    run_id = run["id"]
    series = client.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert series["loss"]["steps"] == [1, 2], "both epochs' points, once each"
    assert series["batch/loss"]["steps"], "batch curves streamed"
    evaluation = client.get(f"/api/v1/runs/{run_id}/evaluation")
    assert evaluation.status_code == 200, evaluation.text
    assert sum(map(sum, evaluation.json()["confusion_matrix"])) > 0
    log = client.get(f"/api/v1/runs/{run_id}/log", params={"offset": 0, "limit": 1_000_000})
    assert "event=fit_start" in log.json()["text"], "the training log reached the API"
    names = {a["name"] for a in client.get(f"/api/v1/runs/{run_id}/artifacts").json()["items"]}
    assert "model.keras" in names
    model = client.get(f"/api/v1/runs/{run_id}/artifacts/model.keras")
    assert model.status_code == 200
    assert zipfile.is_zipfile(io.BytesIO(model.content)), "a whole .keras archive"


def test_runs_train_on_two_workers_that_have_no_database(fleet: Fleet) -> None:
    with fleet.client() as client:
        _wait_two_workers(client)
        runs = [submit(client, f"fleet {i}", SMALL) for i in range(4)]
        finished = [
            wait_status(client, r["id"], {"succeeded", "failed", "cancelled"}, 300) for r in runs
        ]
        assert [r["status"] for r in finished] == ["succeeded"] * 4, finished
        hosts = {r["worker_host"] for r in finished}
        assert len(hosts) == 2, f"both workers trained: {hosts}"
        for run in finished:
            _served_completely(client, run)
    for home in fleet.homes:
        assert not list(home.rglob("*.db")), "a worker never opens a database"
    if fleet.s3:
        keys = _s3_keys(fleet.s3)
        for run in finished:
            assert f"runs/{run['id']}/model.keras" in keys
        assert not (fleet.api_home / "artifacts").exists(), "no artifact on the API's disk"


def _s3_keys(env: dict[str, str]) -> set[str]:
    import boto3

    client = boto3.session.Session().client(
        "s3",
        endpoint_url=env["FITBOARD_S3_ENDPOINT"],
        region_name=env["FITBOARD_S3_REGION"],
        aws_access_key_id=env["FITBOARD_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["FITBOARD_S3_SECRET_ACCESS_KEY"],
    )
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=env["FITBOARD_S3_BUCKET"])
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_a_dataset_uploaded_through_the_api_trains_on_both_workers(fleet: Fleet) -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    lines = ["a,b,c,d,species"] + [
        ",".join([*(f"{v:g}" for v in row), bunch.target_names[label]])
        for row, label in zip(bunch.data, bunch.target, strict=True)
    ]
    spec = {
        "dataset": {"name": "upload", "test_split": 0.3},
        "model": {
            "layers": [
                {"type": "Dense", "units": 16, "activation": "relu"},
                {"type": "Dense", "units": 3, "activation": "softmax"},
            ]
        },
        "compile": {"optimizer": {"name": "adam", "learning_rate": 0.02}},
        "fit": {"epochs": 2, "batch_size": 16},
    }
    with fleet.client() as client:
        _wait_two_workers(client)
        uploaded = client.post(
            "/api/v1/datasets",
            data={"name": "iris", "kind": "csv", "target_column": "species"},
            files={"file": ("iris.csv", "\n".join(lines).encode())},
        )
        assert uploaded.status_code == 201, uploaded.text
        upload_id = uploaded.json()["id"]
        spec["dataset"]["upload_id"] = upload_id  # type: ignore[index]
        runs = []
        for i in range(4):
            response = client.post("/api/v1/runs", json={"name": f"iris {i}", "spec": spec})
            assert response.status_code == 201, response.text
            runs.append(response.json())
        finished = [
            wait_status(client, r["id"], {"succeeded", "failed", "cancelled"}, 300) for r in runs
        ]
        assert [r["status"] for r in finished] == ["succeeded"] * 4, finished
        assert len({r["worker_host"] for r in finished}) == 2
        for run in finished:
            matrix = client.get(f"/api/v1/runs/{run['id']}/evaluation").json()["confusion_matrix"]
            assert sum(map(sum, matrix)) == 45
    for home in fleet.homes:
        cached = home / "datasets" / str(upload_id) / "data.csv"
        assert cached.is_file(), f"{home.name} fetched the upload into its own cache"
