"""Metric points (idempotent on run, key, step) and the latest value of each key."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base


class MetricPoint(Base):
    __tablename__ = "metric_points"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # NaN is stored as NULL, +-inf as +-1e300: what SQL and JSON can both hold
    value: Mapped[float | None] = mapped_column(Float)
    wall_time: Mapped[float] = mapped_column(Float)


class LatestMetric(Base):
    __tablename__ = "latest_metrics"
    __table_args__ = (
        # the runs list sorted by a final metric walks this in order, either direction
        Index(
            "ix_latest_metrics_key_value_run_id",
            "key",
            "value",
            "run_id",
            postgresql_where=text("value IS NOT NULL"),
            sqlite_where=text("value IS NOT NULL"),
        ),
    )

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
