"""The Account page's audit log card, in Chromium: admins see sign-ins and failed sign-ins,
filter by action and user; members do not see the card."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.browser.support import Page, expect

pytestmark = pytest.mark.browser


def test_admins_read_and_filter_the_audit_log(page: Page, base_url: str, api: httpx.Client) -> None:
    tried = f"ghost-{uuid.uuid4().hex[:6]}"
    failed = httpx.post(
        f"{base_url}/api/v1/auth/login", json={"username": tried, "password": "x"}, timeout=30
    )
    assert failed.status_code == 401
    page.goto(f"{base_url}/account")
    card = page.locator("#audit-card")
    expect(card).to_be_visible()
    expect(card.locator("tr[data-action='signin_failed']", has_text=tried)).to_have_count(1)
    page.select_option("#audit-action", "signin_failed")
    page.fill("#audit-user", tried)
    page.click("#audit-apply")
    rows = page.locator("#audit-body tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{tried} (tried)")
    page.fill("#audit-user", f"nobody-{uuid.uuid4().hex[:6]}")
    page.click("#audit-apply")
    expect(rows).to_have_count(0)
    expect(page.locator("#audit-empty")).to_be_visible()
