"""Artifact downloads on both stores (the local directory and S3, a real moto server process):
uploaded over the worker protocol, downloaded whole or by byte range (206, 416) from the public
route and the worker route, and gone from the store when their run is deleted."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from fastapi.testclient import TestClient

from tests.conftest import S3Server

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture(scope="module", params=["local", "s3"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def app_env(
    app_env: None, store_kind: str, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    """tests/api's environment, with FITBOARD_S3_* for the S3 variant (a bucket of its own)."""
    from backend.config import get_settings

    extra: dict[str, str] = {}
    if store_kind == "s3":
        server: S3Server = request.getfixturevalue("s3_server")
        extra = server.env(bucket=f"api-{uuid.uuid4().hex[:12]}", prefix="fitboard")
    os.environ.update(extra)
    get_settings.cache_clear()
    yield extra
    for key in extra:
        os.environ.pop(key, None)
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def worker(api: TestClient) -> TestClient:
    created = api.post("/api/v1/worker-tokens", json={"name": "download tests"})
    assert created.status_code == 201, created.text
    return TestClient(api.app, headers={"Authorization": f"Bearer {created.json()['token']}"})


def _run_with_artifact(api: TestClient, worker: TestClient) -> int:
    """A run claimed by the worker, its model.keras uploaded, then finished."""
    body = {"name": "downloads", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}}
    run_id = int(api.post("/api/v1/runs", json=body).json()["id"])
    claimed = worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "gpu-a"})
    assert claimed.status_code == 200, claimed.text
    put = worker.put(
        f"/api/v1/worker/runs/{run_id}/artifacts/model.keras",
        params={"attempt": 1, "kind": "model"},
        content=PAYLOAD,
    )
    assert put.json() == {"name": "model.keras", "size_bytes": len(PAYLOAD)}, put.text
    finished = worker.post(
        f"/api/v1/worker/runs/{run_id}/finish", json={"attempt": 1, "status": "succeeded"}
    )
    assert finished.json() == {"recorded": True}
    return run_id


def _s3_keys(env: dict[str, str]) -> list[str]:
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=env["FITBOARD_S3_ENDPOINT"],
        region_name=env["FITBOARD_S3_REGION"],
        aws_access_key_id=env["FITBOARD_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["FITBOARD_S3_SECRET_ACCESS_KEY"],
    )
    listed = client.list_objects_v2(Bucket=env["FITBOARD_S3_BUCKET"])
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_downloads_stream_whole_or_by_range(
    api: TestClient, worker: TestClient, app_env: dict[str, str], store_kind: str
) -> None:
    run_id = _run_with_artifact(api, worker)
    size = len(PAYLOAD)
    for client, url in (
        (api, f"/api/v1/runs/{run_id}/artifacts/model.keras"),
        (worker, f"/api/v1/worker/runs/{run_id}/artifacts/model.keras"),
    ):
        whole = client.get(url)
        assert whole.status_code == 200 and whole.content == PAYLOAD, (url, whole.text[:200])
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-length"] == str(size)

        for header, start, stop in (
            ("bytes=100-199", 100, 200),
            ("bytes=10000-", 10000, size),
            ("bytes=-40", size - 40, size),
            ("bytes=10200-99999", 10200, size),  # an end past the file is cut to it
        ):
            part = client.get(url, headers={"Range": header})
            assert part.status_code == 206, (url, header, part.status_code)
            assert part.content == PAYLOAD[start:stop], (url, header)
            assert part.headers["content-range"] == f"bytes {start}-{stop - 1}/{size}"
            assert part.headers["content-length"] == str(stop - start)

        for header in ("bytes=10240-", "bytes=99999-100000", "bytes=-0"):
            refused = client.get(url, headers={"Range": header})
            assert refused.status_code == 416, (url, header, refused.status_code)
            assert refused.headers["content-range"] == f"bytes */{size}"
            assert refused.json()["code"] == "range_not_satisfiable"

        # what cannot be served as one range is ignored: the whole file, on either store
        for header in ("bytes=0-1,5-9", "items=0-4", "bytes=9-3", "garbage"):
            ignored = client.get(url, headers={"Range": header})
            assert ignored.status_code == 200 and ignored.content == PAYLOAD, (url, header)

    if store_kind == "s3":
        assert _s3_keys(app_env) == [f"fitboard/runs/{run_id}/model.keras"]
        home = Path(os.environ["FITBOARD_HOME"])
        assert not (home / "artifacts" / "runs" / str(run_id)).exists(), "nothing on disk"


def test_deleting_a_run_deletes_its_objects(
    api: TestClient, worker: TestClient, app_env: dict[str, str], store_kind: str
) -> None:
    doomed, kept = _run_with_artifact(api, worker), _run_with_artifact(api, worker)
    assert api.delete(f"/api/v1/runs/{doomed}").status_code == 204
    assert api.get(f"/api/v1/runs/{kept}/artifacts/model.keras").content == PAYLOAD
    if store_kind == "s3":
        keys = _s3_keys(app_env)
        assert f"fitboard/runs/{kept}/model.keras" in keys
        assert not [k for k in keys if k.startswith(f"fitboard/runs/{doomed}/")]
    else:
        root = Path(os.environ["FITBOARD_HOME"]) / "artifacts" / "runs"
        assert not (root / str(doomed)).exists() and (root / str(kept)).is_dir()


def test_an_artifact_missing_from_the_store_is_a_404(
    api: TestClient, worker: TestClient, app_env: dict[str, str]
) -> None:
    from backend.artifacts.store import get_store

    run_id = _run_with_artifact(api, worker)
    get_store().delete_prefix(f"runs/{run_id}/")
    missing = api.get(f"/api/v1/runs/{run_id}/artifacts/model.keras")
    assert missing.status_code == 404 and "missing from the store" in missing.json()["detail"]
