"""GET /metrics in the Prometheus text format: runs by status, the queue, live workers, and
metric points taken in over the API. Counted from the database at each scrape (cheap grouped
counts), so every API process answers the same."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from backend import dispatch
from backend.db.session import session_scope
from backend.health.counters import REGISTRY
from backend.runs.models import Run, RunStatus

router = APIRouter(tags=["health"])


class _RunsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        with session_scope() as session:
            counts = dict(
                session.execute(select(Run.status, func.count(Run.id)).group_by(Run.status)).all()
            )
        runs = GaugeMetricFamily("fitboard_runs", "Runs by status", labels=["status"])
        for status in RunStatus:
            runs.add_metric([status.value], float(counts.get(status.value, 0)))
        yield runs
        yield GaugeMetricFamily(
            "fitboard_queue_length",
            "Runs waiting for a worker",
            value=float(counts.get(RunStatus.queued.value, 0)),
        )
        try:
            workers = float(dispatch.live_workers(timeout_s=0.5))
        except Exception:  # the broker is away: no worker can be reached either
            workers = 0.0
        yield GaugeMetricFamily("fitboard_workers_alive", "Workers answering a ping", value=workers)


REGISTRY.register(_RunsCollector())


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus scrape endpoint (text exposition format)."""
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
