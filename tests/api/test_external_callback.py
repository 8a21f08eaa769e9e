"""FitboardCallback in-process against the real app and database, through a network that
drops requests for a while: the run gets every point and event, once, and is finished. It is
the managed trainer's streaming core (StreamingCallback + MetricFlusher) on an ExternalSink."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Any

import httpx
import keras
import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from backend.client import Fitboard, FitboardError
from backend.client.keras import ExternalSink, FitboardCallback, confusion_matrix
from backend.client.streaming import MetricFlusher, StreamingCallback
from backend.db.session import session_scope
from backend.events.models import RunEvent
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
    """Counts the logged values; with a flusher, sends a note (NaN in it) at each epoch end."""

    def __init__(self, flusher: MetricFlusher | None = None) -> None:
        super().__init__()
        self.points = 0
        self.flusher = flusher

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.points += len(logs or {})

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.points += len(logs or {})
        if self.flusher is not None:
            self.flusher.event("note", {"epoch": epoch + 1, "spread": float("nan")})


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
    # one streaming core: the managed trainer's callback and flusher, not a copy of them
    assert isinstance(callback, StreamingCallback)
    assert isinstance(callback.flusher, MetricFlusher) and callback.flusher.sink is callback.sink
    assert isinstance(callback.sink, ExternalSink)
    count = Count(callback.flusher)
    model.fit(x, y, epochs=3, batch_size=40, verbose=0, callbacks=[count, callback])

    assert flaky.dropped == 5 and callback.failed_posts >= 1
    assert callback.flusher.backlog == 0 and callback.points_sent == count.points
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
    assert evaluation["report"]["accuracy"] == np.trace(evaluation["confusion_matrix"]) / 240
    with session_scope() as session:
        events = session.execute(
            select(RunEvent.kind, RunEvent.data)
            .where(RunEvent.run_id == run_id, RunEvent.kind.in_(["train_begin", "note"]))
            .order_by(RunEvent.id)
        ).all()
    # every event once, through the outage (the first post, holding train_begin, was dropped)
    assert [tuple(e) for e in events] == [
        ("train_begin", {"epochs": 3, "steps_per_epoch": 6, "batch_size": None,
                         "train_samples": None}),
        *[("note", {"epoch": n, "spread": None}) for n in (1, 2, 3)],
    ]  # fmt: skip


def test_confusion_matrix_from_indices_and_one_hot() -> None:
    truth = np.array([0, 1, 2, 2])
    pred = np.array([0, 2, 2, 1])
    expected = [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert confusion_matrix(truth, pred, 3) == expected
    assert confusion_matrix(np.eye(3)[truth], pred, 3) == expected


class StubClient:
    """Records posts; answers a cancel once asked to, or refuses every post with ``refuse``."""

    url = "http://stub"

    def __init__(self, refuse: int | None = None) -> None:
        self.refuse = refuse
        self.cancel = False
        self.posts: list[dict[str, Any]] = []

    def create_external_run(self, name: str, **_: Any) -> dict[str, Any]:
        return {"id": 7}

    def post_points(self, run_id: int, points: list[dict[str, Any]], **body: Any) -> dict[str, Any]:
        if self.refuse is not None:
            raise FitboardError(f"HTTP {self.refuse}", status=self.refuse, code="forbidden")
        self.posts.append({"run_id": run_id, "points": points, **body})
        return {"cancel_requested": self.cancel}

    def finish_run(self, run_id: int, status: str, **_: Any) -> dict[str, Any]:
        if self.refuse is not None:
            raise FitboardError(f"HTTP {self.refuse}", status=self.refuse, code="forbidden")
        return {"id": run_id, "status": status}


def test_external_sink_heartbeats_and_hears_a_cancel() -> None:
    stub = StubClient()
    sink = ExternalSink(stub, create=lambda: 7, heartbeat_s=0.0)  # type: ignore[arg-type]
    assert sink.cancel_requested() is False and stub.posts == [], "no run yet: nothing to beat"
    point = {"key": "batch/loss", "step": 1, "value": float("inf"), "wall_time": 1.0}
    sink.write("b-1", [point], [])  # type: ignore[list-item]
    assert stub.posts[0]["points"] == [{**point, "value": 1e300}], "JSON has no infinity"
    stub.cancel = True
    assert sink.cancel_requested() is True  # an empty post: the heartbeat, answering the cancel
    assert stub.posts[-1]["points"] == [] and sink.run_id == 7


def test_a_refusal_for_good_stops_sending_and_close_says_so() -> None:
    stub = StubClient(refuse=403)
    callback = FitboardCallback(client=stub, flush_interval_s=0.01, close_timeout_s=5)  # type: ignore[arg-type]
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x = np.zeros((8, 2), dtype="float32")
    hook = sys.excepthook
    try:
        model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=0, callbacks=[callback])
    finally:  # this run must not try to end itself again when the test process exits
        atexit.unregister(callback._at_exit)
        sys.excepthook = hook
    assert isinstance(callback.sink.refused, FitboardError) and callback.points_sent == 0
    assert callback.flusher.backlog == 0, "nothing is held back retrying a refused batch"
    assert callback.finished_status is None and callback.close() is False
