"""Exports: a run's every metric point as CSV and JSON, and the filtered history as CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.db.session import session_scope
from backend.metrics.models import MetricPoint
from tests.conftest import Identity

STEPS_PER_EPOCH = 7


def _external_run(api: TestClient, name: str, epochs: int, tags: list[str]) -> int:
    run_id = int(api.post("/api/v1/runs/external", json={"name": name, "tags": tags}).json()["id"])
    points: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        for batch in range(1, STEPS_PER_EPOCH + 1):
            step = (epoch - 1) * STEPS_PER_EPOCH + batch
            points.append({"key": "loss", "step": step, "value": 1 / step, "kind": "batch"})
        points.append({"key": "loss", "step": epoch, "value": 1 / epoch})
        points.append({"key": "val_accuracy", "step": epoch, "value": 0.5 + epoch / 100})
    points.append({"key": "val_loss", "step": 1, "value": None})  # NaN
    body = {"points": points, "train_begin": {"epochs": epochs, "steps_per_epoch": STEPS_PER_EPOCH}}
    assert api.post(f"/api/v1/runs/{run_id}/points", json=body).status_code == 200
    api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
    return run_id


def _stored(run_id: int) -> list[tuple[str, int, float | None, float]]:
    with session_scope() as session:
        rows = session.execute(
            select(MetricPoint.key, MetricPoint.step, MetricPoint.value, MetricPoint.wall_time)
            .where(MetricPoint.run_id == run_id)
            .order_by(MetricPoint.key, MetricPoint.step)
        ).all()
    return [(r.key, r.step, r.value, r.wall_time) for r in rows]


def test_metrics_csv_has_every_stored_point(api: TestClient) -> None:
    run_id = _external_run(api, "export-csv", epochs=3, tags=[])
    response = api.get(f"/api/v1/runs/{run_id}/metrics.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    stored = _stored(run_id)
    assert len(rows) == len(stored) == 3 * STEPS_PER_EPOCH + 3 + 3 + 1
    parsed = [
        (r["key"], int(r["step"]), float(r["value"]) if r["value"] else None, float(r["wall_time"]))
        for r in rows
    ]
    assert parsed == stored
    by_key = {(r["key"], int(r["step"])): r for r in rows}
    # epoch: an epoch point's step; a batch point's epoch from the train_begin steps per epoch
    assert by_key[("loss", 2)]["epoch"] == "2"
    assert by_key[("batch/loss", 1)]["epoch"] == "1"
    assert by_key[("batch/loss", STEPS_PER_EPOCH)]["epoch"] == "1"
    assert by_key[("batch/loss", STEPS_PER_EPOCH + 1)]["epoch"] == "2"
    assert by_key[("val_loss", 1)]["value"] == ""  # NaN


def test_metrics_json_has_every_stored_point(api: TestClient) -> None:
    run_id = _external_run(api, "export-json", epochs=2, tags=[])
    body = json.loads(api.get(f"/api/v1/runs/{run_id}/metrics.json").text)
    assert body["run_id"] == run_id
    got = [(p["key"], p["step"], p["value"], p["wall_time"]) for p in body["points"]]
    assert got == _stored(run_id)
    assert all(p["value"] is None or math.isfinite(p["value"]) for p in body["points"])
    assert api.get("/api/v1/runs/99999999/metrics.csv").status_code == 404
    assert api.get("/api/v1/runs/99999999/metrics.json").json()["code"] == "not_found"


def test_runs_csv_honours_the_filters_and_reads_every_page(
    api: TestClient, admin: Identity
) -> None:
    from backend.exports import service as exports

    ids = [_external_run(api, f"csvfilter run {i}", epochs=1, tags=["csvexport"]) for i in range(5)]
    other = _external_run(api, "csvfilter other", epochs=1, tags=[])
    original = exports.RUNS_CHUNK
    exports.RUNS_CHUNK = 2  # several pages for five runs
    try:
        response = api.get("/api/v1/runs.csv", params={"q": "csvfilter", "tag": "csvexport"})
    finally:
        exports.RUNS_CHUNK = original
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [int(r["id"]) for r in rows] == sorted(ids, reverse=True)  # newest first, all pages
    assert other not in {int(r["id"]) for r in rows}
    first = rows[0]
    assert first["source"] == "external" and first["status"] == "succeeded"
    assert first["tags"] == "csvexport" and first["launched_by"] == admin.username
    assert float(first["metric:val_accuracy"]) == 0.51
    assert "metric:batch/loss" not in first
    # the same filters as the list: a sort by name, and a bad filter named in a 422
    by_name = api.get("/api/v1/runs.csv", params={"q": "csvfilter", "sort": "name"}).text
    names = [r["name"] for r in csv.DictReader(io.StringIO(by_name))]
    assert names == sorted(names, key=str.lower) and len(names) == 6
    bad = api.get("/api/v1/runs.csv", params={"status": "sleeping"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"


def test_runs_csv_filters_by_a_parameter(api: TestClient) -> None:
    ids = {}
    for lr in (0.5, 0.25):
        body = {"name": f"csvparam {lr}", "params": {"lr": lr, "arch": "cnn"}}
        ids[lr] = api.post("/api/v1/runs/external", json=body).json()["id"]
    text = api.get("/api/v1/runs.csv", params={"q": "csvparam", "param.lr": "0.5"}).text
    assert [int(r["id"]) for r in csv.DictReader(io.StringIO(text))] == [ids[0.5]]
    for run_id in ids.values():
        api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
