"""Browser fixtures: the stack to test (FITBOARD_BASE_URL, or the live stack), Chromium, pages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWER_ZONE,
    Browser,
    Credentials,
    Page,
    sign_in_cookies,
    sync_api,
)


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    override = os.environ.get("FITBOARD_BASE_URL")
    if override:
        return override.rstrip("/")
    stack = request.getfixturevalue("live_stack")
    return str(stack.url)


@pytest.fixture(scope="session")
def credentials(request: pytest.FixtureRequest) -> Credentials:
    """An admin's token and sign-in: the live stack's, or FITBOARD_TEST_* for another stack."""
    if os.environ.get("FITBOARD_BASE_URL"):
        return Credentials(
            token=os.environ.get("FITBOARD_TEST_TOKEN", ""),
            username=os.environ.get("FITBOARD_TEST_USERNAME", "admin"),
            password=os.environ.get("FITBOARD_TEST_PASSWORD", ""),
        )
    stack = request.getfixturevalue("live_stack")
    return Credentials(token=stack.token, username=stack.username, password=stack.password)


@pytest.fixture(scope="session")
def database_url(request: pytest.FixtureRequest) -> str:
    """The stack's database, for runs that need final metrics or come by the dozen."""
    if os.environ.get("FITBOARD_BASE_URL"):
        if not os.environ.get("DATABASE_URL"):
            pytest.skip("FITBOARD_BASE_URL is set: set DATABASE_URL to that stack's database")
        return os.environ["DATABASE_URL"]
    return str(request.getfixturevalue("live_stack").env["DATABASE_URL"])


@pytest.fixture(scope="session")
def api(base_url: str, credentials: Credentials) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {credentials.token}"} if credentials.token else {}
    with httpx.Client(base_url=base_url + "/api/v1", timeout=30, headers=headers) as client:
        yield client


@pytest.fixture(scope="session")
def session_cookies(base_url: str, credentials: Credentials) -> list[dict[str, Any]]:
    """Signed in once per session; every test page gets these cookies."""
    return sign_in_cookies(base_url, credentials.username, credentials.password)


# one Playwright (and Chromium) per module: the sync API cannot run two at once, and other
# browser test modules start their own
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (FITBOARD_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, session_cookies: list[dict[str, Any]]) -> Iterator[Page]:
    """A fresh page, signed in as the admin; any uncaught exception or console error fails it."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id=VIEWER_ZONE
    )
    context.add_cookies(session_cookies)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    problems: list[str] = []
    context.on("weberror", lambda error: problems.append(f"uncaught: {error.error}"))

    def on_console(message: Any) -> None:
        # a failed request is logged too; the tests that expect one check what the page shows
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console.error: {message.text}")

    context.on("console", on_console)
    # cumulative layout shift of each page, as Chrome measures it (input-driven shifts excluded)
    context.add_init_script(
        "window.__cls = 0; new PerformanceObserver((list) => { for (const e of list.getEntries())"
        " if (!e.hadRecentInput) window.__cls += e.value; })"
        ".observe({ type: 'layout-shift', buffered: true });"
    )
    page = context.new_page()
    yield page
    context.close()
    assert not problems, problems
