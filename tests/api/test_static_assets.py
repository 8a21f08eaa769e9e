"""Every asset a page names is served; versioned plotly.js bundles are cached for good."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from backend.web.router import FRONTEND, PLOTLY_JS_VERSION

ASSET = re.compile(r'(?:src|href)="(/static/[^"]+)"')


def test_every_asset_a_page_names_is_served(anonymous: TestClient) -> None:
    missing = [
        f"{page.name}: {asset}"
        for page in sorted(FRONTEND.glob("*.html"))
        for asset in ASSET.findall(page.read_text())
        if anonymous.get(asset).status_code != 200
    ]
    assert not missing, missing  # e.g. a plotly bundle whose version the package no longer has


def test_versioned_plotly_bundles_are_immutable(anonymous: TestClient) -> None:
    for name in (f"plotly-{PLOTLY_JS_VERSION}.min.js", "plotly-scatter-heatmap-4.1.1.min.js"):
        response = anonymous.get(f"/static/vendor/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript")
        assert "immutable" in response.headers["cache-control"], name
        assert f"v{PLOTLY_JS_VERSION}" in response.text[:200]  # the bundles match the package's
    unknown = anonymous.get("/static/vendor/plotly-0.0.0.min.js")
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
