"""A run's spec flattened into run_params rows, so the history sorts by a parameter via an index.

A key is the dotted path that ``?sort=param:<path>`` takes (``fit.batch_size``,
``compile.optimizer.learning_rate``, list positions as numbers: ``model.layers.1.rate``).
Only scalar leaves are stored: numbers (booleans as 0/1) in num_value, strings (cut to
MAX_TEXT characters) in text_value. Nulls are not stored (a null sorts as missing), nor are
the elements of lists longer than MAX_LIST_ITEMS (a class list of thousands of entries would
cost a row each), keys longer than MAX_KEY characters, or more than MAX_ROWS leaves per run.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import delete, event, exists, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, UOWTransaction

from backend.db.upsert import insert_ignore
from backend.runs.models import Run, RunParam

MAX_LIST_ITEMS = 50
MAX_TEXT = 200
MAX_KEY = 200
MAX_ROWS = 2000


def _leaves(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for name, child in value.items():
            yield from _leaves(child, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list | tuple):
        if len(value) <= MAX_LIST_ITEMS:
            for index, child in enumerate(value):
                yield from _leaves(child, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def flatten(spec: Mapping[str, Any] | None) -> dict[str, tuple[float | None, str | None]]:
    """{path: (num_value, text_value)} for the scalar leaves of a spec (see the module doc)."""
    out: dict[str, tuple[float | None, str | None]] = {}
    for key, value in _leaves(spec or {}, ""):
        if len(out) >= MAX_ROWS:
            break
        if not key or len(key) > MAX_KEY:
            continue
        if isinstance(value, bool):
            out[key] = (1.0 if value else 0.0, None)
        elif isinstance(value, int | float):
            number = float(value)
            if math.isfinite(number):
                out[key] = (number, None)
        elif isinstance(value, str):
            out[key] = (None, value[:MAX_TEXT])
    return out


def value_at(spec: Mapping[str, Any] | None, path: str) -> bool | int | float | str | None:
    """The scalar a spec holds at a dotted path (list positions as numbers); None when the
    path is missing or leads to a list or an object."""
    node: Any = spec or {}
    for part in path.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list | tuple) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node if isinstance(node, bool | int | float | str) else None


def rows_for(run_id: int, spec: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """run_params rows for one run, ready for a bulk insert."""
    return [
        {"run_id": run_id, "key": key, "num_value": num, "text_value": text}
        for key, (num, text) in flatten(spec).items()
    ]


def index_run(session: Session, run: Run) -> None:
    """(Re)write the run_params rows of a run from its spec (external runs, repairs).

    Runs added or given a new spec through the ORM are indexed on flush already (below).
    """
    if run.id is None:
        session.flush()
        return
    _write(session.connection(), run.id, run.spec, replace=True)


def _write(conn: Connection, run_id: int, spec: Mapping[str, Any] | None, *, replace: bool) -> None:
    if replace:
        conn.execute(delete(RunParam).where(RunParam.run_id == run_id))
    rows = rows_for(run_id, spec)
    if rows:
        conn.execute(insert(RunParam), rows)


@event.listens_for(Session, "after_flush")
def _index_new_and_changed_specs(session: Session, flush_context: UOWTransaction) -> None:
    """Keep run_params in step with Run.spec: a submitted run, a sweep trial, an edited spec."""
    new = [obj for obj in session.new if isinstance(obj, Run)]
    changed = [
        obj
        for obj in session.dirty
        if isinstance(obj, Run) and inspect(obj).attrs.spec.history.has_changes()
    ]
    if not new and not changed:
        return
    conn = session.connection()
    for run in new:
        _write(conn, run.id, run.spec, replace=False)
    for run in changed:
        _write(conn, run.id, run.spec, replace=True)


def index_missing(session: Session, *, sweep_id: int, limit: int) -> int:
    """Write the rows of a sweep's trials that were created in bulk without them (see
    sweeps.trials); returns how many runs were indexed. Safe to run twice at once."""
    stmt = (
        select(Run.id, Run.spec)
        .where(Run.sweep_id == sweep_id, ~exists().where(RunParam.run_id == Run.id))
        .order_by(Run.id)
        .limit(limit)
    )
    found = session.execute(stmt).all()
    rows = [row for run_id, spec in found for row in rows_for(run_id, spec)]
    for start in range(0, len(rows), 5000):
        insert_ignore(session, RunParam.__table__, rows[start : start + 5000])  # type: ignore[arg-type]
    return len(found)
