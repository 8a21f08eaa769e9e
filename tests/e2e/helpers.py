"""Small clients for the e2e tests: submit, wait, read the SSE stream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
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
