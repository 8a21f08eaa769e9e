"""Small clients for the e2e tests: submit, wait, read the SSE stream."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

# base URL -> API token that raw clients here send (the live_stack fixture fills it)
TOKENS: dict[str, str] = {}


def auth_headers(base_url: str) -> dict[str, str]:
    token = TOKENS.get(base_url.rstrip("/"))
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass
class Event:
    id: int
    kind: str
    data: dict[str, Any]


def submit(
    client: httpx.Client,
    name: str,
    overrides: dict[str, Any] | None = None,
    preset: str = "digits-mlp",
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "preset": preset, "overrides": overrides or {}}
    response = client.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_status(
    client: httpx.Client, run_id: int, wanted: set[str], timeout_s: float = 180
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in wanted:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {run.get('status')} after {timeout_s}s: {run}")


def iter_events(
    base_url: str,
    run_id: int,
    *,
    after: int | None = None,
    last_event_id: int | None = None,
    timeout_s: float = 240,
) -> Iterator[Event]:
    """Parse the SSE stream; ends at the server's `end` event."""
    params = {"after": after} if after is not None else {}
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    headers.update(auth_headers(base_url))
    with httpx.stream(
        "GET",
        f"{base_url}/api/v1/runs/{run_id}/stream",
        params=params,
        headers=headers,
        timeout=httpx.Timeout(timeout_s),
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "":
                if "event" in fields:
                    event = Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    yield event
                    if event.kind == "end":
                        return
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value


def batch_steps(events: list[Event], key: str = "batch/loss") -> list[int]:
    return [p[1] for e in events if e.kind == "metrics" for p in e.data["points"] if p[0] == key]


def trainer_processes(run_id: int, queue: str | None = None) -> list[Any]:
    """The training processes of a run: started for it (its id in argv), or a standby trainer
    the worker handed it to (its output goes to the run's log). ``queue``: of this stack only
    (other stacks on the machine number runs too)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if "worker.trainer" not in argv:
            continue
        try:
            if queue is not None and proc.environ().get("FITBOARD_QUEUE") != queue:
                continue
            if str(run_id) in argv or any(
                f"run-{run_id}-attempt-" in f.path for f in proc.open_files()
            ):
                found.append(proc)
        except psutil.Error:  # ended meanwhile
            continue
    return found


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> float:
    """Poll until ``predicate`` holds; how long that took (an AssertionError past timeout_s)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < timeout_s, f"{what} not within {timeout_s:.0f} s"
        time.sleep(0.2)
    return time.monotonic() - started


def assert_contiguous(client: httpx.Client, run_id: int, epochs: int) -> None:
    """Every epoch step 1..epochs once, and batch steps strictly increasing with no hole."""
    series = client.get(f"/api/v1/runs/{run_id}/metrics", params={"max_points": 100_000}).json()[
        "series"
    ]
    assert series["loss"]["steps"] == list(range(1, epochs + 1)), "epoch steps 1..N, once each"
    batch = series["batch/loss"]["steps"]
    assert batch == sorted(set(batch)), "batch steps strictly increasing: no duplicate"
    gaps = {b - a for a, b in itertools.pairwise(batch)}
    assert len(gaps) <= 1, f"batch steps evenly spaced, no hole: {sorted(gaps)[:5]}"
