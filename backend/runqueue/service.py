"""The queue, seen and steered: queued worker runs wait here, in SQL, and are sent to the broker
in the queue's order (backend.runqueue.order) as the fleet frees room, so a later high-priority
run never waits behind a FIFO full of earlier ones.

``release`` is the one "dispatch next": under a lock it books room on the online workers that
report for this API's queue (their concurrency less the runs they train, their GPUs less those
held; less the messages already sent and not yet taken), reserves the next runs in order for
it (stamping dispatched_at and the queue in the same transaction) and they are sent once that
commits. It reads the held runs in that order from SQL a page at a time
(backend.runqueue.reads) and stops once the fleet is full or nothing left could fit. It runs
after a submit, a run's end, a requeue, a cancel and a worker's report
(``release_after_commit``: the runs' queue_changed and run_ended hooks, backend.lifecycle),
and every two seconds from the API's housekeeping.

When no worker has ever reported for this queue (a worker from before the reports), every run
is sent at once, as before: nothing stalls. A sweep's trials wait for their sweep first
(backend.sweeps.scheduler admits up to max_concurrent of them); once admitted, they are ordered,
booked and sent here like any run, so a big sweep takes its fair share and no more.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import event, func, or_, select, text, update
from sqlalchemy.orm import Session

from backend import dispatch
from backend.broker import queue_for, worker_of_queue, worker_queue
from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import get_engine, session_scope
from backend.errors import Conflict, NotFound
from backend.runqueue import reads
from backend.runqueue.order import Fleet, Room, Waiting, ordered
from backend.runs.models import Run, RunStatus
from backend.spec.gpus import Demand, demand_of
from backend.sweeps.models import Sweep
from backend.workers import hosts
from backend.workers.models import WorkerHost

log = logging.getLogger(__name__)

_RELEASE = "fitboard.release_queue"
REPORTS_KEPT = timedelta(days=1)


# what the queue reads of a spec: its resources only (not thousands of whole specs)
_RESOURCES = Run.spec["resources"].label("resources")


def _demand(resources: dict[str, Any] | None) -> Demand:
    return demand_of({"resources": resources})


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=utcnow().tzinfo)


def reporting_workers(session: Session, *, base: str) -> list[WorkerHost]:
    """Workers seen in the last day that said they consume ``base`` (and its GPU queues)."""
    rows = session.scalars(
        select(WorkerHost).where(WorkerHost.last_seen_at >= utcnow() - REPORTS_KEPT)
    ).all()
    return [row for row in rows if (row.resources or {}).get("queue") == base]


def fleet_room(session: Session, *, workers: list[WorkerHost], lost_after_s: float) -> Fleet:
    """What the online ones among ``workers`` have free now; what they train comes from the
    runs table (a claim or an end counts at once, not at the worker's next report), on the
    GPUs the worker reported for it when it did."""
    now = utcnow()
    online = [w for w in workers if (now - _aware(w.last_seen_at)).total_seconds() <= lost_after_s]
    rooms: dict[str, Room] = {}
    gpu_name: dict[str, dict[int, str]] = {}
    reported: dict[str, dict[int, list[int]]] = {}
    for w in online:
        resources = w.resources or {}
        gpus = resources.get("gpus") or []
        names = [str(g.get("name") or "") for g in gpus]
        rooms[w.name] = Room(
            name=w.name,
            slots=int(resources.get("concurrency") or 1),
            gpus=names,
            free=list(names),
            pool=resources.get("pool"),
            own_queue=bool(resources.get("own_queue")),
        )
        gpu_name[w.name] = {int(g.get("index", i)): names[i] for i, g in enumerate(gpus)}
        reported[w.name] = {
            int(r["run_id"]): list(r.get("gpus") or []) for r in w.running or [] if "run_id" in r
        }
    if rooms:
        for worker_host, run_id, resources in session.execute(
            select(Run.worker_host, Run.id, _RESOURCES).where(
                Run.status == RunStatus.running.value, Run.worker_host.in_(list(rooms))
            )
        ):
            name = str(worker_host)
            held = [
                gpu_name[name][i]
                for i in reported[name].get(int(run_id), [])
                if i in gpu_name[name]
            ]
            rooms[name].hold(_demand(resources), names=held or None)
    return Fleet(rooms=list(rooms.values()))


def _in_flight_by_launcher(session: Session) -> dict[int | None, int]:
    """Runs per launcher running or sent to the broker (what fair share counts)."""
    rows = session.execute(
        select(Run.launched_by_id, func.count())
        .where(reads.in_flight())
        .group_by(Run.launched_by_id)
    )
    return {launcher: int(n) for launcher, n in rows}


def _held(session: Session, *, base: str | None) -> list[Waiting]:
    """Queued runs not sent yet that the dispatcher may send (a sweep's trial once its sweep
    let it go); with ``base``, only that queue family's (and runs from before queues were
    stored). Read with plain columns on the session's connection: thousands of rows, each
    costs microseconds."""
    where = [*reads.queued_worker_runs(), Run.dispatched_at.is_(None), reads.dispatchable()]
    cols = (
        Run.id,
        Run.queue,
        Run.priority,
        Run.launched_by_id,
        Run.created_at,
        Run.moved_to_top_at,
        *reads.DEMAND_COLUMNS,
    )
    stored = select(*cols).where(*where).order_by(Run.created_at, Run.id)
    if base is not None:
        stored = stored.where(or_(reads.family(base), Run.queue.is_(None)))
    legacy_base = base or get_settings().queue
    held = []
    for run_id, queue, priority, launcher, created, top, gpus, gpu_type, pool in (
        session.connection().execute(stored).all()
    ):
        demand = reads.demand_of_columns(gpus, gpu_type, pool)
        if not queue:  # a run from before queues were stored
            queue = queue_for({"resources": {"gpus": demand.gpus}}, legacy_base)
        held.append(Waiting(run_id, queue, priority, launcher, created, top, demand))
    return held


def _outstanding(session: Session, *, base: str) -> list[tuple[int, str, Demand]]:
    """Runs sent and not yet taken: (run id, queue, demand)."""
    return [
        (int(run_id), str(queue), reads.demand_of_columns(gpus, gpu_type, pool))
        for run_id, queue, gpus, gpu_type, pool in session.connection().execute(
            select(Run.id, Run.queue, *reads.DEMAND_COLUMNS).where(
                *reads.queued_worker_runs(), Run.dispatched_at.is_not(None), reads.family(base)
            )
        )
    ]


def _take_back(session: Session, *, run_ids: list[int], base: str) -> None:
    """Runs sent to a worker's own queue that went offline before taking them: held again,
    so the next release books them elsewhere (a message left behind cannot start them twice:
    the claim is atomic)."""
    for run_id in run_ids:
        run = session.get(Run, run_id)
        if run is not None and run.status == RunStatus.queued.value:
            log.warning("run %s: its worker went offline before taking it; queued again", run_id)
            run.dispatched_at = None
            run.queue = queue_for(run.spec, base)
    session.flush()


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
    picked: list[tuple[Waiting, str]] = []
    if not workers:  # no worker reports for this queue: send everything, as before reports
        # (but a run for a GPU type or a pool: only a worker's report can say who has those)
        order = ordered(_held(session, base=base), in_flight={})
        picked = [(w, w.queue) for w in order if not w.demand.constrained]
    else:
        fleet = fleet_room(session, workers=workers, lost_after_s=lost_after_s)
        online = {room.name for room in fleet.rooms}
        stranded = []
        sent = [
            (run_id, worker_of_queue(queue, base, online), demand)
            for run_id, queue, demand in _outstanding(session, base=base)
        ]
        # those booked on one worker first, then the most GPUs first: booked again in any
        # order, a 2-GPU run could find its GPUs split and go uncounted (room sent twice)
        sent.sort(key=lambda s: (s[1] is None, -s[2].min_gpus))
        for run_id, worker, demand in sent:
            if worker == "":  # sent to a worker that is not online now
                stranded.append(run_id)
            else:
                fleet.take(demand, on=worker)
        if stranded:
            _take_back(session, run_ids=stranded, base=base)
        if fleet.full():
            return []
        # read in the queue's order, a page at a time, until the fleet is full or nothing
        # that is left could fit (asked once a page is read with room left)
        kinds: set[Demand] | None = None
        blocked: set[Demand] = set()
        in_flight = _in_flight_by_launcher(session)
        held = reads.held_in_order(session, base=base, in_flight=in_flight)
        for seen, waiting in enumerate(held, start=1):
            if waiting.demand not in blocked:
                worker = fleet.take(waiting.demand)
                if worker is None:
                    blocked.add(waiting.demand)  # runs behind it that ask the same wait too
                else:
                    # a run for a GPU type or a pool goes to the one worker booked for it
                    constrained = waiting.demand.constrained
                    routed = worker_queue(base, worker) if constrained else waiting.queue
                    picked.append((waiting, routed))
                    if fleet.full():
                        break
            if blocked and seen % reads.PAGE == 0:
                kinds = kinds if kinds is not None else reads.held_kinds(session, base=base)
                if blocked >= kinds:
                    break
    by_queue: dict[str, list[int]] = {}
    for waiting, queue in picked:
        by_queue.setdefault(queue, []).append(waiting.run_id)
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
    return [(w.run_id, queue) for w, queue in picked if w.run_id in reserved]


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
    return hosts.reason_for(fleet, demand=demand_of(run.spec))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def listing(session: Session, *, lost_after_s: float, limit: int) -> dict[str, Any]:
    """Every queued run in the order it will start, with why it waits: first those already
    sent to the workers, then those the dispatcher holds (sweep trials their sweep let go
    among them), then sweep trials waiting for a slot of their sweep."""
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
            _RESOURCES,
        )
        .where(
            *reads.queued_worker_runs(), or_(Run.dispatched_at.is_not(None), reads.dispatchable())
        )
        .order_by(Run.dispatched_at, Run.id)
    ).all()
    base = get_settings().queue
    info = {r.id: r for r in rows}
    sent = [r for r in rows if r.dispatched_at is not None]
    held = ordered(_held(session, base=None), in_flight=_in_flight_by_launcher(session))
    sweep_waiting = session.execute(
        select(Run.id, Run.name, Run.queue, Run.priority, Run.launched_by_id, Run.created_at)
        .add_columns(Run.sweep_id, _RESOURCES, Sweep.max_concurrent)
        .join(Sweep, Sweep.id == Run.sweep_id)
        .where(*reads.queued_worker_runs(), Run.dispatched_at.is_(None), Run.admitted_at.is_(None))
        .order_by(Run.sweep_id, Run.trial_number)
    ).all()
    total = len(sent) + len(held) + len(sweep_waiting)
    fleet = _live_fleet(session, base=base, lost_after_s=lost_after_s)
    items: list[dict[str, Any]] = []

    def add(row: Any, *, demand: Demand, reason: str) -> None:
        if len(items) < limit:
            items.append(
                {
                    "run_id": row.id,
                    "name": row.name,
                    "position": len(items) + 1,
                    "priority": row.priority,
                    "launched_by_id": row.launched_by_id,
                    "gpus": demand.min_gpus,
                    "gpu_type": demand.gpu_type,
                    "pool": demand.pool,
                    "queued_since": row.created_at,
                    "moved_to_top": bool(getattr(row, "moved_to_top_at", None)),
                    "sent": getattr(row, "dispatched_at", None) is not None,
                    "sweep_id": row.sweep_id,
                    "waiting": reason,
                }
            )

    for row in sent:
        demand = _demand(row.resources)
        add(
            row,
            demand=demand,
            reason=hosts.reason_for(fleet, demand=demand)
            or "sent to the workers: starts as soon as one takes it",
        )
    ahead = len(sent)
    for waiting in held:
        demand = waiting.demand
        reason = hosts.reason_for(fleet, demand=demand) or (
            f"behind {_plural(ahead, 'run')}"
            if ahead
            else "next: waiting for a free worker slot"
            if not demand.min_gpus and not demand.pool
            else f"next: waiting for {demand.describe()} free on one worker"
        )
        add(info[waiting.run_id], demand=demand, reason=reason)
        ahead += 1
    for row in sweep_waiting:
        add(
            row,
            demand=_demand(row.resources),
            reason=f"waiting for a slot of sweep {row.sweep_id} "
            f"(it runs {_plural(row.max_concurrent, 'trial')} at once)",
        )
    return {"items": items, "total": total, "workers_reporting": bool(fleet)}
