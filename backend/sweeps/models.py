"""Hyperparameter sweeps: a base spec, a search space, and trials that are ordinary runs."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, true
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, BigIntId, utcnow


class SweepStatus(enum.StrEnum):
    running = "running"
    finished = "finished"
    cancelled = "cancelled"


class Sweep(Base):
    __tablename__ = "sweeps"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'finished', 'cancelled')", name="status_valid"),
        CheckConstraint("strategy IN ('grid', 'random', 'bayesian')", name="strategy_valid"),
        CheckConstraint("direction IN ('minimize', 'maximize')", name="direction_valid"),
        CheckConstraint("priority IN ('low', 'normal', 'high')", name="priority_valid"),
        Index("ix_sweeps_created_at_id", "created_at", "id"),
        {"sqlite_autoincrement": True},  # ids never reused (migration 0005)
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=SweepStatus.running.value)
    preset: Mapped[str | None] = mapped_column(String(100))
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    space: Mapped[dict[str, Any]] = mapped_column(JSON)
    strategy: Mapped[str] = mapped_column(String(16))
    objective: Mapped[str] = mapped_column(String(100))
    direction: Mapped[str] = mapped_column(String(16))
    max_trials: Mapped[int]
    max_concurrent: Mapped[int]
    pruner: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    seed: Mapped[int | None]
    # given to each of its trials (they wait in the queue like any run of that priority)
    priority: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")
    launched_by_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # False while trials created in bulk still lack their run_params rows (written after the
    # response; the API's housekeeping finishes the job if that was interrupted)
    params_indexed: Mapped[bool] = mapped_column(default=True, server_default=true())
