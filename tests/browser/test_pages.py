"""The pages in headless Chromium against a live stack: launch, watch, errors, escaping.

FITBOARD_BASE_URL points the tests at a stack that is already running (quicker while working
on the pages); otherwise they start the lead's `live_stack` (PostgreSQL, Redis, a worker).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.browser.support import (
    RUN_DONE_MS,
    VIEWER_ZONE,
    Page,
    expect,
    screenshot,
    wait_status,
)

pytestmark = pytest.mark.browser

XSS_NAME = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'

BATCH_POINTS_JS = """() => {
  const plot = document.getElementById('loss-plot');
  const trace = plot && plot.data && plot.data.find((t) => t.uid === 'batch/loss');
  return trace ? trace.x.length : 0;
}"""
DRAWN_OR_ENDED_JS = f"""() => ({BATCH_POINTS_JS})() > 0
  || !['queued', 'running'].includes(document.getElementById('run-status').textContent)"""
BATCH_CUSTOMDATA_JS = """() => document.getElementById('loss-plot').data
  .find((t) => t.uid === 'batch/loss').customdata"""
# the batch trace's length, the status badge and the progress line, read in one go
LIVE_STATE_JS = f"""() => [
  ({BATCH_POINTS_JS})(),
  document.getElementById('run-status').textContent,
  document.getElementById('progress-label').textContent,
]"""


def open_new_run_form(page: Page, base_url: str) -> dict[str, Any]:
    """Open /new?preset=digits-mlp; returns the spec the page put in the editor."""
    page.goto(f"{base_url}/new?preset=digits-mlp")
    expect(page.locator("#preset-select")).to_have_value("digits-mlp")
    expect(page.locator("#spec-editor")).not_to_have_value("")
    return json.loads(page.locator("#spec-editor").input_value())


def cancelled_run(api: httpx.Client, name: str) -> dict[str, Any]:
    """A run that is submitted and cancelled straight away: it costs the worker nothing."""
    response = api.post(
        "/runs", json={"name": name, "preset": "digits-mlp", "overrides": {"fit": {"epochs": 1}}}
    )
    assert response.status_code == 201, response.text
    run = response.json()
    api.post(f"/runs/{run['id']}/cancel")
    wait_status(api, run["id"], {"cancelled", "succeeded", "failed"})
    return dict(run)


def test_launch_from_preset_and_watch_it_train(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    spec = open_new_run_form(page, base_url)
    assert spec["dataset"]["name"] == "digits", "?preset= should preselect the preset's spec"
    spec["fit"]["epochs"] = 3
    spec["fit"]["batch_size"] = 8  # ~160 batches an epoch: a couple of seconds of streaming
    name = f"browser live {uuid.uuid4().hex[:6]}"
    page.fill("#run-name", name)
    page.fill("#spec-editor", json.dumps(spec, indent=2))
    screenshot(page, "new-run")
    page.click("#submit-run")

    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#run-name")).to_have_text(name)
    assert api.get(f"/runs/{run_id}").json()["spec"]["fit"]["epochs"] == 3

    # The batch trace grows from the live stream while the run is running.
    # (fails fast if the run ends without the page having drawn a batch)
    page.wait_for_function(DRAWN_OR_ENDED_JS, polling="raf", timeout=RUN_DONE_MS)
    first_count, status_then, progress_then = page.evaluate(LIVE_STATE_JS)
    assert first_count > 0, f"no batch drawn before the run ended {status_then}"
    page.wait_for_function(f"n => ({BATCH_POINTS_JS})() > n", arg=first_count, polling="raf")
    second_count = page.evaluate(BATCH_POINTS_JS)
    assert status_then == "running"
    assert second_count > first_count
    assert re.fullmatch(r"epoch [1-3]/3 · batch \d+/\d+", progress_then), progress_then
    screenshot(page, "run-live")

    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=RUN_DONE_MS)
    expect(page.locator("#confusion-matrix")).to_be_visible()
    expect(page.locator("#report-table")).to_be_visible()

    # Every batch point drawn exactly once: history and stream merged without gaps or repeats.
    params = {"keys": "batch/loss", "max_points": 100_000}
    series = api.get(f"/runs/{run_id}/metrics", params=params).json()["series"]
    assert not series["batch/loss"]["downsampled"]
    assert page.evaluate(BATCH_CUSTOMDATA_JS) == series["batch/loss"]["steps"]
    epoch_trace = page.evaluate(
        "() => document.getElementById('loss-plot').data.find((t) => t.uid === 'loss').y.length"
    )
    assert epoch_trace == 3
    expect(page.locator("#progress-label")).to_contain_text("Finished")

    # Confusion matrix: class names on both axes, counts that add up to the report's support.
    evaluation = api.get(f"/runs/{run_id}/evaluation").json()
    heatmap = page.evaluate("() => document.getElementById('confusion-matrix').data[0]")
    assert heatmap["type"] == "heatmap"
    assert heatmap["x"] == evaluation["class_names"] == heatmap["y"]
    assert heatmap["z"] == evaluation["confusion_matrix"]
    assert sum(map(sum, heatmap["z"])) == evaluation["report"]["macro avg"]["support"]
    page.get_by_role("button", name="Normalised by row").click()
    rows = page.evaluate("() => document.getElementById('confusion-matrix').data[0].z")
    assert all(abs(sum(row) - 1) < 1e-9 for row in rows if any(row))

    # Report: one row per class, then accuracy, macro avg, weighted avg, at 3 decimals.
    labels = page.locator("#report-table tbody th").all_text_contents()
    assert labels == [*evaluation["class_names"], "accuracy", "macro avg", "weighted avg"]
    first_row = page.locator("#report-table tbody tr").first.locator("td").all_text_contents()
    report = evaluation["report"][evaluation["class_names"][0]]
    assert first_row[:3] == [
        f"{report['precision']:.3f}",
        f"{report['recall']:.3f}",
        f"{report['f1-score']:.3f}",
    ]
    accuracy_row = page.locator('#report-table tr[data-label="accuracy"] td').all_text_contents()
    assert accuracy_row[2] == f"{evaluation['report']['accuracy']:.3f}"

    expect(page.locator("#artifacts a", has_text="model.keras")).to_be_visible()
    expect(page.locator("#model-summary")).to_be_visible()
    expect(page.locator("#cancel-button")).to_be_hidden()
    cls = page.evaluate("window.__cls")
    assert cls < 0.1, f"the run page's layout shifted while it streamed (CLS {cls:.3f})"
    screenshot(page, "run-page")

    # Opened afresh, the finished run draws the same curve and evaluation from history.
    page.reload()
    expect(page.locator("#report-table")).to_be_visible()
    expect(page.locator("#confusion-matrix")).to_be_visible()
    page.wait_for_function(f"() => ({BATCH_POINTS_JS})() > 0")
    assert page.evaluate(BATCH_CUSTOMDATA_JS) == series["batch/loss"]["steps"]


def test_spec_errors_show_next_to_the_editor(page: Page, base_url: str, api: httpx.Client) -> None:
    total_before = api.get("/runs", params={"limit": 1}).json()["total"]
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    # Broken JSON is caught in the page: nothing is sent.
    open_new_run_form(page, base_url)
    page.fill("#run-name", "broken json")
    page.fill("#spec-editor", '{"fit": {"epochs": 3,}}')
    page.click("#submit-run")
    json_error = page.locator('#spec-errors [data-field="spec"]')
    expect(json_error).to_be_visible()
    expect(json_error).to_contain_text("Invalid JSON")
    assert posts == []

    # epochs 0: the server's 422 lands next to the JSON editor, under its field path.
    spec = open_new_run_form(page, base_url)
    spec["fit"]["epochs"] = 0
    page.fill("#run-name", "zero epochs")
    page.fill("#spec-editor", json.dumps(spec, indent=2))
    page.click("#submit-run")
    error = page.locator('#spec-errors [data-field="spec.fit.epochs"]')
    expect(error).to_be_visible()
    expect(error).to_contain_text("spec.fit.epochs")
    expect(error).to_contain_text("greater than or equal to 1")
    expect(page.locator("#name-error")).to_be_empty()
    assert page.url.endswith("/new?preset=digits-mlp")
    assert len(posts) == 1
    screenshot(page, "new-run-errors")
    assert api.get("/runs", params={"limit": 1}).json()["total"] == total_before


def test_names_are_text_never_markup(page: Page, base_url: str, api: httpx.Client) -> None:
    run = cancelled_run(api, XSS_NAME)  # it need not train: its name is what is tested

    page.goto(base_url + "/")
    link = page.locator(f'#runs-body tr[data-run-id="{run["id"]}"] td.name-cell a')
    expect(link).to_have_text(XSS_NAME)
    assert page.locator("#runs-body img, #runs-body script").count() == 0
    assert page.evaluate("window.__xss") is None
    screenshot(page, "runs-list")

    link.click()
    page.wait_for_url(re.compile(rf"/runs/{run['id']}$"))
    expect(page.locator("#run-name")).to_have_text(XSS_NAME)
    expect(page.locator("#run-status")).to_have_text(re.compile("cancelled|succeeded|failed"))
    assert XSS_NAME in page.title()
    assert page.locator("#run-name img, #run-name script").count() == 0
    assert page.evaluate("window.__xss") is None

    # Timestamps are in the viewer's zone, not UTC's or the server's.
    created = datetime.fromisoformat(run["created_at"].replace("Z", "+00:00"))
    local = created.astimezone(ZoneInfo(VIEWER_ZONE))
    expect(page.locator("#run-created time")).to_contain_text(local.strftime("%I:%M:%S %p"))
    screenshot(page, "run-xss")


def test_cancel_from_the_run_page_and_the_list_follows(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    response = api.post(
        "/runs",
        json={"name": "cancel me", "preset": "digits-mlp", "overrides": {"fit": {"epochs": 2}}},
    )
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    page.goto(base_url + "/")
    row = page.locator(f'#runs-body tr[data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-status", re.compile("queued|running"))

    run_page = page.context.new_page()
    run_page.goto(f"{base_url}/runs/{run_id}")
    expect(run_page.locator("#run-status")).to_have_text(re.compile("queued|running"))
    # Cancel asks first and says what is kept; "Keep it" changes nothing
    run_page.click("#cancel-button")
    expect(run_page.locator("#cancel-dialog")).to_be_visible()
    expect(run_page.locator("#cancel-dialog-text")).to_contain_text("are kept")
    run_page.get_by_role("button", name="Keep it").click()
    expect(run_page.locator("#cancel-dialog")).to_be_hidden()
    expect(run_page.locator("#cancel-button")).to_have_text("Cancel run")
    run_page.click("#cancel-button")
    run_page.click("#confirm-cancel")
    expect(run_page.locator("#run-status")).to_have_text("cancelled", timeout=90_000)
    expect(run_page.locator("#final-metrics-note")).to_contain_text("part-way through an epoch")
    expect(run_page.locator("#cancel-button")).to_be_hidden()
    run_page.close()

    # The list was never reloaded: its row follows the run by itself.
    expect(row).to_have_attribute("data-status", "cancelled", timeout=15_000)
    expect(row.locator(".badge")).to_have_text("cancelled")

    page.select_option("#status-filter", "cancelled")
    page.wait_for_url(re.compile(r"/\?status=cancelled$"))
    expect(page.locator("#runs-table")).to_have_attribute("aria-busy", "false")
    expect(row).to_be_visible()
    statuses = page.locator("#runs-body tr[data-run-id]").evaluate_all(
        "rows => rows.map((r) => r.dataset.status)"
    )
    assert set(statuses) == {"cancelled"}

    page.goto(base_url + "/?status=queued")
    expect(page.locator("#status-filter")).to_have_value("queued")
    page.select_option("#status-filter", "")
    page.wait_for_url(re.compile(r"/$"))
    expect(row).to_be_visible()
