"""The training log API: reading by byte offset, and following it as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend.runlogs import service as runlogs
from backend.runlogs import stream as log_stream_module

# one line per epoch as Keras prints them, and a multi-byte character on purpose
LOG = (
    "Epoch 1/2\n"
    "12/12 - 1s - loss: 1.2345 - accuracy: 0.5000 - val_loss: 1.1000\n"
    "Epoch 2/2\n"
    "12/12 - 0s - loss: 0.9876 - accuracy: 0.7500 - val_loss: 0.9000\n"
    "température: 0.5 → done ✓\n"
)


def _new_run(api: TestClient, name: str = "log") -> int:
    response = api.post(
        "/api/v1/runs",
        json={"name": name, "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def _write_log(run_id: int, text: str) -> Path:
    path = runlogs.log_path(run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


def _sse(body: str) -> list[tuple[str | None, str, str]]:
    """(id, event, data) of each event in an SSE body."""
    events = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        event_id, kind, data = None, "message", []
        for line in block.split("\n"):
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        if data:
            events.append((event_id, kind, "\n".join(data)))
    return events


@pytest.fixture
def no_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A finished run's stream ends as soon as everything is sent."""
    monkeypatch.setattr(log_stream_module, "LINGER_S", 0.0)
    monkeypatch.setattr(log_stream_module, "POLL_S", 0.05)


def test_the_log_lives_in_the_api_home() -> None:
    assert runlogs.log_path(7).name == "run-7.log"
    assert runlogs.log_path(7).parent.name == "logs"


def test_unknown_run_is_404(api: TestClient) -> None:
    for path in ("/api/v1/runs/987654321/log", "/api/v1/runs/987654321/log/stream"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_a_run_without_a_log_yet_reads_empty(api: TestClient) -> None:
    run_id = _new_run(api)
    body = api.get(f"/api/v1/runs/{run_id}/log").json()
    assert body == {"offset": 0, "next_offset": 0, "text": "", "size": 0}
    response = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": 1})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "offset"


def test_read_by_offsets_reassembles_the_file(api: TestClient) -> None:
    run_id = _new_run(api)
    _write_log(run_id, LOG)
    size = len(LOG.encode())

    whole = api.get(f"/api/v1/runs/{run_id}/log").json()
    assert whole == {"offset": 0, "next_offset": size, "text": LOG, "size": size}

    # small chunks never split a character, and chain through next_offset to the whole text
    texts, offset = [], 0
    while offset < size:
        chunk = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": offset, "limit": 5}).json()
        assert chunk["offset"] == offset and chunk["size"] == size
        assert chunk["next_offset"] > offset
        assert "\ufffd" not in chunk["text"]
        texts.append(chunk["text"])
        offset = chunk["next_offset"]
    assert "".join(texts) == LOG

    at_end = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": size}).json()
    assert at_end == {"offset": size, "next_offset": size, "text": "", "size": size}

    past = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": size + 1})
    assert past.status_code == 422
    assert past.json()["code"] == "invalid"
    assert past.json()["errors"][0]["field"] == "offset"
    assert "past the end" in past.json()["detail"]

    tiny = api.get(f"/api/v1/runs/{run_id}/log", params={"limit": 1})
    assert tiny.status_code == 422


def test_a_negative_offset_reads_the_tail(api: TestClient) -> None:
    run_id = _new_run(api)
    _write_log(run_id, LOG)
    raw = LOG.encode()
    tail = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": -9}).json()
    # 9 bytes back lands inside "✓" or "→": the tail starts at the next whole character
    assert tail["next_offset"] == tail["size"] == len(raw)
    assert raw[tail["offset"] :].decode() == tail["text"]
    assert tail["text"].endswith("done ✓\n") or LOG.endswith(tail["text"])
    everything = api.get(f"/api/v1/runs/{run_id}/log", params={"offset": -(10**9)}).json()
    assert everything["offset"] == 0 and everything["text"] == LOG


def test_stream_of_a_finished_run_sends_everything_then_ends(
    api: TestClient, no_linger: None
) -> None:
    run_id = _new_run(api)
    _write_log(run_id, LOG)
    assert api.post(f"/api/v1/runs/{run_id}/cancel").json()["status"] == "cancelled"
    size = len(LOG.encode())

    response = api.get(f"/api/v1/runs/{run_id}/log/stream")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse(response.text)
    assert [kind for _, kind, _ in events] == ["log", "end"]
    assert json.loads(events[0][2])["text"] == LOG
    assert events[0][0] == str(size), "the id of a log event is the byte offset after it"

    # resuming with Last-Event-ID sends only what comes after that byte
    line = len(b"Epoch 1/2\n")
    resumed = api.get(
        f"/api/v1/runs/{run_id}/log/stream", headers={"Last-Event-ID": str(line)}
    ).text
    resumed_events = _sse(resumed)
    assert json.loads(resumed_events[0][2])["text"] == LOG[len("Epoch 1/2\n") :]
    assert resumed_events[-1][1] == "end"

    # and ?offset= from the end starts near the tail
    tail = _sse(api.get(f"/api/v1/runs/{run_id}/log/stream", params={"offset": -20}).text)
    assert LOG.endswith(json.loads(tail[0][2])["text"])

    bad = api.get(f"/api/v1/runs/{run_id}/log/stream", headers={"Last-Event-ID": "nope"})
    assert bad.status_code == 422
    past = api.get(f"/api/v1/runs/{run_id}/log/stream", params={"offset": size + 5})
    assert past.status_code == 422


def test_stream_tails_a_growing_log_until_the_run_finishes(
    api: TestClient, no_linger: None
) -> None:
    run_id = _new_run(api)
    path = _write_log(run_id, "Epoch 1/2\n")

    def train_elsewhere() -> None:
        time.sleep(0.4)
        with path.open("ab") as f:
            f.write(b"12/12 - 1s - loss: 1.0\nEpoch 2/2\n")
        time.sleep(0.4)
        with path.open("ab") as f:
            # a character written in two pieces must arrive whole
            encoded = "done ✓\n".encode()
            f.write(encoded[:-2])
            f.flush()
            time.sleep(0.3)
            f.write(encoded[-2:])
        time.sleep(0.2)
        api.post(f"/api/v1/runs/{run_id}/cancel")

    async def collect() -> list[str]:
        return [chunk async for chunk in log_stream_module.log_stream(run_id, 0)]

    writer = threading.Thread(target=train_elsewhere)
    writer.start()
    chunks = asyncio.run(asyncio.wait_for(collect(), timeout=30))
    writer.join()
    events = _sse("".join(chunks))
    logs = [json.loads(data)["text"] for _, kind, data in events if kind == "log"]
    assert len(logs) >= 2, "appends arrive as new events while the run trains"
    assert "".join(logs) == "Epoch 1/2\n12/12 - 1s - loss: 1.0\nEpoch 2/2\ndone ✓\n"
    assert all("\ufffd" not in text for text in logs)
    ids = [int(event_id) for event_id, kind, _ in events if kind == "log" and event_id]
    assert ids == sorted(ids) and ids[-1] == path.stat().st_size
    assert events[-1][1] == "end"
