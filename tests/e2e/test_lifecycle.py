"""End to end on PostgreSQL and Redis with a real worker: submit, stream, evaluate, download."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.metrics import classification_report, confusion_matrix

from tests.conftest import LiveStack
from tests.e2e.helpers import (
    Event,
    batch_steps,
    iter_events,
    submit,
    trainer_processes,
    wait_status,
)

pytestmark = pytest.mark.e2e


def test_submit_stream_evaluate_download(live_stack: LiveStack, tmp_path: Path) -> None:
    with live_stack.client() as client:
        run = submit(client, "e2e digits", {"fit": {"epochs": 3, "batch_size": 64}})
        assert run["status"] == "queued"
        assert run["spec"]["fit"]["epochs"] == 3
        events = list(iter_events(live_stack.url, run["id"], after=0))
        final = client.get(f"/api/v1/runs/{run['id']}").json()

    statuses = [e.data["status"] for e in events if e.kind == "status"]
    assert statuses == ["queued", "running", "succeeded"], final
    # the stages of the start, as they happened, before training began
    kinds = [e.kind if e.kind != "stage" else e.data["stage"] for e in events]
    order = ["process_started", "data_loaded", "model_built", "train_begin"]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order), kinds
    stages = {e.data["stage"]: e.data for e in events if e.kind == "stage"}
    assert stages["data_loaded"]["train"] > 0 and stages["data_loaded"]["input_shape"]
    assert stages["model_built"]["params"] > 0
    assert stages["process_started"]["startup_s"] > 0
    ids = [e.id for e in events if e.kind != "end"]
    assert ids == sorted(set(ids)), "event ids increase, without duplicates"
    begin = next(e.data for e in events if e.kind == "train_begin")
    total_batches = begin["steps_per_epoch"] * 3
    steps = batch_steps(events)
    assert steps == list(range(1, total_batches + 1)), "one point for every batch, in order"
    epoch_keys = {
        p[0]
        for e in events
        if e.kind == "metrics"
        for p in e.data["points"]
        if not p[0].startswith("batch/")
    }
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= epoch_keys
    assert final["started_at"] and final["finished_at"] and final["worker_host"]
    assert final["final_metrics"]["val_accuracy"] > 0.5


@pytest.fixture(scope="module")
def finished_run(live_stack: LiveStack) -> dict:
    with live_stack.client() as client:
        run = submit(client, "e2e evaluated", {"fit": {"epochs": 4, "batch_size": 32}})
        return wait_status(client, run["id"], {"succeeded", "failed"})


def test_evaluation_matches_sklearn_on_downloaded_model(
    live_stack: LiveStack, finished_run: dict, data_dir: Path, tmp_path: Path
) -> None:
    import keras

    from backend.spec import ExperimentSpec
    from worker.trainer import datasets

    assert finished_run["status"] == "succeeded", finished_run
    run_id = finished_run["id"]
    with live_stack.client() as client:
        evaluation = client.get(f"/api/v1/runs/{run_id}/evaluation").json()
        listing = client.get(f"/api/v1/runs/{run_id}/artifacts").json()["items"]
        model_item = next(a for a in listing if a["name"] == "model.keras")
        blob = client.get(model_item["url"])
    assert blob.status_code == 200
    path = tmp_path / "model.keras"
    path.write_bytes(blob.content)
    model = keras.saving.load_model(path)

    spec = ExperimentSpec.model_validate(finished_run["spec"])
    data = datasets.load(spec.dataset, data_dir=data_dir)
    y_pred = np.argmax(model.predict(data.x_test, verbose=0), axis=1)
    labels = list(range(10))
    assert evaluation["class_names"] == [str(d) for d in range(10)]
    assert (
        evaluation["confusion_matrix"]
        == confusion_matrix(data.y_test, y_pred, labels=labels).tolist()
    )
    expected = classification_report(
        data.y_test,
        y_pred,
        labels=labels,
        target_names=evaluation["class_names"],
        output_dict=True,
        zero_division=0,
    )
    assert evaluation["report"].keys() == expected.keys()
    for name, row in expected.items():
        if isinstance(row, dict):
            for metric, value in row.items():
                assert evaluation["report"][name][metric] == pytest.approx(value), (name, metric)
        else:
            assert evaluation["report"][name] == pytest.approx(row)
    assert expected["accuracy"] > 0.8


def test_resume_with_last_event_id_has_no_gap_or_duplicate(
    live_stack: LiveStack, finished_run: dict
) -> None:
    full = [e for e in iter_events(live_stack.url, finished_run["id"], after=0) if e.kind != "end"]
    # status changes, train_begin, metric batches (how many depends on the flush timing),
    # evaluation, artifacts: enough that the middle leaves events on both sides
    assert len(full) >= 6
    middle = full[len(full) // 2].id
    resumed = [
        e
        for e in iter_events(live_stack.url, finished_run["id"], last_event_id=middle)
        if e.kind != "end"
    ]
    assert [e.id for e in resumed] == [e.id for e in full if e.id > middle]
    assert [e.data for e in resumed] == [e.data for e in full if e.id > middle]


def test_live_reconnect_mid_run_gets_exactly_the_rest(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        run = submit(client, "e2e reconnect", {"fit": {"epochs": 6, "batch_size": 16}})
    first: list[Event] = []
    for event in iter_events(live_stack.url, run["id"], after=0):
        first.append(event)
        if len(batch_steps(first)) >= 20:
            break  # the client goes away mid-run
    rest = list(iter_events(live_stack.url, run["id"], last_event_id=first[-1].id))
    seen = first + [e for e in rest if e.kind != "end"]
    assert [e.id for e in seen] == sorted({e.id for e in seen})
    steps = batch_steps(seen)
    assert steps == list(range(1, len(steps) + 1))
    assert [e.data["status"] for e in seen if e.kind == "status"][-1] == "succeeded"


def test_cancel_running_run_stops_quickly_and_keeps_model(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        run = submit(client, "e2e cancel", {"fit": {"epochs": 500, "batch_size": 8}})
        seen: list[Event] = []
        for event in iter_events(live_stack.url, run["id"], after=0):
            seen.append(event)
            if len(batch_steps(seen)) >= 30:
                break
        cancelled_at = time.time()
        response = client.post(f"/api/v1/runs/{run['id']}/cancel")
        assert response.status_code == 200 and response.json()["cancel_requested"]
        final = wait_status(client, run["id"], {"cancelled", "failed", "succeeded"}, 60)
        assert final["status"] == "cancelled", final
        artifacts = client.get(f"/api/v1/runs/{run['id']}/artifacts").json()["items"]
        again = client.post(f"/api/v1/runs/{run['id']}/cancel")
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert "model.keras" in {a["name"] for a in artifacts}, "the model so far is kept"
    assert final["finished_at"] is not None
    # the training loop saw the cancel within well under a second of batches
    latest_batch_time = _last_wall_time(live_stack, run["id"])
    assert latest_batch_time - cancelled_at < 1.5


def _last_wall_time(stack: LiveStack, run_id: int) -> float:
    events = list(iter_events(stack.url, run_id, after=0))
    return max(
        p[3]
        for e in events
        if e.kind == "metrics"
        for p in e.data["points"]
        if p[0] == "batch/loss"
    )


def test_cancelled_queued_run_never_starts(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        busy = submit(client, "e2e busy", {"fit": {"epochs": 500, "batch_size": 8}})
        wait_status(client, busy["id"], {"running"}, 60)
        queued = submit(client, "e2e queued then cancelled")
        response = client.post(f"/api/v1/runs/{queued['id']}/cancel")
        assert response.json()["status"] == "cancelled"
        client.post(f"/api/v1/runs/{busy['id']}/cancel")
        wait_status(client, busy["id"], {"cancelled"}, 60)
        time.sleep(2)  # the worker has now taken the queued run's task off the queue
        final = client.get(f"/api/v1/runs/{queued['id']}").json()
    assert final["status"] == "cancelled" and final["started_at"] is None
    statuses = [
        e.data["status"]
        for e in iter_events(live_stack.url, queued["id"], after=0)
        if e.kind == "status"
    ]
    assert "running" not in statuses


def test_redelivered_task_never_starts_a_run_twice(
    live_stack: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend import dispatch
    from backend.config import get_settings

    with live_stack.client() as client:
        run = submit(client, "e2e twice", {"fit": {"epochs": 2}})
        # the same run id sent again, as Redis does after visibility_timeout
        with monkeypatch.context() as patch:
            patch.setenv("REDIS_URL", live_stack.env["REDIS_URL"])
            patch.setenv("FITBOARD_QUEUE", live_stack.env["FITBOARD_QUEUE"])
            get_settings.cache_clear()
            dispatch.get_celery.cache_clear()
            dispatch.send_run(run["id"])
            dispatch.send_run(run["id"])
        get_settings.cache_clear()
        dispatch.get_celery.cache_clear()
        wait_status(client, run["id"], {"succeeded"})
    skipped = f"run {run['id']}: not queued any more"
    worker_log = live_stack.home / "logs" / "worker.out"
    deadline = time.monotonic() + 60
    while worker_log.read_text(errors="replace").count(skipped) < 2:
        assert time.monotonic() < deadline, "the duplicate deliveries were not consumed"
        time.sleep(0.5)
    events = list(iter_events(live_stack.url, run["id"], after=0))
    assert [e.data["status"] for e in events if e.kind == "status"] == [
        "queued",
        "running",
        "succeeded",
    ]
    assert sum(1 for e in events if e.kind == "train_begin") == 1


def test_killed_training_process_marks_run_failed(live_stack: LiveStack) -> None:
    with live_stack.client() as client:
        # no restarts: a killed training process ends the run (test_chaos: one with restarts)
        run = submit(
            client, "e2e crash", {"fit": {"epochs": 500, "batch_size": 8}, "max_restarts": 0}
        )
        seen: list[Event] = []
        for event in iter_events(live_stack.url, run["id"], after=0):
            seen.append(event)
            if batch_steps(seen):
                break
        pid = _trainer_pid(run["id"])
        os.kill(pid, signal.SIGKILL)
        final = wait_status(client, run["id"], {"failed", "succeeded", "cancelled"}, 60)
    assert final["status"] == "failed"
    assert "SIGKILL" in final["failure_reason"]


def _trainer_pid(run_id: int) -> int:
    found = trainer_processes(run_id)
    assert found, f"no training process for run {run_id}"
    return int(found[0].pid)


def test_health_reports_database_redis_and_workers(live_stack: LiveStack) -> None:
    body = httpx.get(live_stack.url + "/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "backend": "postgresql"}
    assert body["redis"]["ok"] and body["workers"] >= 1


def test_metrics_endpoint_downsamples_with_envelope(
    live_stack: LiveStack, finished_run: dict
) -> None:
    params = {"keys": "batch/loss,val_loss", "max_points": 10}
    auth = {"Authorization": f"Bearer {live_stack.token}"}
    body = httpx.get(
        f"{live_stack.url}/api/v1/runs/{finished_run['id']}/metrics", params=params, headers=auth
    ).json()
    batch = body["series"]["batch/loss"]
    assert batch["downsampled"] and len(batch["steps"]) <= 10 and batch["count"] > 10
    full = httpx.get(
        f"{live_stack.url}/api/v1/runs/{finished_run['id']}/metrics",
        params={"keys": "batch/loss", "max_points": 100000},
        headers=auth,
    ).json()
    values = full["series"]["batch/loss"]["values"]
    assert max(batch["max"]) == pytest.approx(max(values))
    assert min(batch["min"]) == pytest.approx(min(values))
    assert body["series"]["val_loss"]["downsampled"] is False
    assert len(body["series"]["val_loss"]["values"]) == 4
