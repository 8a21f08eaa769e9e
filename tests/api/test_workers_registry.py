"""GET /api/v1/workers: each worker's host resources, every GPU free or busy with which run,
and whether the worker is online; workers report with PUT /api/v1/worker/hosts/{name}."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def _report(worker: TestClient, name: str, running: list[dict[str, Any]]) -> Any:
    body = {
        "host": "gpu-box-1",
        "version": "0.1.0",
        "resources": {
            "cpus": 32,
            "ram_mb": 256_000,
            "concurrency": 2,
            "gpus": [
                {"index": 0, "uuid": "GPU-a", "name": "NVIDIA A100", "memory_mb": 81_920},
                {"index": 1, "uuid": "GPU-b", "name": "NVIDIA A100", "memory_mb": 81_920},
            ],
        },
        "running": running,
    }
    return worker.put(f"/api/v1/worker/hosts/{name}", json=body)


def test_the_fleet_shows_each_gpu_free_or_busy_with_its_run(api: TestClient) -> None:
    token = api.post("/api/v1/worker-tokens", json={"name": "registry"}).json()["token"]
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    run = api.post("/api/v1/runs", json={"name": "on gpu 1", "preset": "digits-mlp"}).json()
    reported = _report(worker, "w1@gpu-box-1", [{"run_id": run["id"], "attempt": 1, "gpus": [1]}])
    assert reported.status_code == 200, reported.text
    listed = {w["name"]: w for w in api.get("/api/v1/workers").json()["items"]}
    mine = listed["w1@gpu-box-1"]
    assert mine["online"] and mine["host"] == "gpu-box-1" and mine["cpus"] == 32
    assert [(g["index"], g["run_id"]) for g in mine["gpus"]] == [(0, None), (1, run["id"])]
    assert mine["running"] == [
        {"run_id": run["id"], "run_name": "on gpu 1", "attempt": 1, "gpus": [1]}
    ]
    # the next beat after the run ended frees the GPU
    _report(worker, "w1@gpu-box-1", [])
    mine = {w["name"]: w for w in api.get("/api/v1/workers").json()["items"]}["w1@gpu-box-1"]
    assert all(g["run_id"] is None for g in mine["gpus"])


def test_reports_need_a_worker_token_and_a_valid_body(
    api: TestClient, anonymous: TestClient
) -> None:
    assert _report(api, "w2@x", []).status_code == 401, "a user token is no worker"
    assert anonymous.get("/api/v1/workers").status_code == 401
    token = api.post("/api/v1/worker-tokens", json={"name": "registry 2"}).json()["token"]
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    bad = worker.put("/api/v1/worker/hosts/w2@x", json={"host": "", "resources": {}})
    assert bad.status_code == 422 and "host" in str(bad.json())
    odd_name = worker.put("/api/v1/worker/hosts/..%2Fx", json={"host": "h", "resources": {}})
    assert odd_name.status_code in (404, 422)


def test_a_queued_run_says_why_no_live_worker_takes_it(api: TestClient) -> None:
    token = api.post("/api/v1/worker-tokens", json={"name": "registry 3"}).json()["token"]
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    assert _report(worker, "w3@gpu-box-1", []).status_code == 200  # two GPUs, online

    def queued(gpus: int | None) -> Any:
        overrides = {"resources": {"gpus": gpus}} if gpus is not None else {}
        body = {"name": f"wants {gpus}", "preset": "digits-mlp", "overrides": overrides}
        run = api.post("/api/v1/runs", json=body).json()
        return api.get(f"/api/v1/runs/{run['id']}").json()

    too_many = queued(3)
    assert too_many["status"] == "queued"
    assert too_many["waiting"] == "waiting: no live worker offers 3 GPUs (the most any offers is 2)"
    assert queued(2)["waiting"] is None, "a live worker could take it: it waits for a slot"
    assert queued(None)["waiting"] is None


def test_a_worker_reports_its_pool_and_each_gpus_utilisation_and_memory(api: TestClient) -> None:
    token = api.post("/api/v1/worker-tokens", json={"name": "registry 4"}).json()["token"]
    worker = TestClient(api.app, headers={"Authorization": f"Bearer {token}"})
    gpu = {"index": 0, "name": "NVIDIA A100", "memory_mb": 81_920}
    body = {
        "host": "gpu-box-4",
        "resources": {
            "pool": "research",
            "gpus": [{**gpu, "util_pct": 87.5, "memory_used_mb": 40_000}],
        },
    }
    assert worker.put("/api/v1/worker/hosts/w4@gpu-box-4", json=body).status_code == 200
    mine = {w["name"]: w for w in api.get("/api/v1/workers").json()["items"]}["w4@gpu-box-4"]
    assert mine["pool"] == "research"
    assert mine["gpus"][0]["util_pct"] == 87.5 and mine["gpus"][0]["memory_used_mb"] == 40_000
    body["resources"]["gpus"] = [{**gpu, "util_pct": 101}]  # type: ignore[index]
    assert worker.put("/api/v1/worker/hosts/w4@gpu-box-4", json=body).status_code == 422
