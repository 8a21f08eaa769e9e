"""The run page's per-epoch confusion matrix: a slider over the epochs, the final evaluation last.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.browser.support import RUN_DONE_MS, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

HEATMAP_Z = "() => document.getElementById('confusion-matrix').data[0].z"
SHOWN = "() => document.getElementById('confusion-matrix').dataset.shown"


def test_slider_moves_the_heatmap_through_the_epochs(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    response = api.post(
        "/runs",
        json={
            "name": f"epoch matrices {uuid.uuid4().hex[:6]}",
            "preset": "digits-mlp",
            "overrides": {"fit": {"epochs": 3}, "evaluation": {"every_epoch": True}},
        },
    )
    assert response.status_code == 201, response.text
    run_id = int(response.json()["id"])
    # opened while the run is queued: the epochs arrive live, then the final evaluation
    page.goto(f"{base_url}/runs/{run_id}")
    slider = page.locator("#cm-epoch")
    expect(page.locator("#cm-epochs")).to_be_visible(timeout=RUN_DONE_MS)
    expect(slider).to_have_attribute("max", "3", timeout=RUN_DONE_MS)  # 3 epochs + final
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=RUN_DONE_MS / 1000)
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"

    final = api.get(f"/runs/{run_id}/evaluation").json()["confusion_matrix"]
    epochs = {
        e: api.get(f"/runs/{run_id}/evaluation/epochs/{e}").json()["confusion_matrix"]
        for e in (1, 2, 3)
    }
    assert epochs[1] != final, "precondition: the model changed between epoch 1 and the end"
    # it followed the run to its final evaluation
    expect(slider).to_have_value("3")
    expect(page.locator("#cm-epoch-label")).to_have_text("Final evaluation")
    page.wait_for_function(f"() => ({SHOWN})() === 'final'")
    assert page.evaluate(HEATMAP_Z) == final

    slider.fill("0")
    page.wait_for_function(f"() => ({SHOWN})() === 'epoch-1'")
    assert page.evaluate(HEATMAP_Z) == epochs[1]
    expect(page.locator("#cm-epoch-label")).to_contain_text("Epoch 1 · accuracy 0.")
    expect(page.locator("#evaluation-split")).to_have_text("on the test split after epoch 1")

    slider.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => ({SHOWN})() === 'epoch-2'")
    assert page.evaluate(HEATMAP_Z) == epochs[2]

    # the counts/normalised switch redraws the epoch shown, not the final one
    page.locator("#cm-mode button[data-mode='normalized']").click()
    z = page.evaluate(HEATMAP_Z)
    row_totals = [sum(row) for row in epochs[2]]
    assert z[0][0] == pytest.approx(epochs[2][0][0] / row_totals[0])
    screenshot(page, "run-epoch-confusion")
