"""The runs list: text search, filters, and sort by a column, a final metric or a spec field.

Parsing raises InvalidInput naming the query parameter, so a bad ?sort= or ?created_after= is a
422 that says which one. Sorting by a final metric reads latest_metrics through its partial
(key, value, run_id) index, so the first page costs the same at 100,000 runs as at ten.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    asc,
    case,
    desc,
    exists,
    func,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.orm import Session

from backend.errors import InvalidInput
from backend.metrics.models import LatestMetric
from backend.runs.models import Run, RunParam, RunSearch, RunStatus, RunTag
from backend.users.models import User

SORT_COLUMNS = ("created_at", "name", "status", "duration", "dataset", "preset")
DEFAULT_SORT = "-created_at"
# a dotted path into the spec: names, and list positions as numbers (model.layers.0.units)
_PARAM_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|[0-9]+))*")
_METRIC_KEY = re.compile(r"[A-Za-z0-9_./-]{1,200}")
_STATUS_RANK = {status.value: rank for rank, status in enumerate(RunStatus)}
MAX_SEARCH_TERMS = 8


@dataclass(frozen=True)
class Sort:
    kind: Literal["column", "metric", "param"]
    name: str  # a column of SORT_COLUMNS, a metric key, or a dotted spec path
    descending: bool

    @property
    def is_default(self) -> bool:
        return self.kind == "column" and self.name == "created_at" and self.descending


@dataclass(frozen=True)
class RunFilters:
    terms: tuple[str, ...] = ()  # lower-cased words of ?q=; a run must contain every one
    statuses: tuple[str, ...] = ()
    dataset: str | None = None
    preset: str | None = None
    tags: tuple[str, ...] = ()  # a run must carry every one
    launcher: str | None = None  # username of who launched it
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    # ?param.<path>=<value>: the spec holds that value at that path (via run_params)
    params: tuple[tuple[str, str], ...] = ()
    sweep_id: int | None = None  # ?sweep=<id>: the trials of one sweep


@dataclass
class RunsPage:
    items: list[Run]
    total: int
    next_cursor: int | None = None


def parse_sort(text: str | None) -> Sort:
    """'-created_at', 'name', 'metric:val_accuracy', '-param:fit.batch_size', ..."""
    raw = (text or DEFAULT_SORT).strip()
    descending = raw.startswith("-")
    key = raw.removeprefix("-")
    if key in SORT_COLUMNS:
        return Sort("column", key, descending)
    kind, _, name = key.partition(":")
    if kind == "metric" and _METRIC_KEY.fullmatch(name):
        return Sort("metric", name, descending)
    if kind == "param" and _PARAM_PATH.fullmatch(name):
        return Sort("param", name, descending)
    raise InvalidInput(
        f"sort: unknown sort key {raw!r}; use one of {', '.join(SORT_COLUMNS)}, "
        "metric:<key> (e.g. metric:val_accuracy) or param:<spec path> "
        "(e.g. param:fit.batch_size), with a leading '-' for descending",
        field="sort",
    )


def parse_time(text: str | None, *, field: str) -> datetime | None:
    """An ISO date (midnight UTC) or datetime (UTC when it has no zone)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{field}: {value!r} is not an ISO date (2024-05-31) or datetime "
            "(2024-05-31T14:00:00+02:00)",
            field=field,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_filters(
    *,
    q: str | None = None,
    status: list[str] | None = None,
    dataset: str | None = None,
    preset: str | None = None,
    launcher: str | None = None,
    tag: list[str] | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    params: tuple[tuple[str, str], ...] = (),
    sweep: int | None = None,
) -> RunFilters:
    """Query parameters as the API receives them; status may repeat or be a comma list."""
    statuses = [s.strip() for item in status or () for s in item.split(",") if s.strip()]
    unknown = [s for s in statuses if s not in _STATUS_RANK]
    if unknown:
        raise InvalidInput(
            f"status: unknown status {unknown[0]!r}; use {', '.join(_STATUS_RANK)}",
            field="status",
        )
    terms = tuple(dict.fromkeys((q or "").lower().split()))
    if len(terms) > MAX_SEARCH_TERMS:
        raise InvalidInput(f"q: at most {MAX_SEARCH_TERMS} words", field="q")
    return RunFilters(
        terms=terms,
        statuses=tuple(dict.fromkeys(statuses)),
        dataset=(dataset or "").strip() or None,
        preset=(preset or "").strip() or None,
        launcher=(launcher or "").strip() or None,
        tags=tuple(dict.fromkeys(t.strip() for t in tag or () if t.strip())),
        created_after=parse_time(created_after, field="created_after"),
        created_before=parse_time(created_before, field="created_before"),
        params=params,
        sweep_id=sweep,
    )


