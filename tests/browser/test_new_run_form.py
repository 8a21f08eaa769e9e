"""The New run form generated from the spec's JSON Schema, its JSON and YAML views, and Clone.

Runs on the same stack and fixtures as test_pages.py (FITBOARD_BASE_URL, or the live stack).
"""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.browser.support import Page, expect, screenshot, wait_status

pytestmark = pytest.mark.browser

LAYERS = '[data-path="spec.model.layers"]'
ITEMS = f"{LAYERS} > ol > li.sf-item"


def open_form(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/new?preset=digits-mlp")
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_value("20")
    expect(page.locator("#spec-editor")).not_to_have_value("")


def editor_spec(page: Page) -> dict:
    return dict(json.loads(page.locator("#spec-editor").input_value()))


def layer_types(page: Page) -> list[str]:
    return [layer["type"] for layer in editor_spec(page)["model"]["layers"]]


def test_form_json_and_yaml_stay_in_sync_and_launch(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    open_form(page, base_url)
    presets = {p["name"]: p for p in api.get("/presets").json()}
    preset_layers = [layer["type"] for layer in presets["digits-mlp"]["spec"]["model"]["layers"]]
    assert layer_types(page) == preset_layers

    # A number typed in the form shows in the JSON view ...
    page.fill('input[name="spec.fit.epochs"]', "2")
    assert editor_spec(page)["fit"]["epochs"] == 2
    expect(page.locator('input[name="spec.fit.epochs"]')).to_have_attribute("min", "1")
    # ... and in the YAML view
    page.get_by_role("tab", name="YAML").click()
    expect(page.locator("#spec-yaml")).to_be_visible()
    expect(page.locator("#spec-editor")).to_be_hidden()
    assert re.search(r"^  epochs: 2$", page.locator("#spec-yaml").input_value(), re.M)

    # A YAML edit reaches the form and the JSON
    yaml_text = page.locator("#spec-yaml").input_value()
    assert "  batch_size: 32\n" in yaml_text
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: 64\n"))
    expect(page.locator('input[name="spec.fit.batch_size"]')).to_have_value("64")
    # YAML that does not parse holds the form (and says why) until it is fixed
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: [64\n"))
    expect(page.locator("#text-error")).to_contain_text("YAML not valid")
    expect(page.locator("#spec-form")).to_have_attribute("inert", "")
    page.fill("#spec-yaml", yaml_text.replace("  batch_size: 32\n", "  batch_size: 64\n"))
    expect(page.locator("#text-error")).to_be_hidden()
    expect(page.locator("#sync-state")).to_contain_text("in sync")
    page.get_by_role("tab", name="JSON").click()
    assert editor_spec(page)["fit"]["batch_size"] == 64
    assert editor_spec(page)["fit"]["epochs"] == 2

    # An enum is a select; a boolean a checkbox
    expect(page.locator('select[name="spec.compile.optimizer.name"]')).to_be_visible()
    page.locator('input[type="checkbox"][name="spec.fit.shuffle"]').uncheck()
    assert editor_spec(page)["fit"]["shuffle"] is False

    # Layers: add one (Dense 64 relu), give it 32 units, move it above the output layer
    items = page.locator(ITEMS)
    expect(items).to_have_count(len(preset_layers))
    page.locator(LAYERS).locator('button[data-action="add"]').click()
    expect(items).to_have_count(len(preset_layers) + 1)
    new = items.nth(len(preset_layers))
    assert editor_spec(page)["model"]["layers"][-1] == {
        "type": "Dense",
        "units": 64,
        "activation": "relu",
    }
    new.get_by_label("Value of units").fill("32")
    assert editor_spec(page)["model"]["layers"][-1]["units"] == 32
    new.locator('button[data-action="up"]').click()
    layers = editor_spec(page)["model"]["layers"]
    assert layers[-2] == {"type": "Dense", "units": 32, "activation": "relu"}
    assert layers[-1]["activation"] == "softmax"
    expect(items.nth(len(preset_layers) - 1).locator(".sf-item-summary")).to_have_text(
        "Dense(32, relu)"
    )

    # ... and remove the first Dropout; then move Flatten down and back up
    dropout = preset_layers.index("Dropout")
    items.nth(dropout).locator('button[data-action="remove"]').click()
    expect(items).to_have_count(len(preset_layers))
    expected = [*preset_layers[:dropout], *preset_layers[dropout + 1 : -1], "Dense"]
    expected.append(preset_layers[-1])
    assert layer_types(page) == expected
    items.nth(0).locator('button[data-action="down"]').click()
    assert layer_types(page)[:2] == [expected[1], expected[0]]
    items.nth(1).locator('button[data-action="up"]').click()
    assert layer_types(page) == expected

    # A layer argument added as a key/value row (JSON values; bare words are strings)
    dense = expected.index("Dense")
    item = items.nth(dense)
    item.locator('button[data-action="add-entry"]').click()
    item.get_by_label("Argument name").last.fill("use_bias")
    item.get_by_label("Argument value").last.fill("true")
    assert editor_spec(page)["model"]["layers"][dense]["use_bias"] is True

    # A discriminated union: a callback picked by its type
    callbacks = page.locator('[data-path="spec.callbacks"]')
    callbacks.locator('button[data-action="add"]').click()
    assert editor_spec(page)["callbacks"][0]["type"] == "EarlyStopping"
    callbacks.get_by_label("Callback type").select_option("ReduceLROnPlateau")
    callback = editor_spec(page)["callbacks"][0]
    assert callback["type"] == "ReduceLROnPlateau" and "factor" in callback
    callbacks.locator('button[data-action="remove"]').click()
    assert editor_spec(page)["callbacks"] == []

    name = f"form run {uuid.uuid4().hex[:6]}"
    page.fill("#run-name", name)
    final_spec = editor_spec(page)
    screenshot(page, "new-run-form")
    page.click("#submit-run")

    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#run-name")).to_have_text(name)
    run = api.get(f"/runs/{run_id}").json()
    assert run["preset"] == "digits-mlp"
    assert run["spec"]["fit"] == final_spec["fit"]
    assert run["spec"]["model"]["layers"] == final_spec["model"]["layers"]
    wait_status(api, run_id, {"succeeded", "failed", "cancelled"}, timeout_s=240)


def test_a_422_shows_next_to_the_form_field(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    total_before = api.get("/runs", params={"limit": 1}).json()["total"]
    open_form(page, base_url)
    page.fill("#run-name", "zero epochs in the form")
    epochs = page.locator('input[name="spec.fit.epochs"]')
    epochs.fill("0")
    page.click("#submit-run")

    inline = page.locator('[data-path="spec.fit.epochs"] .sf-error')
    expect(inline).to_be_visible()
    expect(inline).to_contain_text("greater than or equal to 1")
    expect(epochs).to_have_attribute("aria-invalid", "true")
    expect(epochs).to_be_focused()
    # the list under the editors keeps every error with its path, as before
    expect(page.locator('#spec-errors [data-field="spec.fit.epochs"]')).to_be_visible()
    assert page.url.endswith("/new?preset=digits-mlp")

    # An error on a layer (the server checks layer arguments) lands on that layer
    page.locator(ITEMS).nth(1).get_by_label("Value of units").fill("-3")
    epochs.fill("1")
    expect(inline).to_have_count(0)  # editing the field clears its error
    page.click("#submit-run")
    layer_error = page.locator(f'{ITEMS}[data-path="spec.model.layers.1"] > .sf-errors .sf-error')
    expect(layer_error).to_contain_text("units")
    screenshot(page, "new-run-form-errors")
    assert api.get("/runs", params={"limit": 1}).json()["total"] == total_before


def test_clone_prefills_the_form(
    page: Page,
    base_url: str,
    api: httpx.Client,
) -> None:
    name = f"clone source {uuid.uuid4().hex[:6]} <i>x</i>"
    response = api.post(
        "/runs",
        json={
            "name": name,
            "preset": "digits-mlp",
            "overrides": {"fit": {"epochs": 1, "batch_size": 48}},
        },
    )
    assert response.status_code == 201, response.text
    source = response.json()
    api.post(f"/runs/{source['id']}/cancel")  # it need not train: its spec is what is cloned

    page.goto(f"{base_url}/runs/{source['id']}")
    clone = page.get_by_role("link", name="Clone")
    expect(clone).to_have_attribute("href", f"/new?clone={source['id']}")
    clone.click()
    page.wait_for_url(re.compile(rf"/new\?clone={source['id']}$"))

    expect(page.locator("#run-name")).to_have_value(f"{name} (clone)")
    expect(page.locator('input[name="spec.fit.batch_size"]')).to_have_value("48")
    expect(page.locator("#clone-note")).to_contain_text(f"run #{source['id']}")
    expect(page.locator("#clone-note")).to_contain_text(name)
    assert page.locator("#clone-note i").count() == 0
    assert editor_spec(page) == source["spec"]
    expect(page.locator("#preset-select")).to_have_value("digits-mlp")

    # a clone of a run that does not exist says so, and still offers a preset
    page.goto(f"{base_url}/new?clone=987654321")
    expect(page.locator("#form-error")).to_contain_text("no run 987654321")
    expect(page.locator("#spec-editor")).not_to_have_value("")
