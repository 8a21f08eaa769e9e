"""A long series is downsampled from metric_rollups: same envelope as the raw points."""

from __future__ import annotations

import math
from collections.abc import Iterable

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from backend.db.session import session_scope
from backend.metrics import rollups
from backend.metrics import service as metrics


def _value(step: int) -> float:
    return math.sin(step / 500) + step / 1e5


def _write(run_id: int, steps: Iterable[int]) -> None:
    points = [
        metrics.Point(key="batch/loss", step=s, value=_value(s), wall_time=0.0) for s in steps
    ]
    with session_scope() as session:
        for i in range(0, len(points), 20_000):
            metrics.record(session, run_id=run_id, points=points[i : i + 20_000], uid=f"u{i}")


def test_long_series_from_rollups_matches_the_raw_points(api: TestClient) -> None:
    response = api.post("/api/v1/runs", json={"name": "long", "preset": "digits-mlp"})
    run_id = response.json()["id"]
    span = rollups.MIN_SPAN + 5_050
    _write(run_id, range(1, span + 1))
    url = f"/api/v1/runs/{run_id}/metrics"
    got = api.get(url, params={"keys": "batch/loss", "max_points": 200}).json()
    series = got["series"]["batch/loss"]
    assert series["downsampled"] and series["count"] == span
    assert len(series["steps"]) <= 200 and series["steps"] == sorted(series["steps"])
    values = [math.sin(s / 500) + s / 1e5 for s in range(1, span + 1)]
    assert min(series["min"]) == min(values) and max(series["max"]) == max(values)
    # each bucket's mean lies inside its envelope, and the buckets cover every step once
    for lo, mean, hi in zip(series["min"], series["values"], series["max"], strict=True):
        assert lo - 1e-9 <= mean <= hi + 1e-9
    with session_scope() as session:
        stored = session.scalar(
            select(func.sum(rollups.MetricRollup.points)).where(
                rollups.MetricRollup.run_id == run_id
            )
        )
    assert stored == span - span % rollups.ROLLUP_WIDTH - 1, "all but the last bucket stored"

    # points written since are included on the next read (the old buckets are reused)
    _write(run_id, range(span + 1, span + 3_001))
    again = api.get(url, params={"keys": "batch/loss", "max_points": 200}).json()
    assert again["series"]["batch/loss"]["count"] == span + 3_000
    raw = api.get(url, params={"keys": "batch/loss", "max_points": 100_000, "min_step": 1})
    assert raw.json()["series"]["batch/loss"]["count"] == span + 3_000


def test_a_late_step_inside_a_rolled_up_bucket_is_not_lost(api: TestClient) -> None:
    response = api.post("/api/v1/runs", json={"name": "late", "preset": "digits-mlp"})
    run_id = response.json()["id"]
    span = rollups.MIN_SPAN + 10
    _write(run_id, (s for s in range(1, span + 1) if s != 777))
    url = f"/api/v1/runs/{run_id}/metrics"
    params = {"keys": "batch/loss", "max_points": 100}
    first = api.get(url, params=params).json()["series"]["batch/loss"]
    assert first["count"] == span - 1 and max(first["max"]) < 10
    point = metrics.Point(key="batch/loss", step=777, value=1000.0, wall_time=0.0)
    with session_scope() as session:  # e.g. an external client logging out of order
        metrics.record(session, run_id=run_id, points=[point], uid="late")
    again = api.get(url, params=params).json()["series"]["batch/loss"]
    assert again["count"] == span and max(again["max"]) == 1000.0
