"""Metric series of a run, downsampled with a min/max envelope."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from backend.api.deps import SessionDep
from backend.bounds import Count64, Id
from backend.events import service as events
from backend.metrics import service as metrics
from backend.runs import service as runs
from backend.users.deps import ReaderUser

router = APIRouter(prefix="/runs/{run_id}", tags=["metrics"])


class Series(BaseModel):
    key: str
    downsampled: bool
    count: int
    steps: list[int]
    values: list[float | None]
    min: list[float | None] | None = None
    max: list[float | None] | None = None


class MetricsOut(BaseModel):
    run_id: int
    last_event_id: int
    series: dict[str, Series]


class MetricKeysOut(BaseModel):
    run_id: int
    keys: list[str]


@router.get("/metrics/keys", response_model=MetricKeysOut)
def list_metric_keys(run_id: Id, session: SessionDep, _: ReaderUser) -> MetricKeysOut:
    """Every metric key the run has recorded (``batch/*`` and ``sys/*`` included), sorted: what
    to ask ``/metrics?keys=`` for."""
    runs.get(session, run_id)
    return MetricKeysOut(run_id=run_id, keys=metrics.keys(session, run_id=run_id))


@router.get("/metrics", response_model=MetricsOut, response_model_exclude_none=True)
def get_metrics(
    run_id: Id,
    session: SessionDep,
    _: ReaderUser,
    keys: Annotated[str | None, Query(description="Comma-separated; all keys when omitted")] = None,
    max_points: Annotated[int, Query(ge=10, le=100_000)] = 2000,
    min_step: Count64 | None = None,
    max_step: Count64 | None = None,
) -> dict[str, Any]:
    """Series per key. last_event_id: open the live stream after it to continue from here."""
    runs.get(session, run_id)
    # read the watermark first: anything newer arrives through the stream (steps may repeat)
    last_event_id = events.last_id(session, run_id=run_id)
    wanted = [k for k in keys.split(",") if k] if keys else metrics.keys(session, run_id=run_id)
    series = {
        key: metrics.series(
            session,
            run_id=run_id,
            key=key,
            max_points=max_points,
            min_step=min_step,
            max_step=max_step,
        )
        for key in wanted
    }
    return {"run_id": run_id, "last_event_id": last_event_id, "series": series}
