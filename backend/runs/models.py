"""The runs table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Connection,
    ForeignKey,
    Index,
    String,
    Text,
    event,
    func,
    insert,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, Mapper, mapped_column, relationship

from backend.db.base import Base, BigIntId, utcnow
from backend.runs.status import FINISHED_STATUSES as FINISHED_STATUSES
from backend.runs.status import RunSource as RunSource
from backend.runs.status import RunStatus as RunStatus

TAG_MAX_CHARS = 50
MAX_TAGS = 20
NOTES_MAX_CHARS = 10_000


def dataset_of(spec: dict[str, Any] | None) -> str | None:
    name = ((spec or {}).get("dataset") or {}).get("name")
    return str(name)[:100] if name else None


def _dataset_default(context: DefaultExecutionContext) -> str | None:
    return dataset_of(context.get_current_parameters().get("spec"))


# JSONB on PostgreSQL: sorting by a spec field reads it without re-parsing the whole text
SpecJSON = JSON().with_variant(JSONB(), "postgresql")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'pruned')",
            name="status_valid",
        ),
        CheckConstraint("priority IN ('low', 'normal', 'high')", name="priority_valid"),
        Index("ix_runs_status_id", "status", "id"),
        # the dispatcher's counts: runs running, or queued and sent (migration 0013)
        Index("ix_runs_status_dispatched_at", "status", "dispatched_at"),
        # the default page: newest first (and the before_id keyset cursor)
        Index("ix_runs_created_at_id", "created_at", "id"),
        Index("ix_runs_dataset", "dataset"),
        Index("ix_runs_preset", "preset"),
        Index("ix_runs_launched_by_id_id", "launched_by_id", "id"),
        Index("ix_runs_sweep_id_id", "sweep_id", "id"),
        # SQLite: never hand a deleted run's id to a new one (migration 0005)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.queued.value)
    preset: Mapped[str | None] = mapped_column(String(100))
    spec: Mapped[dict[str, Any]] = mapped_column(SpecJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dispatched_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
    worker_host: Mapped[str | None] = mapped_column(String(255))
    # which try this is: a run whose worker or training process died goes back to the queue as
    # the next attempt (up to spec.max_restarts); a stale attempt's writes are refused
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    # the broker queue its message went to: housekeeping accounts for a queue's runs only
    queue: Mapped[str | None] = mapped_column(String(200))
    # the worker token whose worker claimed this attempt (None: a worker on the database)
    worker_token_id: Mapped[int | None] = mapped_column(BigIntId)
    failure_reason: Mapped[str | None] = mapped_column(Text)
    failure_traceback: Mapped[str | None] = mapped_column(Text)
    model_summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # copied from spec.dataset.name so the list filters and sorts on a plain indexed column
    dataset: Mapped[str | None] = mapped_column(String(100), default=_dataset_default)
    launched_by_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("users.id", ondelete="SET NULL")
    )
    source: Mapped[str] = mapped_column(
        String(16), default=RunSource.worker.value, server_default=RunSource.worker.value
    )
    # a trial of a sweep: its number in the sweep and the values drawn from the search space
    sweep_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("sweeps.id", ondelete="SET NULL")
    )
    trial_number: Mapped[int | None]
    trial_params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # when its sweep let this trial go (max_concurrent): from then on the dispatcher orders and
    # sends it like any run (None for a trial still waiting for its sweep, and for other runs)
    admitted_at: Mapped[datetime | None]
    # the queue's order (backend.runqueue): priority first, then fair share between launchers,
    # then age; an admin's "move to top" puts a run before all the others (latest move first)
    priority: Mapped[str] = mapped_column(String(8), default="normal", server_default="normal")
    moved_to_top_at: Mapped[datetime | None]

    tag_rows: Mapped[list[RunTag]] = relationship(
        back_populates="run",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
        order_by="RunTag.tag",
    )

    @property
    def tags(self) -> list[str]:
        return [row.tag for row in self.tag_rows]


class RunTag(Base):
    """One tag of one run; the (tag, run_id) index serves ?tag= filters."""

    __tablename__ = "run_tags"
    __table_args__ = (Index("ix_run_tags_tag_run_id", "tag", "run_id"),)

    run_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(TAG_MAX_CHARS), primary_key=True)

    run: Mapped[Run] = relationship(back_populates="tag_rows")


# sort by name, case-insensitively, walks this index (PostgreSQL only: see migration 0002)
Index("ix_runs_name_lower_id", func.lower(Run.name), Run.id).ddl_if(dialect="postgresql")


class RunParam(Base):
    """One flattened spec value of a run (path like `fit.batch_size`), so the history sorts and
    filters by a parameter through an index instead of reading every spec."""

    __tablename__ = "run_params"
    __table_args__ = (
        Index("ix_run_params_key_num_value_run_id", "key", "num_value", "run_id"),
        Index("ix_run_params_key_text_value_run_id", "key", "text_value", "run_id"),
    )

    run_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    num_value: Mapped[float | None]
    text_value: Mapped[str | None] = mapped_column(String(200))


class RunSearch(Base):
    """What ?q= searches, one narrow row per run: lower-cased name, tags and notes.

    Apart from the wide runs rows (each holds its spec), so a search that matches many runs
    reads little; on PostgreSQL a trigram index (made by migration 0002 when pg_trgm can be
    enabled) serves substring matches.
    """

    __tablename__ = "run_search"

    run_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text, default="")


def build_search_text(name: str, tags: list[str], notes: str) -> str:
    """One line per field, so a search word never spans two of them."""
    return "\n".join([name, *tags, notes]).lower()


@event.listens_for(Run, "after_insert")
def _index_new_run(_: Mapper[Run], connection: Connection, run: Run) -> None:
    # every run is searchable by name from the start, however it was created
    notes = inspect(run).dict.get("notes") or ""  # what was set; never a load inside a flush
    text = build_search_text(run.name, [], notes)
    connection.execute(insert(RunSearch).values(run_id=run.id, text=text))
