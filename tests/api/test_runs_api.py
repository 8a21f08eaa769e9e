"""The REST surface: specs, presets, 4xx shapes, paging, metrics downsampling."""

from __future__ import annotations

import math
import time

import pytest
from fastapi.testclient import TestClient

from backend.db.session import session_scope
from backend.metrics import service as metrics


def test_presets_include_the_seed_mlp(api: TestClient) -> None:
    presets = {p["name"]: p for p in api.get("/api/v1/presets").json()}
    assert {"mnist-mlp", "digits-mlp"} <= presets.keys()
    layers = presets["mnist-mlp"]["spec"]["model"]["layers"]
    dense = [
        (layer["type"], layer.get("units"), layer.get("rate"))
        for layer in layers
        if layer["type"] in {"Dense", "Dropout"}
    ]
    assert dense == [
        ("Dense", 512, None),
        ("Dropout", None, 0.5),
        ("Dense", 256, None),
        ("Dropout", None, 0.3),
        ("Dense", 10, None),
    ]
    assert presets["mnist-mlp"]["spec"]["compile"]["optimizer"]["name"] == "adam"
    assert presets["digits-mlp"]["spec"]["dataset"]["name"] == "digits"


def test_schema_is_served(api: TestClient) -> None:
    schema = api.get("/api/v1/spec/schema").json()
    assert schema["title"] == "ExperimentSpec"
    assert {"dataset", "model", "compile", "fit", "callbacks", "stream"} <= schema[
        "properties"
    ].keys()


def test_submit_from_preset_with_overrides(api: TestClient) -> None:
    response = api.post(
        "/api/v1/runs",
        json={"name": "p", "preset": "mnist-mlp", "overrides": {"fit": {"epochs": 3}}},
    )
    assert response.status_code == 201
    run = response.json()
    assert run["status"] == "queued" and run["spec"]["fit"]["epochs"] == 3
    assert run["spec"]["fit"]["batch_size"] == 128, "untouched fields come from the preset"
    assert run["spec"]["spec_version"] == 1 and run["spec"]["stream"]["every_n_batches"] == 1
    assert api.get(f"/api/v1/runs/{run['id']}").json()["name"] == "p"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            {"name": "x", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 0}}},
            "spec.fit.epochs",
            "greater than or equal to 1",
        ),
        (
            {
                "name": "x",
                "preset": "digits-mlp",
                "overrides": {"model": {"layers": [{"type": "Dense3", "units": 4}]}},
            },
            "spec.model.layers.0",
            "unknown layer type 'Dense3'",
        ),
        (
            {
                "name": "x",
                "preset": "digits-mlp",
                "overrides": {"compile": {"optimizer": {"name": "adamax2"}}},
            },
            "spec.compile.optimizer.name",
            "'sgd', 'adam'",
        ),
        (
            {
                "name": "x",
                "preset": "digits-mlp",
                "overrides": {"model": {"layers": [{"type": "Dense", "untis": 4}]}},
            },
            "spec.model.layers.0",
            "does not take 'untis'",
        ),
        (
            {"name": "x", "preset": "digits-mlp", "overrides": {"fit": {"epochz": 3}}},
            "spec.fit.epochz",
            "Extra inputs are not permitted",
        ),
        ({"name": "", "preset": "digits-mlp"}, "name", "at least 1 character"),
        ({"name": "x", "preset": "no-such"}, "preset", "unknown preset 'no-such'"),
        ({"name": "x"}, "body", "give either 'spec' or 'preset'"),
    ],
)
def test_bad_input_is_422_naming_field_and_reason(
    api: TestClient, body: dict, field: str, words: str
) -> None:
    before = api.get("/api/v1/runs").json()["total"]
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] in {"validation_error", "invalid"}
    assert any(e["field"] == field and words in e["message"] for e in error["errors"]), error
    assert words in error["detail"]
    assert api.get("/api/v1/runs").json()["total"] == before, "nothing stored"


def test_malformed_json_is_422_not_500(api: TestClient) -> None:
    response = api.post(
        "/api/v1/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_unknown_run_is_404_with_error_shape(api: TestClient) -> None:
    for path in (
        "/api/v1/runs/999999",
        "/api/v1/runs/999999/metrics",
        "/api/v1/runs/999999/evaluation",
        "/api/v1/runs/999999/artifacts",
        "/api/v1/runs/999999/stream",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "run 999999 does not exist", "code": "not_found"}
    assert api.post("/api/v1/runs/999999/cancel").status_code == 404


def test_list_is_newest_first_and_pages_by_cursor(api: TestClient) -> None:
    ids = [
        api.post("/api/v1/runs", json={"name": f"page {i}", "preset": "digits-mlp"}).json()["id"]
        for i in range(5)
    ]
    first = api.get("/api/v1/runs", params={"limit": 3}).json()
    assert [r["id"] for r in first["items"]] == ids[::-1][:3]
    second = api.get("/api/v1/runs", params={"limit": 3, "before_id": first["next_cursor"]})
    assert second.json()["items"][0]["id"] == ids[1]
    assert first["total"] >= 5
    queued = api.get("/api/v1/runs", params={"status": "queued"}).json()
    assert all(r["status"] == "queued" for r in queued["items"])
    bad = api.get("/api/v1/runs", params={"status": "bogus"})
    assert bad.status_code == 422
    # the field is named once: in `field`, and as the detail's prefix; not again in the message
    [item] = bad.json()["errors"]
    assert item["field"] == "status" and item["message"].startswith("unknown status 'bogus'")
    assert bad.json()["detail"].startswith("status: unknown status")


def test_cancel_queued_run(api: TestClient) -> None:
    run = api.post("/api/v1/runs", json={"name": "c", "preset": "digits-mlp"}).json()
    cancelled = api.post(f"/api/v1/runs/{run['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"]
    assert api.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 409


def test_metrics_downsample_keeps_spikes(api: TestClient) -> None:
    run = api.post("/api/v1/runs", json={"name": "m", "preset": "digits-mlp"}).json()
    now = time.time()
    points = [
        {"key": "batch/loss", "step": s, "value": 1.0 + 0.001 * s, "wall_time": now}
        for s in range(1, 10_001)
    ]
    points[4321]["value"] = 99.0  # a spike
    points[777]["value"] = math.nan
    points[778]["value"] = math.inf
    with session_scope() as session:
        metrics.record(session, run_id=run["id"], points=points, uid="a")
        metrics.record(session, run_id=run["id"], points=points[:50], uid="a")  # a retry
        metrics.record(session, run_id=run["id"], points=points[:50], uid="b")  # duplicates
    body = api.get(
        f"/api/v1/runs/{run['id']}/metrics", params={"keys": "batch/loss", "max_points": 200}
    ).json()
    series = body["series"]["batch/loss"]
    assert series["count"] == 10_000 and series["downsampled"]
    assert len(series["steps"]) <= 200
    assert 99.0 in series["max"], "the spike survives downsampling"
    assert max(series["max"]) == 1e300, "+inf is kept as a huge finite number"
    zoom = api.get(
        f"/api/v1/runs/{run['id']}/metrics",
        params={"keys": "batch/loss", "max_points": 200, "min_step": 770, "max_step": 790},
    ).json()
    raw = zoom["series"]["batch/loss"]
    assert raw["downsampled"] is False and raw["steps"] == list(range(770, 791))
    assert raw["values"][778 - 770] is None, "NaN is null"
    assert body["last_event_id"] > 0
    listed = api.get("/api/v1/runs", params={"limit": 1}).json()["items"][0]
    assert listed["final_metrics"] == {}, "batch keys are not final metrics"
