"""Every page gets the one shared top bar, with its own navigation entry marked current."""

from __future__ import annotations

import re
from html import escape

import pytest
from fastapi.testclient import TestClient

from backend.web.pages import NAV, TOPBAR_MARK


@pytest.mark.parametrize(
    ("path", "current"),
    [
        ("/", "/"),
        ("/new", "/new"),
        ("/compare", "/compare"),
        ("/sweeps", "/sweeps"),
        ("/sweeps/new", "/sweeps"),
        ("/sweeps/1", "/sweeps"),
        ("/datasets", "/datasets"),
        ("/workers", "/workers"),
        ("/runs/1", None),
        ("/account", None),
    ],
)
def test_page_has_the_topbar_with_its_entry_current(
    api: TestClient, path: str, current: str | None
) -> None:
    response = api.get(path)
    assert response.status_code == 200, response.text
    html = response.text
    assert TOPBAR_MARK not in html
    assert html.count('<header class="topbar">') == 1
    for href, label in NAV:
        assert re.search(
            rf'<a href="{re.escape(href)}"[^>]*>{re.escape(escape(label))}</a>', html
        ), (href, html)
    marked = re.findall(r'<a href="([^"]+)" aria-current="page">', html)
    assert marked == ([current] if current else [])


def test_login_page_is_open_and_has_no_navigation(api: TestClient) -> None:
    response = api.get("/login", headers={"Authorization": ""})
    assert response.status_code == 200
    assert 'aria-label="Main"' not in response.text
