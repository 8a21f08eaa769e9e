"""Notifications: settings and their secret, validation, a run's failure told exactly once by a
signed webhook (checked here), retries with backoff against a local server that fails twice,
the admins' delivery log, browser polling, stalls and sweeps."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.metrics import service as metrics
from backend.notify import delivery, outbox
from backend.notify.models import Notification
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from tests.conftest import create_identity

SETTINGS = "/api/v1/notifications/settings"
RECENT = "/api/v1/notifications/recent"
DELIVERIES = "/api/v1/notifications/deliveries"


@dataclass
class Hook:
    """A local webhook receiver: answers the queued status codes in turn, then 200."""

    url: str
    codes: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes, float]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers), body, time.monotonic()))
            code = state.codes.pop(0) if state.codes else 200
            self.send_response(code)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def loopback_allowed() -> Iterator[None]:
    """The receivers here listen on loopback, which webhooks may not reach by default (set
    by hand, not by monkeypatch: a test undoes its monkeypatch to run the app's real loop)."""
    from backend.config import get_settings

    os.environ["FITBOARD_WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
    get_settings.cache_clear()
    yield
    os.environ.pop("FITBOARD_WEBHOOK_ALLOWED_NETWORKS", None)
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def no_background_delivery(api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's own loop stays out of the way: each test runs the delivery itself."""
    monkeypatch.setattr(delivery, "tick", lambda: None)


def member(api: TestClient, pg_url: str) -> tuple[TestClient, int]:
    who = create_identity(pg_url, f"nt-{uuid.uuid4().hex[:8]}", "member")
    return TestClient(api.app, headers={"Authorization": f"Bearer {who.token}"}), who.user_id


def field_of(response: Any) -> str:
    assert response.status_code == 422, response.text
    return str(response.json()["errors"][0]["field"])


def submit(client: TestClient, notify_body: dict[str, Any] | None = None) -> int:
    body: dict[str, Any] = {"name": f"nt {uuid.uuid4().hex[:6]}", "preset": "digits-mlp"}
    if notify_body is not None:
        body["notify"] = notify_body
    response = client.post("/api/v1/runs", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def fail(run_id: int, reason: str = "boom") -> bool:
    """What a worker's end does: claim, then record the failure (one transaction each)."""
    with session_scope() as session:
        assert runs.claim(session, run_id=run_id, worker_host="nt-host")
    with session_scope() as session:
        return runs.finish(session, run_id=run_id, status=RunStatus.failed, reason=reason)


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What a receiver does: recompute the HMAC of the body, compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Fitboard-Signature"], expected)
    payload = json.loads(body)
    assert str(payload["fitboard"]["timestamp"]) == headers["X-Fitboard-Timestamp"]
    return dict(payload)


def test_settings_keep_the_secret_shown_once(api: TestClient, pg_url: str) -> None:
    client, _ = member(api, pg_url)
    assert client.get(SETTINGS).json() == {
        "webhook_url": None,
        "events": [],
        "browser": False,
        "secret_set": False,
        "secret": None,
    }
    body = {"webhook_url": "https://hooks.example.org/x", "events": ["failed"], "browser": True}
    saved = client.put(SETTINGS, json=body)
    assert saved.status_code == 200, saved.text
    secret = saved.json()["secret"]
    assert secret and saved.json()["secret_set"] is True
    again = client.get(SETTINGS).json()
    assert again["secret"] is None and again["secret_set"] is True
    assert again["events"] == ["failed"] and again["browser"] is True
    # saving again keeps the secret (and does not show it)
    assert client.put(SETTINGS, json=body).json()["secret"] is None
    fresh = client.post(f"{SETTINGS}/secret")
    assert fresh.status_code == 200
    assert fresh.json()["secret"] not in ("", secret)
    # another user does not see these
    assert api.get(SETTINGS).json()["webhook_url"] != body["webhook_url"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"webhook_url": "ftp://example.org/hook"}, "webhook_url"),
        ({"webhook_url": "javascript:alert(1)"}, "webhook_url"),
        ({"webhook_url": "http://"}, "webhook_url"),
        ({"webhook_url": "http://example.org:99999/x"}, "webhook_url"),
        ({"webhook_url": "http://[::1/x"}, "webhook_url"),
        ({"webhook_url": "https://x.org/" + "a" * 2000}, "webhook_url"),
        ({"events": ["finished"]}, "events.0"),
        ({"events": ["failed", "failed"]}, "events"),
        ({"browser": "sometimes"}, "browser"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_settings_are_validated(api: TestClient, body: dict[str, Any], where: str) -> None:
    assert field_of(api.put(SETTINGS, json=body)) == where


@pytest.mark.parametrize(
    ("notify_body", "where"),
    [
        ({"on": ["nope"]}, "notify.on.0"),
        ({"webhook": True, "slack": True}, "notify.slack"),
        ({"on": "failed"}, "notify.on"),
    ],
)
def test_notify_on_submit_is_validated(
    api: TestClient, notify_body: dict[str, Any], where: str
) -> None:
    run = {"name": "bad notify", "preset": "digits-mlp", "notify": notify_body}
    assert field_of(api.post("/api/v1/runs", json=run)) == where
    sweep = {
        "name": "bad notify",
        "preset": "digits-mlp",
        "space": {"fit.batch_size": {"choice": [32]}},
        "notify": notify_body,
    }
    assert field_of(api.post("/api/v1/sweeps", json=sweep)) == where


def test_a_failed_run_is_told_once_by_a_signed_webhook_within_10_s(
    api: TestClient, pg_url: str, hook: Hook
) -> None:
    client, _ = member(api, pg_url)
    saved = client.put(SETTINGS, json={"webhook_url": hook.url, "browser": True})
    secret = saved.json()["secret"]
    run_id = submit(client, {"on": ["failed"]})
    assert client.get(RECENT).json()["items"] == []
    cursor = client.get(RECENT).json()["latest_id"]

    ended = time.monotonic()
    assert fail(run_id, reason="out of patience")
    assert delivery.deliver_once() >= 1
    assert len(hook.received) == 1
    headers, body, at = hook.received[0]
    assert at - ended < 10
    payload = verify(secret, headers, body)
    assert "failed" in payload["text"] and "out of patience" in payload["text"]
    assert payload["blocks"][0]["text"]["text"] == payload["text"]
    info = payload["fitboard"]
    assert info["run_id"] == run_id and info["status"] == "failed"
    assert info["event"] == "failed" and info["link"].endswith(f"/runs/{run_id}")
    assert info["attempt"] == 1

    # the end is recorded once: a second finish, the service called again, another loop pass
    with session_scope() as session:
        assert not runs.finish(session, run_id=run_id, status=RunStatus.failed, reason="again")
        outbox.run_ended(session, run=runs.get(session, run_id))
    delivery.deliver_once()
    assert len(hook.received) == 1

    # the open tab sees it too
    recent = client.get(RECENT, params={"after": cursor}).json()
    mine = [n for n in recent["items"] if n["subject_id"] == run_id]
    assert len(mine) == 1 and mine[0]["event"] == "failed"
    assert recent["latest_id"] == mine[0]["id"]
    assert client.get(RECENT, params={"after": recent["latest_id"]}).json()["items"] == []


def test_a_wrong_secret_does_not_verify(api: TestClient, pg_url: str, hook: Hook) -> None:
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": hook.url})
    run_id = submit(client, {"on": ["failed"], "browser": False})
    fail(run_id)
    delivery.deliver_once()
    headers, body, _ = hook.received[0]
    with pytest.raises(AssertionError):
        verify("not the secret", headers, body)


def test_events_not_asked_for_are_not_told(api: TestClient, pg_url: str, hook: Hook) -> None:
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": hook.url, "events": ["failed"]})
    quiet = submit(client, {"on": ["ended"]})  # this run's notify replaces the defaults
    fail(quiet)
    by_default = submit(client)  # no notify: the Account's events (failed)
    fail(by_default)
    delivery.deliver_once()
    told = [json.loads(body)["fitboard"]["run_id"] for _, body, _ in hook.received]
    assert told == [by_default]


def test_retries_back_off_until_delivered_and_admins_see_each_attempt(
    api: TestClient, pg_url: str, hook: Hook
) -> None:
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": hook.url})
    hook.codes = [500, 503]  # fails twice, then 200
    run_id = submit(client, {"on": ["failed"], "browser": False})
    fail(run_id)
    with session_scope() as session:
        row = session.query(Notification).filter_by(subject_id=run_id).one()
        start = row.next_attempt_at
    assert start is not None

    def due_at(offset_s: float) -> int:
        return delivery.deliver_once(now=start + timedelta(seconds=offset_s))

    base = 2.0  # FITBOARD_NOTIFY_RETRY_BASE_S
    assert due_at(0) == 1  # attempt 1: 500
    assert due_at(base - 0.5) == 0  # backing off
    assert due_at(base) == 1  # attempt 2: 503
    assert due_at(base + 2 * base - 0.5) == 0  # the wait doubled
    assert due_at(base + 2 * base) == 1  # attempt 3: 200
    assert due_at(3600) == 0  # delivered: never again
    assert len(hook.received) == 3
    assert [json.loads(b)["fitboard"]["attempt"] for _, b, _ in hook.received] == [1, 2, 3]

    log = api.get(DELIVERIES, params={"limit": 200})
    assert log.status_code == 200, log.text
    entry = next(i for i in log.json()["items"] if i["subject_id"] == run_id)
    assert entry["webhook_state"] == "delivered" and entry["webhook_url"] == hook.url
    assert [a["status_code"] for a in entry["attempts"]] == [500, 503, 200]
    assert [a["ok"] for a in entry["attempts"]] == [False, False, True]
    assert "HTTP 500" in entry["attempts"][0]["error"]
    assert entry["attempts"][2]["error"] is None

    # members and viewers do not read the log
    assert client.get(DELIVERIES).status_code == 403


def test_an_unreachable_webhook_gives_up_after_max_attempts(
    api: TestClient, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from backend.config import get_settings

    monkeypatch.setattr(get_settings(), "notify_max_attempts", 2)
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": "http://127.0.0.1:9/nothing-listens"})
    run_id = submit(client, {"on": ["failed"], "browser": False})
    fail(run_id)
    with session_scope() as session:
        start = session.query(Notification).filter_by(subject_id=run_id).one().next_attempt_at
    assert start is not None
    assert delivery.deliver_once(now=start) == 1
    assert delivery.deliver_once(now=start + timedelta(seconds=10)) == 1
    assert delivery.deliver_once(now=start + timedelta(hours=2)) == 0
    entry = next(
        i
        for i in api.get(DELIVERIES, params={"limit": 200}).json()["items"]
        if i["subject_id"] == run_id
    )
    assert entry["webhook_state"] == "gave_up"
    assert [a["status_code"] for a in entry["attempts"]] == [None, None]
    assert all(a["error"] for a in entry["attempts"])


def test_the_app_loop_delivers_within_10_s(
    api: TestClient, pg_url: str, hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real loop this time
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": hook.url})
    run_id = submit(client, {"on": ["failed"], "browser": False})
    ended = time.monotonic()
    fail(run_id)
    while not hook.received and time.monotonic() - ended < 10:
        time.sleep(0.2)
    assert len(hook.received) == 1, "not delivered within 10 s"
    assert json.loads(hook.received[0][1])["fitboard"]["run_id"] == run_id


def test_a_run_without_new_points_stalls_once_per_attempt(api: TestClient, pg_url: str) -> None:
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"browser": True})
    run_id = submit(client, {"on": ["stalled"], "webhook": False})
    busy = submit(client, {"on": ["stalled"], "webhook": False})
    long_ago = utcnow() - timedelta(minutes=30)
    with session_scope() as session:
        for rid in (run_id, busy):
            assert runs.claim(session, run_id=rid, worker_host="nt-host")
        session.execute(update(Run).where(Run.id.in_([run_id, busy])).values(started_at=long_ago))
        metrics.record(
            session,
            run_id=busy,
            points=[{"key": "loss", "step": 1, "value": 0.5, "wall_time": time.time()}],
            uid="nt-1",
        )
    cursor = client.get(RECENT).json()["latest_id"]
    with session_scope() as session:
        outbox.find_stalled(session, stall_after_s=600)
    with session_scope() as session:
        outbox.find_stalled(session, stall_after_s=600)  # told once
    items = client.get(RECENT, params={"after": cursor}).json()["items"]
    assert [(n["subject_id"], n["event"]) for n in items] == [(run_id, "stalled")]
    assert "no new metric point for 10 min" in items[0]["text"]


def test_a_cancelled_sweep_is_told(api: TestClient, pg_url: str, hook: Hook) -> None:
    client, _ = member(api, pg_url)
    secret = client.put(SETTINGS, json={"webhook_url": hook.url}).json()["secret"]
    body = {
        "name": f"nt sweep {uuid.uuid4().hex[:6]}",
        "preset": "digits-mlp",
        "space": {"fit.batch_size": {"choice": [32, 64]}},
        "notify": {"on": ["ended"], "browser": False},
    }
    created = client.post("/api/v1/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]
    assert client.post(f"/api/v1/sweeps/{sweep_id}/cancel").status_code == 200
    delivery.deliver_once()
    assert len(hook.received) == 1
    info = verify(secret, *hook.received[0][:2])["fitboard"]
    assert info["sweep_id"] == sweep_id and info["status"] == "cancelled"


def test_a_cancelled_queued_run_has_ended(api: TestClient, pg_url: str) -> None:
    client, _ = member(api, pg_url)
    cursor = client.get(RECENT).json()["latest_id"]
    run_id = submit(client, {"on": ["ended"], "webhook": False})
    assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
    items = client.get(RECENT, params={"after": cursor}).json()["items"]
    assert [(n["subject_id"], n["event"], n["status"]) for n in items] == [
        (run_id, "ended", "cancelled")
    ]


def test_several_due_webhooks_go_out_together(api: TestClient, pg_url: str, hook: Hook) -> None:
    client, _ = member(api, pg_url)
    client.put(SETTINGS, json={"webhook_url": hook.url})
    made = [submit(client, {"on": ["failed"], "browser": False}) for _ in range(3)]
    for run_id in made:
        fail(run_id)
    assert delivery.deliver_once() == 3
    told = sorted(json.loads(body)["fitboard"]["run_id"] for _, body, _ in hook.received)
    assert told == sorted(made)