def param_filters(items: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The ``param.<path>=<value>`` query parameters, checked: (path, value) pairs."""
    found = []
    for name, value in items:
        if not name.startswith("param."):
            continue
        path = name.removeprefix("param.")
        if not _PARAM_PATH.fullmatch(path):
            raise InvalidInput(f"{name}: not a spec path like param.fit.batch_size", field=name)
        found.append((path, value))
    return tuple(dict.fromkeys(found))


def _param_matches(path: str, value: str) -> ColumnElement[bool]:
    """Runs whose run_params row at path equals value: as a number, a boolean or text."""
    text = value.strip()
    number: float | None = {"true": 1.0, "false": 0.0}.get(text.lower())
    if number is None:
        try:
            number = float(text)
        except ValueError:
            number = None
    # one subquery per value column, each through its (key, value, run_id) index
    matches = select(RunParam.run_id).where(
        RunParam.key == path, RunParam.text_value == value[:200]
    )
    if number is not None and math.isfinite(number):
        numbers = select(RunParam.run_id).where(RunParam.key == path, RunParam.num_value == number)
        return Run.id.in_(union_all(numbers, matches))
    return Run.id.in_(matches)


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(filters: RunFilters) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filters.terms:
        # patterns built here, not in SQL, so PostgreSQL's trigram index can serve them
        found = select(RunSearch.run_id).where(
            *(RunSearch.text.like(_like_pattern(term), escape="\\") for term in filters.terms)
        )
        where.append(Run.id.in_(found))
    if filters.statuses:
        where.append(Run.status.in_(filters.statuses))
    if filters.dataset is not None:
        where.append(Run.dataset == filters.dataset)
    if filters.preset is not None:
        where.append(Run.preset == filters.preset)
    if filters.launcher is not None:
        launcher = select(User.id).where(User.username == filters.launcher)
        where.append(Run.launched_by_id.in_(launcher.scalar_subquery()))
    where.extend(Run.id.in_(select(RunTag.run_id).where(RunTag.tag == t)) for t in filters.tags)
    where.extend(_param_matches(path, value) for path, value in filters.params)
    if filters.created_after is not None:
        where.append(Run.created_at >= filters.created_after)
    if filters.created_before is not None:
        where.append(Run.created_at < filters.created_before)
    if filters.sweep_id is not None:
        where.append(Run.sweep_id == filters.sweep_id)
    return where


def _duration(dialect: str) -> ColumnElement[Any]:
    """Seconds from start to finish (or to now while running); NULL before it starts."""
    end = func.coalesce(Run.finished_at, datetime.now(UTC))
    if dialect == "sqlite":
        return func.julianday(end) - func.julianday(Run.started_at)
    return func.extract("epoch", end - Run.started_at)


def _by_param(
    session: Session, *, where: list[ColumnElement[bool]], sort: Sort, limit: int, offset: int
) -> list[Run]:
    """Through run_params' (key, value, run_id) indexes: runs with a number (booleans as 0/1)
    first, then runs with a text value, then runs without the parameter (or null there)."""
    direction = desc if sort.descending else asc

    def valued(column: Any, *present: ColumnElement[bool]) -> Select[Any]:
        joined = and_(RunParam.run_id == Run.id, RunParam.key == sort.name, *present)
        return (
            select(Run)
            .join(RunParam, joined)
            .where(*where)
            .order_by(direction(column), direction(RunParam.run_id))
        )

    numbers = valued(RunParam.num_value, RunParam.num_value.is_not(None))
    texts = valued(
        RunParam.text_value, RunParam.num_value.is_(None), RunParam.text_value.is_not(None)
    )
    has_param = and_(RunParam.run_id == Run.id, RunParam.key == sort.name)
    lacking = select(Run).where(*where, ~exists().where(has_param)).order_by(direction(Run.id))
    return _segmented(session, [numbers, texts, lacking], limit=limit, offset=offset)


def _segmented(
    session: Session, segments: list[Select[Any]], *, limit: int, offset: int
) -> list[Run]:
    """One page over ordered segments read one after another (each through its own index)."""
    runs: list[Run] = []
    skip = offset
    for segment in segments:
        if len(runs) == limit:
            break
        found = list(session.scalars(segment.offset(skip).limit(limit - len(runs))))
        if found:
            runs.extend(found)
            skip = 0
        elif skip:  # the page starts past this segment: count it to know how far
            skip = max(0, skip - _count(session, segment.with_only_columns(Run.id).order_by(None)))
    return runs


def _order(session: Session, sort: Sort) -> list[Any]:
    """ORDER BY terms (SQLAlchemy types nulls_last() loosely, hence Any)."""
    direction = desc if sort.descending else asc
    dialect = session.get_bind().dialect.name
    keys: list[Any]
    if sort.name == "created_at":
        keys = [direction(Run.created_at)]
    elif sort.name == "name":
        keys = [direction(func.lower(Run.name))]
    elif sort.name == "status":
        keys = [direction(case(_STATUS_RANK, value=Run.status, else_=len(_STATUS_RANK)))]
    elif sort.name == "duration":
        keys = [direction(_duration(dialect)).nulls_last()]
    else:  # dataset, preset: nullable
        keys = [direction(getattr(Run, sort.name)).nulls_last()]
    return [*keys, direction(Run.id)]  # ties: by run id, same direction


def _by_metric(
    session: Session, *, where: list[ColumnElement[bool]], sort: Sort, limit: int, offset: int
) -> list[Run]:
    """Runs with a value first, in order via the index; then the runs without one (or NaN)."""
    direction = desc if sort.descending else asc
    has_value = and_(
        LatestMetric.run_id == Run.id,
        LatestMetric.key == sort.name,
        LatestMetric.value.is_not(None),
    )
    ranked = (
        select(Run)
        .join(LatestMetric, has_value)
        .where(*where)
        .order_by(direction(LatestMetric.value), direction(LatestMetric.run_id))
    )
    runs = list(session.scalars(ranked.offset(offset).limit(limit)))
    if len(runs) == limit:
        return runs
    if runs or offset == 0:
        with_value = offset + len(runs)
    else:
        with_value = _count(session, ranked.with_only_columns(Run.id).order_by(None))
    lacking = (
        select(Run)
        .where(*where, ~exists().where(has_value))
        .order_by(direction(Run.id))
        .offset(max(0, offset - with_value))
        .limit(limit - len(runs))
    )
    return runs + list(session.scalars(lacking))


def _count(session: Session, stmt: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)


def _cursor(session: Session, before_id: int) -> ColumnElement[bool]:
    """Keyset on (created_at, id): rows after run before_id in the default order."""
    created = session.scalar(select(Run.created_at).where(Run.id == before_id))
    if created is None:  # that run was deleted meanwhile; ids grow with time
        return Run.id < before_id
    return tuple_(Run.created_at, Run.id) < tuple_(created, before_id)


def page(
    session: Session,
    *,
    filters: RunFilters,
    sort: Sort,
    limit: int,
    offset: int = 0,
    before_id: int | None = None,
) -> RunsPage:
    """One page of runs and how many match; before_id is a cursor for the default sort only."""
    where = _where(filters)
    total = int(session.scalar(select(func.count()).select_from(Run).where(*where)) or 0)
    if before_id is not None:
        if not sort.is_default:
            raise InvalidInput(
                f"before_id: pages only the default sort ({DEFAULT_SORT}); use offset",
                field="before_id",
            )
        where.append(_cursor(session, before_id))
    if sort.kind == "metric":
        items = _by_metric(session, where=where, sort=sort, limit=limit, offset=offset)
    elif sort.kind == "param":
        items = _by_param(session, where=where, sort=sort, limit=limit, offset=offset)
    else:
        stmt = select(Run).where(*where).order_by(*_order(session, sort))
        items = list(session.scalars(stmt.offset(offset).limit(limit)))
    next_cursor = items[-1].id if sort.is_default and len(items) == limit else None
    return RunsPage(items=items, total=total, next_cursor=next_cursor)


def facets(session: Session, *, limit: int = 200) -> dict[str, list[tuple[str, int]]]:
    """Values in use for the filters (statuses, datasets, presets, tags, launchers), most
    used first."""

    def counted(column: Any, table: Any) -> list[tuple[str, int]]:
        n = func.count().label("n")
        stmt = (
            select(column, n)
            .select_from(table)
            .where(column.is_not(None))
            .group_by(column)
            .order_by(n.desc(), column)
            .limit(limit)
        )
        return [(str(value), int(count)) for value, count in session.execute(stmt)]

    return {
        "statuses": counted(Run.status, Run),
        "datasets": counted(Run.dataset, Run),
        "presets": counted(Run.preset, Run),
        "tags": counted(RunTag.tag, RunTag),
        "launchers": counted(User.username, Run.__table__.join(User.__table__)),
    }


def parse_param_paths(text: str | None, *, field: str, limit: int) -> tuple[str, ...]:
    """A comma list of spec paths (fit.batch_size,compile.optimizer.learning_rate)."""
    paths = tuple(dict.fromkeys(p.strip() for p in (text or "").split(",") if p.strip()))
    if len(paths) > limit:
        raise InvalidInput(f"{field}: at most {limit} spec paths", field=field)
    for path in paths:
        if len(path) > 200 or not _PARAM_PATH.fullmatch(path):
            raise InvalidInput(
                f"{field}: {path[:200]!r} is not a spec path like fit.batch_size", field=field
            )
    return paths


def column_keys(session: Session, *, recent: int = 500, limit: int = 1000) -> dict[str, list[str]]:
    """Final metric keys and spec paths of the most recent runs, sorted (per-batch and system
    series are curves, not results). Recent runs only: it costs the same at 100,000 runs."""
    latest = select(Run.id).order_by(Run.id.desc()).limit(recent).scalar_subquery()
    metric_keys = (
        select(LatestMetric.key)
        .where(
            LatestMetric.run_id.in_(latest),
            ~LatestMetric.key.startswith("batch/"),
            ~LatestMetric.key.startswith("sys/"),
        )
        .distinct()
        .order_by(LatestMetric.key)
        .limit(limit)
    )
    param_keys = (
        select(RunParam.key)
        .where(RunParam.run_id.in_(latest))
        .distinct()
        .order_by(RunParam.key)
        .limit(limit)
    )
    return {
        "metrics": list(session.scalars(metric_keys)),
        "params": list(session.scalars(param_keys)),
    }
