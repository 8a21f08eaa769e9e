"""Exports: every metric point of a run (CSV or JSON), and the filtered runs history as CSV.

Rows are read in chunks and yielded as text, so a series of millions of points or a history of
100,000 runs streams out without being held in memory. Each generator owns its session.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend import jsonpolicy
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.metrics import service as metrics
from backend.metrics.models import LatestMetric, MetricPoint
from backend.runs import query
from backend.runs.models import Run
from backend.runs.schemas import RunSummary
from backend.users import service as users

CHUNK = 2000
RUNS_CHUNK = 500
POINT_COLUMNS = ("key", "step", "epoch", "value", "wall_time")
RUN_COLUMNS = (
    "id",
    "name",
    "status",
    "source",
    "preset",
    "dataset",
    "created_at",
    "started_at",
    "finished_at",
    "duration_s",
    "worker_host",
    "launched_by",
    "tags",
)


def steps_per_epoch(session: Session, *, run_id: int) -> int | None:
    """From the run's train_begin event (worker or external), when it said."""
    data = session.scalar(
        select(RunEvent.data)
        .where(RunEvent.run_id == run_id, RunEvent.kind == "train_begin")
        .order_by(RunEvent.id.desc())
        .limit(1)
    )
    value = (data or {}).get("steps_per_epoch")
    return int(value) if isinstance(value, int | float) and value > 0 else None


def epoch_of(key: str, step: int, per_epoch: int | None) -> int | None:
    """1-based epoch: an epoch-level point's step is its epoch; a batch step needs steps/epoch."""
    if not key.startswith("batch/"):
        return step
    return math.ceil(step / per_epoch) if per_epoch and step > 0 else None


def iter_points(run_id: int, *, url: str | None = None) -> Iterator[dict[str, Any]]:
    """Every stored point of a run ordered by key then step (NaN as None)."""
    with session_scope(url) as session:
        per_epoch = steps_per_epoch(session, run_id=run_id)
        stmt = (
            select(MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
            .execution_options(yield_per=CHUNK)
        )
        for row in session.execute(stmt):
            yield {
                "key": row.key,
                "step": row.step,
                "epoch": epoch_of(row.key, row.step, per_epoch),
                "value": row.value,
                "wall_time": row.wall_time,
            }


# a text cell starting with one of these is a formula to a spreadsheet (CSV injection)
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> Any:
    """A text cell a spreadsheet will not run: one starting like a formula gets a leading
    apostrophe (OWASP's advice); numbers are written as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_line(values: Sequence[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([csv_text(v) for v in values])
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def points_csv(run_id: int) -> Iterator[str]:
    yield _csv_line(POINT_COLUMNS)
    lines: list[str] = []
    for point in iter_points(run_id):
        lines.append(_csv_line([_cell(point[c]) for c in POINT_COLUMNS]))
        if len(lines) >= CHUNK:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def points_json(run_id: int) -> Iterator[str]:
    """{"run_id": .., "points": [{key, step, epoch, value, wall_time}, ...]} (NaN as null)."""
    yield f'{{"run_id":{int(run_id)},"columns":{json.dumps(POINT_COLUMNS)},"points":['
    first = True
    parts: list[str] = []
    for point in iter_points(run_id):
        parts.append(("" if first else ",") + jsonpolicy.dumps(point))
        first = False
        if len(parts) >= CHUNK:
            yield "".join(parts)
            parts = []
    parts.append("]}")
    yield "".join(parts)


def _pages(session: Session, filters: query.RunFilters, sort: query.Sort) -> Iterator[list[Run]]:
    """Every matching run, page after page, in the order of the history table."""
    offset = 0
    before_id: int | None = None
    while True:
        page = query.page(
            session,
            filters=filters,
            sort=sort,
            limit=RUNS_CHUNK,
            offset=0 if sort.is_default else offset,
            before_id=before_id,
        )
        if page.items:
            yield page.items
        if len(page.items) < RUNS_CHUNK:
            return
        offset += len(page.items)
        before_id = page.next_cursor if sort.is_default else None
        session.expunge_all()  # keep memory flat over a long history


def _metric_keys(session: Session, run_ids: list[int]) -> set[str]:
    stmt = select(LatestMetric.key).where(LatestMetric.run_id.in_(run_ids)).distinct()
    return {k for k in session.scalars(stmt) if not k.startswith("batch/")}


def runs_csv(
    filters: query.RunFilters, sort: query.Sort, *, url: str | None = None
) -> Iterator[str]:
    """The history table: one row per matching run, a column per final metric (metric:<key>).

    Two passes over the pages: the first finds which metric columns exist (the header comes
    first), the second writes the rows."""
    with session_scope(url) as session:
        keys: set[str] = set()
        for runs in _pages(session, filters, sort):
            keys |= _metric_keys(session, [r.id for r in runs])
        metric_keys = sorted(keys)
        yield _csv_line([*RUN_COLUMNS, *(f"metric:{k}" for k in metric_keys)])
        for runs in _pages(session, filters, sort):
            finals = metrics.latest(session, run_ids=[r.id for r in runs])
            launcher_ids = {r.launched_by_id for r in runs if r.launched_by_id is not None}
            names = users.usernames(session, user_ids=launcher_ids)
            lines = []
            for run in runs:
                launcher = names.get(run.launched_by_id or 0)
                row = RunSummary.of(run, finals[run.id], launched_by=launcher).model_dump(
                    mode="json"
                )
                cells = [_cell(row[c]) for c in RUN_COLUMNS[:-1]]
                cells.append(";".join(row["tags"]))
                cells.extend(_cell(finals[run.id].get(k)) for k in metric_keys)
                lines.append(_csv_line(cells))
            yield "".join(lines)
