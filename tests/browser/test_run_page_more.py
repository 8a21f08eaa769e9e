"""More of the run page (samples, base network, other metrics) and the Datasets page.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.browser.support import RUN_DONE_MS, Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

DIGITS_COMPILE = {
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "loss": "sparse_categorical_crossentropy",
    "metrics": ["accuracy"],
}
OTHER_TRACE_JS = """(uid) => {
  const plot = document.getElementById('other-metrics-plot');
  const trace = (plot.data || []).find((t) => t.uid === uid);
  return trace ? trace.y.length : 0;
}"""


def submit(api: httpx.Client, name: str, **body: Any) -> int:
    response = api.post("/runs", json={"name": name, **body})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def finish(api: httpx.Client, run_id: int) -> None:
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=RUN_DONE_MS / 1000)
    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "succeeded", run.get("failure_reason")


@pytest.fixture(scope="module")
def digits_run(api: httpx.Client) -> int:
    """A finished one-epoch digits run: it has samples and a model.keras to build on."""
    run_id = submit(
        api,
        f"digits samples {uuid.uuid4().hex[:6]}",
        preset="digits-mlp",
        overrides={"fit": {"epochs": 1}},
    )
    finish(api, run_id)
    return run_id


def test_samples_section_shows_images_per_class(
    page: Page,
    base_url: str,
    digits_run: int,
) -> None:
    page.goto(f"{base_url}/runs/{digits_run}")
    section = page.locator("#samples")
    expect(section).to_be_visible()
    classes = section.locator(".sample-class")
    expect(classes).to_have_count(10)
    labels = section.locator(".sample-label").all_text_contents()
    assert labels == [str(d) for d in range(10)]
    images = section.locator(".sample-class img")
    assert images.count() >= 10
    src = images.first.get_attribute("src") or ""
    assert src.startswith("data:image/png;base64,")
    # every image decoded: the browser knows its size
    page.wait_for_function(
        "() => [...document.querySelectorAll('#samples img')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )
    expect(page.locator("#run-base-row")).to_be_hidden()  # no base network here
    section.scroll_into_view_if_needed()
    screenshot(page, "run-samples")


def test_samples_section_arrives_live_and_hides_without_samples(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    run_id = submit(api, f"samples live {uuid.uuid4().hex[:6]}", preset="digits-mlp", overrides={})
    page.goto(f"{base_url}/runs/{run_id}")  # queued or running: samples come from the stream
    expect(page.locator("#samples .sample-class")).to_have_count(10, timeout=RUN_DONE_MS)
    api.post(f"/runs/{run_id}/cancel")
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=RUN_DONE_MS / 1000)

    # a run that never trained has no samples event: the section stays hidden
    cancelled = submit(api, f"no samples {uuid.uuid4().hex[:6]}", preset="digits-mlp", overrides={})
    api.post(f"/runs/{cancelled}/cancel")
    wait_status(api, cancelled, {"succeeded", "failed", "cancelled"})
    if api.get(f"/runs/{cancelled}").json()["started_at"] is None:
        page.goto(f"{base_url}/runs/{cancelled}")
        expect(page.locator("#run-status")).to_have_text("cancelled")
        expect(page.locator("#events [data-key='final']")).to_have_count(1)
        expect(page.locator("#samples")).to_be_hidden()


def test_base_run_link_live_and_from_the_model_summary(
    page: Page,
    base_url: str,
    api: httpx.Client,
    digits_run: int,
) -> None:
    spec = {
        "dataset": {"name": "digits"},
        "model": {
            "base": {"from_run": digits_run},
            "layers": [{"type": "Dense", "units": 10, "activation": "softmax"}],
        },
        "compile": DIGITS_COMPILE,
        "fit": {"epochs": 1, "batch_size": 32, "validation_split": 0.1},
    }
    run_id = submit(api, f"on run {digits_run} {uuid.uuid4().hex[:6]}", spec=spec)
    page.goto(f"{base_url}/runs/{run_id}")
    row = page.locator("#run-base-row")
    expect(row).to_be_visible(timeout=RUN_DONE_MS)  # the base event, live
    expect(row).to_contain_text(f"run #{digits_run}")
    expect(row.locator("a")).to_have_attribute("href", f"/runs/{digits_run}")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=RUN_DONE_MS)

    run = api.get(f"/runs/{run_id}").json()
    assert run["model_summary"]["base"]["from_run"] == digits_run
    page.reload()  # a finished run: from the model summary (and the event log)
    expect(row).to_be_visible()
    expect(row.locator("dt")).to_have_text("Base")
    expect(row.locator("dd")).to_have_text(f"run #{digits_run}")
    row.locator("a").click()
    page.wait_for_url(re.compile(rf"/runs/{digits_run}$"))
    expect(page.locator("#run-base-row")).to_be_hidden()


def test_other_metrics_plot_draws_extra_keys_live(
    page: Page,
    base_url: str,
    api: httpx.Client,
    digits_run: int,
) -> None:
    key = "sparse_top_k_categorical_accuracy"
    run_id = submit(
        api,
        f"top-k {uuid.uuid4().hex[:6]}",
        preset="digits-mlp",
        overrides={"compile": {"metrics": ["accuracy", key]}, "fit": {"epochs": 3}},
    )
    page.goto(f"{base_url}/runs/{run_id}")
    card = page.locator("#other-metrics-card")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=RUN_DONE_MS)
    expect(card).to_be_visible()
    page.wait_for_function(f"() => ({OTHER_TRACE_JS})('{key}') === 3")
    assert page.evaluate(OTHER_TRACE_JS, f"val_{key}") == 3
    uids = page.evaluate(
        "() => document.getElementById('other-metrics-plot').data.map((t) => t.uid)"
    )
    assert sorted(uids) == sorted([key, f"val_{key}"]), "loss, accuracy, lr stay in their plots"
    stored = api.get(f"/runs/{run_id}/metrics", params={"keys": key}).json()["series"][key]
    drawn = page.evaluate(
        "(uid) => document.getElementById('other-metrics-plot').data.find((t) => t.uid === uid).y",
        key,
    )
    assert drawn == pytest.approx(stored["values"])

    page.reload()  # from history
    page.wait_for_function(f"() => ({OTHER_TRACE_JS})('{key}') === 3")

    # a run with only the usual metrics has no extra plot
    page.goto(f"{base_url}/runs/{digits_run}")
    page.wait_for_function(
        "() => (document.getElementById('loss-plot').data || []).some((t) => t.y.length > 0)"
    )
    expect(card).to_be_hidden()


def csv_text(rows: int = 40) -> str:
    lines = ["x1,x2,label"]
    for i in range(rows):
        label = "cat" if i % 2 else "dog"
        lines.append(f"{i * 0.5:.2f},{(i % 7) - 3:.1f},{label}")
    return "\n".join(lines) + "\n"


def test_datasets_page_lists_uploads_and_shows_field_errors(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    page.goto(f"{base_url}/")
    expect(page.locator("nav.nav a[href='/datasets']")).to_have_text("Datasets")
    page.locator("nav.nav a[href='/datasets']").click()
    page.wait_for_url(re.compile(r"/datasets$"))
    expect(page.locator("nav.nav a[aria-current='page']")).to_have_text("Datasets")

    name = f"pets <b>{uuid.uuid4().hex[:6]}</b>"
    page.set_input_files(
        "#upload-file",
        {"name": "pets.csv", "mimeType": "text/csv", "buffer": csv_text().encode()},
    )
    page.fill("#upload-name", name)
    page.select_option("#upload-kind", "csv")
    expect(page.locator("#upload-target")).to_be_visible()
    page.fill("#upload-target", "label")
    page.click("#upload-submit")
    expect(page.locator("#upload-status")).to_contain_text("Uploaded")

    listed = api.get("/datasets").json()["items"]
    uploads = {d["name"]: d for d in listed}
    assert name in uploads
    dataset = uploads[name]
    row = page.locator(f"#datasets-table tbody tr[data-id='{dataset['id']}']")
    expect(row).to_be_visible()
    expect(row.locator("td").nth(0)).to_contain_text(name)  # as text, not markup
    assert row.locator("b").count() == 0
    expect(row.locator("td").nth(1)).to_have_text("csv")
    expect(row.locator("td").nth(2)).to_have_text("40")
    expect(row.locator("td").nth(3)).to_have_text("2: cat, dog")
    expect(row.locator("td").nth(4)).to_have_text("(2,)")

    # a CSV without the target column it names: the 422 shows next to target_column
    page.set_input_files(
        "#upload-file",
        {"name": "bad.csv", "mimeType": "text/csv", "buffer": csv_text().encode()},
    )
    page.fill("#upload-name", f"bad {uuid.uuid4().hex[:6]}")
    page.fill("#upload-target", "species")
    page.click("#upload-submit")
    error = page.locator("[data-error-for='target_column']")
    expect(error).to_be_visible()
    expect(error).to_contain_text("species")
    expect(page.locator("[data-error-for='file']")).to_be_hidden()
    assert len(api.get("/datasets").json()["items"]) == len(listed), "nothing stored"
    screenshot(page, "datasets")

    # switching to npz hides the CSV-only fields
    page.select_option("#upload-kind", "npz")
    expect(page.locator("#upload-target")).to_be_hidden()

    # "New run with this dataset" opens the New run form on that upload
    row.get_by_role("link", name="New run with this dataset").click()
    page.wait_for_url(re.compile(rf"/new\?dataset_upload={dataset['id']}"))
    page.wait_for_function(
        "() => document.getElementById('spec-editor').value.includes('upload_id')"
    )
    spec = json.loads(page.locator("#spec-editor").input_value())
    assert spec["dataset"] == {"name": "upload", "upload_id": dataset["id"]}
    assert spec["model"]["layers"], "the preset's model is kept"
