"""Signing in through /login, an API token made on /account (shown once), and the runs page's
"Launched by" column and filter, in headless Chromium on the live stack."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.browser.support import VIEWER_ZONE, Browser, Page, expect, screenshot

pytestmark = pytest.mark.browser


def _cancelled_run(client: httpx.Client, name: str) -> int:
    """A run that is cancelled at once: it costs the worker nothing."""
    response = client.post("/runs", json={"name": name, "preset": "digits-mlp"})
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    client.post(f"/runs/{run_id}/cancel")
    deadline = time.monotonic() + 120
    while client.get(f"/runs/{run_id}").json()["status"] not in {"cancelled", "succeeded"}:
        assert time.monotonic() < deadline, f"run {run_id} did not stop"
        time.sleep(0.3)
    return run_id


@pytest.fixture
def fresh_page(browser: Browser) -> Iterator[Page]:
    """A page with no cookies at all: nobody is signed in."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id=VIEWER_ZONE
    )
    context.set_default_timeout(30_000)
    problems: list[str] = []
    context.on("weberror", lambda error: problems.append(f"uncaught: {error.error}"))
    page = context.new_page()
    yield page
    context.close()
    assert not problems, problems


def test_sign_in_make_a_token_and_filter_runs_by_launcher(
    fresh_page: Page, base_url: str, api: httpx.Client
) -> None:
    page = fresh_page
    tag = uuid.uuid4().hex[:8]
    username = f"member-{tag}"
    made = api.post("/users", json={"username": username, "role": "member"})
    assert made.status_code == 201, made.text
    password = made.json()["password"]

    # not signed in: a page sends you to /login, and back after
    page.goto(f"{base_url}/account")
    expect(page).to_have_url(f"{base_url}/login?next=%2Faccount")
    page.fill("#login-username", username)
    page.fill("#login-password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("wrong username or password")
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page).to_have_url(f"{base_url}/account")
    expect(page.locator("#nav-user .nav-user-name")).to_have_text(username)
    expect(page.locator("#account-who")).to_contain_text(f"{username} (member)")
    expect(page.locator("#users-card")).to_be_hidden()  # members do not manage users

    # a token, shown once
    page.fill("#token-name", "browser test")
    page.click("#token-create")
    expect(page.locator("#token-new")).to_be_visible()
    expect(page.locator("#token-new")).to_contain_text("shown only this once")
    token = page.locator("#token-value").inner_text().strip()
    assert token.startswith("fb_") and len(token) > 40
    row = page.locator("#tokens-body tr", has_text="browser test")
    expect(row).to_have_count(1)
    expect(row).not_to_contain_text(token)
    screenshot(page, "account-token")
    page.reload()
    expect(page.locator("#tokens-body tr", has_text="browser test")).to_have_count(1)
    expect(page.locator("#token-new")).to_be_hidden()
    assert token not in page.content()

    # the token works for a script, as this member
    with httpx.Client(
        base_url=base_url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as script:
        assert script.get("/auth/me").json()["user"]["username"] == username
        mine = _cancelled_run(script, f"mine {tag}")
    theirs = _cancelled_run(api, f"theirs {tag}")

    # the runs page: a "Launched by" column, and a filter by launcher
    page.goto(f"{base_url}/?q={tag}")
    rows = page.locator("#runs-body tr[data-run-id]")
    expect(rows).to_have_count(2)
    header = [t.strip() for t in page.locator("#runs-table thead th").all_text_contents()]
    launcher_col = header.index("Launched by")
    mine_row = page.locator(f'#runs-body tr[data-run-id="{mine}"]')
    expect(mine_row.locator("td").nth(launcher_col)).to_have_text(username)
    theirs_row = page.locator(f'#runs-body tr[data-run-id="{theirs}"]')
    expect(theirs_row.locator("td").nth(launcher_col)).not_to_have_text(username)
    page.select_option("#launcher-filter", username)
    expect(rows).to_have_count(1)
    expect(page.locator(f'#runs-body tr[data-run-id="{mine}"]')).to_have_count(1)
    assert parse_qs(urlparse(page.url).query)["launcher"] == [username]
    screenshot(page, "runs-launcher-filter")

    # the run page names the launcher
    page.goto(f"{base_url}/runs/{mine}")
    expect(page.locator("#run-launcher")).to_have_text(username)

    # sign out: pages send you to /login again
    page.click("#sign-out")
    expect(page).to_have_url(f"{base_url}/login")
    page.goto(f"{base_url}/")
    expect(page).to_have_url(f"{base_url}/login?next=%2F")
