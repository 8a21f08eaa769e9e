"""Every page passes the Content-Security-Policy in Chromium: no inline script, no inline style
attribute, nothing from another origin. A violation fails the test, whether the browser reports
it as a securitypolicyviolation event or as a "Refused to ..." console message."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.browser.support import VIEWER_ZONE, Browser, Page, expect

pytestmark = pytest.mark.browser

# recorded before any script of the page runs, so nothing it does can go unseen
WATCH_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`
    + ` at ${e.sourceFile || location.pathname}:${e.lineNumber}`);
});
"""
# ReDoc's bundle links its own logo from its CDN: the policy blocks that request (nothing
# leaves the site), which is the one violation expected, on /redoc only
REDOC_LOGO = "cdn.redoc.ly/redoc/logo-mini.svg"
SETTLE_S = 1.0  # charts draw after their data arrives; violations come with them


@pytest.fixture(scope="module")
def external_run(api: httpx.Client) -> dict[str, Any]:
    """A finished run with epoch and batch metrics, so the run page draws every chart."""
    made = api.post("/runs/external", json={"name": f"csp {uuid.uuid4().hex[:6]}"})
    assert made.status_code == 201, made.text
    run = made.json()
    points = [
        {"key": key, "step": step, "value": 1.0 / step + offset, "kind": "epoch"}
        for step in range(1, 4)
        for key, offset in (("loss", 0.1), ("val_loss", 0.2), ("accuracy", 0.5))
    ] + [
        {"key": "loss", "step": step, "value": 2.0 / step, "kind": "batch"} for step in range(1, 30)
    ]
    sent = api.post(f"/runs/{run['id']}/points", json={"points": points})
    assert sent.status_code == 200, sent.text
    done = api.post(f"/runs/{run['id']}/finish", json={"status": "succeeded"})
    assert done.status_code == 200, done.text
    return dict(run)


@pytest.fixture(scope="module")
def sweep_id(api: httpx.Client) -> int:
    """A sweep, cancelled at once (its page still draws its trials and plots)."""
    body = {
        "name": f"csp sweep {uuid.uuid4().hex[:6]}",
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 1}},
        "strategy": "grid",
        "space": {"compile.optimizer.learning_rate": {"choice": [0.01, 0.001]}},
        "objective": "val_accuracy",
    }
    made = api.post("/sweeps", json=body)
    assert made.status_code == 201, made.text
    api.post(f"/sweeps/{made.json()['id']}/cancel")
    return int(made.json()["id"])


@pytest.fixture
def watched(browser: Browser, session_cookies: list[dict[str, Any]]) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id=VIEWER_ZONE
    )
    context.add_cookies(session_cookies)  # type: ignore[arg-type]
    context.set_default_timeout(30_000)
    context.add_init_script(WATCH_VIOLATIONS)
    refused: list[str] = []
    context.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page = context.new_page()
    page.__dict__["_refused"] = refused
    yield page
    context.close()


def _visit(page: Page, url: str, ready: str) -> list[str]:
    response = page.goto(url)
    assert response is not None and response.ok, url
    assert "default-src 'self'" in (response.headers.get("content-security-policy") or "")
    expect(page.locator(ready).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    time.sleep(SETTLE_S)
    found = list(page.evaluate("window.__csp"))
    found += page.__dict__["_refused"]
    page.__dict__["_refused"].clear()
    if url.endswith("/redoc"):
        found = [v for v in found if REDOC_LOGO not in v]
    return [f"{url}: {v}" for v in found]


def test_no_page_violates_the_content_security_policy(
    watched: Page, base_url: str, external_run: dict[str, Any], sweep_id: int
) -> None:
    run_id = external_run["id"]
    pages = [
        ("/login", "#login-form"),
        ("/", "#runs-table"),
        (f"/runs/{run_id}", "#run-status"),
        (f"/compare?runs={run_id}", "main"),
        ("/new?preset=digits-mlp", "#spec-editor"),
        ("/datasets", "main"),
        ("/workers", "#queue-table[aria-busy=false]"),
        ("/sweeps", "main"),
        ("/sweeps/new?preset=digits-mlp", ".param-row"),
        (f"/sweeps/new?run={run_id}", "#from-run-note"),
        (f"/sweeps/{sweep_id}", "#sweep-name"),
        ("/account", "#users-card"),
        ("/docs", ".swagger-ui .info"),
        ("/redoc", "h1"),
    ]
    violations: list[str] = []
    for path, ready in pages:
        violations += _visit(watched, base_url + path, ready)
    assert not violations, "\n".join(violations)


def test_the_run_page_draws_its_charts_under_the_policy(
    watched: Page, base_url: str, external_run: dict[str, Any]
) -> None:
    """Plotly draws under the strict policy (its styles come from CSSOM, not attributes)."""
    found = _visit(watched, f"{base_url}/runs/{external_run['id']}", "#run-status")
    watched.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 0"
    )
    assert not found, "\n".join(found)


def test_every_response_carries_the_security_headers(base_url: str) -> None:
    for path in ("/login", "/api/v1/health", "/static/css/app.css", "/api/v1/runs", "/nope"):
        headers = httpx.get(base_url + path, timeout=30).headers
        assert headers["x-frame-options"] == "DENY", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "same-origin", path
        policy = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "'unsafe-inline'" not in policy, path
