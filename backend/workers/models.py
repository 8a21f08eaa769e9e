"""A worker token: what a worker on another host joins with (only its SHA-256 is stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, BigIntId, utcnow


class WorkerToken(Base):
    """Lets a worker claim and train runs over the worker protocol, and nothing else."""

    __tablename__ = "worker_tokens"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    # the first characters of the token, so a list of tokens can say which is which
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    # the host the worker last claimed a run from
    last_host: Mapped[str | None] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None]


class WorkerHost(Base):
    """A worker process as it last reported itself: its host's resources and what it runs."""

    __tablename__ = "worker_hosts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    # the worker's Celery name (name@host): one row per worker process name, reused on restart
    name: Mapped[str] = mapped_column(String(255), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    token_id: Mapped[int | None] = mapped_column(BigIntId)
    version: Mapped[str] = mapped_column(String(64), default="")
    # {"cpus", "ram_mb", "gpus": [{"index", "uuid", "name", "memory_mb"}], "concurrency", ...}
    resources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # [{"run_id", "attempt", "gpus": [index, ...]}]
    running: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
