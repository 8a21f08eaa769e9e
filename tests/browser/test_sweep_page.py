"""The sweep page in headless Chromium: progress counts, the parcoords plot, the trials table,
the best trial's link, the list page, and the trial's run page linking back."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.browser.support import Page, expect, screenshot

pytestmark = pytest.mark.browser

PARCOORDS_JS = """() => {
  const plot = document.getElementById('sweep-parcoords');
  const trace = plot && plot.data && plot.data[0];
  return trace && trace.type === 'parcoords'
    ? { labels: trace.dimensions.map((d) => d.label), lines: trace.dimensions[0].values.length,
        drawn: plot.querySelectorAll('.parcoords-line, .parcoords .axis').length > 0 }
    : null;
}"""


def test_sweep_page_shows_progress_parcoords_and_trials(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    body = {
        "name": "browser sweep",
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 1, "batch_size": 64}},
        "strategy": "grid",
        "space": {
            "compile.optimizer.learning_rate": {"choice": [0.01, 0.001]},
            "fit.batch_size": {"choice": [64]},
        },
        "objective": "val_accuracy",
    }
    r = api.post("/sweeps", json=body)
    assert r.status_code == 201, r.text
    sweep_id = r.json()["id"]
    deadline = time.monotonic() + 300
    while api.get(f"/sweeps/{sweep_id}").json()["status"] == "running":
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(1)

    page.goto(f"{base_url}/sweeps/{sweep_id}")
    expect(page.locator("#sweep-name")).to_have_text("browser sweep")
    expect(page.locator("#sweep-status")).to_have_text("finished")
    expect(page.locator("#progress-done")).to_have_text("2 / 2")
    expect(page.locator("#progress-running")).to_have_text("0")
    expect(page.locator("#progress-queued")).to_have_text("0")
    expect(page.locator("#progress-pruned")).to_have_text("0")
    expect(page.locator("#trials-body tr")).to_have_count(2)
    expect(page.locator("#sweep-partial")).to_have_text("2 of 2 trials finished.")
    expect(page.locator("#parcoords-empty")).to_be_hidden()
    expect(page.locator("#sweep-importance")).to_contain_text("once 5 trials have succeeded")
    page.wait_for_function(f"() => ({PARCOORDS_JS})() && ({PARCOORDS_JS})().drawn")
    parcoords = page.evaluate(PARCOORDS_JS)
    assert parcoords["labels"] == [
        "compile.optimizer.learning_rate",
        "fit.batch_size",
        "val_accuracy",
    ]
    assert parcoords["lines"] == 2
    expect(page.locator("#sweep-scatter .scatterlayer .point")).to_have_count(2)
    best = page.locator("#sweep-best a")
    expect(best).to_have_attribute("href", re.compile(r"^/runs/\d+$"))
    expect(page.locator("#sweep-cancel")).to_be_hidden()
    screenshot(page, "sweep-page")

    best.click()
    expect(page.locator("#run-sweep")).to_have_attribute("href", f"/sweeps/{sweep_id}")

    page.goto(f"{base_url}/sweeps")
    row = page.locator(f'#sweeps-body tr[data-sweep-id="{sweep_id}"]')
    expect(row).to_contain_text("browser sweep")
    expect(row).to_contain_text("2 / 2")
