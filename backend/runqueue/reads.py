"""What the dispatcher reads of the queued runs, in SQL: the queue's order computed by the
database (backend.runqueue.order's rules as a sort key), a page at a time, so a decision
reads the first runs of 10,000 and not all of them (bench/dispatch.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from backend.broker import GPUS_SUFFIX, ON_WORKER, queue_for
from backend.runqueue.order import PRIORITIES, Waiting
from backend.runs.models import Run, RunSource, RunStatus
from backend.spec.gpus import Demand, demand_of

PAGE = 256  # held runs read at a time (the fleet is full within the first page, mostly)


def family(base: str) -> ColumnElement[bool]:
    """Runs on ``base``, one of its GPU queues or one of its workers' own queues."""
    return or_(
        Run.queue == base,
        Run.queue.startswith(base + GPUS_SUFFIX, autoescape=True),
        Run.queue.startswith(base + ON_WORKER, autoescape=True),
    )


# the three values of a spec's resources the queue reads, as text (no JSON to parse)
DEMAND_COLUMNS = (
    Run.spec[("resources", "gpus")].as_string().label("gpus"),
    Run.spec[("resources", "gpu_type")].as_string().label("gpu_type"),
    Run.spec[("resources", "pool")].as_string().label("pool"),
)


@lru_cache(maxsize=1024)
def demand_of_columns(gpus: object, gpu_type: str | None, pool: str | None) -> Demand:
    """The Demand of a spec whose resources hold these values (JSON text; an integer on
    SQLite)."""
    count: int | None = None
    if isinstance(gpus, int) or (isinstance(gpus, str) and gpus.isdigit()):
        count = int(gpus)
    return demand_of({"resources": {"gpus": count, "gpu_type": gpu_type, "pool": pool}})


def queued_worker_runs() -> list[ColumnElement[bool]]:
    return [Run.status == RunStatus.queued.value, Run.source == RunSource.worker.value]


def dispatchable() -> ColumnElement[bool]:
    """Not a sweep's trial, or one its sweep has let go (max_concurrent)."""
    return or_(Run.sweep_id.is_(None), Run.admitted_at.is_not(None))


def in_flight() -> ColumnElement[bool]:
    """A worker run running or sent to the broker (what fair share counts)."""
    return and_(
        Run.source == RunSource.worker.value,
        or_(
            Run.status == RunStatus.running.value,
            and_(Run.status == RunStatus.queued.value, Run.dispatched_at.is_not(None)),
        ),
    )


def _held_where(base: str) -> list[ColumnElement[bool]]:
    return [
        *queued_worker_runs(),
        Run.dispatched_at.is_(None),
        dispatchable(),
        Run.priority.in_(PRIORITIES),
        or_(family(base), Run.queue.is_(None)),
    ]


def held_kinds(session: Session, *, base: str) -> set[Demand]:
    """The demands the held runs of ``base``'s family ask (a handful)."""
    stmt = select(*DEMAND_COLUMNS).where(*_held_where(base)).distinct()
    return {demand_of_columns(*row) for row in session.connection().execute(stmt)}


def held_in_order(
    session: Session, *, base: str, in_flight: Mapping[int | None, int], page: int = PAGE
) -> Iterator[Waiting]:
    """The held runs of ``base``'s family in the queue's order (order.ordered, with
    ``in_flight``: runs per launcher running or sent), a page at a time (the database sorts
    out only the first ones), so the caller stops reading once the fleet is full.

    Fair share as a sort key: order.ordered merges the launchers' lines by (runs the launcher
    has in flight or ahead, age, id); a launcher's k-th run at a priority is ahead of it by its
    runs in flight, its runs moved to the top, its runs at higher priorities and k, so sorting
    by that count, then age, then id, gives the same order as the merge."""
    rank = case({p: r for r, p in enumerate(PRIORITIES)}, value=Run.priority, else_=len(PRIORITIES))
    moved = Run.moved_to_top_at.is_not(None)
    # narrow rows (no spec) for the windows and the sort; the page's details are read after
    held = (
        select(
            Run.id,
            Run.launched_by_id,
            Run.created_at,
            Run.moved_to_top_at,
            rank.label("rank"),
            func.count(Run.moved_to_top_at).over(partition_by=Run.launched_by_id).label("ahead"),
            func.row_number()
            .over(partition_by=(Run.launched_by_id, moved), order_by=(rank, Run.created_at, Run.id))
            .label("position"),
        )
        .where(*_held_where(base))
        .subquery()
    )
    h = held.c
    counted = {k: n for k, n in in_flight.items() if k is not None and n}
    flying: ColumnElement[Any] = (
        case(counted, value=h.launched_by_id, else_=0) if counted else literal(0)
    )
    if in_flight.get(None):
        flying = case((h.launched_by_id.is_(None), in_flight[None]), else_=flying)
    top = h.moved_to_top_at.is_not(None)
    ordered_ids = select(h.id).order_by(
        case((top, 0), else_=1),
        h.moved_to_top_at.desc(),
        case((top, h.id), else_=0),  # moved: the latest move first, then by id
        h.rank,
        flying + h.ahead + h.position,
        h.created_at,
        h.id,
    )
    start = 0
    while True:
        run_ids = list(
            session.connection().execute(ordered_ids.limit(page).offset(start)).scalars()
        )
        if not run_ids:
            return
        details = {
            row[0]: row
            for row in session.connection().execute(
                select(
                    Run.id,
                    Run.queue,
                    Run.priority,
                    Run.launched_by_id,
                    Run.created_at,
                    Run.moved_to_top_at,
                    *DEMAND_COLUMNS,
                ).where(Run.id.in_(run_ids))
            )
        }
        for run_id in run_ids:
            _, queue, priority, launcher, created, top_at, gpus, gpu_type, pool = details[run_id]
            demand = demand_of_columns(gpus, gpu_type, pool)
            if not queue:  # a run from before queues were stored
                queue = queue_for({"resources": {"gpus": demand.gpus}}, base)
            yield Waiting(run_id, queue, priority, launcher, created, top_at, demand)
        if len(run_ids) < page:
            return
        start += page
