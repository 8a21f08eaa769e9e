"""The Compare page: overlaid curves, the parameters that differ, final metrics, URL selection.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.browser.support import RUN_DONE_MS, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

METRICS = ["loss", "val_loss", "accuracy", "val_accuracy", "lr"]
TRACES_JS = """(id) => (document.getElementById(id).data || [])
  .map((t) => ({uid: t.uid, n: t.x.length, name: t.name}))"""


@pytest.fixture(scope="module")
def two_runs(api: httpx.Client) -> list[dict]:
    """Two finished runs that differ in batch size only (and a name with markup in it)."""
    tag = uuid.uuid4().hex[:6]
    runs = []
    for batch_size in (32, 64):
        response = api.post(
            "/runs",
            json={
                "name": f"cmp <i>{batch_size}</i> {tag}",
                "preset": "digits-mlp",
                "overrides": {"fit": {"epochs": 2, "batch_size": batch_size}},
            },
        )
        assert response.status_code == 201, response.text
        runs.append(response.json())
    for run in runs:
        wait_status(api, run["id"], {"succeeded", "failed", "cancelled"}, RUN_DONE_MS / 1000)
    return [api.get(f"/runs/{run['id']}").json() for run in runs]


def test_compare_two_runs(
    page: Page,
    base_url: str,
    two_runs: list[dict],
) -> None:
    first, second = two_runs
    page.goto(f"{base_url}/compare?runs={first['id']},{second['id']}")
    expect(page.locator("#compare-content")).to_have_attribute("aria-busy", "false")

    # one trace per run in every plot, each with its points, named after its run (as text)
    for metric in METRICS:
        traces = page.evaluate(TRACES_JS, f"cmp-{metric}")
        assert [t["uid"] for t in traces] == [f"run-{first['id']}", f"run-{second['id']}"]
        assert all(t["n"] == 2 for t in traces), (metric, traces)
    legend = page.locator("#cmp-loss .legendtext")
    expect(legend).to_have_count(2)
    assert legend.first.text_content() == f"{first['name']} #{first['id']}"
    assert page.locator("#compare-content i").count() == 0

    # parameters: only the differences at first; batch_size differs, epochs does not
    batch_row = page.locator('#params-table tr[data-param="fit.batch_size"]')
    epochs_row = page.locator('#params-table tr[data-param="fit.epochs"]')
    expect(batch_row).to_be_visible()
    expect(batch_row).to_have_class(re.compile(r"\bdiffers\b"))
    expect(batch_row.locator("td")).to_have_text(["32", "64"])
    expect(epochs_row).to_be_hidden()
    page.get_by_label("Show only differences").uncheck()
    expect(epochs_row).to_be_visible()
    expect(epochs_row).not_to_have_class(re.compile(r"\bdiffers\b"))
    expect(epochs_row.locator("td")).to_have_text(["2", "2"])
    differing = page.locator('#params-table tr[data-differs="true"]').evaluate_all(
        "rows => rows.map((r) => r.dataset.param)"
    )
    assert differing == ["fit.batch_size"]

    # final metrics, one row per run, names as text
    rows = page.locator("#final-table tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first.locator("th a")).to_have_text(first["name"])
    expect(rows.first.locator("td").nth(3)).not_to_have_text("—")
    screenshot(page, "compare")

    # the selection lives in the URL: leaving a run out changes it
    page.get_by_role("button", name=f"Leave run {second['id']} out").click()
    page.wait_for_url(re.compile(rf"/compare\?runs={first['id']}$"))
    expect(page.locator("#compare-error")).to_contain_text("at least one more run")
    page.go_back()
    page.wait_for_url(re.compile(rf"runs={first['id']}(%2C|,){second['id']}$"))
    expect(page.locator("#final-table tbody tr")).to_have_count(2)


def test_bad_or_missing_ids_say_so(page: Page, base_url: str, two_runs: list[dict]) -> None:
    page.goto(f"{base_url}/compare?runs=abc,987654321")
    error = page.locator("#compare-error")
    expect(error).to_contain_text('"abc"')
    expect(error).to_contain_text("987654321 does not exist")
    expect(page.locator("#compare-empty")).to_be_visible()

    page.goto(f"{base_url}/compare")
    expect(page.locator("#compare-empty")).to_contain_text("Pick 2 to 20 runs")
    ids = ", ".join(str(run["id"]) for run in two_runs)
    page.fill("#runs-input", ids)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(re.compile(r"/compare\?runs="))
    expect(page.locator("#final-table tbody tr")).to_have_count(2)

    too_many = ",".join(str(i) for i in range(1, 23))
    page.goto(f"{base_url}/compare?runs={too_many}")
    expect(page.locator("#compare-error")).to_contain_text("at most 20")


def _external_with_system(api: httpx.Client, name: str, cpu: list[float], gpu: bool) -> int:
    run = api.post("/runs/external", json={"name": name})
    assert run.status_code == 201, run.text
    run_id = int(run.json()["id"])
    points = [{"key": "loss", "step": 1, "value": 0.5}]
    points += [{"key": "sys/cpu_percent", "step": 2 * i, "value": v} for i, v in enumerate(cpu)]
    if gpu:
        points += [{"key": "sys/gpu0_util", "step": 2 * i, "value": 90.0} for i in range(3)]
    posted = api.post(f"/runs/{run_id}/points", json={"uid": "sys", "points": points})
    assert posted.status_code == 200, posted.text
    return run_id


def test_compare_draws_system_metrics(page: Page, base_url: str, api: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    first = _external_with_system(api, f"sys a {tag}", [10.0, 50.0, 80.0, 75.0], gpu=True)
    second = _external_with_system(api, f"sys b {tag}", [20.0, 30.0], gpu=False)
    page.goto(f"{base_url}/compare?runs={first},{second}")
    expect(page.locator("#compare-content")).to_have_attribute("aria-busy", "false")
    select = page.locator("#cmp-sys-key")
    expect(select).to_be_enabled()
    expect(select.locator("option")).to_have_text(["CPU %", "GPU 0 utilisation %"])
    expect(page.locator("#cmp-sys-none")).to_be_hidden()
    traces = page.evaluate(TRACES_JS, "cmp-sys")
    assert [(t["uid"], t["n"]) for t in traces] == [(f"run-{first}", 4), (f"run-{second}", 2)]
    select.select_option("sys/gpu0_util")
    page.wait_for_function(
        "() => (document.getElementById('cmp-sys').data || [])[0]?.y?.[0] === 90"
    )
    traces = page.evaluate(TRACES_JS, "cmp-sys")
    assert [(t["uid"], t["n"]) for t in traces] == [(f"run-{first}", 3), (f"run-{second}", 0)]

    # runs that recorded none say so
    plain = [_external_with_system(api, f"plain {i} {tag}", [], gpu=False) for i in (1, 2)]
    page.goto(f"{base_url}/compare?runs={plain[0]},{plain[1]}")
    expect(page.locator("#compare-content")).to_have_attribute("aria-busy", "false")
    expect(page.locator("#cmp-sys-none")).to_be_visible()
    expect(select).to_be_disabled()
