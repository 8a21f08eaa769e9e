"""One JSON policy: non-finite numbers are refused or stood in for, free-form JSON is bounded,
and whatever a row holds, every response, stream and export is strict JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.jsonpolicy import FREE_JSON_MAX_BYTES, FREE_JSON_MAX_DEPTH
from backend.metrics.models import MetricPoint
from backend.runs.models import Run


def _strict(text: str) -> Any:
    def refuse(word: str) -> Any:
        raise AssertionError(f"not strict JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def _run(api: TestClient, **body: Any) -> int:
    r = api.post("/api/v1/runs/external", json={"name": "json-policy", **body})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize("epoch", ["NaN", "Infinity", "-Infinity", "1e300", "-1"])
def test_remote_monitor_epoch_out_of_range_is_a_422(api: TestClient, epoch: str) -> None:
    body = '{"epoch": EPOCH, "loss": 0.5}'.replace("EPOCH", epoch)
    for kwargs in (
        {"content": body, "headers": {"Content-Type": "application/json"}},
        {"data": {"data": body}},
    ):
        r = api.post("/api/v1/remote-monitor/json-policy", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "epoch"


def test_remote_monitor_huge_integer_value_is_stood_in_for(api: TestClient) -> None:
    body = '{"epoch": 0, "loss": BIG}'.replace("BIG", str(10**400))
    r = api.post("/api/v1/remote-monitor/json-policy-big", data={"data": body})
    assert r.status_code == 200, r.text
    run = api.get(f"/api/v1/runs/{r.json()['run_id']}").json()
    assert run["final_metrics"]["loss"] == 1e300


@pytest.mark.parametrize("wall", ["NaN", "Infinity", "-Infinity", "1e300", "-5"])
def test_non_finite_wall_time_is_a_422(api: TestClient, wall: str) -> None:
    run_id = _run(api)
    body = '{"uid": "w", "points": [{"key": "loss", "step": 1, "value": 1, "wall_time": W}]}'
    r = api.post(
        f"/api/v1/runs/{run_id}/points",
        content=body.replace("W", wall),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "points.0.wall_time"


def test_stored_non_finite_numbers_never_reach_a_response(api: TestClient) -> None:
    """Rows written before the policy (Infinity wall times, NaN in events) stay readable."""
    run_id = _run(api)
    points = (
        '[{"key": "loss", "step": 1, "value": NaN}, {"key": "acc", "step": 1, "value": Infinity}]'
    )
    r = api.post(
        f"/api/v1/runs/{run_id}/points",
        content='{"uid": "p", "points": POINTS}'.replace("POINTS", points),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    with session_scope() as session:
        session.execute(
            insert(MetricPoint).values(
                run_id=run_id, key="old", step=1, value=float("inf"), wall_time=float("inf")
            )
        )
        session.execute(
            insert(RunEvent).values(
                run_id=run_id, uid="legacy", kind="metrics", data={"points": [["old", 1, 1.0, 0]]}
            )
        )
    api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
    exported = _strict(api.get(f"/api/v1/runs/{run_id}/metrics.json").text)
    by_key = {p["key"]: p for p in exported["points"]}
    assert by_key["loss"]["value"] is None and by_key["acc"]["value"] == 1e300
    assert by_key["old"]["wall_time"] == 1e300
    stream = api.get(f"/api/v1/runs/{run_id}/stream").text
    for line in stream.splitlines():
        if line.startswith("data: "):
            _strict(line[6:])
    _strict(api.get(f"/api/v1/runs/{run_id}/metrics").text)


@pytest.mark.parametrize("field", ["spec", "params"])
def test_free_form_json_too_large_is_a_422_naming_the_field(api: TestClient, field: str) -> None:
    big = {"blob": "x" * FREE_JSON_MAX_BYTES}
    r = api.post("/api/v1/runs/external", json={"name": "big", field: big})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert "KiB" in r.json()["detail"]


@pytest.mark.parametrize("field", ["spec", "params"])
def test_free_form_json_too_deep_is_a_422_naming_the_field(api: TestClient, field: str) -> None:
    r = api.post("/api/v1/runs/external", json={"name": "deep", field: _nested(300)})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == field
    assert "too deep" in r.json()["detail"]
    ok = api.post(
        "/api/v1/runs/external", json={"name": "deep", field: _nested(FREE_JSON_MAX_DEPTH - 1)}
    )
    assert ok.status_code == 201, ok.text


def test_free_form_json_with_non_finite_numbers_is_a_422(api: TestClient) -> None:
    r = api.post(
        "/api/v1/runs/external",
        content='{"name": "nan", "params": {"lr": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "params"


def test_deep_spec_stored_before_the_limit_still_reads(api: TestClient) -> None:
    run_id = _run(api)
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.spec = _nested(400)
    for url in (f"/api/v1/runs/{run_id}", "/api/v1/runs", "/api/v1/runs.csv"):
        r = api.get(url)
        assert r.status_code == 200, (url, r.text[:300])
