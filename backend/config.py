"""One validated settings object, read once from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    artifacts_dir: Path | None = Field(
        default=None, description="Where artifacts are stored; empty means <home>/artifacts."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Offline data directory holding mnist/ and imdb/ files; empty means "
        "Keras' own download and cache.",
    )
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8000, description="Port the API listens on.")
    queue: str = Field(default="fitboard", description="Celery queue that runs are sent to.")
    worker_concurrency: int = Field(
        default=1, ge=1, description="Runs one worker trains at the same time."
    )
    heartbeat_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker marks its running run as alive."
    )
    heartbeat_timeout_s: float = Field(
        default=60.0, gt=0, description="A running run silent this long is marked failed."
    )
    cancel_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="After a cancel, seconds before the training process "
        "is killed if it has not stopped by itself.",
    )
    flush_interval_s: float = Field(
        default=0.5, gt=0, description="How often the training process writes metric batches."
    )
    log_level: str = Field(default="INFO", description="Log level of every Fitboard process.")
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

    @field_validator("database_url")
    @classmethod
    def _psycopg3(cls, url: str) -> str:
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'fitboard.db').resolve()}"

    @property
    def artifacts_root(self) -> Path:
        return (self.artifacts_dir or self.home / "artifacts").resolve()


@lru_cache
def get_settings() -> Settings:
    return Settings()
