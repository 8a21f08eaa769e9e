"""The queue, seen and steered: queued worker runs wait here, in SQL, and are sent to the broker
in the queue's order (backend.runqueue.order) as the fleet frees room, so a later high-priority
run never waits behind a FIFO full of earlier ones.

``release`` is the one "dispatch next": under a lock it books room on the online workers that
report for this API's queue (their concurrency less the runs they train, their GPUs less those
held; less the messages already sent and not yet taken), reserves the next runs in order for
it (stamping dispatched_at and the queue in the same transaction) and they are sent once that
commits. It runs after a submit, a run's end, a requeue, a cancel and a worker's report
(``release_after_commit``), and every two seconds from the API's housekeeping.

When no worker has ever reported for this queue (a worker from before the reports), every run
is sent at once, as before: nothing stalls. A sweep's trials are held by its own scheduler
(backend.sweeps.scheduler, max_concurrent) and count here once it sends them.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, event, func, or_, select, text, update
from sqlalchemy.orm import Session

from backend import dispatch
from backend.broker import GPUS_SUFFIX, queue_for
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import get_engine, session_scope
from backend.errors import Conflict, NotFound
from backend.runqueue.order import Fleet, Room, Waiting, gpus_of_queue, ordered
from backend.runs.models import Run, RunSource, RunStatus
from backend.sweeps.models import Sweep
from backend.workers import hosts
from backend.workers.models import WorkerHost

log = logging.getLogger(__name__)

_RELEASE = "fitboard.release_queue"
REPORTS_KEPT = timedelta(days=1)


def _family(base: str) -> ColumnElement[bool]:
    """Runs on ``base`` or one of its GPU queues."""
    return or_(Run.queue == base, Run.queue.startswith(base + GPUS_SUFFIX, autoescape=True))


def _queued_worker_runs() -> list[ColumnElement[bool]]:
    return [Run.status == RunStatus.queued.value, Run.source == RunSource.worker.value]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def reporting_workers(session: Session, *, base: str) -> list[WorkerHost]:
    """Workers seen in the last day that said they consume ``base`` (and its GPU queues)."""
    rows = session.scalars(
        select(WorkerHost).where(WorkerHost.last_seen_at >= utcnow() - REPORTS_KEPT)
    ).all()
    return [row for row in rows if (row.resources or {}).get("queue") == base]


def _gpus_asked(spec: dict[str, Any] | None, *, worker_has_gpus: bool) -> int:
    gpus = ((spec or {}).get("resources") or {}).get("gpus")
    if isinstance(gpus, int):
        return gpus
    return 1 if worker_has_gpus else 0  # auto: one GPU on a GPU worker


def fleet_room(session: Session, *, workers: list[WorkerHost], lost_after_s: float) -> Fleet:
    """What the online ones among ``workers`` have free now; what they train comes from the
    runs table (a claim or an end counts at once, not at the worker's next report)."""
    now = utcnow()
    online = [w for w in workers if (now - _aware(w.last_seen_at)).total_seconds() <= lost_after_s]
    gpu_counts = {w.name: len((w.resources or {}).get("gpus") or []) for w in online}
    slots_used: Counter[str] = Counter()
    gpus_used: Counter[str] = Counter()
    if online:
        for worker_host, spec in session.execute(
            select(Run.worker_host, Run.spec).where(
                Run.status == RunStatus.running.value, Run.worker_host.in_(list(gpu_counts))
            )
        ):
            name = str(worker_host)
            slots_used[name] += 1
            gpus_used[name] += _gpus_asked(spec, worker_has_gpus=gpu_counts[name] > 0)
    return Fleet(
        rooms=[
            Room(
                name=w.name,
                slots=int((w.resources or {}).get("concurrency") or 1) - slots_used[w.name],
                gpus=gpu_counts[w.name],
                free_gpus=max(0, gpu_counts[w.name] - gpus_used[w.name]),
            )
            for w in online
        ]
    )


def _in_flight_by_launcher(session: Session) -> dict[int | None, int]:
    """Runs per launcher running or sent to the broker (what fair share counts)."""
    rows = session.execute(
        select(Run.launched_by_id, func.count())
        .where(
            Run.source == RunSource.worker.value,
            or_(
                Run.status == RunStatus.running.value,
                and_(Run.status == RunStatus.queued.value, Run.dispatched_at.is_not(None)),
            ),
        )
        .group_by(Run.launched_by_id)
    )
    return {launcher: int(n) for launcher, n in rows}


def _held(session: Session, *, base: str | None) -> list[Waiting]:
    """Queued runs not sent yet that the dispatcher may send (a sweep's wait for its sweep);
    with ``base``, only that queue family's (and runs from before queues were stored)."""
    where = [*_queued_worker_runs(), Run.dispatched_at.is_(None), Run.sweep_id.is_(None)]
    cols = (
        Run.id,
        Run.queue,
        Run.priority,
        Run.launched_by_id,
        Run.created_at,
        Run.moved_to_top_at,
    )
    stored = select(*cols).where(*where, Run.queue.is_not(None))
    if base is not None:
        stored = stored.where(_family(base))
    found = [
        Waiting(int(i), str(q), str(p), launcher, created, top)
        for i, q, p, launcher, created, top in session.execute(stored)
    ]
    legacy_base = base or get_settings().queue
    for i, spec, p, launcher, created, top in session.execute(
        select(Run.id, Run.spec, *cols[2:]).where(*where, Run.queue.is_(None))
    ):
        found.append(Waiting(int(i), queue_for(spec, legacy_base), str(p), launcher, created, top))
    return found


def _outstanding_queues(session: Session, *, base: str) -> list[str]:
    return [
        str(q)
        for q in session.scalars(
            select(Run.queue).where(
                *_queued_worker_runs(), Run.dispatched_at.is_not(None), _family(base)
            )
        )
    ]


def _lock(session: Session, base: str) -> None:
    """One release at a time per queue family (two would book the same free slot)."""
    if session.get_bind().dialect.name == "postgresql":
        key = zlib.crc32(f"fitboard.queue:{base}".encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def release(session: Session, *, base: str, lost_after_s: float) -> list[tuple[int, str]]:
    """Reserve the next queued runs for the room the fleet has now; they are sent by the
    caller once this commits (``send``). (run id, queue) pairs, in order."""
    _lock(session, base)
    workers = reporting_workers(session, base=base)
    if not workers:  # no worker reports for this queue: send everything, as before reports
        picked = ordered(_held(session, base=base), in_flight={})
    else:
        fleet = fleet_room(session, workers=workers, lost_after_s=lost_after_s)
        for queue in _outstanding_queues(session, base=base):
            fleet.take(queue)
        if fleet.full():
            return []
        order = ordered(_held(session, base=base), in_flight=_in_flight_by_launcher(session))
        picked, blocked = [], set()
        for waiting in order:
            if waiting.queue in blocked:
                continue
            if fleet.take(waiting.queue) is None:
                blocked.add(waiting.queue)  # runs behind it on its queue wait too
                continue
            picked.append(waiting)
            if fleet.full():
                break
    by_queue: dict[str, list[int]] = {}
    for waiting in picked:
        by_queue.setdefault(waiting.queue, []).append(waiting.run_id)
    reserved: set[int] = set()
    now = utcnow()
    for queue, run_ids in by_queue.items():
        result = session.execute(
            update(Run)
            .where(Run.id.in_(run_ids), Run.status == RunStatus.queued.value)
            .where(Run.dispatched_at.is_(None))
            .values(dispatched_at=now, queue=queue)
            .returning(Run.id)
            .execution_options(synchronize_session=False)
        )
        reserved.update(int(i) for i in result.scalars())
    return [(w.run_id, w.queue) for w in picked if w.run_id in reserved]


def send(picked: list[tuple[int, str]]) -> None:
    for run_id, queue in picked:
        if not dispatch.dispatch(run_id, queue):
            # not in the broker: free the reservation so the next release sends it again
            with get_engine().begin() as conn:
                conn.execute(
                    update(Run)
                    .where(Run.id == run_id, Run.status == RunStatus.queued.value)
                    .values(dispatched_at=None)
                )


def release_now() -> None:
    """Send the next runs this API's queue has room for (its own transaction)."""
    settings = get_settings()
    try:
        with session_scope() as session:
            picked = release(
                session, base=settings.queue, lost_after_s=settings.worker_lost_after_s
            )
    except Exception:  # the housekeeping tries again within seconds
        log.exception("could not release the next queued runs")
        return
    send(picked)


def release_after_commit(session: Session) -> None:
    """Room may have changed (a run queued, ended, cancelled; a worker reported): once the
    caller commits, send the next runs."""
    session.info[_RELEASE] = True


@event.listens_for(Session, "after_commit")
def _release_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return
    if session.info.pop(_RELEASE, False):
        release_now()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_RELEASE, None)


# -- steering ------------------------------------------------------------------------------


def _queued(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} does not exist")
    if run.status != RunStatus.queued.value:
        raise Conflict(f"run {run_id} is {run.status}: only a queued run's place can change")
    return run


def set_priority(session: Session, *, run_id: int, priority: str) -> Run:
    """Change a queued run's priority (its place among the runs not yet sent)."""
    run = _queued(session, run_id)
    run.priority = priority
    session.flush()
    log.info("run %s: priority %s", run_id, priority)
    return run


def move_to_top(session: Session, *, run_id: int) -> Run:
    """Put a queued run before every other (the latest moved goes first)."""
    run = _queued(session, run_id)
    run.moved_to_top_at = utcnow()
    session.flush()
    log.info("run %s: moved to the top of the queue", run_id)
    return run


# -- what GET /api/v1/queue shows ------------------------------------------------------------


def _live_fleet(session: Session, *, base: str, lost_after_s: float) -> list[dict[str, Any]]:
    """The online workers that take this queue's runs: those that report for it, or, when
    none ever did (workers from before the reports), every online one."""
    online = [w for w in hosts.fleet(session, lost_after_s=lost_after_s) if w["online"]]
    if reporting_workers(session, base=base):
        return [w for w in online if w["queue"] == base]
    return online


def waiting_reason(session: Session, *, run: Run, lost_after_s: float) -> str | None:
    """Why a queued run cannot start now as far as the fleet tells (GET /runs/{id})."""
    base = get_settings().queue
    fleet = _live_fleet(session, base=base, lost_after_s=lost_after_s)
    return hosts.reason_for(fleet, gpus=gpus_of_queue(run.queue or queue_for(run.spec, base)))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def listing(session: Session, *, lost_after_s: float, limit: int) -> dict[str, Any]:
    """Every queued run in the order it will start, with why it waits: first those already
    sent to the workers, then those the dispatcher holds, then sweep trials waiting for a
    slot of their sweep."""
    rows = session.execute(
        select(
            Run.id,
            Run.name,
            Run.queue,
            Run.priority,
            Run.launched_by_id,
            Run.created_at,
            Run.moved_to_top_at,
            Run.dispatched_at,
            Run.sweep_id,
        )
        .where(*_queued_worker_runs(), or_(Run.dispatched_at.is_not(None), Run.sweep_id.is_(None)))
        .order_by(Run.dispatched_at, Run.id)
    ).all()
    base = get_settings().queue
    info = {r.id: r for r in rows}
    sent = [r for r in rows if r.dispatched_at is not None]
    held = ordered(_held(session, base=None), in_flight=_in_flight_by_launcher(session))
    queue_of = {w.run_id: w.queue for w in held}
    sweep_waiting = session.execute(
        select(Run.id, Run.name, Run.queue, Run.priority, Run.launched_by_id, Run.created_at)
        .add_columns(Run.sweep_id, Sweep.max_concurrent)
        .join(Sweep, Sweep.id == Run.sweep_id)
        .where(*_queued_worker_runs(), Run.dispatched_at.is_(None))
        .order_by(Run.sweep_id, Run.trial_number)
    ).all()
    total = len(sent) + len(held) + len(sweep_waiting)
    fleet = _live_fleet(session, base=base, lost_after_s=lost_after_s)
    items: list[dict[str, Any]] = []

    def add(row: Any, *, queue: str, reason: str) -> None:
        if len(items) < limit:
            items.append(
                {
                    "run_id": row.id,
                    "name": row.name,
                    "position": len(items) + 1,
                    "priority": row.priority,
                    "launched_by_id": row.launched_by_id,
                    "gpus": gpus_of_queue(queue),
                    "queued_since": row.created_at,
                    "moved_to_top": bool(getattr(row, "moved_to_top_at", None)),
                    "sent": getattr(row, "dispatched_at", None) is not None,
                    "sweep_id": row.sweep_id,
                    "waiting": reason,
                }
            )

    for row in sent:
        queue = row.queue or base
        add(
            row,
            queue=queue,
            reason=hosts.reason_for(fleet, gpus=gpus_of_queue(queue))
            or "sent to the workers: starts as soon as one takes it",
        )
    ahead = len(sent)
    for waiting in held:
        row = info[waiting.run_id]
        gpus = gpus_of_queue(queue_of[waiting.run_id])
        reason = hosts.reason_for(fleet, gpus=gpus) or (
            f"behind {_plural(ahead, 'run')}"
            if ahead
            else "next: waiting for a free worker slot"
            if not gpus
            else f"next: waiting for {_plural(gpus, 'free GPU')} on one worker"
        )
        add(row, queue=queue_of[waiting.run_id], reason=reason)
        ahead += 1
    for row in sweep_waiting:
        add(
            row,
            queue=row.queue or base,
            reason=f"waiting for a slot of sweep {row.sweep_id} "
            f"(it runs {_plural(row.max_concurrent, 'trial')} at once)",
        )
    return {"items": items, "total": total, "workers_reporting": bool(fleet)}
