"""INSERT ... ON CONFLICT for PostgreSQL and SQLite alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(session: Session, table: Table) -> Any:
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert on {name}")


def insert_ignore(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, skipping those that collide with a unique constraint; returns rows written."""
    if not rows:
        return 0
    stmt = _insert(session, table).on_conflict_do_nothing()
    return int(session.execute(stmt, list(rows)).rowcount or 0)  # type: ignore[attr-defined]


def insert_ignore_returning(
    session: Session, table: Table, row: dict[str, Any], column: Any
) -> Any | None:
    """Insert one row unless it collides with a unique constraint; ``column``'s value of the
    new row, None when nothing was inserted."""
    stmt = _insert(session, table).values(**row).on_conflict_do_nothing().returning(column)
    return session.execute(stmt).scalar_one_or_none()


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    index_elements: Sequence[str],
    update: Sequence[str],
    where_newer: str | None = None,
) -> None:
    """Insert or update on conflict; with where_newer only when that column grows."""
    if not rows:
        return
    stmt = _insert(session, table)
    set_ = {col: getattr(stmt.excluded, col) for col in update}
    where = None
    if where_newer is not None:
        where = getattr(table.c, where_newer) <= getattr(stmt.excluded, where_newer)
    stmt = stmt.on_conflict_do_update(index_elements=list(index_elements), set_=set_, where=where)
    session.execute(stmt, list(rows))
