"""GET /metrics: the Prometheus text format, counted from the database at each scrape."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient


def _value(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in the scrape"
    return float(found.group(1))


def test_scrape_counts_runs_and_ingested_points(api: TestClient, anonymous: TestClient) -> None:
    before = anonymous.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    queued = _value(before.text, 'fitboard_runs{status="queued"}')
    ingested = _value(before.text, "fitboard_api_points_ingested_total")

    api.post("/api/v1/runs", json={"name": "prom", "preset": "digits-mlp"})
    run = api.post("/api/v1/runs/external", json={"name": "prom ext"}).json()
    points = [{"key": "loss", "step": s, "value": 1.0 / s} for s in range(1, 8)]
    assert api.post(f"/api/v1/runs/{run['id']}/points", json={"points": points}).status_code == 200

    after = anonymous.get("/metrics").text
    assert _value(after, 'fitboard_runs{status="queued"}') == queued + 1
    assert _value(after, 'fitboard_runs{status="running"}') >= 1
    assert _value(after, "fitboard_api_points_ingested_total") == ingested + 7
    assert _value(after, "fitboard_queue_length") >= 1
    assert "fitboard_workers_alive" in after
