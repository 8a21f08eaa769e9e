"""Trials are ordinary runs: bulk-created rows (runs, run_search, run_params) of one sweep."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.orm import Session

from backend.broker import queue_for
from backend.config import get_settings
from backend.db.base import utcnow
from backend.runs import params as run_params
from backend.runs.models import (
    Run,
    RunParam,
    RunSearch,
    RunSource,
    RunStatus,
    build_search_text,
    dataset_of,
)
from backend.sweeps.models import Sweep

Params = dict[str, Any]


def trial_name(sweep: Sweep, number: int) -> str:
    return f"{sweep.name} #{number}"[:200]


def insert_trials(
    session: Session,
    *,
    sweep: Sweep,
    trials: Sequence[tuple[int, Params, dict[str, Any]]],
    index_params: bool = True,
) -> list[int]:
    """Queued runs for (trial_number, params, spec) in a few statements, not a flush per run.

    The ORM's per-row hooks do not run for a bulk insert, so the search row is written here,
    and the flattened params too unless ``index_params`` is False: then
    ``backend.runs.params.index_missing`` writes them later (after the response to a large
    sweep, and in the API's housekeeping), since they are most of the rows.
    """
    if not trials:
        return []
    now = utcnow()
    rows: list[dict[str, Any]] = [
        {
            "name": trial_name(sweep, number),
            "status": RunStatus.queued.value,
            "preset": sweep.preset,
            "spec": spec,
            "dataset": dataset_of(spec),
            "created_at": now,
            "launched_by_id": sweep.launched_by_id,
            "source": RunSource.worker.value,
            "sweep_id": sweep.id,
            "trial_number": number,
            "trial_params": params,
            "notes": "",
            "priority": sweep.priority,
            "queue": queue_for(spec, get_settings().queue),
        }
        for number, params, spec in trials
    ]
    # COPY on PostgreSQL, Core multi-row inserts elsewhere (the ORM's bulk path would go row by
    # row here because of the mapper's Python-side defaults)
    runs_table: Table = Run.__table__  # type: ignore[assignment]
    if session.connection().dialect.name == "postgresql":
        # ids from the table's own sequence, then one COPY: the fastest way in
        next_ids = text(
            "SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"
        )
        ids = list(session.scalars(next_ids, {"table": runs_table.name, "n": len(rows)}))
        copied = []
        for run_id, row in zip(ids, rows, strict=True):
            row["id"] = run_id
            copied.append(
                {
                    **row,
                    "spec": json.dumps(row["spec"]),
                    "trial_params": json.dumps(row["trial_params"]),
                    "created_at": row["created_at"].isoformat(),
                }
            )
        _copy(session, runs_table, copied)
    else:
        ids = list(
            session.scalars(
                insert(runs_table).returning(runs_table.c.id, sort_by_parameter_order=True), rows
            )
        )
    _insert_values(
        session,
        RunSearch.__table__,  # type: ignore[arg-type]
        [
            {"run_id": run_id, "text": build_search_text(row["name"], [], "")}
            for run_id, row in zip(ids, rows, strict=True)
        ],
    )
    if index_params:
        _insert_values(
            session,
            RunParam.__table__,  # type: ignore[arg-type]
            [
                param
                for run_id, row in zip(ids, rows, strict=True)
                for param in run_params.rows_for(run_id, row["spec"])
            ],
        )
    return ids


def _insert_values(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Many rows fast: COPY on PostgreSQL; elsewhere an executemany that SQLAlchemy batches
    into multi-row INSERTs (it does so for statements with RETURNING)."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        session.execute(insert(table).returning(table.c.run_id), rows)
        return
    _copy(session, table, rows)


def _copy(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """COPY rows (text format) into a PostgreSQL table."""
    connection = session.connection()
    columns = list(rows[0])
    payload = "".join("\t".join([_copy_field(row[c]) for c in columns]) + "\n" for row in rows)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write(payload)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_field(value: Any) -> str:
    """One value in COPY's text format (numbers as repr: exact floats)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    return repr(value)


def next_number(session: Session, *, sweep_id: int) -> int:
    top = session.scalar(select(func.max(Run.trial_number)).where(Run.sweep_id == sweep_id))
    return int(top or 0) + 1
