"""The Account page's notifications, in Chromium: a bad webhook URL is named, the settings are
kept and the signing secret shown once; then a run's failure reaches the open tab (a browser
notification) and, signed, the webhook (posted by the live API's loop), and admins see the
delivery in the log."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from backend.db.base import utcnow
from backend.db.session import session_scope
from backend.notify import service as notify
from backend.runs import service as runs
from backend.runs.models import Run, RunStatus
from tests.browser.support import Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def received() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local webhook receiver: its URL, and what was posted to it."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    server.shutdown()
    server.server_close()


@pytest.fixture
def reset_settings(api: httpx.Client, database_url: str) -> Iterator[None]:
    """The signed-in admin starts with no signing secret (API tests of this session may have
    given it one): the first webhook URL saved here makes it, and shows it once."""
    from sqlalchemy import update

    from backend.notify.models import NotifySettings

    me = api.get("/auth/me").json()["user"]
    with session_scope(database_url) as session:
        session.execute(
            update(NotifySettings)
            .where(NotifySettings.user_id == int(me["id"]))
            .values(secret=None, webhook_url=None)
        )
    yield
    api.put("/notifications/settings", json={})  # other tests' runs tell nobody


def failed_run(database_url: str, user_id: int) -> int:
    """A running run of the admin's that asked to hear of a failure, then fails."""
    with session_scope(database_url) as session:
        run = Run(
            name=f"notify me {uuid.uuid4().hex[:6]}",
            spec={},
            status=RunStatus.running.value,
            started_at=utcnow(),
            launched_by_id=user_id,
        )
        session.add(run)
        session.flush()
        notify.watch(
            session, user_id=user_id, run_id=run.id, webhook=True, browser=True, events=["failed"]
        )
        run_id = run.id
    with session_scope(database_url) as session:
        assert runs.finish(session, run_id=run_id, status=RunStatus.failed, reason="it broke")
    return run_id


def test_notification_settings_then_a_failure_reaches_tab_webhook_and_log(
    page: Page,
    base_url: str,
    api: httpx.Client,
    database_url: str,
    received: tuple[str, list[tuple[dict[str, str], bytes]]],
    reset_settings: None,
) -> None:
    url, got = received
    page.context.grant_permissions(["notifications"], origin=base_url)
    page.goto(f"{base_url}/account")
    card = page.locator("#notify-card")
    expect(card).to_be_visible()
    expect(page.locator("#notify-secret-state")).not_to_be_empty()  # loaded

    page.fill("#notify-webhook", "ftp://example.org/hook")
    page.click("#notify-save")
    expect(page.locator("#account-error")).to_contain_text("webhook_url")
    expect(page.locator("#notify-webhook")).to_have_attribute("aria-invalid", "true")

    page.fill("#notify-webhook", url)
    page.check("#notify-failed")
    page.check("#notify-browser")  # asks the browser's permission (granted above)
    expect(page.locator("#notify-browser")).to_be_checked()
    page.click("#notify-save")
    expect(page.locator("#notify-status")).to_have_text("Saved.")
    expect(page.locator("#account-error")).to_be_hidden()
    expect(page.locator("#notify-secret")).to_be_visible()
    secret = page.locator("#notify-secret-value").inner_text()
    assert secret.startswith("fbwh_")

    # kept, and the secret not shown again; this load starts the tab's polling
    page.reload()
    expect(page.locator("#notify-failed")).to_be_checked()
    expect(page.locator("#notify-ended")).not_to_be_checked()
    expect(page.locator("#notify-browser")).to_be_checked()
    expect(page.locator("#notify-webhook")).to_have_value(url)
    expect(page.locator("#notify-secret")).to_be_hidden()
    expect(page.locator("#notify-secret-state")).to_contain_text("signed")
    page.evaluate(
        "() => { window.__notes = [];"
        " window.addEventListener('fitboard:notification', (e) => window.__notes.push(e.detail)); }"
    )
    page.wait_for_function("() => localStorage.getItem('fitboard.notify.after') !== null")

    me = api.get("/auth/me").json()["user"]
    ended = time.monotonic()
    run_id = failed_run(database_url, int(me["id"]))

    # the webhook, from the live API's delivery loop, within 10 s, signed with the secret
    # (other tests' runs of this admin may fail meanwhile and be told too: this run's, once)
    def this_runs() -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for h, b in got if json.loads(b)["fitboard"].get("run_id") == run_id]

    while not this_runs() and time.monotonic() - ended < 10:
        time.sleep(0.2)
    time.sleep(0.5)  # a second delivery of the same end would have come by now
    assert len(this_runs()) == 1, f"one webhook delivery within 10 s, not {len(this_runs())}"
    for headers, body in got:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Fitboard-Signature"] == expected

    # the open tab's poll (every 10 s) shows it
    page.wait_for_function(
        f"() => (window.__notes || []).some((n) => n.subject_id === {run_id})", timeout=25_000
    )

    # the admin's delivery log
    page.reload()
    row = page.locator("#deliveries-body tr", has_text=f"run {run_id}")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "delivered")
    expect(row.locator(".attempt-line[data-ok='true']")).to_contain_text("204 ok")


def test_the_new_run_form_asks_to_be_told(page: Page, base_url: str, api: httpx.Client) -> None:
    page.goto(f"{base_url}/new?preset=digits-mlp")
    expect(page.locator("#spec-editor")).not_to_have_value("")  # the form is ready
    page.fill("#run-name", f"tell me {uuid.uuid4().hex[:6]}")
    page.check("#notify-me")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/runs")
    ) as posted:
        page.click("#submit-run")
    assert posted.value.post_data_json["notify"] == {}
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    api.post(f"/runs/{run_id}/cancel")  # nobody waits for it to train
