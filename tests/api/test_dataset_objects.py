"""Uploaded datasets in the object store (S3, a real moto server process): an upload's files go
to the bucket when it is kept, an API process without the local copy serves them to workers
from there, and deleting the upload deletes its objects."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import boto3
import pytest
from fastapi.testclient import TestClient

from tests.conftest import S3Server

CSV = b"a,b,label\n" + b"".join(f"{i},{i * 2},{'xy'[i % 2]}\n".encode() for i in range(40))


@pytest.fixture(scope="module")
def app_env(app_env: None, s3_server: S3Server) -> Iterator[dict[str, str]]:
    from backend.config import get_settings

    extra = s3_server.env(bucket=f"datasets-{uuid.uuid4().hex[:12]}", prefix="fitboard")
    os.environ.update(extra)
    get_settings.cache_clear()
    yield extra
    for key in extra:
        os.environ.pop(key, None)
    get_settings.cache_clear()


def _keys(env: dict[str, str], prefix: str) -> list[str]:
    client = boto3.client(
        "s3",
        endpoint_url=env["FITBOARD_S3_ENDPOINT"],
        region_name=env["FITBOARD_S3_REGION"],
        aws_access_key_id=env["FITBOARD_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["FITBOARD_S3_SECRET_ACCESS_KEY"],
    )
    listed = client.list_objects_v2(Bucket=env["FITBOARD_S3_BUCKET"], Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_an_upload_lives_in_the_object_store(api: TestClient, app_env: dict[str, str]) -> None:
    from backend.datasets import store

    uploaded = api.post(
        "/api/v1/datasets",
        data={"name": "xy", "kind": "csv", "target_column": "label"},
        files={"file": ("xy.csv", CSV)},
    )
    assert uploaded.status_code == 201, uploaded.text
    dataset_id = uploaded.json()["id"]
    prefix = f"fitboard/datasets/{dataset_id}/"
    assert _keys(app_env, prefix) == [
        prefix + ".manifest.json",
        prefix + "data.csv",
        prefix + "meta.json",
    ]
    # another API process: no local copy; its workers still get every file, checked
    shutil.rmtree(store.dataset_dir(dataset_id))
    token = api.post("/api/v1/worker-tokens", json={"name": "objects"}).json()["token"]
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    manifest = worker.get(f"/api/v1/worker/datasets/{dataset_id}/manifest")
    assert manifest.status_code == 200, manifest.text
    assert set(manifest.json()["files"]) == {"data.csv", "meta.json"}
    data = worker.get(f"/api/v1/worker/datasets/{dataset_id}/files/data.csv")
    assert data.status_code == 200 and data.content == CSV
    assert worker.get(f"/api/v1/worker/datasets/{dataset_id}/files/nope.csv").status_code == 404

    assert api.delete(f"/api/v1/datasets/{dataset_id}").status_code == 204
    assert _keys(app_env, prefix) == [], "deleting the upload deletes its objects"
