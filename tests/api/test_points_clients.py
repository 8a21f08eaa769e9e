"""The senders of POST /api/v1/runs/{id}/points post columns: a worker's HttpPort and the
client FitboardCallback uses (Fitboard.post_points), each falling back to one object per
point when the API predates columns (and remembering it)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.client import Fitboard
from backend.metrics.service import Point
from tests.conftest import Identity
from worker.http_port import HttpPort


class Recording(httpx.BaseTransport):
    """The app's transport, keeping each points body; ``old``: answers a body with columns
    as an API from before them does (422, columns: extra_forbidden)."""

    def __init__(self, inner: httpx.BaseTransport, *, old: bool = False) -> None:
        self.inner, self.old = inner, old
        self.bodies: list[dict[str, Any]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/points"):
            return self.inner.handle_request(request)
        body = json.loads(request.read())
        self.bodies.append(body)
        if self.old and "columns" in body:
            error = {"field": "columns", "message": "Extra inputs", "type": "extra_forbidden"}
            answer = {"detail": "columns: Extra inputs", "code": "validation_error"}
            return httpx.Response(422, json={**answer, "errors": [error]})
        return self.inner.handle_request(request)


POINTS: list[Point] = [
    {"key": "batch/loss", "step": 1, "value": 0.5, "wall_time": 1.0},
    {"key": "batch/loss", "step": 2, "value": float("nan"), "wall_time": 2.0},
    {"key": "batch/acc", "step": 2, "value": float("inf"), "wall_time": 2.0},
]


def _series(api: TestClient, run_id: int) -> dict[str, list[Any]]:
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    return {key: s["values"] for key, s in sorted(series.items())}


def _claimed_run(api: TestClient) -> tuple[int, str]:
    token = api.post("/api/v1/worker-tokens", json={"name": "columns"}).json()["token"]
    body = {"name": "columns", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}}
    run_id = int(api.post("/api/v1/runs", json=body).json()["id"])
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    claimed = worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "gpu-a"})
    assert claimed.status_code == 200, claimed.text
    return run_id, str(token)


@pytest.mark.parametrize("old", [False, True], ids=["columns", "old-api"])
def test_the_worker_posts_columns(api: TestClient, old: bool) -> None:
    run_id, token = _claimed_run(api)
    port = HttpPort(run_id, url="http://testserver", token=token, attempt=1)
    recording = Recording(api._transport, old=old)  # type: ignore[attr-defined]
    port._client = httpx.Client(
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
        transport=recording,
    )
    assert port.write("b1", POINTS, []) is False
    assert port.write("b2", [{**POINTS[0], "step": 3}], []) is False
    sent = [("columns" in b, "points" in b) for b in recording.bodies]
    if old:  # refused once, then one object per point from there on
        assert sent == [(True, False), (False, True), (False, True)]
    else:
        assert sent == [(True, False), (True, False)]
        assert recording.bodies[0]["columns"] == {
            "keys": ["batch/loss", "batch/acc"],
            "key_index": [0, 0, 1],
            "steps": [1, 2, 2],
            "values": [0.5, None, 1e300],
            "wall_times": [1.0, 2.0, 2.0],
        }
    assert _series(api, run_id) == {"batch/acc": [1e300], "batch/loss": [0.5, None, 0.5]}


@pytest.mark.parametrize("old", [False, True], ids=["columns", "old-api"])
def test_the_client_posts_columns(api: TestClient, admin: Identity, old: bool) -> None:
    recording = Recording(api._transport, old=old)  # type: ignore[attr-defined]
    client = Fitboard("http://testserver", admin.token, transport=recording)
    run_id = client.create_external_run("client columns")["id"]
    points = [{"key": "loss", "step": 1, "value": 0.25, "kind": "batch"}, *POINTS]
    assert client.post_points(run_id, points, uid="c1")["points"] == 4
    assert client.post_points(run_id, points, uid="c1")["points"] == 4  # a retry
    kinds = ["columns" in b for b in recording.bodies]
    assert kinds == ([True, False, False] if old else [True, True])
    # the first of two points at one step is stored
    assert _series(api, run_id) == {"batch/acc": [1e300], "batch/loss": [0.25, None]}
