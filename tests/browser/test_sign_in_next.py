"""In Chromium, signing in with an off-site ``next`` (a tab in '/\\t/host/', a backslash, '//')
lands on this site, and the page's own check refuses what a browser would read as another host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote, urlparse

import httpx
import pytest

from tests.browser.support import VIEWER_ZONE, Browser, Page, expect

pytestmark = pytest.mark.browser

OFF_SITE = ["/\t/evil.example/", "/\n/evil.example/", "/\\evil.example/", "//evil.example/"]


@pytest.fixture
def fresh_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id=VIEWER_ZONE
    )
    context.set_default_timeout(30_000)
    # nothing may leave for the other host, not even a request that fails
    context.route(lambda url: urlparse(url).hostname == "evil.example", lambda r: r.abort())
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def member(api: httpx.Client) -> tuple[str, str]:
    username = f"next-{uuid.uuid4().hex[:8]}"
    made = api.post("/users", json={"username": username, "role": "member"})
    assert made.status_code == 201, made.text
    return username, made.json()["password"]


@pytest.mark.parametrize("value", OFF_SITE)
def test_sign_in_with_an_off_site_next_stays_here(
    fresh_page: Page, base_url: str, member: tuple[str, str], value: str
) -> None:
    page = fresh_page
    page.goto(f"{base_url}/login?next={quote(value, safe='')}")
    page.fill("#login-username", member[0])
    page.fill("#login-password", member[1])
    page.click("#login-submit")
    expect(page).to_have_url(f"{base_url}/")
    assert urlparse(page.url).netloc == urlparse(base_url).netloc


def test_sign_in_goes_back_to_a_page_of_this_site(
    fresh_page: Page, base_url: str, member: tuple[str, str]
) -> None:
    page = fresh_page
    page.goto(f"{base_url}/login?next={quote('/sweeps?x=1', safe='')}")
    page.fill("#login-username", member[0])
    page.fill("#login-password", member[1])
    page.click("#login-submit")
    expect(page).to_have_url(f"{base_url}/sweeps?x=1")


def test_the_pages_own_check_refuses_off_site_values(fresh_page: Page, base_url: str) -> None:
    page = fresh_page
    page.goto(f"{base_url}/login")
    checked = page.evaluate(
        "async (values) => { const m = await import('/static/js/login.js');"
        " return values.map((v) => m.safeNext(v)); }",
        [*OFF_SITE, "/runs/3?a=1#b", "https://evil.example/"],
    )
    assert checked == ["/"] * len(OFF_SITE) + ["/runs/3?a=1#b", "/"]
