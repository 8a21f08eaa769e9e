"""Confusion matrix and classification report of a finished run."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, BigIntId, utcnow


class Evaluation(Base):
    __tablename__ = "evaluations"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    split: Mapped[str] = mapped_column(String(32))
    class_names: Mapped[list[str]] = mapped_column(JSON)
    confusion_matrix: Mapped[list[list[int]]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EpochEvaluation(Base):
    """Confusion matrix and report at the end of one epoch, where the spec asks for them."""

    __tablename__ = "epoch_evaluations"

    run_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(primary_key=True)
    split: Mapped[str] = mapped_column(String(32))
    class_names: Mapped[list[str]] = mapped_column(JSON)
    confusion_matrix: Mapped[list[list[int]]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
