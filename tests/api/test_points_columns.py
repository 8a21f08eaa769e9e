"""POST /api/v1/runs/{id}/points with columns: stores what the per-point form stores (here on
PostgreSQL; tests/api/test_sqlite_limits.py on SQLite), and names the field of a bad array."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.bounds import MAX_INT64
from tests.api.points_columns_cases import assert_same_points, send_both_ways


def test_columns_store_what_points_store(api: TestClient, pg_url: str) -> None:
    by_points, by_columns = send_both_ways(api)
    assert_same_points(pg_url, by_points, by_columns)


def test_points_and_columns_in_one_post(api: TestClient) -> None:
    run_id = api.post("/api/v1/runs/external", json={"name": "both"}).json()["id"]
    body = {
        "points": [{"key": "loss", "step": 1, "value": 1.0}],
        "columns": {"keys": ["loss"], "key_index": [0, 0], "steps": [1, 2], "values": [5.0, 2.0]},
    }
    answer = api.post(f"/api/v1/runs/{run_id}/points", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["points"] == 3
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]["loss"]
    assert (series["steps"], series["values"]) == ([1, 2], [1.0, 2.0])  # the points came first


GOOD: dict[str, Any] = {
    "keys": ["loss", "acc"],
    "key_index": [0, 1, 0],
    "steps": [1, 1, 2],
    "values": [0.5, 0.25, None],
    "wall_times": [1.0, 1.0, 2.0],
}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": [1, 1, -2]}, "columns.steps.2"),
        ({"steps": [1, MAX_INT64 + 1, 2]}, "columns.steps.1"),
        ({"steps": [1, 1.5, 2]}, "columns.steps.1"),
        ({"values": [0.5, "high", None]}, "columns.values.1"),
        ({"key_index": [0, 1, 2]}, "columns.key_index.2"),
        ({"key_index": [0, -1, 0]}, "columns.key_index.1"),
        ({"values": [0.5, 0.25]}, "columns.values"),
        ({"key_index": [0, 1, 0, 1]}, "columns.key_index"),
        ({"wall_times": [1.0]}, "columns.wall_times"),
        ({"wall_times": [1.0, -1.0, 2.0]}, "columns.wall_times.1"),
        ({"keys": ["loss", "a b"]}, "columns.keys.1"),
        ({"keys": ["loss", "loss"]}, "columns.keys.1"),
        ({"keys": ["loss", ""]}, "columns.keys.1"),
        ({"steps": None}, "columns.steps"),
        ({"extra": [1]}, "columns.extra"),
    ],
)
def test_bad_columns_are_a_422_naming_the_field(
    api: TestClient, change: dict[str, Any], field: str
) -> None:
    run_id = api.post("/api/v1/runs/external", json={"name": "bad columns"}).json()["id"]
    columns = {**GOOD, **change}
    if change.get("steps", 0) is None:
        del columns["steps"]
    answer = api.post(f"/api/v1/runs/{run_id}/points", json={"columns": columns})
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == [field], answer.text
    assert api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"] == {}


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_columns_values_must_be_finite_or_null(api: TestClient, word: str) -> None:
    run_id = api.post("/api/v1/runs/external", json={"name": "nan"}).json()["id"]
    text = json.dumps({**GOOD, "values": [0.5, 0.25, 1.0]}).replace("1.0]", f"{word}]", 1)
    body = '{"columns": ' + text + "}"
    answer = api.post(
        f"/api/v1/runs/{run_id}/points",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["columns.values.2"]


def test_two_batches_in_one_transaction(api: TestClient, pg_url: str) -> None:
    """The COPY staging table holds one batch at a time, also within one transaction."""
    from backend.db.session import session_scope
    from backend.metrics import service as metrics
    from backend.metrics.ingest import PointColumns

    run_id = api.post("/api/v1/runs/external", json={"name": "one transaction"}).json()["id"]
    first = PointColumns(["a", "b"], [0, 1], [1, 1], [1.0, 2.0], [1.0, 1.0])
    second = PointColumns(["b"], [0, 0], [1, 2], [9.0, 3.0], [2.0, 2.0])
    with session_scope(pg_url) as session:
        metrics.record(session, run_id=run_id, points=first, uid="t1")
        metrics.record(session, run_id=run_id, points=second, uid="t2")
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert {k: (s["steps"], s["values"]) for k, s in series.items()} == {
        "a": ([1], [1.0]),
        "b": ([1, 2], [2.0, 3.0]),
    }
