"""The Account page's worker tokens, in Chromium: an admin makes one (shown once, and it opens
the worker protocol), sees it listed, and revokes it (then it claims nothing)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.browser.support import Page, expect

pytestmark = pytest.mark.browser


def test_an_admin_makes_and_revokes_a_worker_token(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    name = f"gpu-box-{uuid.uuid4().hex[:6]}"
    page.goto(f"{base_url}/account")
    card = page.locator("#worker-tokens-card")
    expect(card).to_be_visible()
    page.fill("#worker-token-name", name)
    page.click("#worker-token-create")
    secret = page.locator("#worker-token-value")
    expect(secret).to_contain_text("fbw_")
    token = secret.inner_text().strip()
    row = card.locator("tr", has_text=name)
    expect(row).to_have_count(1)
    headers = {"Authorization": f"Bearer {token}"}
    manifest = httpx.get(f"{base_url}/api/v1/worker/datasets/999999/manifest", headers=headers)
    assert manifest.status_code == 404, "the shown token opens the worker protocol"
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name=f"Revoke worker token {name}").click()
    expect(row).to_have_count(0)
    refused = httpx.get(f"{base_url}/api/v1/worker/datasets/999999/manifest", headers=headers)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
