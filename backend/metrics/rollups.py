"""A pre-aggregated level under long metric series, so a 1,000,000-point curve downsamples fast.

metric_rollups holds, per run, key and bucket of ROLLUP_WIDTH consecutive steps, the first
step, the point count and the sum, min and max of the values. It is filled on read: the first
downsampled read of a long series aggregates the raw points once; later reads aggregate only
the points written since, so a series of N points is served from N / ROLLUP_WIDTH rows.

The last (still filling) bucket is never stored; it is read from the raw points each time.
Steps mostly arrive in increasing order (the trainer's), so new points land past the stored
buckets; a point written into a bucket already rolled up (an out-of-order step, e.g. from an
external client) makes metrics.record drop that key's rollups from there on, to be rebuilt on
the next read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Integer,
    String,
    and_,
    delete,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from backend.db.base import Base
from backend.db.upsert import insert_ignore
from backend.metrics.models import MetricPoint

ROLLUP_WIDTH = 100
# series spanning fewer steps are downsampled from the raw points (fast enough below this)
MIN_SPAN = 50_000


class MetricRollup(Base):
    __tablename__ = "metric_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # step // ROLLUP_WIDTH
    step: Mapped[int] = mapped_column(BigInteger)  # the first step in the bucket
    points: Mapped[int] = mapped_column(Integer)
    n_values: Mapped[int] = mapped_column(Integer)  # points with a value (NaN is NULL)
    total: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)


FORGET_CHUNK = 200


def forget_run(session: Session, *, run_id: int) -> None:
    session.execute(delete(MetricRollup).where(MetricRollup.run_id == run_id))


def forget_from(session: Session, *, run_id: int, first_steps: Mapping[str, int]) -> None:
    """Drop stored buckets at or after each key's first written step (normally none exist)."""
    items = list(first_steps.items())
    # a few hundred conditions per statement: SQLite refuses expression trees 1,000 deep
    for start in range(0, len(items), FORGET_CHUNK):
        session.execute(
            delete(MetricRollup).where(
                MetricRollup.run_id == run_id,
                or_(
                    *(
                        and_(MetricRollup.key == key, MetricRollup.bucket >= step // ROLLUP_WIDTH)
                        for key, step in items[start : start + FORGET_CHUNK]
                    )
                ),
            )
        )


def _aggregate(session: Session, where: list[Any]) -> list[Any]:
    bucket = (MetricPoint.step // ROLLUP_WIDTH).label("bucket")
    return list(
        session.execute(
            select(
                bucket,
                func.min(MetricPoint.step).label("step"),
                func.count().label("points"),
                func.count(MetricPoint.value).label("n_values"),
                func.sum(MetricPoint.value).label("total"),
                func.min(MetricPoint.value).label("low"),
                func.max(MetricPoint.value).label("high"),
            )
            .where(*where)
            .group_by(bucket)
        ).all()
    )


def series(
    session: Session, *, run_id: int, key: str, max_points: int, lo: int, hi: int
) -> dict[str, Any] | None:
    """The whole series in at most max_points buckets (first step, mean, min, max each);
    None when it holds no more than max_points points (sparse steps): read those raw."""
    last_bucket = hi // ROLLUP_WIDTH  # still filling: read raw, never stored
    mine = [MetricRollup.run_id == run_id, MetricRollup.key == key]
    done = session.scalar(select(func.max(MetricRollup.bucket)).where(*mine))
    start = 0 if done is None else (int(done) + 1) * ROLLUP_WIDTH
    raw = [MetricPoint.run_id == run_id, MetricPoint.key == key]
    if start < last_bucket * ROLLUP_WIDTH:
        fresh = _aggregate(
            session,
            [*raw, MetricPoint.step >= start, MetricPoint.step < last_bucket * ROLLUP_WIDTH],
        )
        insert_ignore(
            session,
            MetricRollup.__table__,  # type: ignore[arg-type]
            [{"run_id": run_id, "key": key, **row._asdict()} for row in fresh],
        )
    per = max(1, math.ceil((last_bucket - lo // ROLLUP_WIDTH + 1) / max_points))
    out = (MetricRollup.bucket // per).label("out")
    stored = session.execute(
        select(
            out,
            func.min(MetricRollup.step),
            func.sum(MetricRollup.points),
            func.sum(MetricRollup.n_values),
            func.sum(MetricRollup.total),
            func.min(MetricRollup.low),
            func.max(MetricRollup.high),
        )
        .where(*mine, MetricRollup.bucket < last_bucket)
        .group_by(out)
    ).all()
    tail = _aggregate(session, [*raw, MetricPoint.step >= last_bucket * ROLLUP_WIDTH])
    merged: dict[int, list[Any]] = {}
    for index, step, points, n_values, total, low, high in [
        *stored,
        *((r.bucket // per, r.step, r.points, r.n_values, r.total, r.low, r.high) for r in tail),
    ]:
        into = merged.get(int(index))
        if into is None:
            merged[int(index)] = [step, points, n_values, total, low, high]
            continue
        into[0] = min(into[0], step)
        into[1] += points
        into[2] += n_values
        into[3] = _add(into[3], total)
        into[4] = _pick(min, into[4], low)
        into[5] = _pick(max, into[5], high)
    rows = [merged[i] for i in sorted(merged)]
    count = int(sum(r[1] for r in rows))
    if count <= max_points:
        return None
    return {
        "key": key,
        "downsampled": True,
        "count": count,
        "steps": [int(r[0]) for r in rows],
        "values": [float(r[3]) / r[2] if r[2] and r[3] is not None else None for r in rows],
        "min": [r[4] for r in rows],
        "max": [r[5] for r in rows],
    }


def _add(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else a + b


def _pick(fn: Any, a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else fn(a, b)
