"""What every browser test shares: Chromium's location and flags, waits, screenshots."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import httpx
from playwright import sync_api

from tests.conftest import ROOT

Browser = sync_api.Browser
Page = sync_api.Page
Locator = sync_api.Locator
expect = sync_api.expect
# what a page assertion waits for the page to get there, as long as the actions' default
# (30 s): a page drawn late on a loaded 2-core machine is not a failure, one that never is
expect.set_options(timeout=30_000)

CHROMIUM = os.environ.get("FITBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# A zone with a half-hour offset: a page that prints UTC, or the server's zone, cannot pass.
VIEWER_ZONE = "Asia/Kolkata"
RUN_DONE_MS = 240_000  # ms: queue + TensorFlow start-up + training + evaluation


@dataclass(frozen=True)
class Credentials:
    token: str
    username: str
    password: str


def sign_in_cookies(base_url: str, username: str, password: str) -> list[dict[str, Any]]:
    """Sign in through the API; the session and CSRF cookies, ready for a browser context."""
    response = httpx.post(
        f"{base_url}/api/v1/auth/login",
        json={"username": username, "password": password},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return [
        {"name": name, "value": value, "url": base_url}
        for name, value in response.cookies.items()
        if name.startswith("fitboard_")
    ]


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def wait_status(api: httpx.Client, run_id: int, wanted: set[str], timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = api.get(f"/runs/{run_id}").json()["status"]
        if status in wanted:
            return
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {status}")
