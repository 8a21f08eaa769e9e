"""Artifacts in an S3-compatible bucket (AWS S3, MinIO, ...), through boto3.

Keys are the store's keys ('runs/7/model.keras') under FITBOARD_S3_PREFIX. An object appears
only once its upload is complete (S3 PUTs are atomic; a failed multipart upload is aborted by
boto3's transfer manager), so a failed put leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backend.artifacts.store import safe_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

MB = 2**20
_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


class StoreUnavailable(OSError):
    """The object store answered with an error, or not at all."""


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _as_os_errors(what: str) -> Iterator[None]:
    """boto's errors as OSError, like the directory store's: callers handle one kind."""
    try:
        yield
    except ClientError as exc:
        if _code(exc) in _MISSING:
            raise FileNotFoundError(f"{what}: {exc}") from exc
        raise StoreUnavailable(f"{what}: {exc}") from exc
    except (BotoCoreError, Boto3Error) as exc:  # Boto3Error: S3UploadFailedError
        raise StoreUnavailable(f"{what}: {exc}") from exc


class S3Store:
    """An ArtifactStore on one bucket; the bucket is created at first upload if missing."""

    delete_batch = 1000  # keys a DeleteObjects call may name at most

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        prefix: str = "",
        multipart_threshold: int = 64 * MB,
        multipart_chunksize: int = 16 * MB,
    ) -> None:
        self.endpoint, self.bucket, self.region = endpoint, bucket, region
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # MinIO and most S3-compatible servers want path-style URLs; AWS picks its own
        style: Literal["auto", "path"] = "auto" if "amazonaws.com" in endpoint else "path"
        config = Config(
            s3={"addressing_style": style},
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        )
        # a Session of its own: boto3's default session is not thread-safe, its clients are
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=config,
        )
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=multipart_chunksize
        )
        self._bucket_ready = False
        self._lock = threading.Lock()

    def _key(self, key: str) -> str:
        return self.prefix + "/".join(safe_key(key).parts)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (once per store)."""
        if self._bucket_ready:
            return
        with self._lock, _as_os_errors(f"bucket {self.bucket}"):
            if self._bucket_ready:
                return
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise
                self._create_bucket()
            self._bucket_ready = True

    def _create_bucket(self) -> None:
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses a LocationConstraint of itself
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**args)
        except ClientError as exc:
            if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise
            return
        log.info("artifact store: created bucket %s at %s", self.bucket, self.endpoint)

    def put(self, key: str, source: Path) -> int:
        self.ensure_bucket()
        name = self._key(key)
        size = source.stat().st_size
        with _as_os_errors(f"upload of {name}"):
            # multipart above the threshold; on failure the transfer manager aborts the upload
            self.client.upload_file(str(source), self.bucket, name, Config=self.transfer)
        log.info("artifact store: put s3://%s/%s (%d bytes)", self.bucket, name, size)
        return size

    def open(self, key: str, *, start: int = 0, stop: int | None = None) -> BinaryIO:
        name = self._key(key)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or stop is not None:
            args["Range"] = f"bytes={start}-{'' if stop is None else stop - 1}"
        with _as_os_errors(f"s3://{self.bucket}/{name}"):
            response = self.client.get_object(**args)
        return cast(BinaryIO, response["Body"])  # botocore's StreamingBody: read(n), close()

    def local_path(self, key: str) -> Path | None:
        return None

    def delete(self, key: str) -> bool:
        target = self._key(key)
        with _as_os_errors(f"delete of s3://{self.bucket}/{target}"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=target)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                    return False
                raise
            self.client.delete_object(Bucket=self.bucket, Key=target)
        return True

    def delete_prefix(self, prefix: str) -> int:
        # 'runs/7/' must never take 'runs/70/' with it: the listing prefix ends with '/'
        listed = self._key(prefix) + "/"
        count = 0
        with _as_os_errors(f"delete of s3://{self.bucket}/{listed}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=listed, PaginationConfig={"PageSize": self.delete_batch}
            )
            try:
                for page in pages:  # one DeleteObjects call a page
                    keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                    if not keys:
                        continue
                    result = self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": keys, "Quiet": True},  # type: ignore[typeddict-item]
                    )
                    if result.get("Errors"):
                        raise StoreUnavailable(f"could not delete {result['Errors'][:3]}")
                    count += len(keys)
            except ClientError as exc:
                if _code(exc) != "NoSuchBucket":
                    raise
        log.info("artifact store: deleted %d objects under s3://%s/%s", count, self.bucket, listed)
        return count


@lru_cache(maxsize=4)
def shared_store(
    *,
    endpoint: str,
    bucket: str,
    region: str,
    access_key_id: str,
    secret_access_key: str,
    prefix: str,
) -> S3Store:
    """One store (one connection pool, one bucket check) per configuration and process."""
    return S3Store(
        endpoint=endpoint,
        bucket=bucket,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        prefix=prefix,
    )
