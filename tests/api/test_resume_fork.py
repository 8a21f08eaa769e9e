"""Resume and fork by hand (POST /runs/{id}/resume, /runs/{id}/fork): what each takes, what it
refuses and why, who may, and what the new attempt or run starts from (through the worker
protocol, as a worker would see it)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Identity, create_identity

STEPS_PER_EPOCH = 3


@pytest.fixture(scope="module")
def worker(api: TestClient) -> TestClient:
    created = api.post("/api/v1/worker-tokens", json={"name": "resume fork tests"})
    assert created.status_code == 201, created.text
    return TestClient(api.app, headers={"Authorization": f"Bearer {created.json()['token']}"})


@pytest.fixture(scope="module")
def members(api: TestClient, pg_url: str) -> dict[str, TestClient]:
    made: dict[str, Identity] = {
        who: create_identity(pg_url, f"resume-{who}", role)
        for who, role in (("owner", "member"), ("other", "member"), ("viewer", "viewer"))
    }
    return {
        who: TestClient(api.app, headers={"Authorization": f"Bearer {identity.token}"})
        for who, identity in made.items()
    }


def _ok(response: Any, code: int = 200) -> dict[str, Any]:
    assert response.status_code == code, response.text
    return dict(response.json())


def _trained(
    client: TestClient, worker: TestClient, *, epochs: int = 3, status: str = "cancelled"
) -> int:
    """A worker run that trained ``epochs`` epochs of 5 with checkpoints at the last two,
    then ended ``status``."""
    body = {"name": "to resume", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 5}}}
    run_id = int(_ok(client.post("/api/v1/runs", json=body), 201)["id"])
    claimed = _ok(worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "gpu-a"}))
    attempt = claimed["attempt"]
    points = [
        {"key": "batch/loss", "step": s, "value": 1.0 / s, "wall_time": float(s)}
        for s in range(1, epochs * STEPS_PER_EPOCH + 1)
    ] + [
        {"key": "loss", "step": e, "value": 1.0 / e, "wall_time": 9.0} for e in range(1, 1 + epochs)
    ]
    events = []
    for epoch in (epochs - 1, epochs):
        name = f"checkpoint-epoch-{epoch}.keras"
        _ok(
            worker.put(
                f"/api/v1/worker/runs/{run_id}/artifacts/{name}",
                params={"attempt": attempt, "kind": "checkpoint"},
                content=b"ckpt",
            )
        )
        data = {"epoch": epoch, "step": epoch * STEPS_PER_EPOCH, "bytes": 4, "name": name}
        events.append({"kind": "checkpoint", "uid": f"checkpoint-{epoch}", "data": data})
    batch = {"attempt": attempt, "uid": "all", "points": points, "events": events}
    _ok(worker.post(f"/api/v1/runs/{run_id}/points", json=batch))
    finish = {"attempt": attempt, "status": status, "reason": "stopped"}
    assert _ok(worker.post(f"/api/v1/worker/runs/{run_id}/finish", json=finish))["recorded"]
    return run_id


def test_a_cancelled_run_resumes_as_its_next_attempt_from_its_newest_checkpoint(
    api: TestClient, worker: TestClient
) -> None:
    run_id = _trained(api, worker)
    page = _ok(api.get(f"/api/v1/runs/{run_id}"))
    assert page["resumable"] and page["checkpoints"] == [2, 3]
    resumed = _ok(api.post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 8}))
    assert resumed["status"] == "queued" and resumed["attempt"] == 2
    assert resumed["spec"]["fit"]["epochs"] == 8 and resumed["failure_reason"] is None
    assert not resumed["cancel_requested"] and not resumed["resumable"]
    # the worker's next attempt goes on from epoch 3 of this same run
    claimed = _ok(worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "gpu-b"}))
    assert claimed["attempt"] == 2 and claimed["spec"]["fit"]["epochs"] == 8
    point = _ok(worker.get(f"/api/v1/worker/runs/{run_id}/resume", params={"attempt": 2}))
    assert point == {"epoch": 3, "step": 9, "artifact": "checkpoint-epoch-3.keras", "run_id": None}
    series = _ok(api.get(f"/api/v1/runs/{run_id}/metrics"))["series"]
    assert series["loss"]["steps"] == [1, 2, 3]
    assert series["batch/loss"]["steps"] == list(range(1, 10))
    # running now: not resumable, and says why
    again = api.post(f"/api/v1/runs/{run_id}/resume")
    assert again.status_code == 409 and "running" in again.json()["detail"]


def test_resume_says_why_it_cannot(api: TestClient, worker: TestClient) -> None:
    queued = _ok(api.post("/api/v1/runs", json={"name": "q", "preset": "digits-mlp"}), 201)
    refused = api.post(f"/api/v1/runs/{queued['id']}/resume")
    assert refused.status_code == 409 and "queued" in refused.json()["detail"]
    _ok(api.post(f"/api/v1/runs/{queued['id']}/cancel"))
    bare = api.post(f"/api/v1/runs/{queued['id']}/resume")
    assert bare.status_code == 409 and "no checkpoint" in bare.json()["detail"]
    external = _ok(api.post("/api/v1/runs/external", json={"name": "ext"}), 201)
    ext = api.post(f"/api/v1/runs/{external['id']}/resume")
    assert ext.status_code == 409 and "external" in ext.json()["detail"]

    run_id = _trained(api, worker, epochs=5, status="succeeded")
    done = api.post(f"/api/v1/runs/{run_id}/resume")
    assert done.status_code == 409 and "more epochs" in done.json()["detail"]
    fewer = api.post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 4})
    assert fewer.status_code == 422 and fewer.json()["errors"][0]["field"] == "epochs"
    same = api.post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 5})
    assert same.status_code == 422 and "more than 5" in same.json()["detail"]
    bad = api.post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 0})
    assert bad.status_code == 422 and "epochs" in str(bad.json())
    more = _ok(api.post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 7}))
    assert more["status"] == "queued" and more["spec"]["fit"]["epochs"] == 7


def test_members_resume_their_own_runs_and_fork_anyones(
    api: TestClient, worker: TestClient, members: dict[str, TestClient]
) -> None:
    run_id = _trained(members["owner"], worker)
    assert members["viewer"].post(f"/api/v1/runs/{run_id}/resume").status_code == 403
    assert members["other"].post(f"/api/v1/runs/{run_id}/resume").status_code == 403
    body = {"name": "someone else's fork"}
    assert members["viewer"].post(f"/api/v1/runs/{run_id}/fork", json=body).status_code == 403
    forked = _ok(members["other"].post(f"/api/v1/runs/{run_id}/fork", json=body), 201)
    assert forked["launched_by"] == "resume-other"
    _ok(members["owner"].post(f"/api/v1/runs/{run_id}/resume", json={"epochs": 6}))
    admin_run = _trained(members["owner"], worker)
    _ok(api.post(f"/api/v1/runs/{admin_run}/resume"))  # an admin resumes anyone's


def test_a_fork_starts_from_the_sources_checkpoint_with_its_curves_up_to_there(
    api: TestClient, worker: TestClient
) -> None:
    source = _trained(api, worker)
    body = {
        "name": "lower lr",
        "from_epoch": 2,
        "overrides": {"compile": {"optimizer": {"learning_rate": 0.0003}}, "fit": {"epochs": 6}},
    }
    fork = _ok(api.post(f"/api/v1/runs/{source}/fork", json=body), 201)
    assert fork["id"] != source and fork["status"] == "queued" and fork["attempt"] == 1
    assert fork["spec"]["compile"]["optimizer"]["learning_rate"] == 0.0003
    assert fork["spec"]["fit"]["epochs"] == 6
    assert fork["forked_from"] == {"run_id": source, "epoch": 2, "name": "to resume"}
    parent = _ok(api.get(f"/api/v1/runs/{source}"))
    assert parent["forks"] == [{"run_id": fork["id"], "epoch": 2, "name": "lower lr"}]
    series = _ok(api.get(f"/api/v1/runs/{fork['id']}/metrics"))["series"]
    assert series["loss"]["steps"] == [1, 2]
    assert series["batch/loss"]["steps"] == list(range(1, 7))
    assert fork["final_metrics"]["loss"] == pytest.approx(0.5)

    _ok(worker.post(f"/api/v1/worker/runs/{fork['id']}/claim", json={"host": "gpu-c"}))
    point = _ok(worker.get(f"/api/v1/worker/runs/{fork['id']}/resume", params={"attempt": 1}))
    assert point == {
        "epoch": 2,
        "step": 6,
        "artifact": "checkpoint-epoch-2.keras",
        "run_id": source,
    }
    # its worker fetches the source's checkpoint
    fetched = worker.get(f"/api/v1/worker/runs/{source}/artifacts/checkpoint-epoch-2.keras")
    assert fetched.status_code == 200 and fetched.content == b"ckpt"
    # lost before a checkpoint of its own: the next attempt starts from the fork point again
    lost = _ok(
        worker.post(
            f"/api/v1/worker/runs/{fork['id']}/exit",
            json={"attempt": 1, "reason": "the training process was killed by SIGKILL"},
        )
    )
    assert lost == {"status": "queued"}
    series = _ok(api.get(f"/api/v1/runs/{fork['id']}/metrics"))["series"]
    assert series["loss"]["steps"] == [1, 2]
    _ok(worker.post(f"/api/v1/worker/runs/{fork['id']}/claim", json={"host": "gpu-c"}))
    again = _ok(worker.get(f"/api/v1/worker/runs/{fork['id']}/resume", params={"attempt": 2}))
    assert again["run_id"] == source and again["epoch"] == 2
    newest = _ok(api.post(f"/api/v1/runs/{source}/fork", json={"name": "newest"}), 201)
    assert newest["forked_from"]["epoch"] == 3


def test_fork_names_what_is_wrong(api: TestClient, worker: TestClient) -> None:
    source = _trained(api, worker)
    url = f"/api/v1/runs/{source}/fork"
    missing = api.post(url, json={"name": "x", "from_epoch": 1})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "from_epoch"
    assert "epochs 2, 3" in missing.json()["detail"]
    bad = api.post(url, json={"name": "x", "overrides": {"fit": {"batch_size": 0}}})
    assert bad.status_code == 422 and "fit.batch_size" in str(bad.json())
    short = api.post(url, json={"name": "x", "overrides": {"fit": {"epochs": 3}}})
    assert short.status_code == 422 and short.json()["errors"][0]["field"] == "overrides.fit.epochs"
    model = api.post(url, json={"name": "x", "overrides": {"model": {"template": "mlp"}}})
    assert (
        model.status_code == 422
        and model.json()["errors"][0]["field"] == "overrides.model.template"
    )
    loss = api.post(url, json={"name": "x", "overrides": {"compile": {"loss": "mse"}}})
    assert loss.status_code == 422 and loss.json()["errors"][0]["field"] == "overrides.compile.loss"
    blank = api.post(url, json={"name": "  "})
    assert blank.status_code == 422 and "name" in str(blank.json())
    queued = _ok(api.post("/api/v1/runs", json={"name": "q", "preset": "digits-mlp"}), 201)
    running = api.post(f"/api/v1/runs/{queued['id']}/fork", json={"name": "x"})
    assert running.status_code == 409 and "queued" in running.json()["detail"]
    _ok(api.post(f"/api/v1/runs/{queued['id']}/cancel"))
    bare = api.post(f"/api/v1/runs/{queued['id']}/fork", json={"name": "x"})
    assert bare.status_code == 409 and "no checkpoint" in bare.json()["detail"]
    assert api.post("/api/v1/runs/999999999/fork", json={"name": "x"}).status_code == 404
