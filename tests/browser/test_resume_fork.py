"""The run page's Resume and Fork: a finished run resumed for more epochs (same run, next
attempt, curves going on), a fork from an older checkpoint with spec changes (its page and
its source's link each other), what the fork dialog refuses, and Compare naming the fork."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest

from tests.browser.support import RUN_DONE_MS, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser


def _finished(api: httpx.Client, run_id: int) -> dict:
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=RUN_DONE_MS / 1000)
    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "succeeded", run.get("failure_reason")
    return dict(run)


@pytest.fixture(scope="module")
def trained(api: httpx.Client) -> int:
    """A finished two-epoch digits run: checkpoints at epochs 1 and 2."""
    body = {
        "name": f"resume me {uuid.uuid4().hex[:6]}",
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 2}},
    }
    created = api.post("/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = int(created.json()["id"])
    assert _finished(api, run_id)["checkpoints"] == [1, 2]
    return run_id


def test_fork_from_an_older_checkpoint_then_resume_the_source(
    page: Page, base_url: str, api: httpx.Client, trained: int
) -> None:
    page.goto(f"{base_url}/runs/{trained}")
    expect(page.locator("#run-status")).to_have_text(re.compile("succeeded", re.I))
    expect(page.locator("#resume-button")).to_be_visible()
    expect(page.locator("#fork-button")).to_be_visible()
    expect(page.locator("#run-lineage-row")).to_be_hidden()

    page.locator("#fork-button").click()
    dialog = page.locator("#fork-dialog")
    expect(dialog).to_be_visible()
    options = page.locator("#fork-epoch option")
    expect(options).to_have_text(["2 (newest)", "1"])
    # refused in the dialog: not JSON, then a change a fork cannot make (the server's 422)
    page.locator("#fork-overrides").fill("{not json")
    page.locator("#confirm-fork").click()
    expect(page.locator("#fork-error")).to_contain_text("not JSON")
    page.locator("#fork-overrides").fill(json.dumps({"model": {"template": "mlp"}}))
    page.locator("#confirm-fork").click()
    expect(page.locator("#fork-error")).to_contain_text("overrides.model.template")

    page.locator("#fork-name").fill("browser fork")
    page.locator("#fork-epoch").select_option("1")
    changes = {"fit": {"epochs": 3}, "compile": {"optimizer": {"learning_rate": 0.0005}}}
    page.locator("#fork-overrides").fill(json.dumps(changes))
    page.locator("#confirm-fork").click()
    page.wait_for_url(re.compile(rf"/runs/(?!{trained}$)\d+$"))  # the fork's page
    fork_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    assert fork_id != trained
    expect(page.locator("#run-name")).to_have_text("browser fork")
    lineage = page.locator("#run-lineage")
    expect(lineage).to_contain_text("Forked from")
    expect(lineage).to_contain_text("at epoch 1")
    expect(lineage.locator(f'a[href="/runs/{trained}"]')).to_be_visible()
    fork = _finished(api, fork_id)
    assert fork["forked_from"]["epoch"] == 1
    assert fork["spec"]["compile"]["optimizer"]["learning_rate"] == 0.0005
    steps = api.get(f"/runs/{fork_id}/metrics").json()["series"]["loss"]["steps"]
    assert steps == [1, 2, 3], "the source's epoch 1, then the fork's own 2 and 3"

    page.goto(f"{base_url}/runs/{trained}")
    children = page.locator("#lineage-children")
    expect(children).to_contain_text("browser fork")
    expect(children.locator(f'a[href="/runs/{fork_id}"]')).to_be_visible()
    screenshot(page, "run-lineage")

    # resume the source for one more epoch: same run, attempt 2
    page.locator("#resume-button").click()
    expect(page.locator("#resume-dialog")).to_be_visible()
    expect(page.locator("#resume-dialog-text")).to_contain_text("epoch 2")
    page.locator("#resume-epochs").fill("3")
    page.locator("#confirm-resume").click()
    deadline = time.monotonic() + 30
    while api.get(f"/runs/{trained}").json()["attempt"] != 2:  # the click queued attempt 2
        assert time.monotonic() < deadline, "Resume did not queue the run again"
        time.sleep(0.2)
    resumed = _finished(api, trained)
    assert resumed["attempt"] == 2 and resumed["spec"]["fit"]["epochs"] == 3
    series = api.get(f"/runs/{trained}/metrics").json()["series"]
    assert series["loss"]["steps"] == [1, 2, 3]
    batches = series["batch/loss"]["steps"]
    assert batches == sorted(set(batches)) and batches[0] == 1
    page.goto(f"{base_url}/runs/{trained}")
    page.wait_for_function(
        "() => /succeeded/i.test(document.getElementById('run-status').textContent)"
    )
    expect(page.locator("#resume-button")).to_be_visible()  # more epochs may follow

    page.goto(f"{base_url}/compare?runs={trained},{fork_id}")
    note = page.locator(f'#final-table tr[data-run-id="{fork_id}"] .fork-note')
    expect(note).to_contain_text(f"forked from #{trained} at epoch 1")
    expect(page.locator('#params-table tr[data-param="forked_from"]')).to_have_attribute(
        "data-differs", "true"
    )
