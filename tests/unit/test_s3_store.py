"""The S3 artifact store against a real S3-compatible server process (moto's server mode):
the bucket made at first use, put/open/delete_prefix, multipart uploads, ranges, and a failed
upload that leaves nothing behind."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from backend.artifacts.s3 import MB, S3Store
from backend.artifacts.store import ArtifactStore
from tests.conftest import S3Server


def _store(s3_server: S3Server, **kwargs: Any) -> S3Store:
    env = s3_server.env(bucket=f"unit-{uuid.uuid4().hex[:12]}")
    return S3Store(
        endpoint=env["FITBOARD_S3_ENDPOINT"],
        bucket=env["FITBOARD_S3_BUCKET"],
        access_key_id=env["FITBOARD_S3_ACCESS_KEY_ID"],
        secret_access_key=env["FITBOARD_S3_SECRET_ACCESS_KEY"],
        **kwargs,
    )


def _keys(store: S3Store) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_round_trip_with_a_multipart_upload_and_ranges(
    s3_server: S3Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = _store(
        s3_server, prefix="/team-a/", multipart_threshold=5 * MB, multipart_chunksize=5 * MB
    )
    _: ArtifactStore = store  # it is an ArtifactStore (mypy checks the protocol)
    small = tmp_path / "small.txt"
    small.write_bytes(b"0123456789")
    big = tmp_path / "big.bin"
    payload = os.urandom(12 * MB + 123)  # three parts of 5 MB, 5 MB and the rest
    big.write_bytes(payload)

    with caplog.at_level(logging.INFO, logger="backend.artifacts.s3"):
        assert store.put("runs/7/small.txt", small) == 10
    assert f"created bucket {store.bucket}" in caplog.text
    assert store.put("runs/7/big.bin", big) == len(payload)
    assert store.put("runs/70/other.txt", small) == 10

    head = store.client.head_object(Bucket=store.bucket, Key="team-a/runs/7/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), "uploaded in three parts"
    assert store.local_path("runs/7/big.bin") is None
    with store.open("runs/7/big.bin") as body:
        digest = hashlib.sha256()
        while chunk := body.read(MB):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    with store.open("runs/7/small.txt", start=3, stop=6) as body:
        assert body.read() == b"345"
    with store.open("runs/7/small.txt", start=8) as body:
        assert body.read() == b"89"
    with pytest.raises(FileNotFoundError):
        store.open("runs/7/nothing.bin")

    # replacing an object keeps one copy
    small.write_bytes(b"abc")
    assert store.put("runs/7/small.txt", small) == 3
    assert store.open("runs/7/small.txt").read() == b"abc"
    assert _keys(store) == [
        "team-a/runs/7/big.bin",
        "team-a/runs/7/small.txt",
        "team-a/runs/70/other.txt",
    ]


def test_delete_prefix_deletes_every_key_in_batches(s3_server: S3Server, tmp_path: Path) -> None:
    store = _store(s3_server)
    store.delete_batch = 3  # seven keys: three DeleteObjects calls
    source = tmp_path / "f"
    source.write_bytes(b"x")
    for i in range(7):
        store.put(f"runs/5/dir/f{i}", source)
    store.put("runs/50/keep", source)
    store.put("runs/5keep", source)

    assert store.delete_prefix("runs/5/") == 7
    assert _keys(store) == ["runs/50/keep", "runs/5keep"]
    assert store.delete_prefix("runs/5/") == 0
    assert _store(s3_server).delete_prefix("runs/1/") == 0, "no bucket yet: nothing to delete"


def test_delete_removes_one_key(s3_server: S3Server, tmp_path: Path) -> None:
    store = _store(s3_server)
    source = tmp_path / "f"
    source.write_bytes(b"x")
    store.put("runs/6/checkpoint-epoch-1.keras", source)
    store.put("runs/6/checkpoint-epoch-2.keras", source)
    assert store.delete("runs/6/checkpoint-epoch-1.keras") is True
    assert _keys(store) == ["runs/6/checkpoint-epoch-2.keras"]
    assert store.delete("runs/6/checkpoint-epoch-1.keras") is False, "gone already"


def test_a_failed_upload_leaves_no_object_behind(s3_server: S3Server, tmp_path: Path) -> None:
    store = _store(s3_server, multipart_threshold=5 * MB, multipart_chunksize=5 * MB)
    store.ensure_bucket()
    source = tmp_path / "model.keras"
    source.write_bytes(os.urandom(11 * MB))
    parts: list[int] = []

    def fail_the_second_part(params: dict[str, Any], **_: Any) -> None:
        parts.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ConnectionResetError("the network went away")

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", fail_the_second_part)
    with pytest.raises(OSError):
        store.put("runs/9/model.keras", source)
    assert 2 in parts, "it was a multipart upload that failed midway"
    assert _keys(store) == []
    pending = store.client.list_multipart_uploads(Bucket=store.bucket)
    assert pending.get("Uploads", []) == [], "the multipart upload was aborted"


def test_the_directory_store_reads_ranges_too(tmp_path: Path) -> None:
    from backend.artifacts.store import LocalDirStore

    store: ArtifactStore = LocalDirStore(tmp_path / "store")
    source = tmp_path / "f"
    source.write_bytes(b"0123456789")
    assert store.put("runs/3/f", source) == 10
    with store.open("runs/3/f", start=3, stop=6) as body:
        assert body.read() == b"345"
    with store.open("runs/3/f", start=8) as body:
        assert body.read() == b"89"
    with pytest.raises(FileNotFoundError):
        store.open("runs/3/nothing")
