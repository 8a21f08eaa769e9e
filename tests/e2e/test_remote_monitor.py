"""Runs from anywhere: a separate Python process trains a tiny Keras model on digits and streams
it into a live Fitboard, with FitboardCallback or with Keras' own RemoteMonitor (both modes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from backend.db.session import session_scope
from backend.runs.models import Run
from tests.conftest import ROOT, Identity, LiveStack

pytestmark = pytest.mark.e2e

PRELUDE = """
import json, os, sys
import numpy as np
import keras
from sklearn.datasets import load_digits

x, y = load_digits(return_X_y=True)
x = (x / 16.0).astype("float32")
x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((64,)),
    keras.layers.Dense(32, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
URL, TOKEN, NAME = os.environ["FITBOARD_URL"], os.environ["FITBOARD_TOKEN"], sys.argv[1]


class Count(keras.callbacks.Callback):
    '''What was trained: every numeric value Keras logged per batch and per epoch.'''

    batch_points = 0
    epoch_points = 0

    def on_train_batch_end(self, batch, logs=None):
        Count.batch_points += len(logs or {})

    def on_epoch_end(self, epoch, logs=None):
        Count.epoch_points += len(logs or {})
"""

CALLBACK_SCRIPT = """
from backend.client.keras import FitboardCallback

callback = FitboardCallback(
    URL, TOKEN, name=NAME, params={"units": 32, "optimizer": "adam"}, dataset="digits",
    evaluate=(x_test, y_test, [str(i) for i in range(10)]),
)


class Boom(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if len(sys.argv) > 2:
            raise RuntimeError("boom")


boom = Boom()
model.fit(x_train, y_train, epochs=2, batch_size=100, validation_split=0.1, verbose=0,
          callbacks=[Count(), callback, boom])
print(json.dumps({"run_id": callback.run_id, "status": callback.finished_status,
                  "batch_points": Count.batch_points, "epoch_points": Count.epoch_points}))
"""

MONITOR_SCRIPT = """
mode, path = sys.argv[2], sys.argv[3]
nan_at_epoch_1 = keras.callbacks.LambdaCallback(
    on_epoch_end=lambda epoch, logs: logs.update(loss=float("nan")) if epoch == 1 else None
)
monitor = keras.callbacks.RemoteMonitor(
    root=URL, path=path, headers={"Authorization": f"Bearer {TOKEN}"},
    send_as_json=(mode == "json"),
)
callbacks = [Count(), monitor] if mode == "json" else [Count(), nan_at_epoch_1, monitor]
model.fit(x_train, y_train, epochs=3, batch_size=200, validation_split=0.1, verbose=0,
          callbacks=callbacks)
print(json.dumps({"epoch_points": Count.epoch_points}))
"""


def _run_script(
    stack: LiveStack, tmp_path: Path, body: str, *args: str, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(PRELUDE) + textwrap.dedent(body))
    env = {
        **os.environ,
        "FITBOARD_URL": stack.url,
        "FITBOARD_TOKEN": stack.token,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if ok:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def _point_count(stack: LiveStack, run_id: int) -> tuple[int, dict[str, Any]]:
    with stack.client() as client:
        series = client.get(
            f"/api/v1/runs/{run_id}/metrics", params={"max_points": 100_000}
        ).json()["series"]
    return sum(s["count"] for s in series.values()), series


def test_fitboard_callback_streams_a_run(
    live_stack: LiveStack, admin: Identity, tmp_path: Path
) -> None:
    done = _run_script(live_stack, tmp_path, CALLBACK_SCRIPT, "callback digits")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    run_id = result["run_id"]
    assert result["status"] == "succeeded"
    with live_stack.client() as client:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        evaluation = client.get(f"/api/v1/runs/{run_id}/evaluation").json()
        listed = client.get("/api/v1/runs", params={"q": "callback digits"}).json()["items"]
    assert run["status"] == "succeeded" and run["source"] == "external"
    assert run["spec"] == {"units": 32, "optimizer": "adam", "dataset": {"name": "digits"}}
    assert [r["id"] for r in listed] == [run_id]
    with session_scope(live_stack.env["DATABASE_URL"]) as session:
        assert session.get(Run, run_id).launched_by_id == admin.user_id  # type: ignore[union-attr]
    count, series = _point_count(live_stack, run_id)
    assert count == result["batch_points"] + result["epoch_points"]
    assert series["batch/loss"]["count"] == 2 * 13  # 1260 samples / 100 per batch, 2 epochs
    assert series["val_accuracy"]["steps"] == [1, 2]
    assert sum(map(sum, evaluation["confusion_matrix"])) == len(range(1400, 1797))
    assert evaluation["class_names"] == [str(i) for i in range(10)]
    assert 0 <= evaluation["report"]["accuracy"] <= 1


def test_fitboard_callback_marks_a_crash_failed(live_stack: LiveStack, tmp_path: Path) -> None:
    done = _run_script(live_stack, tmp_path, CALLBACK_SCRIPT, "callback crash", "fail", ok=False)
    assert done.returncode != 0 and "RuntimeError: boom" in done.stderr
    with live_stack.client() as client:
        items = client.get("/api/v1/runs", params={"q": "callback crash"}).json()["items"]
        assert len(items) == 1
        run = client.get(f"/api/v1/runs/{items[0]['id']}").json()
    assert run["status"] == "failed"
    assert "RuntimeError: boom" in run["failure_reason"]
    assert "Traceback" in run["failure_traceback"]


def test_remote_monitor_form_posts_with_nan(live_stack: LiveStack, tmp_path: Path) -> None:
    path = "/api/v1/remote-monitor/monitor-form?epochs=3"
    done = _run_script(live_stack, tmp_path, MONITOR_SCRIPT, "unused", "form", path)
    assert "Could not reach" not in done.stderr
    epoch_points = json.loads(done.stdout.strip().splitlines()[-1])["epoch_points"]
    with live_stack.client() as client:
        items = client.get("/api/v1/runs", params={"q": "monitor-form"}).json()["items"]
    assert len(items) == 1 and items[0]["source"] == "external"
    run_id = items[0]["id"]
    assert items[0]["status"] == "succeeded"  # ?epochs=3: done at the third epoch
    count, series = _point_count(live_stack, run_id)
    assert count == epoch_points
    assert series["loss"]["steps"] == [1, 2, 3]
    assert series["loss"]["values"][1] is None  # the NaN of epoch 1
    assert all(v is not None for v in series["accuracy"]["values"])
    assert series["val_loss"]["steps"] == [1, 2, 3]


def test_remote_monitor_json_posts(live_stack: LiveStack, tmp_path: Path) -> None:
    path = "/api/v1/remote-monitor/monitor-json"
    for attempt in range(2):  # each fit starts at epoch 0: a new run each time
        done = _run_script(live_stack, tmp_path, MONITOR_SCRIPT, "unused", "json", path)
        assert "Could not reach" not in done.stderr, attempt
    epoch_points = json.loads(done.stdout.strip().splitlines()[-1])["epoch_points"]
    with live_stack.client() as client:
        items = client.get("/api/v1/runs", params={"q": "monitor-json"}).json()["items"]
    assert len(items) == 2
    newest, older = items
    # without ?epochs= the first stream ends when the next epoch 0 of its name arrives
    assert older["status"] == "succeeded" and newest["status"] == "running"
    assert "remote-monitor" in newest["tags"]
    count, series = _point_count(live_stack, newest["id"])
    assert count == epoch_points
    assert series["accuracy"]["steps"] == [1, 2, 3]
    with live_stack.client() as client:
        finish = client.post(f"/api/v1/runs/{newest['id']}/finish", json={"status": "succeeded"})
    assert finish.status_code == 200
