"""One batch sent both ways (points, columns), and what each run then holds: shared by the
PostgreSQL and SQLite tests of POST /api/v1/runs/{id}/points."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.metrics.models import LatestMetric, MetricPoint

WALL = 1_764_800_000.0
# (key, step, value, kind): NaN as null, +-inf as +-1e300, a batch key by kind and by name, and
# the same key and step twice (the first one is stored)
BATCH: list[tuple[str, int, float | None, str | None]] = [
    ("loss", 1, 0.5, None),
    ("loss", 2, None, None),
    ("loss", 3, 1e300, None),
    ("acc", 10, 0.25, "batch"),
    ("loss", 2, 7.0, None),
    ("batch/acc", 11, -1e300, None),
    ("val_loss", 1, 0.75, None),
]
# a later post: a step already stored (kept as first written) and a new highest step
LATER: list[tuple[str, int, float | None, str | None]] = [
    ("loss", 1, 9.0, None),
    ("loss", 4, 0.125, None),
]


def as_points(batch: list[tuple[str, int, float | None, str | None]]) -> list[dict[str, Any]]:
    out = []
    for at, (key, step, value, kind) in enumerate(batch):
        point: dict[str, Any] = {"key": key, "step": step, "value": value, "wall_time": WALL + at}
        if kind:
            point["kind"] = kind
        out.append(point)
    return out


def as_columns(batch: list[tuple[str, int, float | None, str | None]]) -> dict[str, Any]:
    keys: list[str] = []
    for key, _, _, kind in batch:
        name = f"batch/{key}" if kind == "batch" else key
        if name not in keys:
            keys.append(name)
    return {
        "keys": keys,
        "key_index": [
            keys.index(f"batch/{key}" if kind == "batch" else key) for key, _, _, kind in batch
        ],
        "steps": [step for _, step, _, _ in batch],
        "values": [value for _, _, value, _ in batch],
        "wall_times": [WALL + at for at in range(len(batch))],
    }


def post(api: TestClient, run_id: int, body: dict[str, Any], count: int) -> None:
    answer = api.post(f"/api/v1/runs/{run_id}/points", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["points"] == count


def send_both_ways(api: TestClient) -> tuple[int, int]:
    """Two runs fed the same points, one per format, each batch sent twice (a retried uid)."""
    runs = []
    for shape in (as_points, as_columns):
        run_id = int(api.post("/api/v1/runs/external", json={"name": "formats"}).json()["id"])
        field = "points" if shape is as_points else "columns"
        for uid, batch in (("first", BATCH), ("first", BATCH), ("later", LATER)):
            post(api, run_id, {"uid": uid, field: shape(batch)}, len(batch))
        runs.append(run_id)
    return runs[0], runs[1]


def stored(url: str, run_id: int) -> dict[str, Any]:
    """Everything a batch of points writes: rows, latest values, live events."""
    with session_scope(url) as session:
        points = session.execute(
            select(MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
        ).all()
        latest = session.execute(
            select(LatestMetric.key, LatestMetric.step, LatestMetric.value)
            .where(LatestMetric.run_id == run_id)
            .order_by(LatestMetric.key)
        ).all()
        live = session.execute(
            select(RunEvent.uid, RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind == "metrics")
            .order_by(RunEvent.id)
        ).all()
    return {
        "points": [tuple(r) for r in points],
        "latest": [tuple(r) for r in latest],
        "live": [(r.uid, r.data) for r in live],
    }


def assert_same_points(url: str, by_points: int, by_columns: int) -> None:
    one, other = stored(url, by_points), stored(url, by_columns)
    assert one == other
    assert one["points"] == [
        ("batch/acc", 10, 0.25, WALL + 3),
        ("batch/acc", 11, -1e300, WALL + 5),
        ("loss", 1, 0.5, WALL),
        ("loss", 2, None, WALL + 1),
        ("loss", 3, 1e300, WALL + 2),
        ("loss", 4, 0.125, WALL + 1),
        ("val_loss", 1, 0.75, WALL + 6),
    ]
    assert one["latest"] == [("batch/acc", 11, -1e300), ("loss", 4, 0.125), ("val_loss", 1, 0.75)]
    assert [uid for uid, _ in one["live"]] == ["ext-first", "ext-later"]
    assert one["live"][0][1]["points"][4] == ["loss", 2, 7.0, WALL + 4]  # what was sent
