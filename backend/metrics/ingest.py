"""A batch of metric points as columns, and its bulk write: COPY on PostgreSQL, one prepared
INSERT run over every row on SQLite. Both skip a (run, key, step) already stored, and within
a batch the first of two points at the same key and step is the one kept."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from backend.jsonpolicy import INF_STANDIN

if TYPE_CHECKING:
    from backend.metrics.service import Point

# the COPY target: one per connection, emptied by every commit; a point names its key by its
# index in the batch's keys, so COPY sends only numbers (binary)
_STAGE = "fitboard_points_in"
_STAGE_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE} (ord integer, key_index integer, step bigint, "
    "value double precision, wall_time double precision) ON COMMIT DELETE ROWS"
)
_STAGE_TYPES = ["int4", "int4", "int8", "float8", "float8"]
_INSERT_FROM_STAGE = (
    "INSERT INTO metric_points (run_id, key, step, value, wall_time) "
    f"SELECT %s, (%s::text[])[key_index + 1], step, value, wall_time FROM {_STAGE}"
)
_STAGED_IN = "fitboard.points_staged_in"  # session.info: the transaction that used the stage


def _sanitize(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        return INF_STANDIN if number > 0 else -INF_STANDIN
    return number


@dataclass(frozen=True, slots=True)
class PointColumns:
    """Point i is (keys[key_index[i]], steps[i], values[i], wall_times[i]); values are
    finite or None (NaN), +-inf as +-1e300."""

    keys: list[str]
    key_index: list[int]
    steps: list[int]
    values: list[float | None]
    wall_times: list[float]

    def __len__(self) -> int:
        return len(self.steps)

    @classmethod
    def from_points(cls, points: Sequence[Point]) -> PointColumns:
        index: dict[str, int] = {}
        key_index = [index.setdefault(p["key"], len(index)) for p in points]
        return cls(
            keys=list(index),
            key_index=key_index,
            steps=[int(p["step"]) for p in points],
            values=[_sanitize(p["value"]) for p in points],
            wall_times=[float(p["wall_time"]) for p in points],
        )

    @classmethod
    def sanitized(
        cls,
        *,
        keys: list[str],
        key_index: list[int],
        steps: list[int],
        values: list[float | None],
        wall_times: list[float],
    ) -> PointColumns:
        """Columns as sent, with NaN and +-inf values made storable (a pass over the values
        only when one is not finite)."""
        if not all(v is None or math.isfinite(v) for v in values):
            values = [_sanitize(v) for v in values]
        return cls(keys, key_index, steps, values, wall_times)

    def then(self, other: PointColumns) -> PointColumns:
        """This batch followed by ``other`` (their keys merged)."""
        if not len(self):
            return other
        index = {key: at for at, key in enumerate(self.keys)}
        remap = [index.setdefault(key, len(index)) for key in other.keys]
        return PointColumns(
            keys=list(index),
            key_index=self.key_index + [remap[k] for k in other.key_index],
            steps=self.steps + other.steps,
            values=self.values + other.values,
            wall_times=self.wall_times + other.wall_times,
        )

    def key_names(self) -> list[str]:
        """The key of each point."""
        return list(map(self.keys.__getitem__, self.key_index))


def insert_ignore(session: Session, *, run_id: int, points: PointColumns) -> None:
    """Store the points; a (run, key, step) already stored keeps its row."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        _copy_postgresql(session, run_id, points)
    elif dialect == "sqlite":
        _insert_sqlite(session, run_id, points)
    else:
        raise NotImplementedError(f"metric points on {dialect}")


def _copy_postgresql(session: Session, run_id: int, points: PointColumns) -> None:
    # COPY cannot skip conflicts: it fills a temporary table that one INSERT ... SELECT empties
    # into metric_points; on a conflict, again with ON CONFLICT DO NOTHING in the batch's order
    # (the first point at a key and step wins)
    from psycopg.errors import UniqueViolation  # PostgreSQL's driver, imported where it is used

    raw: Any = session.connection().connection.driver_connection
    transaction = session.get_transaction()
    with raw.cursor() as cursor:
        cursor.execute(_STAGE_DDL)
        if session.info.get(_STAGED_IN) is transaction:
            cursor.execute(f"DELETE FROM {_STAGE}")  # a second batch in one transaction
        session.info[_STAGED_IN] = transaction
        rows = zip(count(), points.key_index, points.steps, points.values, points.wall_times)
        with cursor.copy(f"COPY {_STAGE} FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(_STAGE_TYPES)
            for row in rows:
                copy.write_row(row)
        # a plain INSERT costs half of one with ON CONFLICT (no speculative insertion); only a
        # batch that meets a stored step (a retry) or holds one twice pays for both
        cursor.execute("SAVEPOINT fitboard_points_in")
        try:
            cursor.execute(_INSERT_FROM_STAGE, (run_id, points.keys))
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT fitboard_points_in")
            cursor.execute(
                _INSERT_FROM_STAGE + " ORDER BY ord ON CONFLICT DO NOTHING", (run_id, points.keys)
            )
        else:
            cursor.execute("RELEASE SAVEPOINT fitboard_points_in")


def _insert_sqlite(session: Session, run_id: int, points: PointColumns) -> None:
    rows = list(
        zip(
            [run_id] * len(points),
            points.key_names(),
            points.steps,
            points.values,
            points.wall_times,
            strict=True,
        )
    )
    session.connection().exec_driver_sql(
        "INSERT INTO metric_points (run_id, key, step, value, wall_time) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        rows,  # type: ignore[arg-type]
    )
