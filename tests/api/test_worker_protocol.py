"""The worker protocol over HTTP: worker tokens (admin-made, shown once, revocable) and what a
worker does to a run (claim once, heartbeat, write batches idempotently, log by offset,
artifacts, finish), with a stale attempt refused."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def token(api: TestClient) -> str:
    created = api.post("/api/v1/worker-tokens", json={"name": "protocol tests"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["token"].startswith("fbw_") and body["prefix"] == body["token"][:10]
    listed = api.get("/api/v1/worker-tokens").json()["items"]
    assert [t["name"] for t in listed if t["id"] == body["id"]] == ["protocol tests"]
    assert all("token" not in t for t in listed), "a token is shown once, never listed"
    return str(body["token"])


@pytest.fixture
def worker(api: TestClient, token: str) -> TestClient:
    return TestClient(api.app, headers={"Authorization": f"Bearer {token}"})


def _queued(api: TestClient) -> int:
    body = {"name": "protocol", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}}
    response = api.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _claim(worker: TestClient, run_id: int, host: str = "gpu-a") -> dict[str, Any]:
    response = worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": host})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_run_is_claimed_once_and_trained_through_the_protocol(
    api: TestClient, worker: TestClient
) -> None:
    run_id = _queued(api)
    claimed = _claim(worker, run_id)
    assert claimed["attempt"] == 1 and claimed["spec"]["fit"]["epochs"] == 1
    again = worker.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "gpu-b"})
    assert again.status_code == 409 and again.json()["code"] == "not_running"
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "running" and run["worker_host"] == "gpu-a"

    beat = worker.post(f"/api/v1/worker/runs/{run_id}/heartbeat", json={"attempt": 1})
    assert beat.json() == {"cancel_requested": False}
    spec = worker.get(f"/api/v1/worker/runs/{run_id}/spec", params={"attempt": 1})
    assert spec.json()["spec"] == claimed["spec"]

    batch = {
        "attempt": 1,
        "uid": "b1",
        "points": [
            {"key": "batch/loss", "step": 1, "value": 0.9, "wall_time": 1.0},
            {"key": "loss", "step": 1, "value": None, "wall_time": 1.0},
        ],
        "events": [{"kind": "stage", "data": {"stage": "data_loaded"}, "uid": "stage-x"}],
    }
    for _ in range(2):  # a retry of the same batch stores nothing twice
        sent = worker.post(f"/api/v1/runs/{run_id}/points", json=batch)
        assert sent.status_code == 200, sent.text
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert series["batch/loss"]["steps"] == [1] and series["loss"]["values"] == [None]

    for offset, data in ((0, b"hello "), (0, b"hello "), (6, b"world\n")):
        logged = worker.post(
            f"/api/v1/worker/runs/{run_id}/log", params={"offset": offset}, content=data
        )
        assert logged.status_code == 200, logged.text
    assert logged.json()["size"] == 12
    gap = worker.post(f"/api/v1/worker/runs/{run_id}/log", params={"offset": 99}, content=b"x")
    assert gap.status_code == 422 and "12" in gap.json()["detail"]
    assert api.get(f"/api/v1/runs/{run_id}/log").json()["text"] == "hello world\n"

    put = worker.put(
        f"/api/v1/worker/runs/{run_id}/artifacts/model.keras",
        params={"attempt": 1, "kind": "model"},
        content=b"PK-bytes",
    )
    assert put.json() == {"name": "model.keras", "size_bytes": 8}
    assert api.get(f"/api/v1/runs/{run_id}/artifacts/model.keras").content == b"PK-bytes"
    back = worker.get(f"/api/v1/worker/runs/{run_id}/artifacts/model.keras")
    assert back.content == b"PK-bytes"
    bad_name = worker.put(f"/api/v1/worker/runs/{run_id}/artifacts/..%2Fx", content=b"x")
    assert bad_name.status_code in (404, 422)

    evaluation = {
        "attempt": 1,
        "split": "test",
        "class_names": ["a", "b"],
        "confusion_matrix": [[3, 1], [0, 4]],
        "report": {"accuracy": 0.875},
    }
    assert worker.put(f"/api/v1/worker/runs/{run_id}/evaluation", json=evaluation).is_success
    finished = worker.post(
        f"/api/v1/worker/runs/{run_id}/finish", json={"attempt": 1, "status": "succeeded"}
    )
    assert finished.json() == {"recorded": True}
    assert api.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded"


def test_a_stale_attempt_is_refused_and_a_crash_is_queued_again(
    api: TestClient, worker: TestClient
) -> None:
    run_id = _queued(api)
    _claim(worker, run_id)
    crashed = worker.post(
        f"/api/v1/worker/runs/{run_id}/exit",
        json={"attempt": 1, "reason": "the training process was killed by SIGKILL"},
    )
    assert crashed.json() == {"status": "queued"}
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "queued" and run["attempt"] == 2
    stale = worker.post(
        f"/api/v1/runs/{run_id}/points",
        json={"attempt": 1, "uid": "late", "points": [{"key": "loss", "step": 1, "value": 1}]},
    )
    assert stale.status_code == 409 and stale.json()["code"] == "superseded"
    assert _claim(worker, run_id)["attempt"] == 2
    beat = worker.post(f"/api/v1/worker/runs/{run_id}/heartbeat", json={"attempt": 1})
    assert beat.status_code == 409 and beat.json()["code"] == "superseded"


def test_points_are_one_endpoint_for_scripts_and_workers(
    api: TestClient, worker: TestClient
) -> None:
    """A worker's training process posts its batches where FitboardCallback posts its own:
    with its worker token and attempt it may send the API's own event kinds; a worker token
    writes only to a run it trains, and a script may not send those kinds."""
    run_id = _queued(api)
    _claim(worker, run_id)
    body = {
        "attempt": 1,
        "uid": "w1",
        "points": [{"key": "loss", "step": 1, "value": 0.5}],
        "events": [{"kind": "checkpoint", "data": {"epoch": 1}, "uid": "checkpoint-1"}],
    }
    sent = worker.post(f"/api/v1/runs/{run_id}/points", json=body)
    assert sent.status_code == 200, sent.text
    assert sent.json() == {
        "run_id": run_id,
        "points": 1,
        "cancel_requested": False,
        "watched": False,
    }
    # a script's run: the worker token may not write there
    external = api.post("/api/v1/runs/external", json={"name": "script"}).json()["id"]
    foreign = worker.post(f"/api/v1/runs/{external}/points", json={**body, "attempt": None})
    assert foreign.status_code == 409, foreign.text
    # and a script may not send what only the API or a worker writes
    refused = api.post(f"/api/v1/runs/{external}/points", json={**body, "attempt": None})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "events.0.kind"
    # an event kind longer than the store keeps is a 422, not a 500
    long_kind = {"uid": "k", "events": [{"kind": "k" * 33, "data": {}, "uid": "k"}]}
    too_long = api.post(f"/api/v1/runs/{external}/points", json=long_kind)
    assert too_long.status_code == 422 and "kind" in str(too_long.json())
    # cancelling shows in the answer to the worker's next batch
    assert api.post(f"/api/v1/runs/{run_id}/cancel").status_code in (200, 202)
    again = worker.post(f"/api/v1/runs/{run_id}/points", json={**body, "uid": "w2"})
    assert again.json()["cancel_requested"] is True


def test_worker_tokens_open_the_worker_protocol_only(
    api: TestClient, worker: TestClient, anonymous: TestClient
) -> None:
    assert worker.get("/api/v1/runs").status_code == 401, "a worker token is no user"
    run_id = _queued(api)
    as_user = api.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "x"})
    assert as_user.status_code == 401, "a user token does not open the worker protocol"
    nobody = anonymous.post(f"/api/v1/worker/runs/{run_id}/claim", json={"host": "x"})
    assert nobody.status_code == 401 and "worker token" in nobody.json()["detail"]


def test_a_revoked_token_claims_nothing_new_but_finishes_what_it_holds(
    api: TestClient,
) -> None:
    created = api.post("/api/v1/worker-tokens", json={"name": "to revoke"}).json()
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {created['token']}"})
    held, waiting = _queued(api), _queued(api)
    _claim(worker, held)
    assert api.delete(f"/api/v1/worker-tokens/{created['id']}").status_code == 204
    refused = worker.post(f"/api/v1/worker/runs/{waiting}/claim", json={"host": "gpu-a"})
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert api.get(f"/api/v1/runs/{waiting}").json()["status"] == "queued"
    beat = worker.post(f"/api/v1/worker/runs/{held}/heartbeat", json={"attempt": 1})
    assert beat.status_code == 200, "the run it holds may finish"
    listed = {t["id"] for t in api.get("/api/v1/worker-tokens").json()["items"]}
    assert created["id"] not in listed
    again = api.delete(f"/api/v1/worker-tokens/{created['id']}")
    assert again.status_code == 404


def test_bad_input_names_the_field(api: TestClient, worker: TestClient) -> None:
    run_id = _queued(api)
    _claim(worker, run_id)
    bad = worker.post(
        f"/api/v1/runs/{run_id}/points",
        json={"attempt": 1, "uid": "x", "points": [{"key": "loss", "step": -1, "value": 1}]},
    )
    assert bad.status_code == 422 and "step" in str(bad.json())
    nameless = api.post("/api/v1/worker-tokens", json={"name": ""})
    assert nameless.status_code == 422 and "name" in str(nameless.json())
    missing = worker.get("/api/v1/worker/datasets/999999/manifest")
    assert missing.status_code == 404


def _batch(worker: TestClient, run_id: int, attempt: int, uid: str, **body: Any) -> None:
    sent = worker.post(
        f"/api/v1/runs/{run_id}/points", json={"attempt": attempt, "uid": uid, **body}
    )
    assert sent.status_code == 200, sent.text


def test_a_lost_attempt_resumes_from_its_newest_checkpoint_keeping_what_came_before(
    api: TestClient, worker: TestClient
) -> None:
    run_id = _queued(api)
    _claim(worker, run_id)
    steps_per_epoch = 3
    points = [
        {"key": "batch/loss", "step": s, "value": 1.0 / s, "wall_time": float(s)}
        for s in range(1, 3 * steps_per_epoch + 1)
    ] + [{"key": "loss", "step": e, "value": 1.0 / e, "wall_time": 9.0} for e in (1, 2, 3)]
    points.append({"key": "sys/rss_mb", "step": 4, "value": 100.0, "wall_time": 4.0})
    _batch(worker, run_id, 1, "points", points=points)
    for epoch in (1, 2, 3):
        put = worker.put(
            f"/api/v1/worker/runs/{run_id}/artifacts/checkpoint-epoch-{epoch}.keras",
            params={"attempt": 1, "kind": "checkpoint"},
            content=b"ckpt",
        )
        assert put.status_code == 200, put.text
    # 1 and 2 were announced; 3 was uploaded but its event never made it
    events = [
        {
            "kind": "checkpoint",
            "uid": f"checkpoint-{epoch}",
            "data": {
                "epoch": epoch,
                "step": epoch * steps_per_epoch,
                "bytes": 4,
                "seconds": 0.1,
                "name": f"checkpoint-epoch-{epoch}.keras",
            },
        }
        for epoch in (1, 2)
    ]
    _batch(worker, run_id, 1, "events", events=events)
    deleted = worker.delete(
        f"/api/v1/worker/runs/{run_id}/artifacts/checkpoint-epoch-1.keras", params={"attempt": 1}
    )
    assert deleted.json() == {"deleted": True}
    again = worker.delete(
        f"/api/v1/worker/runs/{run_id}/artifacts/checkpoint-epoch-1.keras", params={"attempt": 1}
    )
    assert again.json() == {"deleted": False}
    gone = api.get(f"/api/v1/runs/{run_id}/artifacts/checkpoint-epoch-1.keras")
    assert gone.status_code == 404

    crashed = worker.post(
        f"/api/v1/worker/runs/{run_id}/exit",
        json={"attempt": 1, "reason": "the training process was killed by SIGKILL"},
    )
    assert crashed.json() == {"status": "queued"}
    series = api.get(f"/api/v1/runs/{run_id}/metrics").json()["series"]
    assert series["batch/loss"]["steps"] == list(range(1, 2 * steps_per_epoch + 1))
    assert series["loss"]["steps"] == [1, 2]
    assert "sys/rss_mb" not in series
    names = {a["name"] for a in api.get(f"/api/v1/runs/{run_id}/artifacts").json()["items"]}
    assert "checkpoint-epoch-3.keras" not in names and "checkpoint-epoch-2.keras" in names

    assert _claim(worker, run_id)["attempt"] == 2
    resume = worker.get(f"/api/v1/worker/runs/{run_id}/resume", params={"attempt": 2})
    assert resume.json() == {
        "epoch": 2,
        "step": 6,
        "artifact": "checkpoint-epoch-2.keras",
        "run_id": None,
    }
    stale = worker.delete(
        f"/api/v1/worker/runs/{run_id}/artifacts/checkpoint-epoch-2.keras", params={"attempt": 1}
    )
    assert stale.status_code == 409 and stale.json()["code"] == "superseded"


def test_a_crash_a_retry_cannot_fix_is_not_retried(api: TestClient, worker: TestClient) -> None:
    run_id = _queued(api)
    _claim(worker, run_id)
    assert worker.get(f"/api/v1/worker/runs/{run_id}/resume").json()["epoch"] is None
    crashed = worker.post(
        f"/api/v1/worker/runs/{run_id}/exit",
        json={
            "attempt": 1,
            "reason": "the training process exited with code 134",
            "traceback": "2026 W tensorflow: OOM when allocating tensor with shape[8192,8192]",
        },
    )
    assert crashed.json() == {"status": "failed"}
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["attempt"] == 1
    assert "not retried: out of memory (OOM when allocating)" in run["failure_reason"]


def test_the_kernels_oom_kill_is_not_retried_a_plain_kill_is(
    api: TestClient, worker: TestClient
) -> None:
    """The worker tells the OOM killer's SIGKILL apart (worker.oom) and says so in its reason;
    any other SIGKILL (kill -9 by a person) goes back to the queue."""
    killed = _queued(api)
    _claim(worker, killed)
    plain = worker.post(
        f"/api/v1/worker/runs/{killed}/exit",
        json={"attempt": 1, "reason": "the training process was killed by SIGKILL"},
    )
    assert plain.json() == {"status": "queued"}

    oom_killed = _queued(api)
    _claim(worker, oom_killed)
    reason = "the training process was killed by the kernel's OOM killer (out of memory)"
    answer = worker.post(
        f"/api/v1/worker/runs/{oom_killed}/exit", json={"attempt": 1, "reason": reason}
    )
    assert answer.json() == {"status": "failed"}
    run = api.get(f"/api/v1/runs/{oom_killed}").json()
    assert run["attempt"] == 1
    assert "OOM killer" in run["failure_reason"]
    assert "not retried: out of memory" in run["failure_reason"]
