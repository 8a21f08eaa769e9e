"""Every response carries the security headers; the dashboard's CSP allows no inline script or
style attribute; the docs pages allow exactly their own bootstrap script, by hash."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from backend.api.headers import script_hashes

PATHS = ["/login", "/api/v1/health", "/api/v1/runs", "/static/css/app.css", "/api/v1/runs/0", "/x"]


@pytest.mark.parametrize("path", PATHS)
def test_every_response_has_the_headers(anonymous: TestClient, path: str) -> None:
    headers = anonymous.get(path, follow_redirects=False).headers
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    policy = dict(
        part.strip().split(" ", 1) for part in headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    # no inline anything and no eval; 'unsafe-hashes' only lets the listed hashes (plotly.js's
    # fixed style attributes) match a style attribute, so every style source is a hash
    assert "unsafe-inline" not in headers["content-security-policy"]
    assert "unsafe-eval" not in headers["content-security-policy"]
    styles = policy["style-src"].split()
    assert styles[:2] == ["'self'", "'unsafe-hashes'"]
    assert all(source.startswith("'sha256-") for source in styles[2:])


def test_dashboard_pages_hold_no_inline_script_or_style_attribute(api: TestClient) -> None:
    pages = (
        "/login",
        "/",
        "/new",
        "/compare",
        "/sweeps",
        "/sweeps/new",
        "/sweeps/1",
        "/datasets",
        "/workers",
    )
    for page in pages:
        html = api.get(page).text
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\sstyle\s*=", r"\son[a-z]+\s*="):
            assert not re.search(pattern, html), (page, pattern)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_allow_only_their_own_inline_script(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    policy = response.headers["content-security-policy"]
    hashes = script_hashes(response.text)
    assert all(h in policy for h in hashes)
    assert hashes or path == "/redoc"  # ReDoc's page loads its script from a file only
    assert "'unsafe-inline'" not in policy.split("script-src", 1)[1].split(";")[0]
    assert "frame-ancestors 'none'" in policy
