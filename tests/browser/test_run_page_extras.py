"""The run page's additions: live log, per batch / per epoch curves, zoom detail, events,
runtime, tags and notes.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from tests.browser.support import RUN_DONE_MS, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

TRACE_JS = """([plot, uid]) => {
  const trace = document.getElementById(plot).data.find((t) => t.uid === uid);
  return trace ? {visible: trace.visible, n: trace.x.length, first: trace.customdata[0],
                  last: trace.customdata[trace.customdata.length - 1]} : null;
}"""


def submit(api: httpx.Client, name: str, overrides: dict[str, Any]) -> int:
    response = api.post(
        "/runs", json={"name": name, "preset": "digits-mlp", "overrides": overrides}
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture(scope="module")
def long_run(api: httpx.Client) -> int:
    """A finished run with more batches than the page draws (batch size 1): it is downsampled."""
    run_id = submit(
        api,
        f"batch of one {uuid.uuid4().hex[:6]}",
        {
            "fit": {"epochs": 2, "batch_size": 1},
            "callbacks": [{"type": "EarlyStopping", "patience": 5}],
        },
    )
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=RUN_DONE_MS / 1000)
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    return run_id


def test_the_log_streams_the_trainers_epoch_lines(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    run_id = submit(api, f"log {uuid.uuid4().hex[:6]}", {"fit": {"epochs": 2}})
    page.goto(f"{base_url}/runs/{run_id}")  # opened while queued or running: the log is live
    log = page.locator("#log-output")
    expect(log).to_contain_text("Epoch 1/2", timeout=RUN_DONE_MS)
    expect(log).to_contain_text("Epoch 2/2", timeout=RUN_DONE_MS)
    expect(log).to_contain_text(re.compile(r"loss: \d"))
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=RUN_DONE_MS)
    expect(page.locator("#log-state")).to_have_text("complete", timeout=30_000)
    expect(log).to_contain_text("event=finished")

    # the timeline and the runtime line, from the events the page saw live
    events = page.locator("#events")
    for key in ("queued", "running", "train_begin", "runtime", "evaluation", "final", *STAGES):
        expect(events.locator(f'[data-key="{key}"]')).to_have_count(1)
    expect(events.locator('[data-key="final"]')).to_contain_text("succeeded")
    # the stages of the start say what happened and how long it took
    expect(events.locator('[data-key="stage-data_loaded"]')).to_contain_text("train")
    expect(events.locator('[data-key="stage-model_built"]')).to_contain_text("parameters")
    expect(events.locator('[data-key="stage-process_started"]')).to_contain_text("ready in")
    expect(page.locator("#run-runtime")).to_contain_text("float32")

    # opened afresh, a finished run shows the same log tail and the same events from history
    page.reload()
    expect(log).to_contain_text("Epoch 2/2")
    expect(page.locator("#log-state")).to_have_text("complete")
    for key in ("queued", "running", "train_begin", "runtime", "evaluation", "final", *STAGES):
        expect(events.locator(f'[data-key="{key}"]')).to_have_count(1)
    expect(page.locator("#run-runtime")).to_contain_text("float32")


STAGES = ("stage-process_started", "stage-data_loaded", "stage-model_built")


def test_curves_per_batch_or_per_epoch_and_zoom_detail(
    page: Page,
    base_url: str,
    api: httpx.Client,
    long_run: int,
) -> None:
    page.goto(f"{base_url}/runs/{long_run}")
    page.wait_for_function(
        "() => (document.getElementById('loss-plot').data || []).some("
        "(t) => t.uid === 'batch/loss' && t.x.length > 0)"
    )
    both = page.evaluate(TRACE_JS, ["loss-plot", "batch/loss"])
    assert both["visible"] is True
    assert page.evaluate(TRACE_JS, ["loss-plot", "loss"])["visible"] is True
    # its system metrics, if it trained long enough to be sampled (every 2 s), have their own
    # panel, on a seconds axis, and stay out of the other-metrics plot
    sampled = "sys/rss_mb" in api.get(f"/runs/{long_run}/metrics").json()["series"]
    expect(page.locator("#system-metrics-card")).to_be_visible(visible=sampled)
    if sampled:
        page.wait_for_function(
            "() => (document.getElementById('system-metrics-plot').data || []).some("
            "(t) => t.uid === 'sys/rss_mb' && t.x.length > 0)"
        )
    assert not page.evaluate(
        "() => (document.getElementById('other-metrics-plot').data || [])"
        ".some((t) => t.uid.startsWith('sys/'))"
    )

    page.get_by_role("button", name="Per epoch").click()
    expect(page.get_by_role("button", name="Per epoch")).to_have_attribute("aria-pressed", "true")
    for plot, batch_key, epoch_key in (
        ("loss-plot", "batch/loss", "loss"),
        ("accuracy-plot", "batch/accuracy", "accuracy"),
    ):
        assert page.evaluate(TRACE_JS, [plot, batch_key])["visible"] is False
        assert page.evaluate(TRACE_JS, [plot, epoch_key])["visible"] is True
    assert page.evaluate(TRACE_JS, ["loss-plot", "val_loss"])["visible"] is True

    page.get_by_role("button", name="Per batch").click()
    assert page.evaluate(TRACE_JS, ["loss-plot", "batch/loss"])["visible"] is True
    assert page.evaluate(TRACE_JS, ["loss-plot", "loss"])["visible"] is False
    page.get_by_role("button", name="Batch + epoch").click()
    assert page.evaluate(TRACE_JS, ["loss-plot", "loss"])["visible"] is True

    # The overview is a min/max envelope of every batch; zooming in loads the batches it spans
    series = api.get(
        f"/runs/{long_run}/metrics", params={"keys": "batch/loss", "max_points": 2000}
    ).json()["series"]["batch/loss"]
    assert series["downsampled"], "batch size 1 should give more batches than the page draws"
    overview = page.evaluate(TRACE_JS, ["loss-plot", "batch/loss"])
    assert overview["n"] == len(series["steps"])
    steps_per_epoch = series["count"] // 2  # two epochs, every batch recorded
    with page.expect_request(re.compile(r"/metrics\?.*min_step=\d+.*max_step=\d+")):
        page.evaluate(
            "() => Plotly.relayout('loss-plot', {'xaxis.range': [0.25, 0.5]})",
        )
    plot = page.locator("#loss-plot")
    expect(plot).to_have_attribute("data-detail", re.compile(r"^\d+-\d+$"))
    low, high = (int(v) for v in plot.get_attribute("data-detail").split("-"))
    assert abs(low - steps_per_epoch * 0.25) <= 2 and abs(high - steps_per_epoch * 0.5) <= 2
    detail = page.evaluate(TRACE_JS, ["loss-plot", "batch/loss"])
    assert detail["first"] >= low and detail["last"] <= high
    assert detail["n"] == high - low + 1, "every batch of the zoomed range, none left out"

    # double-click (autorange) goes back to the overview
    page.evaluate("() => Plotly.relayout('loss-plot', {'xaxis.autorange': true})")
    expect(plot).not_to_have_attribute("data-detail", re.compile(".*"))
    assert page.evaluate(TRACE_JS, ["loss-plot", "batch/loss"])["n"] == overview["n"]

    # early stopping watched the run: its best epoch is marked on the curves
    shapes = page.evaluate("() => document.getElementById('loss-plot').layout.shapes")
    assert any(shape.get("name") == "best" for shape in shapes)
    expect(page.locator('#events [data-key="early_stop"]')).to_be_visible()


def test_tags_and_notes_edit_and_persist(
    page: Page,
    base_url: str,
    api: httpx.Client,
    long_run: int,
) -> None:
    page.goto(f"{base_url}/runs/{long_run}")
    expect(page.locator("#run-status")).to_have_text("succeeded")
    page.get_by_role("button", name="Edit tags and notes").click()
    page.fill("#tags-input", "baseline, <b>bold</b>, baseline")
    notes = "Batch size 1: slow, noisy.\n<script>window.__xss = 1</script>"
    page.fill("#notes-input", notes)
    page.get_by_role("button", name="Save").click()

    error = page.locator("#annotations-error")
    page.wait_for_function(
        "() => document.getElementById('annotations-form').hidden"
        " || !document.getElementById('annotations-error').hidden"
    )
    if error.is_visible():
        text = error.text_content() or ""
        if "PATCH" in text:
            pytest.skip(f"PATCH /api/v1/runs/{{id}} is not on this server yet: {text}")
        raise AssertionError(text)

    expect(page.locator("#run-tags .run-tag")).to_have_count(2)
    page.reload()
    expect(page.locator("#run-tags .run-tag")).to_have_count(2)
    tags = page.locator("#run-tags .run-tag").all_text_contents()
    assert sorted(tags) == sorted(["baseline", "<b>bold</b>"])
    expect(page.locator("#run-notes")).to_have_text(notes)
    assert page.locator("#annotations b, #annotations script").count() == 0
    assert page.evaluate("window.__xss") is None
    run = api.get(f"/runs/{long_run}").json()
    assert sorted(run["tags"]) == sorted(tags) and run["notes"] == notes
    screenshot(page, "run-page-full")
