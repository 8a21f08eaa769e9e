"""The New sweep form in headless Chromium: a sweep made from the form (its POST body), the
live trial count and the server's dry run, a 422 next to its parameter row or field, "Sweep
from this run" pre-filling the form, and the sweep page while its trials have no values yet."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest

from tests.browser.support import Page, expect, screenshot

pytestmark = pytest.mark.browser

LR = "compile.optimizer.learning_rate"


def _row(page: Page, n: int) -> Any:
    return page.locator(".param-row").nth(n)


def _open_form(page: Page, base_url: str, query: str = "") -> None:
    page.goto(f"{base_url}/sweeps/new{query}")
    expect(page.locator("#sweep-base")).to_be_enabled()
    expect(_row(page, 0).locator(".param-path")).to_be_visible()


def test_a_sweep_made_from_the_form(page: Page, base_url: str, api: httpx.Client) -> None:
    page.goto(f"{base_url}/sweeps")
    page.get_by_role("link", name="New sweep").click()
    page.wait_for_url(f"{base_url}/sweeps/new")
    expect(page.locator("#sweep-base")).to_be_enabled()
    page.select_option("#sweep-base", "digits-mlp")
    name = f"form sweep {uuid.uuid4().hex[:6]}"
    page.fill("#sweep-name", name)

    first = _row(page, 0)
    expect(first.locator(".param-path")).to_have_value(LR)  # offered first, around the base value
    expect(first.locator(".param-hint")).to_contain_text("base value")
    first.locator(".param-values").fill("0.01, 0.001")
    page.click("#add-param")
    second = _row(page, 1)
    second.locator(".param-path").fill("fit.batch_size")
    second.locator(".param-path").dispatch_event("change")
    expect(second.locator(".param-hint")).to_contain_text("integer")
    second.locator(".param-values").fill("32, 64")
    expect(page.locator("#trial-preview")).to_have_text("4 trials (every grid point), 1 at once.")

    # a whole-number range on a grid counts its steps; a log range cannot be a grid
    second.locator(".param-kind").select_option("range")
    second.locator(".param-low").fill("16")
    second.locator(".param-high").fill("64")
    second.locator(".param-step").fill("16")
    expect(page.locator("#trial-preview")).to_have_attribute("data-count", "8")
    second.locator(".param-kind").select_option("log")
    expect(page.locator("#trial-preview")).to_contain_text("A grid needs choices")
    second.locator(".param-kind").select_option("choice")
    page.fill("#sweep-max-trials", "3")
    expect(page.locator("#trial-preview")).to_have_text("3 trials (of 4 grid points), 1 at once.")
    expect(page.locator("#server-check")).to_have_text(
        "✓ Checked by the server: 3 trials, maximize val_accuracy."
    )
    page.select_option("#sweep-strategy", "random")
    page.fill("#sweep-max-trials", "")
    expect(page.locator("#trial-preview")).to_contain_text("needs a number of max trials")
    page.select_option("#sweep-strategy", "grid")
    page.fill("#sweep-max-trials", "3")

    page.locator("#base-details > summary").click()
    page.fill("#sweep-overrides", '{"fit": {"epochs": 1}}')
    page.fill("#sweep-concurrency", "2")
    page.select_option("#sweep-pruner", "median")
    expect(page.locator("#median-warmup")).to_be_visible()
    expect(page.locator("#sweep-priority")).to_have_value("normal")
    page.select_option("#sweep-priority", "low")
    screenshot(page, "sweep-form")

    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/sweeps")
    ) as posted:
        page.click("#submit-sweep")
    body = json.loads(posted.value.post_data or "{}")
    assert body == {
        "name": name,
        "preset": "digits-mlp",
        "overrides": {"fit": {"epochs": 1}},
        "space": {LR: {"choice": [0.01, 0.001]}, "fit.batch_size": {"choice": [32, 64]}},
        "strategy": "grid",
        "objective": "val_accuracy",
        "max_trials": 3,
        "max_concurrent": 2,
        "pruner": {"kind": "median", "warmup_epochs": 1, "min_trials": 3},
        "priority": "low",
    }
    page.wait_for_url(re.compile(r"/sweeps/\d+$"))
    sweep_id = int(page.url.rsplit("/", 1)[1])
    api.post(f"/sweeps/{sweep_id}/cancel")  # its trials need not train
    sweep = api.get(f"/sweeps/{sweep_id}").json()
    assert sweep["name"] == name and sweep["max_trials"] == 3 and sweep["priority"] == "low"

    # no trial reported a value: the page says so instead of drawing empty axes
    page.reload()
    expect(page.locator("#sweep-partial")).to_contain_text("of 3 trials finished")
    expect(page.locator("#parcoords-empty")).to_contain_text("No trial has reported val_accuracy")
    expect(page.locator("#sweep-parcoords")).to_be_hidden()
    expect(page.locator("#scatter-empty")).to_be_visible()
    expect(page.locator("#sweep-importance")).to_contain_text("once 5 trials have succeeded")


def test_a_422_lands_next_to_its_field(page: Page, base_url: str, api: httpx.Client) -> None:
    total = api.get("/sweeps", params={"limit": 1}).json()["total"]
    _open_form(page, base_url, "?preset=digits-mlp")
    row = _row(page, 0)
    # a layer's arguments are open in the schema: offered by their value in the base spec
    expect(page.locator('#spec-fields option[value="model.layers[1].units"]')).to_have_count(1)
    row.locator(".param-path").fill("model.layers[2].rate")
    expect(row.locator(".param-hint")).to_contain_text("number · an argument the schema")
    row.locator(".param-values").fill("0.2, 1.5")
    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url.endswith("/api/v1/sweeps")
    ) as answered:
        page.click("#submit-sweep")
    assert answered.value.status == 422
    error = row.locator(".param-errors .field-error")
    expect(error).to_have_attribute("data-field", "space.model.layers[2].rate")
    expect(error).to_contain_text("invalid spec")
    expect(row.locator(".param-path")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#submit-status")).to_contain_text("Nothing was started")

    # a field outside the space: max trials for a random sweep
    row.locator(".param-values").fill("0.2, 0.5")
    page.select_option("#sweep-strategy", "random")
    page.click("#submit-sweep")
    expect(page.locator("#max_trials-error")).to_contain_text("needs a number of trials")
    expect(page.locator("#sweep-max-trials")).to_have_attribute("aria-invalid", "true")
    expect(row.locator(".param-errors .field-error")).to_have_count(0)
    screenshot(page, "sweep-form-errors")
    assert api.get("/sweeps", params={"limit": 1}).json()["total"] == total


def test_sweep_from_this_run_prefills_the_form(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    name = f"sweep source {uuid.uuid4().hex[:6]}"
    response = api.post(
        "/runs",
        json={
            "name": name,
            "preset": "digits-mlp",
            "overrides": {
                "fit": {"epochs": 1, "batch_size": 48},
                "compile": {"optimizer": {"learning_rate": 0.003}},
            },
        },
    )
    assert response.status_code == 201, response.text
    source = response.json()
    api.post(f"/runs/{source['id']}/cancel")  # its spec is what the sweep starts from

    page.goto(f"{base_url}/runs/{source['id']}")
    link = page.get_by_role("link", name="Sweep from this run")
    expect(link).to_have_attribute("href", f"/sweeps/new?run={source['id']}")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/api/v1/sweeps/preview")
    ) as previewed:
        link.click()
        page.wait_for_url(re.compile(rf"/sweeps/new\?run={source['id']}$"))
        expect(page.locator("#sweep-base")).to_have_value(f"run:{source['id']}")
    expect(page.locator("#from-run-note")).to_contain_text(f"run #{source['id']}")
    expect(page.locator("#sweep-name")).to_have_value(f"{name} sweep")
    row = _row(page, 0)
    expect(row.locator(".param-path")).to_have_value(LR)
    expect(row.locator(".param-values")).to_have_value("0.001, 0.003, 0.009")
    assert json.loads(page.locator("#base-spec").text_content() or "{}") == source["spec"]
    body = json.loads(previewed.value.post_data or "{}")
    assert body["spec"] == source["spec"] and "preset" not in body
    expect(page.locator("#server-check")).to_contain_text("Checked by the server: 3 trials")


def test_importance_is_drawn_as_bars(page: Page, base_url: str, api: httpx.Client) -> None:
    made = api.post(
        "/sweeps",
        json={
            "name": f"importance bars {uuid.uuid4().hex[:6]}",
            "preset": "digits-mlp",
            "space": {LR: {"choice": [0.01]}, "fit.batch_size": {"choice": [32]}},
        },
    )
    assert made.status_code == 201, made.text
    sweep_id = made.json()["id"]
    api.post(f"/sweeps/{sweep_id}/cancel")
    found = {
        "sweep_id": sweep_id,
        "objective": "val_accuracy",
        "evaluator": "fanova",
        "finished": 7,
        "needed": 5,
        "items": [
            {"param": LR, "importance": 0.75},
            {"param": "fit.batch_size", "importance": 0.25},
        ],
    }
    page.route(
        f"**/api/v1/sweeps/{sweep_id}/importance",
        lambda route: route.fulfill(json=found),
    )
    page.goto(f"{base_url}/sweeps/{sweep_id}")
    items = page.locator("#sweep-importance .importance-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_attribute("data-param", LR)
    expect(items.nth(0).locator(".importance-value")).to_have_text("75%")
    width = items.nth(0).locator(".importance-fill").evaluate("(e) => e.style.width")
    assert width == "75%"
    expect(page.locator("#sweep-importance")).to_contain_text("From 7 succeeded trials")


def test_running_trials_are_drawn_at_their_latest_value(
    page: Page, base_url: str, api: httpx.Client
) -> None:
    made = api.post(
        "/sweeps",
        json={
            "name": f"partial {uuid.uuid4().hex[:6]}",
            "preset": "digits-mlp",
            "space": {LR: {"choice": [0.1, 0.01, 0.001, 0.0001]}},
        },
    )
    assert made.status_code == 201, made.text
    sweep_id = made.json()["id"]
    api.post(f"/sweeps/{sweep_id}/cancel")
    # the page as a running sweep shows it: one trial done, two running (one with a value yet)
    sweep = api.get(f"/sweeps/{sweep_id}").json() | {"status": "running", "finished_at": None}
    counts = {"created": 4, "queued": 1, "running": 2, "succeeded": 1, "cancelled": 0, "done": 1}
    sweep["progress"] |= counts
    trials = api.get(f"/sweeps/{sweep_id}/trials").json()
    for item, (status, value) in zip(
        trials["items"],
        [("succeeded", 0.9), ("running", 0.6), ("running", None), ("queued", None)],
        strict=True,
    ):
        item |= {"status": status, "objective": value, "failure_reason": None}
    page.route(f"**/api/v1/sweeps/{sweep_id}", lambda route: route.fulfill(json=sweep))
    page.route(f"**/api/v1/sweeps/{sweep_id}/trials", lambda route: route.fulfill(json=trials))
    page.goto(f"{base_url}/sweeps/{sweep_id}")
    partial = page.locator("#sweep-partial")
    expect(partial).to_contain_text("1 of 4 trials finished, 2 running, 1 queued.")
    expect(partial).to_contain_text("drawn at their latest val_accuracy (1)")
    expect(partial).to_contain_text("1 running trial has not reported val_accuracy yet")
    expect(page.locator("#parcoords-empty")).to_be_hidden()
    page.wait_for_function(
        "() => { const p = document.getElementById('sweep-parcoords');"
        " return Boolean(p.data) && p.data[0].dimensions[0].values.length === 2; }"
    )
    names = page.evaluate(
        "() => document.getElementById('sweep-scatter').data.map((t) => t.name).sort()"
    )
    assert names == ["running (latest)", "succeeded"]
    expect(page.locator("#sweep-importance")).to_contain_text("(0 so far)")
