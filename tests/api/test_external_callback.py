"""FitboardCallback in-process against the real app and database, through a network that
drops requests for a while: the run gets every point, once, and is finished."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import keras
import numpy as np
from fastapi.testclient import TestClient

from backend.client import Fitboard
from backend.client.keras import FitboardCallback, confusion_matrix
from tests.conftest import Identity


class FlakyTransport(httpx.BaseTransport):
    """The app's own transport, but requests number first..last fail as if the server were down."""

    def __init__(self, inner: httpx.BaseTransport, first: int, last: int) -> None:
        self.inner = inner
        self.first, self.last = first, last
        self.seen = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.seen += 1
            down = self.first <= self.seen <= self.last
            if down:
                self.dropped += 1
        if down:
            raise httpx.ConnectError("connection refused (simulated outage)", request=request)
        return self.inner.handle_request(request)


class Count(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.points = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.points += len(logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.points += len(logs or {})


def test_callback_survives_an_outage_and_loses_no_point(api: TestClient, admin: Identity) -> None:
    # requests 2..6 fail: the first points post and its retries (the run is created first)
    flaky = FlakyTransport(api._transport, first=2, last=6)  # type: ignore[attr-defined]
    client = Fitboard("http://testserver", admin.token, transport=flaky)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 8)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)]
    )
    model.compile(
        "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    callback = FitboardCallback(
        name="flaky network",
        client=client,
        evaluate=(x, y, ["neg", "pos"]),
        flush_interval_s=0.05,
        backoff_s=(0.05, 0.2),
    )
    count = Count()
    model.fit(x, y, epochs=3, batch_size=40, verbose=0, callbacks=[count, callback])

    assert flaky.dropped == 5 and callback.failed_posts >= 1
    assert callback.finished_status == "succeeded"
    run_id = callback.run_id
    assert run_id is not None
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["status"] == "succeeded" and run["source"] == "external"
    series = api.get(f"/api/v1/runs/{run_id}/metrics", params={"max_points": 10_000}).json()
    assert sum(s["count"] for s in series["series"].values()) == count.points
    assert series["series"]["batch/loss"]["steps"] == list(range(1, 3 * 6 + 1))
    evaluation = api.get(f"/api/v1/runs/{run_id}/evaluation").json()
    assert sum(map(sum, evaluation["confusion_matrix"])) == 240
    assert evaluation["class_names"] == ["neg", "pos"]


def test_confusion_matrix_from_indices_and_one_hot() -> None:
    truth = np.array([0, 1, 2, 2])
    pred = np.array([0, 2, 2, 1])
    expected = [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert confusion_matrix(truth, pred, 3) == expected
    assert confusion_matrix(np.eye(3)[truth], pred, 3) == expected
