"""Browser fixtures: the stack to test (FITBOARD_BASE_URL, or the live stack), Chromium, pages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.support import CHROMIUM, CHROMIUM_ARGS, VIEWER_ZONE, Browser, Page, sync_api


@pytest.fixture(scope="session")
def base_url(request: pytest.FixtureRequest) -> str:
    override = os.environ.get("FITBOARD_BASE_URL")
    if override:
        return override.rstrip("/")
    stack = request.getfixturevalue("live_stack")
    return str(stack.url)


@pytest.fixture(scope="session")
def api(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url + "/api/v1", timeout=30) as client:
        yield client


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
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; any uncaught exception or console error in it fails the test."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id=VIEWER_ZONE
    )
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
