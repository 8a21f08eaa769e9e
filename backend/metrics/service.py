"""Write metric batches idempotently; read series downsampled with a min/max envelope."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, TypedDict

from sqlalchemy import BigInteger, and_, delete, func, literal, or_, select
from sqlalchemy.orm import Session

from backend.db.upsert import upsert
from backend.errors import InvalidInput
from backend.events import service as events
from backend.jsonpolicy import INF_STANDIN
from backend.metrics import ingest, rollups
from backend.metrics.ingest import PointColumns
from backend.metrics.models import LatestMetric, MetricPoint

# +-inf is stored as +-1e300 (jsonpolicy.INF_STANDIN): SQL and JSON hold it, and sums over
# buckets cannot overflow


_BELOW_STEPS, _ABOVE_STEPS = -(2**63) - 1, 2**63  # outside BIGINT: no stored step


class Point(TypedDict):
    key: str
    step: int
    value: float | None
    wall_time: float


def sanitize(value: Any) -> float | None:
    """NaN becomes None, +-inf becomes +-1e300; everything else a plain float."""
    number = float(value)
    if math.isnan(number):
        return None
    if math.isinf(number):
        return INF_STANDIN if number > 0 else -INF_STANDIN
    return number


def record(
    session: Session, *, run_id: int, points: Sequence[Point] | PointColumns, uid: str
) -> None:
    """Store a batch of points (a list of points or its columns) and one live event for it;
    retrying the same uid is a no-op. A (run, key, step) already stored keeps its first value;
    the latest value of a key is its last point at its highest step."""
    columns = points if isinstance(points, PointColumns) else PointColumns.from_points(points)
    if not len(columns):
        return
    if not all(map(math.isfinite, columns.wall_times)):
        raise InvalidInput("wall_time: must be a finite number", field="wall_time")
    ingest.insert_ignore(session, run_id=run_id, points=columns)
    # per key: the first step (rollups from there on are stale) and the last point at the
    # highest step (the latest value), in one pass over the batch
    n_keys = len(columns.keys)
    first = [_ABOVE_STEPS] * n_keys
    top = [_BELOW_STEPS] * n_keys
    top_at = [0] * n_keys
    for at, (k, step) in enumerate(zip(columns.key_index, columns.steps, strict=True)):
        if step >= top[k]:
            top[k], top_at[k] = step, at
        if step < first[k]:
            first[k] = step
    written = [k for k in range(n_keys) if top[k] != _BELOW_STEPS]
    rollups.forget_from(  # only an out-of-order step hits one
        session, run_id=run_id, first_steps={columns.keys[k]: first[k] for k in written}
    )
    upsert(
        session,
        LatestMetric.__table__,  # type: ignore[arg-type]
        [
            {
                "run_id": run_id,
                "key": columns.keys[k],
                "step": top[k],
                "value": columns.values[top_at[k]],
            }
            for k in written
        ],
        index_elements=["run_id", "key"],
        update=["step", "value"],
        where_newer="step",
    )
    data = {
        "points": [
            [key, step, value, wall]
            for key, step, value, wall in zip(
                columns.key_names(), columns.steps, columns.values, columns.wall_times, strict=True
            )
        ]
    }
    # every number is finite: wall times were checked, values made storable (PointColumns)
    events.append(session, run_id=run_id, kind="metrics", data=data, uid=uid, finite=True)


def forget_run(session: Session, *, run_id: int) -> None:
    """Drop every point of a run (its rollups and latest values too): a lost attempt's curves,
    which the next attempt writes again from its start."""
    session.execute(delete(MetricPoint).where(MetricPoint.run_id == run_id))
    session.execute(delete(LatestMetric).where(LatestMetric.run_id == run_id))
    rollups.forget_run(session, run_id=run_id)


def forget_after(session: Session, *, run_id: int, epoch: int, batch_step: int) -> None:
    """Keep a run's points up to a checkpoint and drop the rest: ``batch/*`` up to
    ``batch_step``, the epoch series up to ``epoch``, no ``sys/*`` (their steps are seconds of
    one training process). The latest values are those of what is kept."""
    point = MetricPoint
    is_batch, is_sys = point.key.startswith("batch/"), point.key.startswith("sys/")
    session.execute(
        delete(point).where(
            point.run_id == run_id,
            or_(
                is_sys,
                and_(is_batch, point.step > batch_step),
                and_(~is_batch, ~is_sys, point.step > epoch),
            ),
        )
    )
    session.execute(delete(LatestMetric).where(LatestMetric.run_id == run_id))
    rollups.forget_run(session, run_id=run_id)
    last = (
        select(point.key, func.max(point.step).label("step"))
        .where(point.run_id == run_id)
        .group_by(point.key)
        .subquery()
    )
    rows = session.execute(
        select(point.key, point.step, point.value)
        .join(last, and_(point.key == last.c.key, point.step == last.c.step))
        .where(point.run_id == run_id)
    ).all()
    if rows:
        session.execute(
            LatestMetric.__table__.insert(),  # type: ignore[attr-defined]
            [{"run_id": run_id, "key": r.key, "step": r.step, "value": r.value} for r in rows],
        )


def copy_until(
    session: Session, *, source_id: int, run_id: int, epoch: int, batch_step: int
) -> None:
    """A fork's curves start with its source's up to the checkpoint it starts from: copy the
    source's points there (as :func:`forget_after` keeps them) into the run."""
    columns = (MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
    copied = select(literal(run_id, BigInteger).label("run_id"), *columns).where(
        MetricPoint.run_id == source_id, ~MetricPoint.key.startswith("sys/")
    )
    session.execute(
        MetricPoint.__table__.insert().from_select(  # type: ignore[attr-defined]
            ["run_id", "key", "step", "value", "wall_time"], copied
        )
    )
    forget_after(session, run_id=run_id, epoch=epoch, batch_step=batch_step)


def latest(session: Session, *, run_ids: Iterable[int]) -> dict[int, dict[str, float | None]]:
    ids = list(run_ids)
    out: dict[int, dict[str, float | None]] = {run_id: {} for run_id in ids}
    if not ids:
        return out
    for row in session.execute(
        select(LatestMetric.run_id, LatestMetric.key, LatestMetric.value).where(
            LatestMetric.run_id.in_(ids)
        )
    ):
        out[row.run_id][row.key] = row.value
    return out


def keys(session: Session, *, run_id: int) -> list[str]:
    stmt = select(LatestMetric.key).where(LatestMetric.run_id == run_id).order_by(LatestMetric.key)
    return list(session.scalars(stmt))


def series(
    session: Session,
    *,
    run_id: int,
    key: str,
    max_points: int,
    min_step: int | None = None,
    max_step: int | None = None,
) -> dict[str, Any]:
    """One series; above max_points, buckets of steps with first step, mean, min and max."""
    where = [MetricPoint.run_id == run_id, MetricPoint.key == key]
    if min_step is not None:
        where.append(MetricPoint.step >= min_step)
    if max_step is not None:
        where.append(MetricPoint.step <= max_step)
    if min_step is None and max_step is None:
        # a long whole series comes from the pre-aggregated level (not counting 1M rows)
        lo, hi = session.execute(
            select(func.min(MetricPoint.step), func.max(MetricPoint.step)).where(*where)
        ).one()
        if lo is not None and hi - lo + 1 >= rollups.MIN_SPAN:
            rolled = rollups.series(
                session, run_id=run_id, key=key, max_points=max_points, lo=lo, hi=hi
            )
            if rolled is not None:
                return rolled
    count, lo, hi = session.execute(
        select(func.count(), func.min(MetricPoint.step), func.max(MetricPoint.step)).where(*where)
    ).one()
    if count <= max_points:
        rows = session.execute(
            select(MetricPoint.step, MetricPoint.value).where(*where).order_by(MetricPoint.step)
        ).all()
        return {
            "key": key,
            "downsampled": False,
            "count": count,
            "steps": [r.step for r in rows],
            "values": [r.value for r in rows],
        }
    return _downsample_minmax(
        session, where=where, key=key, count=count, lo=lo, hi=hi, buckets=max_points
    )


def _downsample_minmax(
    session: Session, *, where: list[Any], key: str, count: int, lo: int, hi: int, buckets: int
) -> dict[str, Any]:
    width = max(1, math.ceil((hi - lo + 1) / buckets))
    bucket = ((MetricPoint.step - lo) // width).label("bucket")
    rows = session.execute(
        select(
            func.min(MetricPoint.step).label("step"),
            # sum/count, not avg: PostgreSQL's avg(float8) also sums squares, which overflow
            (func.sum(MetricPoint.value) / func.count(MetricPoint.value)).label("mean"),
            func.min(MetricPoint.value).label("low"),
            func.max(MetricPoint.value).label("high"),
        )
        .where(*where)
        .group_by(bucket)
        .order_by(func.min(MetricPoint.step))
    ).all()
    return {
        "key": key,
        "downsampled": True,
        "count": count,
        "steps": [r.step for r in rows],
        "values": [None if r.mean is None else float(r.mean) for r in rows],
        "min": [r.low for r in rows],
        "max": [r.high for r in rows],
    }
