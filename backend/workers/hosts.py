"""Worker hosts: what each worker reports (its host's CPUs, memory and GPUs, and which run
uses which GPU), and the fleet as the API shows it (GET /api/v1/workers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from backend.db.base import utcnow
from backend.runs.models import Run
from backend.spec.gpus import Demand, gpu_matches
from backend.workers.models import WorkerHost


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def report(
    session: Session,
    *,
    name: str,
    host: str,
    token_id: int | None,
    version: str,
    resources: dict[str, Any],
    running: list[dict[str, Any]],
) -> WorkerHost:
    """A worker's report (at start and with every beat): one row per worker name."""
    row = session.scalar(select(WorkerHost).where(WorkerHost.name == name))
    now = utcnow()
    if row is None:
        row = WorkerHost(name=name, started_at=now)
        session.add(row)
    elif now - _aware(row.last_seen_at) > timedelta(minutes=5):
        row.started_at = now  # back after a long silence: a new start
    row.host, row.token_id, row.version = host, token_id, version
    row.resources, row.running, row.last_seen_at = resources, running, now
    session.flush()
    return row


def fleet(session: Session, *, lost_after_s: float) -> list[dict[str, Any]]:
    """Every worker seen in the last day, online ones first: its GPUs, free or busy with which
    run, and its runs."""
    now = utcnow()
    rows = session.scalars(
        select(WorkerHost)
        .where(WorkerHost.last_seen_at >= now - timedelta(days=1))
        .order_by(WorkerHost.name)
    ).all()
    run_ids = {int(r["run_id"]) for row in rows for r in row.running or [] if "run_id" in r}
    names: dict[int, str] = {}
    if run_ids:
        for run_id, run_name in session.execute(
            select(Run.id, Run.name).where(Run.id.in_(run_ids))
        ):
            names[int(run_id)] = str(run_name)
    out = []
    for row in rows:
        online = (now - _aware(row.last_seen_at)).total_seconds() <= lost_after_s
        running = [
            {**r, "run_name": names.get(int(r["run_id"]))} for r in (row.running or []) if online
        ]
        busy = {g: r["run_id"] for r in running for g in r.get("gpus") or []}
        resources = row.resources or {}
        gpus = [
            {**gpu, "run_id": busy.get(gpu.get("index"))} for gpu in resources.get("gpus") or []
        ]
        out.append(
            {
                "name": row.name,
                "host": row.host,
                "online": online,
                "version": row.version,
                "started_at": row.started_at,
                "last_seen_at": row.last_seen_at,
                "cpus": resources.get("cpus"),
                "ram_mb": resources.get("ram_mb"),
                "concurrency": resources.get("concurrency"),
                "queue": resources.get("queue"),
                "pool": resources.get("pool"),
                "own_queue": bool(resources.get("own_queue")),
                "gpus": gpus,
                "running": running,
            }
        )
    out.sort(key=lambda w: (not w["online"], w["name"]))
    return out


def reason_for(online: list[dict[str, Any]], *, demand: Demand) -> str | None:
    """Why a run of ``demand`` cannot start on the ``online`` workers (fleet() items); None
    when one of them could take it (once it has room)."""
    if not online:
        return "waiting: no live worker (start one: make worker, or see Add a GPU host)"
    if demand.constrained:  # only workers that consume their own queue take such a run
        online = [w for w in online if w.get("own_queue")]
    if demand.pool is not None:
        online = [w for w in online if w.get("pool") == demand.pool]
        if not online:
            return f"waiting: no live worker in pool {demand.pool}"
    wanted = demand.min_gpus
    if wanted >= 1 or demand.constrained:
        most = max(
            (
                sum(1 for g in w["gpus"] if gpu_matches(g.get("name"), demand.gpu_type))
                for w in online
            ),
            default=0,
        )
        if most < wanted or not online:
            offered = f"the most any offers is {most}"
            return f"waiting: no live worker offers {demand.describe()} ({offered})"
    return None
