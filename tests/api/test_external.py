"""Runs trained elsewhere: create, points (idempotent), evaluation, finish, ownership, reaping,
and the keras.callbacks.RemoteMonitor endpoint (form and JSON posts, NaN values)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.config import get_settings
from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.events.models import RunEvent
from backend.housekeeping import sweep_once
from backend.runs.models import Run
from tests.conftest import Identity, create_identity


def _create(api: TestClient, name: str = "laptop", **body: Any) -> dict[str, Any]:
    response = api.post("/api/v1/runs/external", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _client_as(api: TestClient, who: Identity) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {who.token}"})


@pytest.fixture(scope="module")
def member(pg_url: str) -> Identity:
    return create_identity(pg_url, "ext-member", "member")


@pytest.fixture(scope="module")
def other_member(pg_url: str) -> Identity:
    return create_identity(pg_url, "ext-other", "member")


def test_external_run_lifecycle(api: TestClient, admin: Identity) -> None:
    run = _create(api, params={"lr": 0.01, "units": 32}, dataset="digits", tags=["laptop"])
    assert run["status"] == "running" and run["source"] == "external"
    assert run["spec"] == {"lr": 0.01, "units": 32, "dataset": {"name": "digits"}}
    assert run["dataset"] == "digits" and run["tags"] == ["laptop"]
    run_id = run["id"]
    with session_scope() as session:
        assert session.get(Run, run_id).launched_by_id == admin.user_id  # type: ignore[union-attr]

    batch = {
        "uid": "b1",
        "train_begin": {"epochs": 2, "steps_per_epoch": 3},
        "points": [{"key": "loss", "step": s, "value": 1.0 / s, "kind": "batch"} for s in (1, 2, 3)]
        + [{"key": "loss", "step": 1, "value": 0.5}, {"key": "accuracy", "step": 1, "value": None}],
    }
    first = api.post(f"/api/v1/runs/{run_id}/points", json=batch)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "run_id": run_id,
        "points": 5,
        "cancel_requested": False,
        "watched": False,
    }
    # the same batch again (a retry after a lost answer) stores nothing twice
    assert api.post(f"/api/v1/runs/{run_id}/points", json=batch).status_code == 200
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert series["batch/loss"]["steps"] == [1, 2, 3]
    assert series["loss"]["values"] == [0.5]
    assert series["accuracy"]["values"] == [None]  # NaN is sent as null

    evaluation = {"class_names": ["a", "b"], "confusion_matrix": [[3, 1], [0, 4]]}
    assert api.post(f"/api/v1/runs/{run_id}/evaluation", json=evaluation).status_code == 201
    stored = api.get(f"/api/v1/runs/{run_id}/evaluation").json()
    assert stored["confusion_matrix"] == [[3, 1], [0, 4]]
    assert stored["report"]["accuracy"] == pytest.approx(7 / 8)
    assert stored["report"]["a"]["precision"] == pytest.approx(1.0)
    assert stored["report"]["a"]["recall"] == pytest.approx(0.75)
    assert stored["report"]["b"]["support"] == 4

    done = api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert done.json()["final_metrics"] == {"loss": 0.5, "accuracy": None}
    # finishing again the same way is a no-op; another way, or more points, are conflicts
    assert (
        api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "succeeded"}).status_code == 200
    )
    again = api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "failed"})
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    late = api.post(f"/api/v1/runs/{run_id}/points", json={"points": []})
    assert late.status_code == 409


def test_points_carry_timeline_events_once(api: TestClient) -> None:
    run_id = _create(api, "events")["id"]
    note = {"kind": "stage", "data": {"stage": "fit"}, "uid": "s1"}
    batch = {"uid": "e1", "points": [{"key": "loss", "step": 1, "value": 1.0}], "events": [note]}
    for _ in range(2):  # a retried batch stores its event once
        assert api.post(f"/api/v1/runs/{run_id}/points", json=batch).status_code == 200
    with session_scope() as session:
        rows = session.execute(
            select(RunEvent.kind, RunEvent.uid, RunEvent.data).where(
                RunEvent.run_id == run_id, RunEvent.kind == "stage"
            )
        ).all()
    assert [tuple(r) for r in rows] == [("stage", "ext-s1", {"stage": "fit"})]
    # the API's own kinds are refused, naming the field
    for kind in ("status", "evaluation", "train_begin"):
        bad = {"uid": "e2", "events": [{"kind": kind, "data": {}, "uid": "x"}]}
        answer = api.post(f"/api/v1/runs/{run_id}/points", json=bad)
        assert answer.status_code == 422, answer.text
        assert "written by the API itself" in answer.text
    # a body without events is what older clients send: still accepted
    assert api.post(f"/api/v1/runs/{run_id}/points", json={"points": []}).status_code == 200


def test_failed_with_reason_and_runs_list_shows_source(api: TestClient) -> None:
    run_id = _create(api, "crashy", spec={"model": "resnet"})["id"]
    body = {"status": "failed", "reason": "ValueError: bad shape", "traceback": "Traceback..."}
    failed = api.post(f"/api/v1/runs/{run_id}/finish", json=body).json()
    assert failed["status"] == "failed" and failed["failure_reason"] == "ValueError: bad shape"
    listed = api.get("/api/v1/runs", params={"q": "crashy"}).json()["items"]
    assert [(r["id"], r["source"]) for r in listed] == [(run_id, "external")]


def test_posting_to_a_worker_run_is_a_conflict(api: TestClient) -> None:
    queued = api.post("/api/v1/runs", json={"name": "worker run", "preset": "digits-mlp"}).json()
    answer = api.post(
        f"/api/v1/runs/{queued['id']}/points",
        json={"points": [{"key": "loss", "step": 1, "value": 1.0}]},
    )
    assert answer.status_code == 409 and "worker" in answer.json()["detail"]
    assert (
        api.post(f"/api/v1/runs/{queued['id']}/finish", json={"status": "failed"}).status_code
        == 409
    )
    api.post(f"/api/v1/runs/{queued['id']}/cancel")


def test_only_the_launcher_or_an_admin_may_post(
    api: TestClient, member: Identity, other_member: Identity, anonymous: TestClient
) -> None:
    mine = _client_as(api, member)
    run_id = _create(mine, "members run")["id"]
    point = {"points": [{"key": "loss", "step": 1, "value": 1.0}]}
    assert mine.post(f"/api/v1/runs/{run_id}/points", json=point).status_code == 200
    stranger = _client_as(api, other_member)
    refused = stranger.post(f"/api/v1/runs/{run_id}/points", json=point)
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert (
        stranger.post(f"/api/v1/runs/{run_id}/finish", json={"status": "failed"}).status_code == 403
    )
    assert anonymous.post(f"/api/v1/runs/{run_id}/points", json=point).status_code == 401
    assert anonymous.post("/api/v1/runs/external", json={"name": "x"}).status_code == 401
    # an admin may (e.g. to close a run whose script died)
    assert api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "failed"}).status_code == 200


def test_validation_errors_name_the_field(api: TestClient) -> None:
    run_id = _create(api, "validate")["id"]
    bad_point = api.post(
        f"/api/v1/runs/{run_id}/points", json={"points": [{"key": "loss", "step": -1, "value": 1}]}
    )
    assert bad_point.status_code == 422
    assert bad_point.json()["errors"][0]["field"] == "points.0.step"
    bad_matrix = api.post(
        f"/api/v1/runs/{run_id}/evaluation",
        json={"class_names": ["a", "b"], "confusion_matrix": [[1, 2, 3]]},
    )
    assert bad_matrix.status_code == 422 and "2 x 2" in bad_matrix.json()["detail"]
    bad_dataset = api.post(
        "/api/v1/runs/external", json={"name": "x", "spec": {"dataset": "digits"}}
    )
    assert bad_dataset.status_code == 422
    assert bad_dataset.json()["errors"][0]["field"] == "spec.dataset"
    assert api.post("/api/v1/runs/999999/points", json={"points": []}).status_code == 404
    api.post(f"/api/v1/runs/{run_id}/finish", json={"status": "cancelled"})


@pytest.fixture
def short_heartbeat(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("FITBOARD_HEARTBEAT_TIMEOUT_S", "60")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _age(run_id: int, seconds: float) -> None:
    with session_scope() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.heartbeat_at = utcnow() - timedelta(seconds=seconds)


def _status(api: TestClient, run_id: int) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/runs/{run_id}").json())


def test_posting_is_a_heartbeat_and_a_silent_external_run_is_reaped(
    api: TestClient, short_heartbeat: None
) -> None:
    alive, dead = _create(api, "alive")["id"], _create(api, "dead")["id"]
    _age(alive, 300)
    _age(dead, 300)
    # the live one posts (an empty batch is a heartbeat), the dead one stays silent
    assert api.post(f"/api/v1/runs/{alive}/points", json={"points": []}).status_code == 200
    sweep_once()
    assert _status(api, alive)["status"] == "running"
    lost = _status(api, dead)
    assert lost["status"] == "failed" and "stopped posting" in lost["failure_reason"]
    api.post(f"/api/v1/runs/{alive}/finish", json={"status": "succeeded"})


def _monitor_form(api: TestClient, name: str, logs: dict[str, Any], **params: Any) -> Any:
    # exactly what RemoteMonitor sends by default: a form field `data` with json.dumps(logs)
    return api.post(
        f"/api/v1/remote-monitor/{name}", data={"data": json.dumps(logs)}, params=params
    )


def _monitor_json(api: TestClient, name: str, logs: dict[str, Any]) -> Any:
    # send_as_json=True; Python's json.dumps writes NaN bare, which is parsed leniently
    return api.post(
        f"/api/v1/remote-monitor/{name}",
        content=json.dumps(logs),
        headers={"Content-Type": "application/json"},
    )


def test_remote_monitor_streams_become_runs(api: TestClient, short_heartbeat: None) -> None:
    first = _monitor_form(api, "rm-form", {"epoch": 0, "loss": 0.9, "accuracy": 0.5})
    assert first.status_code == 200, first.text
    run_id = first.json()["run_id"]
    assert (
        _monitor_form(api, "rm-form", {"epoch": 1, "loss": math.nan, "accuracy": 0.7}).json()[
            "run_id"
        ]
        == run_id
    )
    assert (
        _monitor_json(api, "rm-form", {"epoch": 2, "loss": 0.3, "val_loss": math.inf}).json()[
            "run_id"
        ]
        == run_id
    )
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert series["loss"]["steps"] == [1, 2, 3]
    assert series["loss"]["values"] == [0.9, None, 0.3]
    assert series["val_loss"]["values"] == [1e300]
    run = _status(api, run_id)
    assert run["status"] == "running" and "remote-monitor" in run["tags"]

    # a new epoch 0 of the same name starts a new run and closes the previous one
    second = _monitor_json(api, "rm-form", {"epoch": 0, "loss": 1.0}).json()["run_id"]
    assert second != run_id and _status(api, run_id)["status"] == "succeeded"
    # silence: RemoteMonitor cannot say it ended, so a silent stream is a finished one
    _age(second, 300)
    sweep_once()
    assert _status(api, second)["status"] == "succeeded"
    # ... and a late epoch (a slow one) reopens it rather than losing the point
    late = _monitor_form(api, "rm-form", {"epoch": 1, "loss": 0.8})
    assert late.json()["run_id"] == second and late.json()["status"] == "running"
    api.post(f"/api/v1/runs/{second}/finish", json={"status": "succeeded"})


def test_remote_monitor_with_epochs_finishes_at_the_last(api: TestClient) -> None:
    ids = {
        _monitor_form(api, "rm-epochs", {"epoch": e, "loss": 1.0 - e / 10}, epochs=3).json()[
            "run_id"
        ]
        for e in range(3)
    }
    assert len(ids) == 1
    run = _status(api, ids.pop())
    assert run["status"] == "succeeded" and run["spec"] == {"fit": {"epochs": 3}}


def test_remote_monitor_bad_posts(api: TestClient, anonymous: TestClient) -> None:
    no_epoch = _monitor_form(api, "rm-bad", {"loss": 1.0})
    assert no_epoch.status_code == 422 and no_epoch.json()["errors"][0]["field"] == "epoch"
    not_json = api.post("/api/v1/remote-monitor/rm-bad", data={"data": "{nope"})
    assert not_json.status_code == 422 and not_json.json()["errors"][0]["field"] == "data"
    no_field = api.post("/api/v1/remote-monitor/rm-bad", data={"other": "{}"})
    assert no_field.status_code == 422
    unauth = anonymous.post("/api/v1/remote-monitor/rm-bad", data={"data": '{"epoch": 0}'})
    assert unauth.status_code == 401


def test_remote_monitor_with_epochs_silent_early_is_failed(
    api: TestClient, short_heartbeat: None
) -> None:
    run_id = _monitor_form(api, "rm-early", {"epoch": 0, "loss": 1.0}, epochs=5).json()["run_id"]
    _age(run_id, 300)
    sweep_once()
    run = _status(api, run_id)
    assert run["status"] == "failed" and "before the last of 5 epochs" in run["failure_reason"]
