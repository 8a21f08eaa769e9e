"""One validated settings object, read once from the environment."""

from __future__ import annotations

import os
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_api_workers(cores: int | None) -> int:
    """Half the cores, at least 1 and at most 8: the rest train and serve the database."""
    return max(1, min(8, (cores or 1) // 2))


class Settings(BaseSettings):
    """Every setting Fitboard reads; the README's settings table is generated from these."""

    model_config = SettingsConfigDict(env_prefix="FITBOARD_", extra="ignore")

    home: Path = Field(
        default=Path(".fitboard"),
        description="Directory for the embedded SQLite database, artifacts and runtime files.",
    )
    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "FITBOARD_DATABASE_URL"),
        description="SQLAlchemy URL; empty means SQLite at <home>/fitboard.db. "
        "postgresql:// URLs use psycopg 3.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("REDIS_URL", "FITBOARD_REDIS_URL"),
        description="Redis for the Celery broker and live events. `make run` starts an "
        "embedded redis-server when this is not set.",
    )
    url: str = Field(
        default="",
        description="A worker's way to the API (e.g. http://api-host:8000; make run sets it "
        "for its own worker). With FITBOARD_WORKER_TOKEN, the worker and its training "
        "processes reach the API only over the worker protocol: no DATABASE_URL, no shared "
        "FITBOARD_HOME.",
    )
    worker_token: str = Field(
        default="",
        description="The worker token a worker on another host joins with (an admin creates "
        "one: `python -m backend.users create-worker-token NAME` or the Account page).",
    )
    artifacts_dir: Path | None = Field(
        default=None, description="Where artifacts are stored; empty means <home>/artifacts."
    )
    s3_endpoint: str = Field(
        default="",
        description="S3-compatible endpoint for artifacts (http://minio:9000, "
        "https://s3.eu-west-1.amazonaws.com); empty means the local directory store.",
    )
    s3_bucket: str = Field(
        default="fitboard",
        description="Bucket of the S3 artifact store; created at first use if missing.",
    )
    s3_region: str = Field(default="us-east-1", description="Region of the S3 bucket.")
    s3_access_key_id: str = Field(
        default="",
        description="Access key of the S3 store; empty means the standard AWS chain "
        "(AWS_ACCESS_KEY_ID, ~/.aws, an instance role).",
    )
    s3_secret_access_key: str = Field(
        default="", description="Secret key of the S3 store; empty means the standard AWS chain."
    )
    s3_prefix: str = Field(
        default="",
        description="Prefix of every key Fitboard writes in the bucket (a bucket shared with "
        "other data: 'fitboard/').",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Offline data directory holding mnist/ and imdb/ files; empty means "
        "Keras' own download and cache.",
    )
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, description="Port the API listens on.")
    queue: str = Field(default="fitboard", description="Celery queue that runs are sent to.")
    api_workers: int = Field(
        default_factory=lambda: default_api_workers(os.cpu_count()),
        ge=1,
        le=64,
        description="API processes (uvicorn --workers) that `make run` and `make api` start: "
        "each serves pages, the REST API and live views; more keep a busy team's API "
        "responsive. Default: half the cores, 1 to 8 (1 on a 2-core machine, where training "
        "needs the other core).",
    )
    worker_concurrency: int = Field(
        default=1, ge=1, description="Runs one worker trains at the same time."
    )
    pool: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="The pool this worker belongs to (a label): runs whose spec asks for "
        "`resources.pool` go only to workers of that pool. Not set: no pool (it takes runs "
        "that ask for none).",
    )
    warm_trainer: bool = Field(
        default=True,
        description="Keep one standby training process per worker that has imported Keras "
        "and TensorFlow before a run comes (a run not pinned to GPUs starts seconds sooner).",
    )
    trainer_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="How much lower the CPU priority of training is than the worker's "
        "(os.nice), so the API and the worker stay responsive on a busy host; on Linux the "
        "training process' metric flusher keeps the worker's priority.",
    )
    heartbeat_interval_s: float = Field(
        default=2.0, gt=0, description="How often a worker marks its running run as alive."
    )
    worker_lost_after_s: float = Field(
        default=10.0,
        gt=0,
        description="A worker's run with no heartbeat this long has lost its worker: it goes "
        "back to the queue (spec.max_restarts) or fails. Housekeeping looks every 2 s.",
    )
    heartbeat_timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="An external run (FitboardCallback, RemoteMonitor) silent this long ends.",
    )
    requeue_unaccounted_after_s: float = Field(
        default=20.0,
        gt=0,
        description="A queued run whose message is neither waiting in the broker nor held by "
        "a worker this long is sent again (the claim keeps it from starting twice).",
    )
    cancel_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="After a cancel, seconds before the training process "
        "is killed if it has not stopped by itself.",
    )
    flush_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="The longest the training process waits between two writes of metric "
        "points under load (after a quiet spell it writes at once; while someone watches the "
        "run live, every few tens of milliseconds).",
    )
    log_level: str = Field(default="INFO", description="Log level of every Fitboard process.")
    max_json_mb: int = Field(
        default=32,
        ge=1,
        description="Largest JSON request body the API accepts, in MB (a batch of points, a "
        "spec); a larger one is refused with 413 before it is read whole.",
    )
    max_upload_mb: int = Field(
        default=200,
        ge=1,
        description="Largest dataset upload (CSV, NPZ or zip) the API accepts, in MB; a larger "
        "one is refused with 413 while it streams in.",
    )
    max_unzipped_mb: int = Field(
        default=1000,
        ge=1,
        description="Largest total unpacked size of an uploaded zip or NPZ, in MB (zip bombs).",
    )
    max_zip_entries: int = Field(
        default=100_000, ge=1, description="Most entries an uploaded zip of images may hold."
    )
    plugins: str = Field(
        default="",
        description="More directories (os.pathsep-separated) of model-template plugins; the "
        "API and the worker must see the same. The bundled worker/plugins_example is always on.",
    )

    public_url: str = Field(
        default="",
        description="The dashboard's address as people open it (https://fitboard.example.org); "
        "notifications link to runs and sweeps under it. Empty means the links are paths.",
    )
    notify_stall_after_s: float = Field(
        default=600.0,
        gt=0,
        description="A running run with no new metric point this long is stalled: who asked "
        "to be told (notify on 'stalled') is, once per attempt.",
    )
    notify_max_attempts: int = Field(
        default=8, ge=1, description="Webhook attempts of one notification before giving up."
    )
    notify_retry_base_s: float = Field(
        default=2.0,
        gt=0,
        description="Wait before a failed webhook's second attempt; it doubles after each "
        "failure (at most one hour).",
    )
    webhook_allowed_networks: str = Field(
        default="",
        description="Comma-separated networks (CIDR) or addresses a webhook may reach besides "
        "public ones, e.g. 10.0.0.0/8 for an in-house relay. Empty: webhooks to private, "
        "loopback, link-local and reserved addresses are refused (checked on save and before "
        "every POST).",
    )
    notify_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long one webhook POST may take before it counts as failed.",
    )

    auth: Literal["on", "off"] = Field(
        default="on",
        description="on: every request needs a signed-in user or an API token. off: every "
        "request acts as a local admin (a single-user laptop only; the API refuses to start "
        "unless FITBOARD_HOST is 127.0.0.1, ::1 or localhost).",
    )
    admin_password: str = Field(
        default="",
        description="Password of the first admin (username admin) that `make run` creates on "
        "an empty database; empty means a random one, printed once.",
    )
    session_hours: float = Field(
        default=336.0,
        gt=0,
        description="How long a browser sign-in lasts, in hours (default 14 days).",
    )

    signin_window_s: float = Field(
        default=900.0,
        gt=0,
        description="Failed sign-ins of an account or address are forgotten after this many "
        "quiet seconds.",
    )
    signin_account_free_failures: int = Field(
        default=5, ge=0, description="Failed sign-ins of one account before it must wait."
    )
    signin_account_max_delay_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait of one account (doubling from 1 s): short, so an attacker "
        "cannot lock a colleague out.",
    )
    signin_address_free_failures: int = Field(
        default=10, ge=0, description="Failed sign-ins from one client address before it waits."
    )
    signin_address_max_delay_s: float = Field(
        default=900.0,
        gt=0,
        description="Longest wait of one client address (doubling from 1 s).",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg3(cls, url: str) -> str:
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, text: str) -> str:
        parse_networks(text)  # a bad entry is named at start, not at the first POST
        return text

    @property
    def webhook_networks(self) -> list[IPv4Network | IPv6Network]:
        return parse_networks(self.webhook_allowed_networks)

    @model_validator(mode="after")
    def _s3_bucket(self) -> Settings:
        if self.s3_endpoint and not self.s3_bucket:
            raise ValueError("FITBOARD_S3_ENDPOINT is set: FITBOARD_S3_BUCKET must name a bucket")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'fitboard.db').resolve()}"

    @property
    def artifacts_root(self) -> Path:
        return (self.artifacts_dir or self.home / "artifacts").resolve()


def parse_networks(text: str) -> list[IPv4Network | IPv6Network]:
    """``10.0.0.0/8, fd00::/8, 192.168.1.7`` -> networks; ValueError naming a bad entry."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not a network (CIDR) or address: {exc}") from exc
    return networks


@lru_cache
def get_settings() -> Settings:
    return Settings()
